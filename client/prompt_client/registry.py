"""A hot-reloading prompt registry that reads the directory the sidecar writes.

Reads never touch the disk: the registry holds an immutable dict of entries
and swaps it for a new one whenever its watcher thread sees the directory
change (plus a periodic rescan as a safety net). So ``registry["name"]`` is
lock-free, never blocks an asyncio loop, and never returns half a file: the
sidecar renames whole files into place, and the registry checks each text
against the content hash in the sidecar's metadata before it publishes it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Protocol

from prompt_contract.calls import CALL_FORM
from prompt_contract.files import META_DIR, text_sha256
from prompt_contract.templates import MissingVariableError, UnknownVariableError, render_template
from prompt_contract.variants import choose_variant

from .call import PromptCall, build_call, render_call_text, text_call
from .scan import Entry, PromptInfo, _now, scan_directory
from .sources import FileSystemSource, check_directory, is_their_file_source
from .usage import UsageCallback, UsageLog

__all__ = [
    "ChangeCallback",
    "PromptInfo",
    "PromptRegistry",
    "PromptSnapshot",
    "PromptSource",
]

logger = logging.getLogger("prompt_client")

ChangeCallback = Callable[[str, "str | None"], None]
"""``callback(name, revision)``: revision is ``None`` when the prompt was removed or
has no metadata."""


class PromptSource(Protocol):
    """The ``prompt-hot-reloading`` source interface: any source may implement it."""

    def load_all(self) -> dict[str, str]:
        """Every prompt's text, by name."""
        ...

    def watch(self, on_change: Callable[[str, str], None]) -> None:
        """Call ``on_change(name, text)`` from a daemon thread on every change."""
        ...


def _default_info(name: str) -> PromptInfo:
    return PromptInfo(name, None, None, "default", _now(), None)


