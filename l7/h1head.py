"""HTTP/1.1 message heads read with h11's own pieces, with few Python steps per head.

h11's head readers (`maybe_read_from_IDLE_client`, `maybe_read_from_SEND_RESPONSE_server`)
spend most of their time around the parsing rather than in it: the head split into
lines and each stripped of its CR, a generator step, a `validate()` call and a
`groupdict()` per field line, then the event's constructor matching the method and
target again with the regexes the request line has just matched. `read_request` and
`read_response` read a head with the same pieces and nothing else:

- the head ends at the first blank line, found with h11's `blank_line_regex` from
  where h11's ReceiveBuffer last looked (a bare LF ends a line, as in h11), and an
  empty line where a head starts is refused, as h11 does;
- the request or status line (its CR dropped) must fully match h11's
  `request_line_re` or `status_line_re`;
- every field line must match h11's `header_field` ABNF (token, colon, optional
  whitespace, a value without NUL, CR, LF, VT or FF, so a bare CR is refused) up to
  its end, all of them before any field is normalized, as h11 does;
- the fields are normalized as h11's `normalize_and_validate` (`_parsed`, as h11's
  readers call it) does, with the facts framing and keep-alive need in the same pass:
  lower-case names kept beside the raw ones, one Content-Length of digits however
  often repeated, Transfer-Encoding "chunked" only (else 501);
- RFC 9112, 3.2: "A server MUST respond with a 400 (Bad Request) status code to any
  HTTP/1.1 request message that lacks a Host header field and to any request message
  that contains more than one Host header field line" (h11's Request rule).

A field line that starts with whitespace (obs-fold) cannot match the field regex and
is refused, which is what limits.install_h11_hardening makes h11's own reader do.

Reading a line is a pure function of its bytes, and a backend sends the same lines
response after response (clients much the same request after request): request,
status and field lines of up to 128 bytes are remembered with their parse (4096 of
each at most, the table emptied when full), and a remembered line is not matched or
split again.
Every refusal raises h11.LocalProtocolError, with h11's status hint, as h11's readers
do; tests/l7/test_l7_h1head.py holds both readers to the same verdicts, events and
leftover bytes, on tables and on every one-byte mutation of a few heads.
"""

from __future__ import annotations

import re
from typing import Any

import h11
from h11._abnf import field_name
from h11._headers import CONTENT_LENGTH_MAX_DIGITS, Headers, _content_length_re
from h11._readers import request_line_re, status_line_re
from h11._receivebuffer import ReceiveBuffer, blank_line_regex

_blank_line = blank_line_regex.search

# A valid field line (without its LF): h11's `header_field` (token, colon, optional
# whitespace, a value of h11's `field_vchar`s, `[^\x00\s]`, with spaces and tabs between
# them, optional whitespace) and the CR of its CRLF. With the whitespace on either side
# folded into the value, a line is valid when its value holds no NUL, CR, LF, VT or FF:
# so no bare CR.
_valid_line = re.compile((field_name + r":[^\x00\n\r\x0b\x0c]*\r?").encode("ascii")).fullmatch
_request_match = request_line_re.fullmatch
_status_match = status_line_re.fullmatch
_content_length_match = _content_length_re.fullmatch


def _extract(buf: ReceiveBuffer, what: str) -> tuple[bytes, list[bytes], int] | None:
    """The head `buf` starts with, taken from it, as `_split` gives it: h11's
    ReceiveBuffer.maybe_extract_lines, which ends a head at the first blank line
    (b"\\n\\r?\\n")."""
    data = buf._data
    if data[:1] == b"\n" or data[:2] == b"\r\n":
        # An empty line where a head starts: h11 takes it as a head without a first line.
        raise h11.LocalProtocolError(f"no {what} line received")
    match = _blank_line(data, buf._multiple_lines_search)
    if match is None:
        buf._multiple_lines_search = max(0, len(data) - 2)
        if buf.is_next_line_obviously_invalid_request_line():
            raise h11.LocalProtocolError("illegal request line")
        return None
    end = match.end()
    head = bytes(data[:end])
    del data[:end]
    buf._multiple_lines_search = buf._next_line_search = 0
    return _split(head)


