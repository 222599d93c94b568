"""Keep the prompt directory equal to the pod's ConfigMaps.

Pure functions decide (which ConfigMap is ours, which file to write or
remove); ``Syncer`` runs them on one thread: a full list at start (then the
pod is ready), a re-read when a signal names a revision it does not serve
(coalesced and rate-limited), and a full list on a timer so a missed signal
heals. A failed call never removes a file: removal only follows a complete,
successful list or an explicit 404.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from prompt_client.contract import PromptMeta, key_problem, text_sha256

from . import wire
from .files import FileWriteError, PromptFiles
from .kubeapi import ApiError, KubeClient, NotFound
from .metrics import Metrics
from .selector import Selector

logger = logging.getLogger(__name__)

# More dirty Prompts than this are read with one list instead of one get each.
LIST_THRESHOLD = 4


@dataclass(frozen=True)
class Desired:
    """One prompt as a ConfigMap says it should be on disk."""

    prompt: str
    key: str
    revision: str
    text: bytes
    created: str = ""
    variables: tuple[str, ...] = ()
    defaults: dict[str, str] = field(default_factory=dict)
    format: str = "python"


def desired_from_configmap(cm: Mapping[str, Any], selector: Selector) -> Desired | str:
    """The prompt a ConfigMap carries, or why this pod must not use it."""
    meta = cm.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    if labels.get(wire.MANAGED_BY_LABEL) != wire.MANAGED_BY_VALUE:
        return "not written by prompt-operator"
    if not selector.matches(labels):
        return "not selected by this pod's prompts.dev/selector"
    prompt, revision = (
        annotations.get(wire.PROMPT_ANNOTATION),
        annotations.get(wire.REVISION_ANNOTATION),
    )
    key = annotations.get(wire.KEY_ANNOTATION)
    text = (cm.get("data") or {}).get(wire.TEXT_DATA_KEY)
    if not all(isinstance(v, str) and v for v in (prompt, revision, key)) or not isinstance(
        text, str
    ):
        return "missing prompt, revision, key or text"
    assert isinstance(prompt, str) and isinstance(revision, str) and isinstance(key, str)
    problem = key_problem(key)
    if problem:
        return f"key {key!r} cannot name a file: {problem}"
    variables: tuple[str, ...] = ()
    defaults: dict[str, str] = {}
    fmt = "python"
    try:
        extra = json.loads((cm.get("data") or {}).get(wire.METADATA_DATA_KEY) or "{}")
        variables = tuple(str(v) for v in extra.get("variables") or ())
        defaults = {str(k): str(v) for k, v in (extra.get("defaults") or {}).items()}
        fmt = str(extra.get("format") or "python")
    except (ValueError, AttributeError, TypeError):
        logger.warning(
            "ConfigMap %s: unreadable %s; serving the text without it",
            meta.get("name"),
            wire.METADATA_DATA_KEY,
        )
    return Desired(
        prompt,
        key,
        revision,
        text.encode("utf-8"),
        str(meta.get("creationTimestamp", "")),
        variables,
        defaults,
        fmt,
    )


def by_key(desired: Iterable[Desired]) -> tuple[dict[str, Desired], list[str]]:
    """One prompt per key; when two claim a key the oldest (then by name) wins."""
    chosen: dict[str, Desired] = {}
    warnings: list[str] = []
    for item in sorted(desired, key=lambda d: (d.created, d.prompt)):
        if item.key in chosen:
            warnings.append(
                f"Prompts {chosen[item.key].prompt} and {item.prompt} both use key {item.key!r}; "
                f"serving {chosen[item.key].prompt}"
            )
            continue
        chosen[item.key] = item
    return chosen, warnings


@dataclass(frozen=True)
class Plan:
    writes: tuple[Desired, ...]
    removes: tuple[str, ...]  # keys


def plan(wanted: Mapping[str, Desired], present: Mapping[str, PromptMeta], files: set[str]) -> Plan:
    """What to write and remove so the directory matches ``wanted`` (keyed by key)."""
    writes = tuple(
        d
        for key, d in sorted(wanted.items())
        if key not in files
        or (meta := present.get(key)) is None
        or meta.revision != d.revision
        or meta.prompt.split("/", 1)[-1] != d.prompt
    )
    removes = tuple(sorted(key for key in present if key not in wanted))
    return Plan(writes, removes)


def _up_to_date(item: Desired, present: Mapping[str, PromptMeta], on_disk: set[str]) -> bool:
    meta = present.get(item.key)
    return (
        meta is not None
        and item.key in on_disk
        and meta.revision == item.revision
        and meta.prompt.split("/", 1)[-1] == item.prompt
    )


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TokenBucket:
    """At most ``rate`` re-reads per second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self._tokens, self._at = float(burst), time.monotonic()

    def take(self) -> float:
        """Take one token; return how long the caller must wait first."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


@dataclass
class Health:
    ready: bool = False
    degraded: bool = False
    last_sync: str | None = None
    last_error: str | None = None


class Syncer:
    def __init__(
        self,
        client: KubeClient,
        files: PromptFiles,
        namespace: str,
        selector: Selector,
        *,
        resync_seconds: float = 300.0,
        metrics: Metrics | None = None,
        reads_per_second: float = 20.0,
    ) -> None:
        self._client = client
        self._files = files
        self._namespace = namespace
        self._selector = selector
        self._resync = resync_seconds
        self.metrics = metrics or Metrics()
        self._bucket = TokenBucket(reads_per_second, burst=int(reads_per_second * 2))
        self._cond = threading.Condition()
        self._dirty: dict[str, float] = {}  # prompt -> when the signal arrived
        self._requested = 0
        self._done = 0
        self._stop = False
        self._full_due = 0.0
        self.health = Health()
        self.ready = threading.Event()
        # prompt name -> (key, revision) of what is on disk
        self.served: dict[str, tuple[str, str]] = {}
        self._thread = threading.Thread(target=self._run, name="syncer", daemon=True)
        self._label_selector = ",".join(
            filter(None, [f"{wire.MANAGED_BY_LABEL}={wire.MANAGED_BY_VALUE}", selector.text])
        )

    # -- public ---------------------------------------------------------------------

    def start(self) -> None:
        for key, meta in self._files.all_meta().items():
            # Files from before a container restart (the emptyDir outlives it).
            self.served[meta.prompt.split("/", 1)[-1]] = (key, meta.revision)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def signal(self, pairs: Iterable[tuple[str, str]], wait: float = 2.0) -> dict[str, str | None]:
        """Note signalled revisions; wait (bounded) until they are applied; say what is served."""
        names = []
        arrived = time.monotonic()
        with self._cond:
            stale = False
            for name, revision in pairs:
                names.append(name)
                if self.served.get(name, ("", None))[1] != revision:
                    self._dirty.setdefault(name, arrived)
                    stale = True
            if stale:
                self._requested += 1
                ticket = self._requested
                self._cond.notify_all()
                deadline = arrived + wait
                while self._done < ticket and not self._stop:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            return {name: self.served.get(name, ("", None))[1] for name in names}

    # -- the loop ---------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self._stop:
            try:
                self._full_sync()
                break
            except ApiError as exc:
                self._failed(exc)
                attempt += 1
                self._sleep(min(30.0, 0.2 * 2**attempt) * random.uniform(0.5, 1.0))
        if self._stop:
            return
        self.health.ready = True
        self.ready.set()
        logger.info(
            "initial sync done: %d prompt files in %s", len(self.served), self._files.directory
        )
        attempt = 0
        while True:
            with self._cond:
                while not self._stop and not self._dirty and time.monotonic() < self._full_due:
                    self._cond.wait(max(0.0, self._full_due - time.monotonic()))
                if self._stop:
                    return
                dirty, self._dirty = self._dirty, {}
                ticket = self._requested
            try:
                if time.monotonic() >= self._full_due or len(dirty) > LIST_THRESHOLD:
                    self._full_sync(dirty)
                else:
                    for name in dirty:
                        self._sync_one(name, dirty[name])
                attempt = 0
            except ApiError as exc:
                self._failed(exc)
                with self._cond:
                    for name, at in dirty.items():
                        self._dirty.setdefault(name, at)
                attempt += 1
                self._sleep(min(30.0, 0.2 * 2**attempt) * random.uniform(0.5, 1.0))
                continue
            with self._cond:
                self._done = max(self._done, ticket)
                self._cond.notify_all()

    def _sleep(self, seconds: float) -> None:
        with self._cond:
            if not self._stop:
                self._cond.wait(seconds)

    def _failed(self, exc: Exception) -> None:
        self.metrics.inc("sync_failures_total")
        self.health.degraded = True
        self.health.last_error = str(exc)
        logger.warning("sync failed, keeping the files as they are: %s", exc)

    def _succeeded(self) -> None:
        self.metrics.inc("syncs_total")
        self.health.degraded = False
        self.health.last_error = None
        self.health.last_sync = now_rfc3339()
        self.metrics.files = len(self.served)

    def _throttle(self) -> None:
        delay = self._bucket.take()
        if delay > 0:
            time.sleep(delay)
        self.metrics.inc("rereads_total")

    def _full_sync(self, signalled: Mapping[str, float] | None = None) -> None:
        self._throttle()
        present = self._files.all_meta()
        on_disk = self._files.keys()
        desired = []
        # Page by page, keeping the text only of what must be written: a full
        # list of a thousand prompts then costs the sidecar almost no memory.
        for page in self._client.list_configmaps(self._namespace, self._label_selector):
            for cm in page:
                result = desired_from_configmap(cm, self._selector)
                if isinstance(result, str):
                    name = (cm.get("metadata") or {}).get("name")
                    logger.warning("skipping ConfigMap %s: %s", name, result)
                    continue
                if _up_to_date(result, present, on_disk):
                    result = dataclasses.replace(result, text=b"")  # keep no text we won't write
                desired.append(result)
        wanted, warnings = by_key(desired)
        for warning in warnings:
            logger.warning(warning)
        todo = plan(wanted, present, on_disk)
        for item in todo.writes:
            self._write(item, (signalled or {}).get(item.prompt))
        for key in todo.removes:
            self._remove(key, present[key].prompt.split("/", 1)[-1])
        served = {
            meta.prompt.split("/", 1)[-1]: (key, meta.revision)
            for key, meta in self._files.all_meta().items()
        }
        with self._cond:
            self.served = served
        self._full_due = time.monotonic() + self._resync
        self._succeeded()

    def _sync_one(self, name: str, arrived: float) -> None:
        self._throttle()
        try:
            cm = self._client.get_configmap(self._namespace, wire.configmap_name(name))
            result = desired_from_configmap(cm, self._selector)
        except NotFound:
            result = "its ConfigMap is gone"
        if isinstance(result, str) or result.prompt != name:
            if name in self.served:
                logger.info(
                    "removing prompt %s: %s",
                    name,
                    result if isinstance(result, str) else "the ConfigMap names another Prompt",
                )
                self._remove(self.served[name][0], name)
            self._succeeded()
            return
        holder = next(
            (p for p, (k, _) in self.served.items() if k == result.key and p != name), None
        )
        if holder is not None:
            # Another Prompt serves this key: let a full list decide who keeps it.
            self._full_sync({name: arrived})
            return
        self._write(result, arrived)
        self._succeeded()

    def _write(self, item: Desired, arrived: float | None) -> None:
        previous = self.served.get(item.prompt)
        meta = PromptMeta(
            key=item.key,
            prompt=f"{self._namespace}/{item.prompt}",
            revision=item.revision,
            sha256=text_sha256(item.text),
            updated_at=now_rfc3339(),
            variables=item.variables,
            defaults=item.defaults,
            format=item.format,
        )
        try:
            changed = self._files.write(meta, item.text)
        except FileWriteError as exc:
            self.metrics.inc("write_failures_total")
            logger.error("prompt %s stays at its last good file: %s", item.prompt, exc)
            return
        with self._cond:
            self.served[item.prompt] = (item.key, item.revision)
        if not changed:
            return
        self.metrics.inc("files_written_total")
        if arrived is not None:
            self.metrics.observe_latency(time.monotonic() - arrived)
        if previous is not None and previous[0] != item.key:
            self._files.remove(previous[0])  # the Prompt's key changed
        logger.info(
            "prompt %s -> %s%s at revision %s",
            item.prompt,
            item.key,
            self._files.ext,
            item.revision,
        )

    def _remove(self, key: str, prompt: str) -> None:
        if self._files.remove(key):
            self.metrics.inc("files_removed_total")
            logger.info("removed %s%s (prompt %s)", key, self._files.ext, prompt)
        with self._cond:
            if self.served.get(prompt, (None,))[0] == key:
                del self.served[prompt]