class PromptSnapshot(Mapping[str, str]):
    """Every prompt as it was at one moment; nothing in it ever changes.

    Take one per conversation (``registry.snapshot()``) so a session keeps one
    version of its instructions while new sessions get the newest.
    ``render``, ``info`` and ``log_usage`` all describe this snapshot's text.
    """

    def __init__(
        self,
        entries: Mapping[str, Entry],
        defaults: Mapping[str, str],
        usage: UsageLog | None = None,
        on_default: Callable[[str], None] | None = None,
    ) -> None:
        self._entries = entries  # never mutated: the registry swaps in new dicts
        self._defaults = MappingProxyType(dict(defaults))
        self._usage = usage or UsageLog()
        self._on_default = on_default

    def __getitem__(self, name: str) -> str:
        entry = self._entries.get(name)
        if entry is not None:
            return entry.text
        text = self._defaults[name]
        if self._on_default is not None:
            self._on_default(name)
        return text

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._defaults

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(set(self._entries) | set(self._defaults)))

    def __len__(self) -> int:
        return len(self._entries.keys() | self._defaults.keys())

    def info(self, name: str, /, *, variant_key: object = None) -> PromptInfo:
        """Revision, variant, source Prompt and load time of the text served for ``name``.

        With ``variant_key`` (a user or conversation id) and a Prompt with
        variants, ``variant`` is the one that key is served (see ``render``).
        Raises ``KeyError`` when there is neither a file nor a default.
        """
        return self._served(name, variant_key)[1]

    def _served(self, name: str, variant_key: object) -> tuple[str, PromptInfo]:
        """The text and info for ``name``, for ``variant_key`` when one is given."""
        entry = self._entries.get(name)
        if entry is None:
            if name not in self._defaults:
                raise KeyError(name)
            return self._defaults[name], _default_info(name)
        if variant_key is None or not entry.variants:
            return entry.text, entry.info
        prompt = (entry.info.source or name).split("/", 1)[-1]
        weights = ((variant, weight) for variant, (weight, _) in entry.variants.items())
        chosen = choose_variant(str(variant_key), prompt, weights)
        if chosen is None:  # no positive weight: the operator never writes this
            return entry.text, entry.info
        text = entry.variants[chosen][1]
        info = replace(entry.info, variant=chosen, sha256=text_sha256(text.encode("utf-8")))
        return text, info

    def render(self, name: str, /, *, variant_key: object = None, **variables: Any) -> str:
        """The prompt ``name`` with its ``{placeholders}`` filled in from ``variables``.

        The rules are the operator's: plain ``{identifier}`` placeholders only,
        ``{{`` and ``}}`` for literal braces; attribute and index access are
        refused, so a template can never reach into your objects. Values not
        passed come from the defaults declared in the Prompt. The declared
        variables come from the sidecar's metadata; for a file without
        metadata (or an app default) they are the template's own placeholders.

        Raises ``KeyError`` for an unknown prompt, ``MissingVariableError`` for
        a variable without a value and ``UnknownVariableError`` for one the
        Prompt does not declare (both ``RenderError``, a ``ValueError``; the
        message names the prompt, the variable and the declared ones), and
        ``TemplateError`` for a template that breaks the rules. A Prompt with
        ``format: raw`` is returned as it is and takes no variables.

        ``variant_key``: for a Prompt with A/B variants, split per user or
        conversation instead of per pod: the same key always gets the same
        variant while the weights stay, and the keys split by the weights.
        Pass the same key to ``info`` and ``log_usage`` to record the variant.
        Without variants (or without a key) it changes nothing.

        A text Prompt with a model configuration renders its template here too;
        a chat Prompt raises ``ChatPromptError``: use ``call``.
        """
        text, info = self._served(name, variant_key)
        if info.source == "default":
            self[name]  # counts the use of an app default
        if info.form == CALL_FORM:
            return render_call_text(name, text, variables)
        if info.format == "raw":
            if variables:
                unknown = tuple(variables)
                raise UnknownVariableError(
                    f"prompt {name!r} has format raw and takes no variables "
                    f"(got: {', '.join(unknown)})",
                    unknown,
                )
            return text
        declared = info.variables if info.has_metadata else None
        try:
            return render_template(
                text, variables, defaults=info.defaults, prompt=name, declared=declared
            )
        except MissingVariableError as exc:
            if info.has_metadata or info.source == "default":
                raise
            # A plain file: the defaults its Prompt declares travel in the metadata.
            raise MissingVariableError(
                f"{exc.message}; the file has no metadata ({META_DIR}/{name}.json), so the "
                "defaults its Prompt declares are unknown here: pass every variable, or "
                "write the directory from your manifests with `prompt-operator files "
                "MANIFESTS --out DIR`, which writes the metadata as the sidecar does",
                exc.missing,
            ) from None

    def call(
        self,
        name: str,
        /,
        *,
        variant_key: object = None,
        placeholders: Mapping[str, Any] | None = None,
        **variables: Any,
    ) -> PromptCall:
        """The LLM call of prompt ``name``, filled in: each content rendered as by
        ``render``, the app's conversation at each placeholder (Langfuse's
        ``placeholders={"history": [...]}``), the model configuration, and
        ``openai()`` / ``anthropic()`` for the call's keyword arguments. A text
        Prompt is one ``system`` message. Raises ``render``'s errors,
        ``MissingPlaceholderError`` / ``UnknownPlaceholderError`` and, for a
        document this client cannot read, ``CallDocumentError``.
        """
        text, info = self._served(name, variant_key)
        if info.form == CALL_FORM:
            return build_call(name, text, info, variables, placeholders)
        rendered = self.render(name, variant_key=variant_key, **variables)
        return text_call(name, rendered, info, placeholders)

    def log_usage(
        self, name: str, /, *, variant_key: object = None, **metadata: Any
    ) -> dict[str, Any]:
        """Record a use of ``name`` with this snapshot's revision and variant.

        See ``PromptRegistry.log_usage``; returns the record.
        """
        try:
            info = self.info(name, variant_key=variant_key)
        except KeyError:
            info = PromptInfo(name, None, None, None, _now(), None)
        return self._usage.record(info, metadata)


