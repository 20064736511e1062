"""The gateway's server side of HTTP/1.1 to clients, on h11's readers without its state machine.

The client side of a connection runs one request at a time: a complete head
(and body) is read, the request is answered, and only then is the next one
parsed. `h11.Connection` in the server role walked five events per request
through its state machine for decisions this sequence already makes, so, as
h1client.py does for backends, this module keeps what judges the bytes h11's
and makes the few decisions the state machine made explicit:

- the request line and header fields are parsed with h11's own regexes and field
  normalization (h1head.read_request: what h11's `maybe_read_from_IDLE_client`
  judges, with fewer Python steps: obs-fold refused, one Host, Content-Length
  digits and one value, Transfer-Encoding only "chunked");
- a body is framed as h11's `_body_framing` frames a request (Content-Length, or
  chunked) and read by h11's Content-Length and chunked readers (chunk sizes, chunk
  ends, trailers judged there; h1body's Content-Length reader reads as h11's does);
- keep-alive is h11's `_keep_alive` ("Connection: close" or HTTP/1.0 closes), and
  "Expect: 100-continue" is h11's `has_expect_100_continue`.

What h11's Connection added on top, kept here one rule at a time:

- a head that does not end within `max_header_bytes` is a 431, bytes that stop
  mid-request at the client's close a 400, a close between requests no error;
- RFC 9112, 6.1: "A server MAY reject a request that contains both
  Content-Length and Transfer-Encoding ... Regardless, the server MUST close the
  connection after responding to such a request": refused (400, closed), as a
  proxy that forwards one invites request smuggling; too many or too large
  fields are a 431 and a declared body over the limit a 413, before any of it is
  read;
- a request proposes a protocol switch when it carries Upgrade (h11's rule), and
  only such a request may be answered with a 101;
- the response head is what h11's `send(Response)` wrote: framing fixed for
  the request (`response_head`, the rules of h11's
  `_clean_up_response_headers_for_sending`), "Connection: close" added when
  either side ends the connection, and the body written by h11's Content-Length,
  chunked or HTTP/1.0 writers (too much or too little data refused).

Invariants: bytes after a complete request wait in the buffer until
`next_cycle()` (pipelining); nothing is parsed past a request whose response
has not ended.

The usual request, a bodiless head arriving whole in one read with nothing after it
(no 100-continue, no upgrade), is taken by `RequestParser.whole` straight from the
read, with the same reader, limits and decisions and no events; and a backend's
response relayed without modifiers has its head written in one pass, from its fields'
remembered wire forms when it has nothing special (`relayed_head`).
"""

from __future__ import annotations

from typing import Any

import h11
from h11._connection import _body_framing, _keep_alive
from h11._headers import (
    CONTENT_LENGTH_MAX_DIGITS,
    Headers,
    get_comma_header,
    has_expect_100_continue,
    normalize_and_validate,
    set_comma_header,
)
from h11._readers import ChunkedReader
from h11._receivebuffer import ReceiveBuffer
from h11._writers import ChunkedWriter, ContentLengthWriter, Http10Writer, write_any_response

from l7.filters import HOP_BY_HOP, STANDARD_TOKENS
from l7.h1body import END, ContentLengthReader
from l7.h1head import Fields, request_head, request_in
from l7.limits import Limits

NEED_DATA = h11.NEED_DATA

_WRITERS: dict[str, Any] = {
    "content-length": ContentLengthWriter,
    "chunked": ChunkedWriter,
    "http/1.0": Http10Writer,
}


def _no_body(buf: ReceiveBuffer) -> h11.EndOfMessage:
    """The reader of a body of length zero (h11's ContentLengthReader(0)), with one event
    for every request: events are immutable."""
    return END


NO_TRAILERS = normalize_and_validate([])
CLOSED_EVENT = h11.ConnectionClosed()
# What h11 writes for InformationalResponse(status_code=100): no reason phrase.
CONTINUE = b"HTTP/1.1 100 \r\n\r\n"

