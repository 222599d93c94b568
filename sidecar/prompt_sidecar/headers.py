"""A request's header block, read as http.server reads it but without the email package.

http.server parses every request's headers with the email package, about a
quarter of the CPU it spends on a signal. These give the same fields (a test
checks them against the email package) for half of that.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Callable

# http.client's bounds on a header block, which http.server applies.
MAX_HEADER_LINE = 65536
MAX_HEADER_LINES = 100
# The start of a field as the email package reads one: printable ASCII but ':', then ':'.
_FIELD = re.compile(r"[!-9;-~]*:")
# A line and its end, as the email package splits a header block.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def read_header_block(readline: Callable[[int], bytes]) -> list[bytes]:
    """The lines of a request's header block, the blank line that ends it included,
    within http.client's bounds (``LineTooLong``, ``HTTPException``)."""
    lines: list[bytes] = []
    while True:
        line = readline(MAX_HEADER_LINE + 1)
        if len(line) > MAX_HEADER_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > MAX_HEADER_LINES:
            raise http.client.HTTPException(f"got more than {MAX_HEADER_LINES} headers")
        if line in (b"\r\n", b"\n", b""):
            return lines


def parse_header_block(lines: list[bytes]) -> http.client.HTTPMessage:
    """The header fields as http.server's email parser gives them, for half its CPU.

    As the email package (compat32) reads them: a line ends at CR, LF or CRLF;
    the first line that is neither a field (a name of printable ASCII but ':',
    then ':') nor a fold (a leading blank) nor an envelope line ("From ...") ends
    the fields (the email package takes the rest for a body, which no one reads);
    a field without a name, an envelope line and a fold after either is skipped;
    a value starts after the colon and its blanks and keeps its folds as sent.
    """
    text = b"".join(lines).decode("iso-8859-1")
    fields: list[list[str]] = []  # each field's lines as sent, line ends included
    folding = False  # a fold continues the field before it
    for line in _LINE.findall(text):
        if line[0] in " \t":
            if folding:
                fields[-1].append(line)
            continue
        folding = False
        if line.startswith("From "):
            continue
        match = _FIELD.match(line)
        if match is None:
            break
        if match.end() > 1:  # a name before the colon
            fields.append([line])
            folding = True
    message = http.client.HTTPMessage()
    for source in fields:
        name, value = source[0].split(":", 1)
        message[name] = (value.lstrip(" \t") + "".join(source[1:])).rstrip("\r\n")
    return message


def http_version(version: str) -> tuple[int, int] | None:
    """(major, minor) of ``HTTP/<major>.<minor>`` as http.server reads it, else None."""
    if not version.startswith("HTTP/"):
        return None
    parts = version.split("/", 1)[1].split(".")
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 10 for p in parts):
        return None
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:  # digits int() does not take ("²")
        return None
