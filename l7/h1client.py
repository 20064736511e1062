"""The gateway's client side of HTTP/1.1 to a backend, on h11's parsers without its state machine.

A backend connection carries one exchange at a time and the proxy always sends a
whole request (head and a Content-Length-framed body) before it reads anything,
so the client half of `h11.Connection` (request serialisation through its state
machine, then a second pass of every response event through it) was cost
without a decision to make. What stays h11's is everything that judges what the
backend sent:

- the status line and header fields are parsed with h11's own regexes and field
  normalization (h1head.read_response: what h11's
  `maybe_read_from_SEND_RESPONSE_server` judges, with fewer Python steps: obs-fold
  refused, Content-Length and Transfer-Encoding checked);
- the body framing is h11's `_body_framing`'s rules (RFC 9112, 6.3: HEAD, 1xx, 204 and
  304 have no body; Transfer-Encoding beats Content-Length; otherwise read until
  close), and the body is read by h11's Content-Length, chunked and HTTP/1.0
  readers;
- keep-alive is h11's `_keep_alive` ("Connection: close" or HTTP/1.0 closes).

Invariants: a connection is reusable only when its response ended by its
framing, the backend allowed keep-alive, and nothing arrived after the response
(bytes nobody asked for would be taken for the next request's answer). A 101 is
accepted only in answer to a request that proposed an upgrade.

The request is written by hand as h11's writer would (request line, Host first,
`name: value` lines, blank line, body): every field was parsed and checked by h11
on the way in or comes from configuration checked at compile time
(router.check_filters), so nothing is validated again per request. A request with
nothing special goes out as its fields' remembered wire forms (`request_wire`).

The usual answer of a keep-alive backend, a final response with a Content-Length body
arriving whole in one read, is taken by `ResponseParser.whole` straight from the read:
the same head reader and framing rules, no receive buffer, events or body reader;
anything else is left to `feed()` and `next_event()`.
"""

from __future__ import annotations

from typing import Any

import h11
from h11._connection import _keep_alive
from h11._readers import ChunkedReader, Http10Reader
from h11._receivebuffer import ReceiveBuffer
from mypy_extensions import mypyc_attr

from l7.h1body import ContentLengthReader
from l7.h1head import Fields, response_head, response_in

NEED_DATA = h11.NEED_DATA
# As h11.Connection's default max_incomplete_event_size: a backend's head is bounded too.
MAX_HEAD_BYTES = 16 * 1024


class ProtocolError(Exception):
    """The backend sent something that is not a valid response to our request."""


# mypyc compiles no subclass of a built-in exception other than Exception's own kind: this
# one stays a Python class in the compiled module.
@mypyc_attr(native_class=False)
class BackendClosed(ConnectionResetError):
    """The backend closed the connection before a response head (or a stale pooled one)."""