def _head_of(data: bytes, what: str) -> tuple[bytes, int] | None:
    """The head `data` starts with (up to its blank line, as `_extract` finds it) and
    where it ends; None if incomplete. An empty first line is refused, as h11 does."""
    if data[:1] == b"\n" or data[:2] == b"\r\n":
        raise h11.LocalProtocolError(f"no {what} line received")
    match = _blank_line(data)
    if match is None:
        return None
    end = match.end()
    return (data if end == len(data) else data[:end]), end


def _split(head: bytes) -> tuple[bytes, list[bytes], int]:
    """A whole head (up to its blank line) as its first line (its CR dropped, as h11
    does), its field lines (each with its CR, if any) and its size."""
    lines = head.split(b"\n")
    first = lines[0]
    if first[-1:] == b"\r":
        first = first[:-1]
    # The last two: the blank line that ends the head (b"" or b"\r") and what follows it.
    return first, lines[1:-2], len(head)


# Field names the single pass over a head's fields takes note of (0: any other).
_HOST = 1
_CONTENT_LENGTH = 2
_TRANSFER_ENCODING = 3
_CONNECTION = 4  # Connection, Expect, Upgrade: what the request side decides with
_HOP = 5  # the other hop-by-hop fields (RFC 9110, 7.6.1), which a proxy drops
_KEEP_ALIVE = 6  # "Connection: keep-alive" and nothing else: decides nothing, names no field
_FORWARDED = 7  # what the gateway writes itself on a request (X-Forwarded-*, client cert)
_WATCHED = {
    b"host": _HOST,
    b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"connection": _CONNECTION,
    b"expect": _CONNECTION,
    b"upgrade": _CONNECTION,
    b"keep-alive": _HOP,
    b"proxy-connection": _HOP,
    b"te": _HOP,
    b"trailer": _HOP,
    b"x-forwarded-for": _FORWARDED,
    b"x-forwarded-proto": _FORWARDED,
    b"x-forwarded-host": _FORWARDED,
    b"x-forwarded-client-cert": _FORWARDED,
    b"x-forwarded-client-cert-verify": _FORWARDED,
}


class Fields:
    """What one pass over a head's field lines found: h11's normalized fields (`items`,
    as `Headers._full_items`) and the facts framing and keep-alive are decided by.

    For forwarding a message as it came: `wires`, each field that is neither hop-by-hop
    nor Host nor Content-Length as the gateway writes it (b"name: value\\r\\n", the name
    in lower case), `length_wire` the Content-Length's, and `special` whether the head
    has a field that takes more than that (Transfer-Encoding, Expect, Upgrade, a
    hop-by-hop field, a Connection field other than "keep-alive", a field the gateway
    writes itself on a request). Host is counted in `hosts`, not in `special`."""

    __slots__ = (
        "chunked",
        "connection",
        "host",
        "hosts",
        "items",
        "length",
        "length_wire",
        "special",
        "wires",
    )

    def __init__(self) -> None:
        self.items: list[tuple[bytes, bytes, bytes]] = []
        self.wires: list[bytes] = []
        self.hosts = 0
        self.host = b""  # the Host field's value (a request has at most one)
        self.length = -1  # the Content-Length (one value, digits), -1 if none
        self.length_wire = b""
        self.chunked = False  # Transfer-Encoding: chunked (the only one h11 accepts)
        self.connection = False  # a Connection (but "keep-alive"), Expect or Upgrade field
        self.special = False


# Field lines seen before, each with its parse: the normalized field and its kind (0 or
# a _WATCHED value). Parsing a line is a pure function of its bytes, and a backend sends
# the same lines response after response (clients much the same request after
# request), so a line found here is neither matched nor split again. Short lines only,
# and at most _LINES_MAX of them: a full table is emptied and fills again.
_LINES: dict[bytes, tuple[tuple[bytes, bytes, bytes], int, bytes]] = {}
_LINES_MAX = 4096
_LINE_LONGEST = 128


