"""The sidecar's decisions, its syncer against a fake API, and its HTTP endpoints.

The fake stands in only for the API server's answers (no network); files are
real, in a temporary directory. Waits are on conditions with a deadline.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from prompt_contract import objects, signals
from prompt_contract.files import read_meta
from prompt_contract.selector import parse_selector
from prompt_contract.variants import choose_variant
from prompt_contract.writer import PromptFiles
from prompt_sidecar.config import ConfigError, parse_config
from prompt_sidecar.kubeapi import ApiError, load_kubeconfig
from prompt_sidecar.planning import (
    Desired,
    cache_first,
    newer,
    single_action,
    stale_names,
    trusted_from_cache,
    use_list,
)
from prompt_sidecar.runtime import TokenBucket
from prompt_sidecar.server import SidecarServer
from prompt_sidecar.sync import Syncer

from .support import FakeApi, configmap, serving

ENV = {"POD_NAME": "app-1", "POD_NAMESPACE": "ns", "POD_IP": "127.0.0.9"}


# -- config ---------------------------------------------------------------------------


def test_flags_fall_back_to_environment_and_defaults() -> None:
    config = parse_config(["--dir", "/p"], ENV)
    assert (config.port, config.ext, config.resync, config.address) == (
        objects.DEFAULT_PORT,
        ".txt",
        300.0,
        "127.0.0.9",
    )
    env = {**ENV, "PROMPT_DIR": "/e", "PROMPT_SIDECAR_PORT": "9000", "PROMPT_RESYNC_SECONDS": "5"}
    config = parse_config([], env)
    assert (config.directory, config.port, config.resync) == ("/e", 9000, 5.0)
    assert parse_config(["--port=9100"], env).port == 9100  # a flag beats its variable


def test_the_hop_trace_is_off_unless_asked_for() -> None:
    assert parse_config(["--dir=/p"], ENV).trace_file is None
    assert parse_config(["--dir=/p"], {**ENV, "PROMPT_TRACE_FILE": "/t"}).trace_file == "/t"
    assert parse_config(["--dir=/p", "--trace-file=/f"], ENV).trace_file == "/f"


def test_selector_comes_only_from_the_downward_api() -> None:
    config = parse_config(["--dir=/p"], {**ENV, "PROMPT_SELECTOR": "team=a,tier in (x,y)"})
    assert config.selector.matches({"team": "a", "tier": "y"})
    assert not config.selector.matches({"team": "a"})


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], ENV, "--dir"),
        (["--dir=/p"], {"POD_NAME": "x"}, "POD_NAMESPACE"),
        (["--dir=/p", "--port=0"], ENV, "--port"),
        (["--dir=/p"], {**ENV, "PROMPT_SIDECAR_PORT": "http"}, "PROMPT_SIDECAR_PORT"),
        (["--dir=/p", "--resync=-1"], ENV, "--resync"),
        (["--dir=/p", "--resync=nan"], ENV, "--resync"),
        (["--dir=/p", "--ext=txt"], ENV, "--ext"),
        (["--dir=/p"], {**ENV, "POD_IP": "pod.local"}, "POD_IP"),
        (["--dir=/p"], {**ENV, "PROMPT_SELECTOR": "a in (b"}, "prompts.dev/selector"),
    ],
)
def test_bad_settings_name_the_flag_or_variable(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_config(argv, env)


def test_help_documents_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_config(["--help"], {})
    text = capsys.readouterr().out
    for word in (
        "--dir",
        "PROMPT_DIR",
        "--port",
        "PROMPT_SIDECAR_PORT",
        "--ext",
        "PROMPT_EXT",
        "--resync",
        "PROMPT_RESYNC_SECONDS",
        "--kubeconfig",
        "KUBECONFIG",
        "--log-format",
        "POD_NAME",
        "POD_NAMESPACE",
        "POD_IP",
        "PROMPT_SELECTOR",
        "/readyz",
        "/healthz",
        "/metrics",
    ):
        assert word in text, word


# -- wire and selector edge cases -------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # would end in RecursionError inside json
        b'{"prompts": [], "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        '{"prompts": [{"name": "Grüße", "revision": "r"}]}'.encode(),
        b'{"prompts": [{"name": "p\\n", "revision": "r"}]}',
        b'{"prompts": [{"name": "p", "revision": "r\\n"}]}',
        b'{"prompts": [{"name": "p", "revision": "' + b"a" * 129 + b'"}]}',
        b'{"prompts": [{"name": "../etc", "revision": "r"}]}',
        b'{"prompts": [{"name": ["p"], "revision": "r"}]}',
        b"NaN",
    ],
)
def test_nasty_signals_are_refused(body: bytes) -> None:
    with pytest.raises(signals.SignalError):
        signals.parse_signal(body)


def test_empty_revision_is_a_valid_signal_for_a_dropped_prompt() -> None:
    assert signals.parse_signal(signals.encode_signal([("p", "")])) == [("p", "")]


def test_signal_response_is_checked() -> None:
    with pytest.raises(signals.SignalError):
        signals.parse_signal_response(b'{"pod": "x"}')
    assert signals.parse_signal_response(b'{"served": {"a": 5}}') == {"a": None}


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("a in ()", {"a": ""}, True),  # Kubernetes reads () as the empty value
        ("a notin (x), b", {"b": "1"}, True),
        ("a,!b", {"a": "1", "b": "2"}, False),
        ("  a = x ,b==y ", {"a": "x", "b": "y"}, True),
    ],
)
def test_selector_corner_cases(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(text).matches(labels) is expected


# -- pure decisions -----------------------------------------------------------------


def desired(
    prompt: str,
    key: str | None = None,
    revision: str = "r1",
    number: int = 1,
    uid: str = "u1",
    created: str = "2026-01-01T00:00:00Z",
) -> Desired:
    return Desired(prompt, key or prompt, revision, b"text", created, number=number, uid=uid)


def test_only_pairs_with_another_revision_cost_a_read() -> None:
    served = {"a": ("a", "r1"), "b": ("kb", "r2")}
    assert stale_names([("a", "r1"), ("b", "r3"), ("c", "r1"), ("a", "")], served) == [
        "b",
        "c",
        "a",
    ]


def test_many_dirty_prompts_or_a_due_resync_use_one_list() -> None:
    assert not use_list(4, False) and use_list(5, False) and use_list(1, True)


def test_single_read_decides_write_list_or_nothing() -> None:
    served = {"a": ("a", "r1"), "b": ("kb", "r1")}
    numbers = {"a": ("u1", 1), "b": ("u1", 1)}
    disk = {"a": ("a", "r1"), "kb": ("b", "r1")}
    assert single_action("a", desired("a", "a", "r2", 2), served, numbers, disk).kind == "write"
    # A missing or unusable revision never removes a file on its own: it may
    # only have been superseded and pruned, so a full list decides.
    assert single_action("a", None, served, numbers, disk).kind == "list"
    assert single_action("b", "not selected", served, numbers, disk).kind == "list"
    assert (
        single_action("zz", None, served, numbers, disk).kind == "none"
    )  # forged: changes nothing
    assert single_action("zz", "not selected", served, numbers, disk).kind == "none"
    # The ConfigMap names another Prompt (a hash-shortened name collision): not ours.
    assert single_action("zz", desired("other"), served, numbers, disk).kind == "none"
    # A late signal for an older revision changes nothing.
    assert single_action("a", desired("a", "a", "r0", 1), served, numbers, disk).kind == "none"
    # The Prompt was deleted and made again: its new object counts from 1 again.
    assert (
        single_action("a", desired("a", "a", "r9", 1, "u2"), served, numbers, disk).kind == "write"
    )
    # After a restart the numbers are unknown until the first list: any revision is newer.
    assert single_action("a", desired("a", "a", "r0", 1), served, {}, disk).kind == "write"
    # Another Prompt serves the key: only a full list may decide.
    assert single_action("c", desired("c", key="kb"), served, numbers, disk).kind == "list"


def test_only_a_write_is_trusted_from_the_watch_cache() -> None:
    served = {"a": ("a", "r2"), "b": ("kb", "r1")}
    numbers = {"a": ("u1", 2), "b": ("u1", 1)}
    disk = {"a": ("a", "r2"), "kb": ("b", "r1")}

    def trusted(name: str, result: Desired | str | None) -> bool:
        return trusted_from_cache(single_action(name, result, served, numbers, disk))

    # A revision's data never changes: a cached copy that writes writes the right bytes.
    assert trusted("a", desired("a", "a", "r3", 3))
    assert trusted("zz", desired("zz", "zz", "r1", 1))
    # Anything else may be the cache lagging, so etcd is asked before acting.
    assert not trusted("a", None)  # just created, not yet in the cache
    assert not trusted("zz", None)
    assert not trusted("a", "not selected by this pod's prompts.dev/selector")  # relabelled
    assert not trusted("a", desired("a", "a", "r1", 1))  # a rollback raised its number since
    assert not trusted("c", desired("c", key="kb"))  # the key's holder may have moved on
    # Only a served Prompt's revisions are read from the cache: a name never served
    # (a forged one, or a first delivery) keeps its one read from etcd.
    assert cache_first("a", served) and not cache_first("zz", served)


def test_the_highest_revision_number_is_current() -> None:
    assert newer(desired("a", number=2), None)
    assert newer(desired("a", number=3), desired("a", number=2))
    assert not newer(desired("a", number=2), desired("a", number=3))
    # Across Prompt objects of one name (deleted, made again) the newer object wins.
    old = desired("a", number=4, uid="old", created="2026-01-01T00:00:00Z")
    new = desired("a", number=1, uid="new", created="2026-01-01T00:05:00Z")
    assert newer(new, old) and not newer(old, new)


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=5.0, burst=2, now=0.0)
    assert bucket.delay(0.0) == 0.0
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.delay(0.0) == pytest.approx(0.2)
    assert bucket.delay(0.2) == pytest.approx(0.0)


# -- the syncer against a fake API server ----------------------------------------------


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.005)


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def make_syncer(api: FakeApi, tmp_path: Path) -> Iterator[Callable[..., Syncer]]:
    made: list[Syncer] = []

    def make(selector: str = "", **kwargs: Any) -> Syncer:
        kwargs.setdefault("reads_per_second", 1000.0)
        kwargs.setdefault("burst", 1000)
        syncer = Syncer(
            api,  # type: ignore[arg-type]
            PromptFiles(str(tmp_path / "prompts")),
            "ns",
            parse_selector(selector),
            **kwargs,
        )
        made.append(syncer)
        syncer.start()
        return syncer

    yield make
    for syncer in made:
        syncer.stop()


def read(tmp_path: Path, key: str) -> bytes | None:
    path = tmp_path / "prompts" / f"{key}.txt"
    return path.read_bytes() if path.exists() else None


def test_start_writes_every_selected_file_before_ready(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    for i in range(120):  # three pages
        api.put(configmap(f"p{i}", f"text {i}\r\n", team="a" if i % 2 else "b"))
    api.put({**configmap("foreign", "x"), "metadata": {"name": "foreign", "labels": {}}})
    syncer = make_syncer("team=a")
    assert syncer.ready.wait(5)
    names = sorted(p.name for p in (tmp_path / "prompts").iterdir())
    assert names == sorted([".prompts"] + [f"p{i}.txt" for i in range(1, 120, 2)])
    assert read(tmp_path, "p7") == b"text 7\r\n"
    assert syncer.health_report()["status"] == "ok"


def staging(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "prompts" / ".prompts" / "staging").iterdir())


def texts_shown(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "prompts").glob("*.txt"))


class PausingApi(FakeApi):
    """Lists pages of 50 and notes, as each later page is asked for, what the
    prompt directory held: the moment a full list is half done."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[list[str], list[str]]] = []
        self.at_list_start: list[tuple[list[str], list[str]]] = []
        self.directory: Path | None = None
        self.fail_after_first_page = False

    def list_configmaps(
        self, namespace: str, label_selector: str, page_size: int = 50
    ) -> Iterator[list[dict[str, Any]]]:
        if self.directory is not None and (self.directory / "prompts").exists():
            self.at_list_start.append((staging(self.directory), texts_shown(self.directory)))
        for number, page in enumerate(super().list_configmaps(namespace, label_selector)):
            if number and self.directory is not None:
                self.seen.append((staging(self.directory), texts_shown(self.directory)))
                if self.fail_after_first_page:
                    raise ApiError("API server unreachable: connection reset")
            yield page