def serialize_request(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> bytes:
    """The request as bytes: `headers` must carry Host first and Content-Length if `body`."""
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    if body:
        parts.append(body)
    return b"".join(parts)


def request_wire(
    method: bytes, target: bytes, host: bytes, wires: list[bytes], client_ip: bytes, scheme: bytes
) -> bytes:
    """A bodiless request forwarded with its fields' wire forms (h1head.Fields.wires, of a
    head with nothing special): `serialize_request` of what
    `filters.outgoing_request_headers` makes of it without a modifier, in one join (Host
    first, the fields as they came, then X-Forwarded-For, -Proto and -Host)."""
    return b"".join(
        [
            method, b" ", target, b" HTTP/1.1\r\nhost: ", host, b"\r\n", *wires,
            b"x-forwarded-for: ", client_ip, b"\r\nx-forwarded-proto: ", scheme,
            b"\r\nx-forwarded-host: ", host, b"\r\n\r\n",
        ]
    )  # fmt: skip


# Parser states.
HEAD = 0  # waiting for a status line and header block
BODY = 1  # reading the body by the response's framing
DONE = 2  # the response ended by its framing
SWITCHED = 3  # a 101 was received: bytes after it are the new protocol's
IDLE = 4  # no request outstanding

# Body lengths that are not a Content-Length.
CHUNKED = -1
UNTIL_CLOSE = -2


class ResponseParser:
    """The receive side of one backend connection; `start()` once per request sent."""

    __slots__ = ("buf", "closed", "keep_alive", "method", "reader", "state", "upgrade")

    def __init__(self) -> None:
        self.buf = ReceiveBuffer()
        self.closed = False
        self.state = IDLE
        self.method = b"GET"
        self.upgrade = False
        self.reader: Any = None
        self.keep_alive = True

    def start(self, method: bytes, upgrade: bool) -> None:
        self.state = HEAD
        self.method = method
        self.upgrade = upgrade
        self.reader = None
        self.keep_alive = True

    def feed(self, data: bytes) -> None:
        self.buf += data

    def feed_eof(self) -> None:
        self.closed = True

    @property
    def buffered(self) -> int:
        return len(self.buf)

    def trailing(self) -> bytes:
        """Bytes received past the response head of a 101 (the new protocol's first bytes)."""
        data = bytes(self.buf)
        self.buf = ReceiveBuffer()
        return data

    def reusable(self) -> bool:
        return self.state == DONE and self.keep_alive and not self.closed and not self.buf

    def _framing(self, response: h11.Response, fields: Fields) -> tuple[int, bool]:
        """h11's `_body_framing` and `_keep_alive` for a final response, from the facts of
        the one pass over its fields: the body's length (or CHUNKED, or UNTIL_CLOSE) and
        whether the connection may carry another request after it."""
        # Without a Connection field only the version decides (HTTP/1.0 closes).
        keep_alive = _keep_alive(response) if fields.connection else response.http_version >= b"1.1"
        status = response.status_code
        method = self.method
        if (
            status == 204
            or status == 304
            or method == b"HEAD"
            or (method == b"CONNECT" and status < 300)
        ):
            return 0, keep_alive
        if fields.chunked:
            return CHUNKED, keep_alive
        if fields.length >= 0:
            return fields.length, keep_alive
        return UNTIL_CLOSE, False  # the body ends with the connection

    def whole(self, data: bytes) -> tuple[h11.Response, Fields, bytes] | None:
        """A final response with a Content-Length body, all of it and nothing more in
        `data`, read where a head is awaited and nothing is buffered (the usual answer of a
        keep-alive backend): the response, the facts of its fields and its body, the parser
        then DONE. None takes
        nothing: `data` is for `feed()` and `next_event()`, which also say what is wrong
        with a response refused here."""
        if self.state != HEAD or self.buf._data or self.closed:
            return None
        try:
            read = response_in(data)
        except h11.LocalProtocolError:
            return None
        if read is None:
            return None
        response, fields, end = read
        if type(response) is not h11.Response:
            return None
        length, keep_alive = self._framing(response, fields)
        if length != len(data) - end:
            return None
        self.state = DONE
        self.keep_alive = keep_alive
        return response, fields, data[end:]

    def next_event(self) -> Any:
        """The next h11 event of the response, or NEED_DATA. Raises ProtocolError for a
        response h11 would refuse and BackendClosed when the backend closed before a head."""
        if self.state == HEAD and not self.buf and not self.closed:
            return NEED_DATA  # nothing to parse (the usual case right after a request)
        try:
            if self.state == BODY:
                event = self.reader(self.buf)
                if event is None:
                    if self.closed and not self.buf:
                        # RFC 9112, 6.3: a body without other framing ends at the close;
                        # one with a Content-Length or chunked framing is incomplete.
                        event = self.reader.read_eof()
                    else:
                        return NEED_DATA
                if type(event) is h11.EndOfMessage:
                    self.state = DONE
                return event
            if self.state == HEAD:
                read = response_head(self.buf)
                if read is None:
                    if self.closed:
                        if self.buf:
                            raise ProtocolError("backend closed the connection mid-head")
                        raise BackendClosed("backend closed the connection")
                    if len(self.buf) > MAX_HEAD_BYTES:
                        raise ProtocolError(f"a response head of more than {MAX_HEAD_BYTES} bytes")
                    return NEED_DATA
                event, fields = read
                status = event.status_code
                if status < 200:
                    if status == 101:
                        # RFC 9110, 15.2.2: a server switches only to a protocol the
                        # client listed in Upgrade.
                        if not self.upgrade:
                            raise ProtocolError("101 Switching Protocols without an upgrade")
                        self.state = SWITCHED
                    return event
                length, self.keep_alive = self._framing(event, fields)  # type: ignore[arg-type]
                if length >= 0:
                    self.reader = ContentLengthReader(length)
                elif length == CHUNKED:
                    self.reader = ChunkedReader()
                else:
                    self.reader = Http10Reader()
                self.state = BODY
                return event
        except (h11.LocalProtocolError, h11.RemoteProtocolError) as exc:
            raise ProtocolError(str(exc)) from exc
        if self.closed:
            raise BackendClosed("backend closed the connection")
        return NEED_DATA
