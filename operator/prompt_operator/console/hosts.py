"""The Host header values the console answers to (DNS rebinding gets 421).

A page on another site can reach a console on loopback under the attacker's
own name (DNS rebinding); only a list of the console's own names refuses it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence


class HostsError(ValueError):
    """The console would answer to host names it cannot know are its own."""


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARDS = ("0.0.0.0", "::", "")
_HOST_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\.?")


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def host_name(name: str) -> str:
    """``name`` as the Host header spells it (an IPv6 address in brackets, lower case);
    ``HostsError`` for anything but one host name or IP address."""
    bare = name.strip().lower().removeprefix("[").removesuffix("]")
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        if not _HOST_NAME.fullmatch(bare) or len(bare) > 253:
            raise HostsError(
                f"--allow-host {name!r}: give one host name or IP address, without port, "
                "scheme or wildcard (e.g. --allow-host console.example.internal)"
            ) from None
        return bare
    if ip.is_unspecified:
        raise HostsError(f"--allow-host {name!r}: a wildcard address is no host's name")
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


def allowed_hosts(address: str, port: int, names: Sequence[str] = ()) -> frozenset[str]:
    """The Host header values to answer ("host:port", lower case); never "any".

    On loopback: the loopback names. Elsewhere, the user must name the console
    (``--allow-host``): a DNS-rebinding page reaches the console under the
    attacker's own name, and only a list of the console's names refuses it. A
    wildcard address also answers to the loopback names, and a given IP address to
    itself (a page at that address is the console)."""
    given = {host_name(n) for n in names}
    if is_loopback(address):
        hosts = {*LOOPBACK_NAMES, host_name(address), *given}
    elif not given:
        raise HostsError(
            f"--address {address} lets other machines reach the console: name the host "
            "names it answers to with --allow-host NAME (repeatable), e.g. "
            "--allow-host my-laptop.example.internal"
        )
    elif address in WILDCARDS:
        hosts = {*LOOPBACK_NAMES, *given}
    else:
        hosts = {host_name(address), *given}
    out = {f"{h}:{port}" for h in hosts}
    if port == 80:
        out |= hosts  # a browser leaves the default port out of Host
    return frozenset(out)