# Request and status lines seen before, with their parse: (method, target, version) or
# (event class, status, reason, version). Bounded as _LINES.
_FIRST: dict[bytes, tuple[Any, ...]] = {}


def _remember(first: bytes, parsed: tuple[Any, ...]) -> None:
    if len(first) <= _LINE_LONGEST:
        if len(_FIRST) >= _LINES_MAX:
            _FIRST.clear()
        _FIRST[first] = parsed


def _line(line: bytes) -> tuple[tuple[bytes, bytes, bytes], int, bytes]:
    """A field line (without its LF) as (raw name, lower-case name, value), its kind and
    its wire form, remembered if short; h11's refusal if it is no valid field line."""
    if _valid_line(line) is None:
        # h11 refuses the head (an obs-fold line, starting with whitespace, is such a line:
        # limits.install_h11_hardening).
        raise h11.LocalProtocolError("illegal header line")
    name, _, value = line.partition(b":")
    # The value without its optional whitespace and the line's CR (none can be inside).
    value = value.strip(b" \t\r")
    lname = name.lower()
    kind = _WATCHED.get(lname, 0)
    if lname == b"connection" and {t.strip() for t in value.lower().split(b",")} == {b"keep-alive"}:
        kind = _KEEP_ALIVE
    entry = (name, lname, value), kind, lname + b": " + value + b"\r\n"
    if len(line) <= _LINE_LONGEST:
        if len(_LINES) >= _LINES_MAX:
            _LINES.clear()
        _LINES[line] = entry
    return entry


def _fields(lines: list[bytes]) -> Fields:
    """h11's `normalize_and_validate(_parsed=True)` of the field lines, in the same pass
    as the facts: lower-case names beside the raw ones, a Content-Length of one value of
    digits (repeats of it folded into one field, as h11 does), Transfer-Encoding only
    "chunked" and only once (501 otherwise). As h11, every line is judged before any
    field is normalized."""
    entries = list(map(_LINES.get, lines))
    if None in entries:
        entries = [e or _line(line) for e, line in zip(entries, lines, strict=True)]
    out = Fields()
    items = out.items
    append = items.append
    wire = out.wires.append
    seen_length: bytes | None = None
    for field, kind, line_wire in entries:  # type: ignore[misc]
        if not kind:
            append(field)
            wire(line_wire)
            continue
        if kind == _CONTENT_LENGTH:
            value = field[2]
            if not value.isdigit():
                # "Content-Length: 3, 3" is one length to h11; anything else is not.
                lengths = {length.strip() for length in value.split(b",")}
                if len(lengths) != 1:
                    raise h11.LocalProtocolError("conflicting Content-Length headers")
                value = lengths.pop()
                if _content_length_match(value) is None:
                    raise h11.LocalProtocolError("bad Content-Length")
                field = (field[0], field[1], value)
            if len(value) > CONTENT_LENGTH_MAX_DIGITS:
                raise h11.LocalProtocolError("bad Content-Length")
            if seen_length is None:
                seen_length = value
                out.length = int(value)
                out.length_wire = b"content-length: " + value + b"\r\n"
            elif seen_length != value:
                raise h11.LocalProtocolError("conflicting Content-Length headers")
            else:
                continue  # a repeat of the same value: h11 keeps the first field only
        elif kind == _HOST:
            out.hosts += 1
            out.host = field[2]
        elif kind == _TRANSFER_ENCODING:
            if out.chunked:
                raise h11.LocalProtocolError(
                    "multiple Transfer-Encoding headers", error_status_hint=501
                )
            value = field[2].lower()
            if value != b"chunked":
                raise h11.LocalProtocolError(
                    "Only Transfer-Encoding: chunked is supported", error_status_hint=501
                )
            field = (field[0], field[1], value)
            out.chunked = out.special = True
        elif kind == _CONNECTION:
            out.connection = out.special = True
        elif kind in (_HOP, _FORWARDED):
            out.special = True
        # _KEEP_ALIVE: dropped when relayed, and decides nothing.
        append(field)
    return out


def _headers(items: list[tuple[bytes, bytes, bytes]]) -> Headers:
    headers = object.__new__(Headers)
    headers._full_items = items
    return headers