def test_a_full_list_parks_texts_in_staging_and_shows_them_after_the_last_page(
    tmp_path: Path,
) -> None:
    api = PausingApi()
    api.directory = tmp_path
    for i in range(120):  # three pages
        api.put(configmap(f"p{i:03}", f"text {i}"))
    syncer = Syncer(api, PromptFiles(str(tmp_path / "prompts")), "ns", parse_selector(""))  # type: ignore[arg-type]
    syncer.start()
    try:
        assert syncer.ready.wait(5)
    finally:
        syncer.stop()
    # Half way, every text of the pages read so far waits on disk (metadata and
    # text: two staged files each), none in the process and none shown yet.
    (staged1, shown1), (staged2, shown2) = api.seen
    assert (len(staged1), shown1) == (2 * 50, [])
    assert (len(staged2), shown2) == (2 * 100, [])
    assert len(texts_shown(tmp_path)) == 120 and staging(tmp_path) == []
    assert read(tmp_path, "p042") == b"text 42"
    assert read_meta(str(tmp_path / "prompts"), "p042").revision == "r1"  # type: ignore[union-attr]


def test_a_list_that_fails_half_way_shows_nothing_and_leaves_no_staged_files(
    tmp_path: Path,
) -> None:
    api = PausingApi()
    api.directory = tmp_path
    api.fail_after_first_page = True
    for i in range(60):
        api.put(configmap(f"p{i:03}", f"text {i}"))
    syncer = Syncer(api, PromptFiles(str(tmp_path / "prompts")), "ns", parse_selector(""))  # type: ignore[arg-type]
    syncer.start()
    try:
        # The retry's list starts right after the failure and stages its own
        # first page, so look at the disk as each list starts: what a failed
        # list staged is gone before the next one begins, and nothing was shown.
        wait_until(lambda: len(api.at_list_start) >= 2)
        assert not syncer.ready.is_set()
        assert api.at_list_start[:2] == [([], []), ([], [])]
        api.fail_after_first_page = False
        assert syncer.ready.wait(10)
    finally:
        syncer.stop()
    assert len(texts_shown(tmp_path)) == 60 and staging(tmp_path) == []


