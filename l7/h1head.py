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
  whitespace, a value without CTLs other than HTAB, so a bare CR is refused) up to
  its end: one `findall` of that regex, anchored at line starts, over the field block
  finds exactly one match per valid line, so the head is refused unless there are as
  many matches as lines;
- the fields are normalized by h11's `normalize_and_validate` (`_parsed`, as h11's
  readers call it): lower-case names kept beside the raw ones, one Content-Length of
  digits however often repeated, Transfer-Encoding "chunked" only (else 501);
- RFC 9112, 3.2: "A server MUST respond with a 400 (Bad Request) status code to any
  HTTP/1.1 request message that lacks a Host header field and to any request message
  that contains more than one Host header field line" (h11's Request rule).

A field line that starts with whitespace (obs-fold) cannot match the field regex and
is refused, which is what limits.install_h11_hardening makes h11's own reader do.
Every refusal raises h11.LocalProtocolError, with h11's status hint, as h11's readers
do; tests/l7/test_l7_h1head.py holds both readers to the same verdicts, events and
leftover bytes, on tables and on every one-byte mutation of a few heads.
"""

from __future__ import annotations

import re

import h11
from h11._abnf import header_field
from h11._headers import Headers, normalize_and_validate
from h11._readers import request_line_re, status_line_re
from h11._receivebuffer import ReceiveBuffer, blank_line_regex

# h11's field-line regex, anchored at a line start and ending with the line: a match is
# one whole field line, so a head is valid when every line of its field block matches.
_field_lines = re.compile(("^" + header_field + r"\r?\n").encode("ascii"), re.MULTILINE)
_request_match = request_line_re.fullmatch
_status_match = status_line_re.fullmatch


def _extract(buf: ReceiveBuffer, what: str) -> tuple[bytearray, bytearray] | None:
    """The first line (its CR dropped) and the field block (each line with its end) of
    the head `buf` starts with, taken from it: h11's ReceiveBuffer.maybe_extract_lines,
    which ends a head at the first blank line (b"\\n\\r?\\n"), without splitting it."""
    data = buf._data
    if data[:1] == b"\n" or data[:2] == b"\r\n":
        # An empty line where a head starts: h11 takes it as a head without a first line.
        raise h11.LocalProtocolError(f"no {what} line received")
    match = blank_line_regex.search(data, buf._multiple_lines_search)
    if match is None:
        buf._multiple_lines_search = max(0, len(data) - 2)
        if buf.is_next_line_obviously_invalid_request_line():
            raise h11.LocalProtocolError("illegal request line")
        return None
    head = buf._extract(match.end())
    eol = head.find(b"\n")
    first = head[: eol - 1] if head[eol - 1 : eol] == b"\r" else head[:eol]
    # The blank line that ends the head: "\r\n" or a bare "\n".
    end = len(head) - (2 if head[-2:] == b"\r\n" else 1)
    return first, head[eol + 1 : end]


def _fields(block: bytearray) -> Headers:
    found = _field_lines.findall(block)
    if len(found) != block.count(b"\n"):
        # A line that is no field line: h11 refuses the head (an obs-fold line, starting with
        # whitespace, is one: limits.install_h11_hardening).
        raise h11.LocalProtocolError("illegal header line")
    return normalize_and_validate([(name, value) for name, value, _ in found], _parsed=True)


def read_request(buf: ReceiveBuffer) -> h11.Request | None:
    """The request whose head `buf` starts with (taken from it), or None if incomplete."""
    parts = _extract(buf, "request")
    if parts is None:
        return None
    m = _request_match(parts[0])
    if m is None:
        raise h11.LocalProtocolError(f"illegal request line: {bytes(parts[0])!r}")
    method, target, version = m.group("method", "target", "http_version")
    headers = _fields(parts[1])
    hosts = 0
    for _, name, _ in headers._full_items:
        if name == b"host":
            hosts += 1
    if hosts > 1:
        raise h11.LocalProtocolError("Found multiple Host: headers")
    if not hosts and version == b"1.1":
        raise h11.LocalProtocolError("Missing mandatory Host: header")
    # The event as h11's reader builds it, without its constructor's second match of
    # the method and target (request_line_re has matched both) and Host count (above).
    request = object.__new__(h11.Request)
    setattr_ = object.__setattr__
    setattr_(request, "method", method)
    setattr_(request, "target", target)
    setattr_(request, "headers", headers)
    setattr_(request, "http_version", version)
    return request


def read_response(buf: ReceiveBuffer) -> h11.Response | h11.InformationalResponse | None:
    """The response (or 1xx) whose head `buf` starts with (taken from it), or None."""
    parts = _extract(buf, "response")
    if parts is None:
        return None
    m = _status_match(parts[0])
    if m is None:
        raise h11.LocalProtocolError(f"illegal status line: {bytes(parts[0])!r}")
    version, status, reason = m.group("http_version", "status_code", "reason")
    code = int(status)
    cls = h11.InformationalResponse if code < 200 else h11.Response
    return cls(
        headers=_fields(parts[1]),
        status_code=code,
        reason=b"" if reason is None else reason,
        http_version=b"1.1" if version is None else version,
        _parsed=True,
    )