def request_head(buf: ReceiveBuffer) -> tuple[h11.Request, Fields, int] | None:
    """The request whose head `buf` starts with (taken from it), the facts of its fields
    and the head's size in bytes; None if the head is incomplete."""
    parts = _extract(buf, "request")
    return None if parts is None else _request(*parts)


def request_in(data: bytes) -> tuple[h11.Request, Fields, int, int] | None:
    """`request_head` of bytes that start a request, and where its head ends in `data`;
    None if the head is incomplete."""
    found = _head_of(data, "request")
    if found is None:
        return None
    request, fields, size = _request(*_split(found[0]))
    return request, fields, size, found[1]


def _request(first: bytes, lines: list[bytes], size: int) -> tuple[h11.Request, Fields, int]:
    line = _FIRST.get(first)
    if line is None:
        m = _request_match(first)
        if m is None:
            raise h11.LocalProtocolError(f"illegal request line: {first!r}")
        line = m.group("method", "target", "http_version")
        _remember(first, line)
    method, target, version = line
    fields = _fields(lines)
    if fields.hosts > 1:
        raise h11.LocalProtocolError("Found multiple Host: headers")
    if not fields.hosts and version == b"1.1":
        raise h11.LocalProtocolError("Missing mandatory Host: header")
    # The event as h11's reader builds it, without its constructor's second match of
    # the method and target (request_line_re has matched both) and Host count (above).
    request = object.__new__(h11.Request)
    setattr_ = object.__setattr__
    setattr_(request, "method", method)
    setattr_(request, "target", target)
    setattr_(request, "headers", _headers(fields.items))
    setattr_(request, "http_version", version)
    return request, fields, size


def read_request(buf: ReceiveBuffer) -> h11.Request | None:
    """The request whose head `buf` starts with (taken from it), or None if incomplete."""
    read = request_head(buf)
    return None if read is None else read[0]


def response_head(
    buf: ReceiveBuffer,
) -> tuple[h11.Response | h11.InformationalResponse, Fields] | None:
    """The response (or 1xx) whose head `buf` starts with (taken from it) and the facts
    of its fields, or None if the head is incomplete."""
    parts = _extract(buf, "response")
    return None if parts is None else _response(*parts)


def response_in(
    data: bytes,
) -> tuple[h11.Response | h11.InformationalResponse, Fields, int] | None:
    """`response_head` of bytes that start a response: the response, the facts of its
    fields and where its head ends in `data`; None if the head is incomplete."""
    found = _head_of(data, "response")
    if found is None:
        return None
    response, fields = _response(*_split(found[0]))
    return response, fields, found[1]


def _response(
    first: bytes, lines: list[bytes], size: int
) -> tuple[h11.Response | h11.InformationalResponse, Fields]:
    line = _FIRST.get(first)
    if line is None:
        m = _status_match(first)
        if m is None:
            raise h11.LocalProtocolError(f"illegal status line: {first!r}")
        version, status, reason = m.group("http_version", "status_code", "reason")
        code = int(status)
        if code < 100:
            # What h11's InformationalResponse constructor refuses (a Response is 200-999,
            # and the status line has three digits).
            raise h11.LocalProtocolError(
                f"InformationalResponse status_code should be in range [100, 200), not {code}"
            )
        line = (
            h11.InformationalResponse if code < 200 else h11.Response,
            code,
            b"" if reason is None else reason,
            b"1.1" if version is None else version,
        )
        _remember(first, line)
    cls, code, reason, version = line
    fields = _fields(lines)
    # The event as h11's reader builds it (its constructor with _parsed=True sets these).
    response = object.__new__(cls)
    setattr_ = object.__setattr__
    setattr_(response, "headers", _headers(fields.items))
    setattr_(response, "status_code", code)
    setattr_(response, "reason", reason)
    setattr_(response, "http_version", version)
    return response, fields


def read_response(buf: ReceiveBuffer) -> h11.Response | h11.InformationalResponse | None:
    """The response (or 1xx) whose head `buf` starts with (taken from it), or None."""
    read = response_head(buf)
    return None if read is None else read[0]