def test_staged_texts_of_superseded_revisions_and_lost_keys_are_dropped(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    api.put(configmap("p", "oldest", "r-c", number=1))  # staged, then replaced
    api.put(configmap("p", "current", "r-d", number=7))
    young = configmap("a-young", "young", key="k")  # loses key k to the older Prompt
    young["metadata"]["creationTimestamp"] = "2026-02-01T00:00:00Z"
    api.put(young)
    api.put(configmap("b-old", "old", key="k"))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    assert read(tmp_path, "p") == b"current" and read(tmp_path, "k") == b"old"
    assert staging(tmp_path) == []
    assert syncer.metrics.value("files_written_total") == 2


def test_signal_updates_the_file_and_answers_with_the_new_revision(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    api.put(configmap("p", "one"))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    api.put(configmap("p", "two", "r2"))
    assert syncer.signal([("p", "r2")]) == {"p": "r2"}
    assert read(tmp_path, "p") == b"two"
    assert api.gets == [objects.configmap_name("p", "r2")]
    assert syncer.metrics.value("files_written_total") == 2


def test_replayed_and_forged_signals_change_no_file(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    api.put(configmap("p", "genuine"))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    before = (tmp_path / "prompts" / "p.txt").stat()
    assert syncer.signal([("p", "r1")]) == {"p": "r1"}
    assert api.gets == []  # what is served already costs no read
    assert syncer.signal([("p", "forged"), ("nope", "x")]) == {"p": "r1", "nope": None}
    after = (tmp_path / "prompts" / "p.txt").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in (tmp_path / "prompts").iterdir()) == [".prompts", "p.txt"]


def test_a_burst_of_signals_ends_in_one_read_of_the_latest(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    api.put(configmap("p", "v0", "r0"))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    api.gate.clear()  # hold the first read while nine more edits and signals arrive
    api.put(configmap("p", "v1", "r1"))
    first = threading.Thread(target=syncer.signal, args=([("p", "r1")],))
    first.start()
    wait_until(lambda: syncer._loop.pending.names == {})  # the syncer took it and waits at the gate
    threads = []
    for i in range(2, 11):
        api.put(configmap("p", f"v{i}", f"r{i}"))
        thread = threading.Thread(target=syncer.signal, args=([("p", f"r{i}")],))
        thread.start()
        threads.append(thread)
    wait_until(lambda: "p" in syncer._loop.pending.names)
    api.gate.set()
    for thread in [first, *threads]:
        thread.join(5)
    assert read(tmp_path, "p") == b"v10"
    assert len(api.gets) == 2  # the held read and one read for all nine that followed


def test_many_signalled_prompts_are_read_with_one_list(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    for i in range(10):
        api.put(configmap(f"p{i}", "old"))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    for i in range(10):
        api.put(configmap(f"p{i}", "new", "r2"))
    answer = syncer.signal([(f"p{i}", "r2") for i in range(10)])
    assert answer == {f"p{i}": "r2" for i in range(10)}
    assert api.lists == 2 and api.gets == []
    assert all(read(tmp_path, f"p{i}") == b"new" for i in range(10))


def test_deleted_or_unselected_configmap_removes_its_file(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    api.put(configmap("gone", "x", team="a"))
    api.put(configmap("moved", "y", team="a"))
    syncer = make_syncer("team=a")
    assert syncer.ready.wait(5)
    del api.objects[objects.configmap_name("gone", "r1")]
    api.put(configmap("moved", "y", team="b"))
    assert syncer.signal([("gone", ""), ("moved", "")]) == {"gone": None, "moved": None}
    assert read(tmp_path, "gone") is None and read(tmp_path, "moved") is None


def test_the_highest_numbered_revision_is_served_whatever_the_list_order(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    api.put(configmap("p", "current", "r-b", number=7))  # listed first
    api.put(configmap("p", "older", "r-a", number=3))
    api.put(configmap("p", "oldest", "r-c", number=1))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    assert read(tmp_path, "p") == b"current"
    assert syncer.revisions() == {"p": "r-b"}
    assert syncer.metrics.value("files_written_total") == 1  # no older text shown first


def test_a_late_signal_for_an_older_revision_changes_nothing(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    api.put(configmap("p", "old", "r1"))
    api.put(configmap("p", "new", "r2"))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    assert syncer.signal([("p", "r1")]) == {"p": "r2"}
    assert read(tmp_path, "p") == b"new"


def test_rollback_raises_an_old_revision_and_the_signal_serves_it(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    api.put(configmap("p", "A", "ra", number=1))
    api.put(configmap("p", "B", "rb", number=2))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    api.put(configmap("p", "A", "ra", number=3))  # the operator relabels revision A
    assert syncer.signal([("p", "ra")]) == {"p": "ra"}
    assert read(tmp_path, "p") == b"A"
    assert api.lists == 1  # one get, no list


def test_a_pruned_revision_never_drops_the_file_on_a_get_alone(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    api.put(configmap("p", "one", "r1"))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    # Two quick edits: r2 is pruned before this sidecar reads it, r3 is current.
    api.put(configmap("p", "three", "r3"))
    assert syncer.signal([("p", "r2")]) == {"p": "r3"}
    assert read(tmp_path, "p") == b"three"
    # The watch cache's 404, then etcd's: only then the list.
    assert api.gets == [objects.configmap_name("p", "r2")] * 2 and api.cached_gets == 1
    assert api.lists == 2


def test_a_cached_read_is_acted_on_only_when_it_writes(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    api.put(configmap("p", "one", "r1"))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    api.put(configmap("p", "two", "r2"))
    assert syncer.signal([("p", "r2")]) == {"p": "r2"}
    assert (api.gets, api.cached_gets) == ([objects.configmap_name("p", "r2")], 1)
    # A cache that lags: r3 is missing from it, so its 404 is read again from etcd.
    api.cache = dict(api.objects)
    api.put(configmap("p", "three", "r3"))
    assert syncer.signal([("p", "r3")]) == {"p": "r3"}
    assert read(tmp_path, "p") == b"three"
    assert api.gets[1:] == [objects.configmap_name("p", "r3")] * 2 and api.cached_gets == 2
    # A rollback to r1 raised its number; the cache still has the old one ("not newer").
    api.put(configmap("p", "one", "r1", number=5))
    assert syncer.signal([("p", "r1")]) == {"p": "r1"}
    assert read(tmp_path, "p") == b"one" and api.lists == 1
    # A name never served: one read, from etcd, as before.
    assert syncer.signal([("zz", "r1")]) == {"zz": None}
    assert api.gets[-1] == objects.configmap_name("zz", "r1") and api.cached_gets == 3


def variant_configmap(name: str, revision: str, weights: dict[str, int]) -> dict[str, Any]:
    cm = configmap(name, "", revision)
    cm["data"] = {
        objects.METADATA_DATA_KEY: json.dumps(
            {"variants": [{"name": n, "weight": w} for n, w in weights.items()]}
        ),
        **{objects.variant_data_key(n): f"text of {n}" for n in weights},
    }
    return cm


@pytest.mark.parametrize("pod", ["app-1", "app-2", "app-3", "app-4"])
def test_each_pod_serves_the_variant_its_name_chooses(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path, pod: str
) -> None:
    weights = {"control": 1, "concise": 1}
    api.put(variant_configmap("p", "r1", weights))
    syncer = make_syncer(pod=pod)
    assert syncer.ready.wait(5)
    chosen = choose_variant(pod, "p", weights.items())
    assert read(tmp_path, "p") == f"text of {chosen}".encode()
    meta = read_meta(str(tmp_path / "prompts"), "p")
    assert meta is not None and meta.variant == chosen
    assert meta.variants == {n: {"weight": 1, "text": f"text of {n}"} for n in weights}


def test_a_variant_without_its_text_is_skipped_and_the_old_file_kept(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    api.put(configmap("p", "plain", "r1"))
    syncer = make_syncer(pod="app-1")
    assert syncer.ready.wait(5)
    broken = variant_configmap("p", "r2", {"a": 1, "b": 1})
    del broken["data"][objects.variant_data_key("b")]
    api.put(broken)
    assert syncer.signal([("p", "r2")]) == {"p": "r1"}
    assert read(tmp_path, "p") == b"plain"


def test_key_change_moves_the_file(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    api.put(configmap("p", "x", key="old"))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    api.put(configmap("p", "x", "r2", key="new"))
    syncer.signal([("p", "r2")])
    assert read(tmp_path, "new") == b"x" and read(tmp_path, "old") is None


def test_what_is_served_follows_writes_key_changes_and_removals(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    for name in ("a", "b", "c"):
        api.put(configmap(name, name))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    api.put(configmap("a", "a2", "r2", key="a-new"))  # a key change
    api.put(configmap("b", "b2", "r2"))
    assert syncer.signal([("a", "r2"), ("b", "r2")]) == {"a": "r2", "b": "r2"}
    del api.objects[objects.configmap_name("c", "r1")]
    assert syncer.signal([("c", "")]) == {"c": None}
    assert syncer.revisions() == {"a": "r2", "b": "r2"}
    assert syncer.health_report()["files"] == 2
    assert read(tmp_path, "a-new") == b"a2" and read(tmp_path, "a") is None
    # A late signal for a's older revision is still known to be older.
    api.gets.clear()
    assert syncer.signal([("a", "r1")]) == {"a": "r2"}
    assert read(tmp_path, "a-new") == b"a2"


def test_two_prompts_with_one_key_serve_the_oldest_without_flapping(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    young = configmap("a-young", "young", key="k")
    young["metadata"]["creationTimestamp"] = "2026-02-01T00:00:00Z"
    api.put(young)  # listed first (pages come in name order), but younger
    api.put(configmap("b-old", "old", key="k"))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    assert read(tmp_path, "k") == b"old"
    assert syncer.revisions() == {"b-old": "r1"}


def test_unreachable_api_keeps_files_and_reports_degraded(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    api.put(configmap("p", "kept"))
    syncer = make_syncer(resync_seconds=0.05)
    assert syncer.ready.wait(5)
    api.down = True
    wait_until(lambda: syncer.health_report()["status"] == "degraded")
    assert syncer.signal([("p", "r9")], wait=0.1) == {"p": "r1"}
    assert read(tmp_path, "p") == b"kept"
    assert "unreachable" in str(syncer.health_report()["lastError"])
    api.down = False
    wait_until(lambda: syncer.health_report()["status"] == "ok", timeout=10)
    assert read(tmp_path, "p") == b"kept"


def test_a_signal_after_an_outage_is_read_at_once_not_after_the_backoff(
    api: FakeApi, make_syncer: Callable[..., Syncer], tmp_path: Path
) -> None:
    api.put(configmap("p", "old"))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    api.down = True
    while syncer.metrics.value("sync_failures_total") < 8:  # backoff now seconds long
        syncer.signal([("p", "r-during")], wait=0.5)
    api.down = False
    api.put(configmap("p", "new", "r2"))
    # The operator's signal says the API server answers again.
    assert syncer.signal([("p", "r2")], wait=2) == {"p": "r2"}
    assert read(tmp_path, "p") == b"new"


def test_not_ready_until_the_first_full_sync_succeeds(
    api: FakeApi, make_syncer: Callable[..., Syncer]
) -> None:
    api.down = True
    api.put(configmap("p", "x"))
    syncer = make_syncer()
    wait_until(lambda: syncer.metrics.value("sync_failures_total") >= 1)
    assert not syncer.ready.is_set()
    api.down = False
    assert syncer.ready.wait(10)


# -- the HTTP server on loopback --------------------------------------------------------


@pytest.fixture
def server(
    api: FakeApi, make_syncer: Callable[..., Syncer]
) -> Iterator[tuple[SidecarServer, Syncer]]:
    api.put(configmap("p", "x"))
    syncer = make_syncer()
    assert syncer.ready.wait(5)
    with serving(syncer, "app-1") as srv:
        yield srv, syncer


def request(
    srv: SidecarServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=5)  # type: ignore[misc]
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


JSON = {"Content-Type": "application/json"}


def test_endpoints_answer_and_show_no_prompt_text(
    server: tuple[SidecarServer, Syncer],
) -> None:
    srv, _ = server
    assert request(srv, "GET", "/readyz")[0] == 200
    status, body = request(srv, "GET", "/healthz")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok" and health["lastSyncTime"]
    assert health["lastSyncRevisions"] == {"p": "r1"}
    status, metrics = request(srv, "GET", "/metrics")
    assert status == 200 and b"prompt_sidecar_syncs_total" in metrics
    assert b"prompt_sidecar_signal_to_file_seconds_bucket" in metrics
    status, body = request(
        srv, "POST", signals.SIGNAL_PATH, signals.encode_signal([("p", "r1")]), JSON
    )
    assert (status, json.loads(body)) == (200, {"pod": "app-1", "served": {"p": "r1"}})


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [
        ("POST", signals.SIGNAL_PATH, b"\xff", JSON, 400),
        ("POST", signals.SIGNAL_PATH, b'{"prompts": "all"}', JSON, 400),
        ("POST", signals.SIGNAL_PATH, b"[" * 50_000, JSON, 400),
        ("POST", signals.SIGNAL_PATH, b"{}", {"Content-Type": "text/plain"}, 415),
        # Refused from the header alone, before any of the body is read.
        ("POST", signals.SIGNAL_PATH, None, {**JSON, "Content-Length": "2000000"}, 413),
        ("GET", signals.SIGNAL_PATH, None, {}, 405),
        ("PUT", signals.SIGNAL_PATH, b"{}", JSON, 405),
        ("POST", "/healthz", b"{}", JSON, 405),
        ("GET", "/nope", None, {}, 404),
        ("POST", "/v2/signal", b"{}", JSON, 404),
    ],
)
def test_bad_requests_get_a_4xx_with_a_reason(
    server: tuple[SidecarServer, Syncer],
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
) -> None:
    srv, _ = server
    got, answer = request(srv, method, path, body, headers)
    assert got == status
    assert "error" in json.loads(answer)
    assert request(srv, "GET", "/readyz")[0] == 200  # and the server is still fine


def test_rejected_signals_are_counted(server: tuple[SidecarServer, Syncer]) -> None:
    srv, syncer = server
    request(srv, "POST", signals.SIGNAL_PATH, b"nope", JSON)
    assert syncer.metrics.value("signals_rejected_total") == 1


# -- credentials ------------------------------------------------------------------------


KUBECONFIG = {
    "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
    "users": [{"name": "u", "user": {"token": "t0k"}}],
    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "x",
}


def test_a_json_kubeconfig_is_read_without_the_yaml_parser(tmp_path: Path) -> None:
    path = tmp_path / "kc.json"
    path.write_text(json.dumps(KUBECONFIG))
    code = (
        "import sys; from prompt_sidecar.kubeapi import load_kubeconfig; "
        f"auth = load_kubeconfig({str(path)!r}); "
        "print(auth.server, auth.token, 'yaml' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["https://10.0.0.1:6443", "t0k", "False"]


def test_a_yaml_kubeconfig_still_works_and_junk_is_refused(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "kc.yaml"
    path.write_text(yaml.safe_dump(KUBECONFIG))
    assert load_kubeconfig(str(path)).token == "t0k"
    path.write_text("{flow: style, is: yaml}")  # starts like JSON, is not
    with pytest.raises(ApiError, match="no server"):
        load_kubeconfig(str(path))
    path.write_text("- just\n- a list\n")
    with pytest.raises(ApiError, match="not a mapping"):
        load_kubeconfig(str(path))