class PromptRegistry(Mapping[str, str]):
    """Prompts by name, kept current as files change; a drop-in for
    ``prompt_hot_reloading.PromptRegistry``.

    ``PromptRegistry("prompts")`` and ``PromptRegistry(FileSystemSource("prompts"))``
    read a directory and watch it; any other object with ``load_all()`` and
    ``watch(on_change)`` (for example ``prompt-hot-reloading``'s
    ``S3PollingSource``) works too, without revisions or removals.

    ``defaults`` are served for names that have no file (logged once per
    name). ``watch=False`` reads once and then only on ``refresh()``.
    ``rescan_interval`` is the period of the safety-net rescan in seconds.
    ``outcomes`` is the small set of results ``log_usage(outcome=...)`` counts
    by name in Prometheus (any other value counts as ``"other"``).

    A directory that does not exist raises ``PromptDirectoryError`` (a
    ``FileNotFoundError``) saying how to get one, as ``prompt-hot-reloading``
    raises ``FileNotFoundError``; ``wait_for_directory=True`` starts empty
    instead and reads the directory once it appears.

    Reads (``registry[name]``, ``in``, ``len``, iteration, ``snapshot()``) are
    lock-free and safe from any thread or asyncio task. Callbacks run on the
    watcher thread; from asyncio, hand work over with
    ``loop.call_soon_threadsafe``.
    """

    def __init__(
        self,
        prompt_source: PromptSource | str | os.PathLike[str],
        *,
        defaults: Mapping[str, str] | None = None,
        watch: bool = True,
        rescan_interval: float = 2.0,
        outcomes: Iterable[str] = (),
        wait_for_directory: bool = False,
    ) -> None:
        if isinstance(prompt_source, (str, os.PathLike)):
            prompt_source = FileSystemSource(os.fspath(prompt_source))
        elif is_their_file_source(prompt_source):
            # prompt-hot-reloading's own FileSystemSource: read its directory our way,
            # so changing only the registry import already fixes its bugs.
            prompt_source = FileSystemSource(prompt_source.prompt_dir)  # type: ignore[attr-defined]
        if isinstance(prompt_source, FileSystemSource) and not wait_for_directory:
            # A wrong path would otherwise look like a directory with no prompts yet.
            check_directory(prompt_source.prompt_dir)
        self.prompt_source = prompt_source
        self._defaults = dict(defaults or {})
        self._defaults_logged: set[str] = set()
        self._callbacks: list[ChangeCallback] = []
        self._lock = threading.Lock()  # serialises updates; readers never wait
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._generation = 0
        self.usage = UsageLog(outcomes)
        self._directory: str | None = None
        self._entries: Mapping[str, Entry]
        if isinstance(prompt_source, FileSystemSource):
            self._directory = prompt_source.prompt_dir
            self._entries = scan_directory(self._directory)
            if watch:
                prompt_source.start_watcher(self.refresh, self._stop, rescan_interval)
        else:
            self._entries = {
                name: Entry(text, PromptInfo(name, None, None, None, _now(), None), (0, 0, 0, 0))
                for name, text in prompt_source.load_all().items()
            }
            if watch:
                prompt_source.watch(self._set_text)

    # -- reading -------------------------------------------------------------------

    def __getitem__(self, name: str) -> str:
        """The text of prompt ``name`` (or the app's default); ``KeyError`` when neither."""
        entry = self._entries.get(name)
        if entry is not None:
            return entry.text
        if name in self._defaults:
            self._served_default(name)
            return self._defaults[name]
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        return len(self.snapshot())

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._defaults

    def has_key(self, name: str) -> bool:
        """``name in registry`` (``prompt-hot-reloading`` spelling)."""
        return name in self

    def copy(self) -> dict[str, str]:
        """A plain dict of every prompt's text now."""
        return dict(self.snapshot())

    def snapshot(self) -> PromptSnapshot:
        """Every prompt as it is now, frozen: hold it for a whole conversation."""
        return PromptSnapshot(self._entries, self._defaults, self.usage, self._served_default)

    def info(self, name: str, /, *, variant_key: object = None) -> PromptInfo:
        """Revision, variant, source Prompt and load time of what ``registry[name]`` serves.

        Consistent with the text: both come from one read whose content hash
        matched the sidecar's metadata. Raises ``KeyError`` for an unknown name.
        ``variant_key`` as in ``render``.
        """
        return self.snapshot().info(name, variant_key=variant_key)

    def render(self, name: str, /, *, variant_key: object = None, **variables: Any) -> str:
        """The prompt with its ``{placeholders}`` filled in (see ``PromptSnapshot.render``)."""
        return self.snapshot().render(name, variant_key=variant_key, **variables)

    def call(
        self,
        name: str,
        /,
        *,
        variant_key: object = None,
        placeholders: Mapping[str, Any] | None = None,
        **variables: Any,
    ) -> PromptCall:
        """The filled-in LLM call of prompt ``name`` (see ``PromptSnapshot.call``)."""
        return self.snapshot().call(
            name, variant_key=variant_key, placeholders=placeholders, **variables
        )

    # -- usage ---------------------------------------------------------------------

    def log_usage(
        self, name: str, /, *, variant_key: object = None, **metadata: Any
    ) -> dict[str, Any]:
        """Record that the app used prompt ``name``, with its current revision and variant.

        The record is ``{"timestamp", "prompt", "revision", "variant", "source",
        **metadata}``. It goes to the ``prompt_client.usage`` logger (as
        ``extra={"prompt_usage": record}`` for structured handlers), to every
        ``on_usage`` callback, and to the Prometheus counter
        ``prompt_usage_total{prompt,revision,variant,outcome}`` when
        prometheus-client is installed (``outcome``: the ``outcome=`` value when
        it is one of the registry's declared ``outcomes``, ``"other"`` when not,
        ``""`` without one). Never raises for an unknown name (revision is then
        ``None``). Use ``snapshot().log_usage`` to record the revision a held
        snapshot served. Returns the record.
        """
        return self.snapshot().log_usage(name, variant_key=variant_key, **metadata)

    def on_usage(self, callback: UsageCallback) -> None:
        """Call ``callback(record)`` on every ``log_usage`` (send it to your tracker).

        A callback that raises is logged and does not affect the others.
        """
        self.usage.add_callback(callback)

    # -- changes -------------------------------------------------------------------

    def on_change(self, callback: ChangeCallback) -> None:
        """Call ``callback(name, revision)`` after a prompt is added, changed or removed.

        ``revision`` is ``None`` for a removed prompt or one without metadata.
        It runs on the watcher thread; one that raises is logged and never
        stops the watcher or the other callbacks.
        """
        self._callbacks.append(callback)

    def wait_for_change(self, timeout: float | None = None) -> bool:
        """Block until the next change is published; False on timeout (for scripts)."""
        with self._changed:
            start = self._generation
            return self._changed.wait_for(lambda: self._generation != start, timeout)

    def refresh(self) -> None:
        """Rescan the directory now (the watcher does this on every change)."""
        if self._directory is None:
            return
        with self._lock:
            old = self._entries
            new = scan_directory(self._directory, old)
            changed = [
                (name, entry.info.revision)
                for name, entry in new.items()
                if name not in old or not old[name].same_content(entry)
            ] + [(name, None) for name in old if name not in new]
            if not changed and all(new[name] is old[name] for name in new):
                return
            self._entries = new  # one reference swap: readers see old or new, never a mix
        if changed:
            self._publish(changed)

    def _set_text(self, name: str, text: str) -> None:
        """Updates from a foreign source go through the same lock and swap."""
        with self._lock:
            entries = dict(self._entries)
            entries[name] = Entry(
                text, PromptInfo(name, None, None, None, _now(), None), (0, 0, 0, 0)
            )
            self._entries = entries
        self._publish([(name, None)])

    def _served_default(self, name: str) -> None:
        if name not in self._defaults_logged:
            self._defaults_logged.add(name)
            logger.warning("prompt %r is missing; serving the app's default", name)

    def _publish(self, changed: list[tuple[str, str | None]]) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()
        for name, revision in changed:
            for callback in list(self._callbacks):
                try:
                    callback(name, revision)
                except Exception:
                    logger.exception("on_change callback failed for prompt %r", name)

    def close(self) -> None:
        """Stop watching (the registry keeps serving what it has)."""
        self._stop.set()

    def __enter__(self) -> PromptRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PromptRegistry({sorted(self)!r})"
