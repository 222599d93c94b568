"""The signing-cost bench: its message, median, table and the code its children run."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest

from bench import signing_cost
from bench.signing_cost import Row


def test_the_message_is_canonical_json_of_what_a_sidecar_needs() -> None:
    message = signing_cost.signal_message("hello")
    fields = json.loads(message)
    assert fields["sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert {"namespace", "prompt", "uid", "revision", "revisionNumber", "keyId", "expires"} <= set(
        fields
    )
    # Sorted keys and no spaces: the operator and the sidecar get the same bytes.
    assert message == json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    assert 250 <= len(signing_cost.signal_message()) <= 350


def test_median_of_odd_and_even_counts_and_none() -> None:
    assert signing_cost.median([3, 1, 2]) == 2
    assert signing_cost.median([4, 1, 3, 2]) == 2.5
    with pytest.raises(ValueError, match="every run failed"):
        signing_cost.median([])


def test_the_table_shows_figures_and_says_why_a_candidate_is_missing() -> None:
    rows = [
        Row("hmac", "HMAC-SHA256 (stdlib)", rss_kib=0, hwm_kib=0, us_per_verify=2.44, installed={}),
        Row(
            "cryptography",
            "Ed25519",
            rss_kib=8 * 1024 + 512,
            hwm_kib=9 * 1024,
            us_per_verify=127.0,
            installed={"cryptography 50.0.2": 15 * 2**20, "cffi 2.1.1": 2**20},
        ),
        Row("ecdsa", "Ed25519 (pure)", rss_kib=800, hwm_kib=800, us_per_verify=4030.0),
        Row("pynacl", "Ed25519", problem="unavailable: cannot install pynacl==1.6.2"),
    ]
    lines = signing_cost.format_table(rows).splitlines()
    assert lines[0].startswith("| candidate | scheme | extra RSS |")
    assert len(lines) == 2 + len(rows)
    assert "| hmac | HMAC-SHA256 (stdlib) | 0.00 MiB | 0.00 MiB | 2.4 µs | 0 (stdlib) |" in lines[2]
    assert "| 8.50 MiB | 9.00 MiB | 127.0 µs | 16.0 MiB (cffi 2.1.1 1.0, cryptography" in lines[3]
    assert "| 4.03 ms |" in lines[4]
    assert lines[5] == (
        "| pynacl | Ed25519 | - | - | - | - | unavailable: cannot install pynacl==1.6.2 |"
    )


def test_python_pairs_name_a_known_candidate() -> None:
    assert signing_cost.parse_pythons(["pynacl=/v/bin/python"]) == {"pynacl": "/v/bin/python"}
    with pytest.raises(SystemExit, match="NAME=PATH"):
        signing_cost.parse_pythons(["/v/bin/python"])
    with pytest.raises(SystemExit, match="NAME=PATH"):
        signing_cost.parse_pythons(["rsa=/v/bin/python"])


def test_the_stdlib_candidate_signs_and_verifies_in_a_real_child_and_rejects_a_bad_mac() -> None:
    code = signing_cost.child_code(signing_cost.HMAC)
    message = signing_cost.signal_message()
    signed = signing_cost.run_child(
        sys.executable, code, "sign", message.hex(), "", signing_cost.SEED.hex()
    )
    keys = (message.hex(), signed["signature"], signed["public"])
    memory = signing_cost.run_child(sys.executable, code, "memory", *keys)
    assert memory["VmHWM"] >= memory["VmRSS"] > 0
    assert len(signing_cost.run_child(sys.executable, code, "cpu", *keys, "2", "3")["seconds"]) == 2
    forged = bytes(32).hex()
    with pytest.raises(signing_cost.Unavailable, match="bad signature"):
        signing_cost.run_child(sys.executable, code, "memory", message.hex(), forged, keys[2])


def test_every_candidates_child_code_compiles() -> None:
    for candidate in signing_cost.CANDIDATES:
        compile(signing_cost.child_code(candidate), candidate.name, "exec")
