"""HTTP/1.1 message heads read with h11's own pieces, in one loop per head.

h11's head readers (`maybe_read_from_IDLE_client`, `maybe_read_from_SEND_RESPONSE_server`)
spend most of their time around the parsing rather than in it: a generator step, a
`validate()` call and a `groupdict()` per field line, then the event's constructor
matching the method and target again with the regexes the request line has just
matched. `read_request` and `read_response` read a head with the same pieces and
nothing else:

- the head ends at the first blank line and is split into lines by h11's
  `ReceiveBuffer.maybe_extract_lines` (which, like h11, takes a bare LF as a line end);
- the request or status line must fully match h11's `request_line_re` or
  `status_line_re`, and every field line h11's `header_field_re` (token, colon,
  optional whitespace, a value without CTLs other than HTAB, so a bare CR is refused);
- the fields are normalized by h11's `normalize_and_validate` (`_parsed`, as h11's
  readers call it): lower-case names kept beside the raw ones, one Content-Length of
  digits however often repeated, Transfer-Encoding "chunked" only (else 501);
- RFC 9112, 3.2: "A server MUST respond with a 400 (Bad Request) status code to any
  HTTP/1.1 request message that lacks a Host header field and to any request message
  that contains more than one Host header field line" (h11's Request rule).

A field line that starts with whitespace (obs-fold) cannot match the field regex and
is refused, which is what limits.install_h11_hardening makes h11's own reader do.
Every refusal raises h11.LocalProtocolError, with h11's status hint, as h11's readers
do; tests/l7/test_l7_h1head.py holds both readers to the same verdicts and events.
"""

from __future__ import annotations

import h11
from h11._headers import Headers, normalize_and_validate
from h11._readers import header_field_re, request_line_re, status_line_re
from h11._receivebuffer import ReceiveBuffer

_fields_match = header_field_re.fullmatch
_request_match = request_line_re.fullmatch
_status_match = status_line_re.fullmatch


def _fields(lines: list[bytearray]) -> Headers:
    pairs: list[tuple[bytes, bytes]] = []
    for i in range(1, len(lines)):
        m = _fields_match(lines[i])
        if m is None:
            raise h11.LocalProtocolError(f"illegal header line: {bytes(lines[i])!r}")
        pairs.append(m.group("field_name", "field_value"))  # type: ignore[arg-type]
    return normalize_and_validate(pairs, _parsed=True)


def _lines(buf: ReceiveBuffer, what: str) -> list[bytearray] | None:
    lines = buf.maybe_extract_lines()
    if lines is None:
        if buf.is_next_line_obviously_invalid_request_line():
            raise h11.LocalProtocolError("illegal request line")
        return None
    if not lines:
        raise h11.LocalProtocolError(f"no {what} line received")
    return lines


def read_request(buf: ReceiveBuffer) -> h11.Request | None:
    """The request whose head `buf` starts with (taken from it), or None if incomplete."""
    lines = _lines(buf, "request")
    if lines is None:
        return None
    m = _request_match(lines[0])
    if m is None:
        raise h11.LocalProtocolError(f"illegal request line: {bytes(lines[0])!r}")
    method, target, version = m.group("method", "target", "http_version")
    headers = _fields(lines)
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
    lines = _lines(buf, "response")
    if lines is None:
        return None
    m = _status_match(lines[0])
    if m is None:
        raise h11.LocalProtocolError(f"illegal status line: {bytes(lines[0])!r}")
    version, status, reason = m.group("http_version", "status_code", "reason")
    code = int(status)
    cls = h11.InformationalResponse if code < 200 else h11.Response
    return cls(
        headers=_fields(lines),
        status_code=code,
        reason=b"" if reason is None else reason,
        http_version=b"1.1" if version is None else version,
        _parsed=True,
    )