# Response fields that decide framing and keep-alive.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})
# h11 takes a 2xx answer to CONNECT as a switch to a tunnel, which the proxy never opens:
# the body after it cannot be sent.
_CONNECT_SWITCH = "a 2xx answer to CONNECT switches protocols"


class ProtocolError(Exception):
    """A request that cannot be served: answered with `status`, then the connection closed."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# Parser states.
HEAD = 0  # waiting for a request line and header block
BODY = 1  # reading the body by the request's framing
DONE = 2  # the request ended by its framing; what follows waits for next_cycle()


class RequestParser:
    """The receive side of one client connection: bytes in, h11 events out.

    After a `Request` event, `keep_alive`, `expect_continue`, `upgrade` and `http_version`
    describe it until `next_cycle()`."""

    __slots__ = (
        "buf",
        "closed",
        "expect_continue",
        "fields",
        "http_version",
        "keep_alive",
        "limits",
        "method",
        "reader",
        "state",
        "upgrade",
    )

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.buf = ReceiveBuffer()
        self.closed = False
        self.state = HEAD
        self.reader: Any = None
        self._reset()

    def _reset(self) -> None:
        self.method: bytes | None = None  # None: no request head yet this cycle
        self.fields: Fields | None = None  # the facts of the request's fields
        self.http_version: bytes | None = None
        self.keep_alive = True
        self.expect_continue = False
        self.upgrade = False

    def feed(self, data: bytes) -> None:
        self.buf += data

    def feed_eof(self) -> None:
        self.closed = True

    def next_cycle(self) -> None:
        """The response to the current request has ended: parse the next one."""
        self.state = HEAD
        self.reader = None
        self._reset()

    def trailing(self) -> bytes:
        """Bytes received past the request (a switched protocol's first bytes)."""
        data = bytes(self.buf)
        self.buf = ReceiveBuffer()
        return data

    def next_event(self) -> Any:
        """The next event: h11.Request, Data, EndOfMessage, ConnectionClosed (the client
        closed between requests), or NEED_DATA. After EndOfMessage, NEED_DATA until
        `next_cycle()`. Raises ProtocolError for what h11 or the limits refuse."""
        buf = self.buf
        state = self.state
        if state == HEAD:
            if not buf:
                return CLOSED_EVENT if self.closed else NEED_DATA
            try:
                read = request_head(buf)
            except h11.ProtocolError as exc:
                raise ProtocolError(str(exc), exc.error_status_hint) from exc
            if read is None:
                return self._incomplete()
            self._head(*read)
            return read[0]
        if state == BODY:
            try:
                event = self.reader(buf)
                if event is None:
                    if not buf and self.closed:
                        # Content-Length and chunked bodies cut short by the close.
                        self.reader.read_eof()
                    return self._incomplete()
            except h11.ProtocolError as exc:
                raise ProtocolError(str(exc), exc.error_status_hint) from exc
            if type(event) is h11.EndOfMessage:
                self.state = DONE
            return event
        return NEED_DATA

    def whole(self, data: bytes) -> h11.Request | None:
        """A request without a body, its head all of `data`, read where a head is awaited
        and nothing is buffered (the usual GET on a keep-alive connection): the request,
        the parser then as after its EndOfMessage. None takes nothing: `data` is for
        `feed()` and `next_event()`, which also say what is wrong with a request refused
        here, and handle bodies, 100-continue and upgrades."""
        if self.state != HEAD or self.buf._data or self.closed:
            return None
        try:
            read = request_in(data)
        except h11.LocalProtocolError:
            return None
        if read is None:
            return None
        request, fields, size, end = read
        if end != len(data) or fields.length > 0 or fields.chunked:
            return None
        try:
            self._head(request, fields, size)
        except ProtocolError:
            self._reset()
            self.state = HEAD
            return None
        if self.expect_continue or self.upgrade:
            self._reset()
            self.state = HEAD
            self.reader = None
            return None
        self.state = DONE
        self.reader = None
        return request

    def _incomplete(self) -> Any:
        # As h11.Connection: an event that cannot complete within the limit, or ever.
        if len(self.buf) > self.limits.max_header_bytes:
            # RFC 6585, 5: "431 (Request Header Fields Too Large)".
            raise ProtocolError("receive buffer too long", 431)
        if self.closed:
            raise ProtocolError("peer unexpectedly closed connection")
        return NEED_DATA

    def _head(self, request: h11.Request, fields: Fields, size: int) -> None:
        """Limits, framing, and what the connection must do, from the head's facts."""
        limits = self.limits
        self.fields = fields
        self.method = request.method
        self.http_version = version = request.http_version
        length = fields.length
        if fields.connection:
            self.keep_alive = _keep_alive(request)
            self.expect_continue = has_expect_100_continue(request)
            self.upgrade = bool(get_comma_header(request.headers, b"upgrade"))
        else:
            self.keep_alive = not version < b"1.1"
        if length >= 0 and fields.chunked:
            raise ProtocolError("both Content-Length and Transfer-Encoding")
        if len(fields.items) > limits.max_headers:
            raise ProtocolError(f"more than {limits.max_headers} header fields", 431)
        # h11 bounds a head that arrives in pieces (the 431 of _incomplete); one that
        # arrives whole is measured here.
        if size > limits.max_header_bytes:
            raise ProtocolError(f"a request head of more than {limits.max_header_bytes} bytes", 431)
        if length > limits.max_body_bytes:
            raise ProtocolError(f"a body of {length} bytes", 413)
        self.state = BODY
        if length > 0:
            self.reader = ContentLengthReader(length)
        elif fields.chunked:
            self.reader = ChunkedReader()
        else:
            # RFC 9112, 6.3: "If this is a request message and none of the above are
            # true, then the message body length is zero".
            self.reader = _no_body


def response_head(
    status: int,
    reason: bytes,
    headers: list[tuple[bytes, bytes]],
    method: bytes | None,
    http_version: bytes | None,
    keep_alive: bool,
) -> tuple[bytes, Any, bool]:
    """The bytes of a response head, h11's body writer for it, and whether the connection
    stays open after it: what `h11.Connection.send(Response)` wrote and decided for a
    request of `method` and `http_version` (None: no request was read) whose keep-alive
    was `keep_alive`.

    `headers` have lower-case names and were parsed by h11 from a backend or come from
    configuration checked at compile time, so names and values are not matched against
    the ABNF again (h11's `_parsed`); framing fields are."""
    if not 200 <= status < 1000:
        raise h11.LocalProtocolError("Response status_code should be in range [200, 1000)")
    length: bytes | None = None
    plain = True  # at most one Content-Length of plain digits, no other framing field
    for name, value in headers:
        if name in _FRAMING:
            if (
                name != b"content-length"
                or length is not None
                or not value.isdigit()
                or len(value) > CONTENT_LENGTH_MAX_DIGITS
            ):
                plain = False
                break
            length = value
    if not (plain and keep_alive and (length is not None or status in (204, 304))):
        return _response_head_general(status, reason, headers, method, http_version, keep_alive)
    # The common case: the framing is a Content-Length (or no body at all) and the
    # connection stays open, where h11 sends the head as it is.
    if method == b"CONNECT" and status < 300:
        raise h11.LocalProtocolError(_CONNECT_SWITCH)
    if status in (204, 304) or method == b"HEAD" or length is None:
        writer = ContentLengthWriter(0)
    else:
        writer = ContentLengthWriter(int(length))
    return _serialize(status, reason, headers), writer, True


# Fields of a backend's response that relayed_head does not copy as they are.
_RELAY_SPECIAL = HOP_BY_HOP | {b"content-length", b"host"}


def relayed_head(
    status: int,
    reason: bytes,
    fields: Fields,
    method: bytes | None,
    keep_alive: bool,
) -> bytes | None:
    """The head `response_head` writes for a backend's final response relayed without
    modifiers, `filters.outgoing_response_headers(fields.items, (), [])`, for the usual
    case: the client's connection stays open, the response has a Content-Length (or is
    a 204 or 304), no Host field, and its Connection names no field. From the fields'
    wire forms when the head has nothing special, else in one pass over the fields as
    h11 parsed them. None in every other case, for the composition to decide
    (tests/l7/test_l7_h1server.py holds the two equal)."""
    if not keep_alive or (method == b"CONNECT" and status < 300):
        return None
    if fields.length < 0 and status != 204 and status != 304:
        return None
    if not (fields.special or fields.hosts):
        return b"".join(
            [b"HTTP/1.1 %d %s\r\n" % (status, reason), *fields.wires, fields.length_wire, b"\r\n"]
        )
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    for _, name, value in fields.items:
        if name in _RELAY_SPECIAL:
            if name == b"connection":
                for token in value.split(b","):
                    if token.strip().lower() not in STANDARD_TOKENS:
                        return None
            elif name == b"host":
                return None
            # Other hop-by-hop fields are dropped; the Content-Length goes last.
        else:
            parts += (name, b": ", value, b"\r\n")
    parts += (fields.length_wire, b"\r\n")
    return b"".join(parts)


def _response_head_general(
    status: int,
    reason: bytes,
    headers: list[tuple[bytes, bytes]],
    method: bytes | None,
    http_version: bytes | None,
    keep_alive: bool,
) -> tuple[bytes, Any, bool]:
    """h11's `_clean_up_response_headers_for_sending`, then its keep-alive and writer."""
    # The event as h11.Connection.send built it: framing fields checked and normalized.
    response = h11.Response(status_code=status, headers=headers, reason=reason, _parsed=True)
    hs: Headers = response.headers
    # "HEAD requests ... always act like they have Content-Length: 0 ... But their headers
    # are supposed to match what we would send if the request was a GET."
    for_headers = b"GET" if method == b"HEAD" else method
    framing, _ = _body_framing(for_headers, response)  # type: ignore[arg-type]
    need_close = False
    if framing in ("chunked", "http/1.0"):
        # A body of unknown length: chunked to an HTTP/1.1 client; to an HTTP/1.0 one
        # (or to no request) no framing field, and the body ends with the connection.
        hs = set_comma_header(hs, b"content-length", [])
        if http_version is None or http_version < b"1.1":
            hs = set_comma_header(hs, b"transfer-encoding", [])
            if method != b"HEAD":
                need_close = True
        else:
            hs = set_comma_header(hs, b"transfer-encoding", [b"chunked"])
    if not keep_alive or need_close:
        connection = set(get_comma_header(hs, b"connection"))
        connection.discard(b"keep-alive")
        connection.add(b"close")
        hs = set_comma_header(hs, b"connection", sorted(connection))
    if method == b"CONNECT" and 200 <= status < 300:
        raise h11.LocalProtocolError(_CONNECT_SWITCH)
    final = h11.Response(status_code=status, headers=hs, reason=reason)
    wframing, args = _body_framing(method or b"GET", final)
    fields = [(raw, value) for raw, _, value in hs._full_items]
    return (
        _serialize(status, reason, fields),
        _WRITERS[wframing](*args),
        keep_alive and _keep_alive(final),
    )


def _serialize(status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The head as h11's writer writes it: status line, Host first (h11 puts it first in
    any message), `name: value` lines, blank line."""
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    host: list[bytes] | None = None
    for name, value in headers:
        if name == b"host":
            if host is None:
                host = []
            host += (name, b": ", value, b"\r\n")
        else:
            parts += (name, b": ", value, b"\r\n")
    if host is not None:
        parts[1:1] = host
    parts.append(b"\r\n")
    return b"".join(parts)


def switch_head(headers: list[tuple[bytes, bytes]]) -> bytes:
    """A 101 head as h11 wrote it, its fields checked by h11 (a rare path, at full cost)."""
    event = h11.InformationalResponse(
        status_code=101, headers=headers, reason=b"Switching Protocols"
    )
    out: list[bytes] = []
    write_any_response(event, out.append)
    return b"".join(out)
