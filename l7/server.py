"""Listening sockets and client connections.

`PortServer` owns one SO_REUSEPORT socket of one HTTPPort in this worker and the
port's current `PortState`; `swap()` replaces the state in one assignment, and
each request captures the state when its head arrives, so it runs on one table
from start to end. `drain()` stops accepting, closes idle connections, lets busy
ones finish their request (answered with `Connection: close`), and closes what is
left when the drain timeout expires.

`ClientConnection` is an asyncio Protocol around an h1server.RequestParser (h11's
request readers without its state machine; responses written by h1server's
`response_head` and h11's body writers), with explicit states:

    IDLE     waiting for a request head (keep-alive timer, then header timer)
    BODY     reading a request body (body timer between reads)
    BUSY     a request is being answered; reading is paused, so pipelined
             requests wait in the parser's buffer
    TUNNEL   after a protocol switch (WebSocket): bytes relayed as they come
    CLOSED

Timers: one `TimerHandle` per connection at most. A deadline moves by an
assignment; the timer, when it fires before the deadline, sleeps again until it.
Header and body timers are armed only when a read leaves a request incomplete
(a request that arrives whole arms none); the header timer counts from the
request's first byte.

Each request is counted when it ends (WorkerStats, by the listener and route it
was routed to and the backend that answered) and, with the access log on, logged.
On a listener that validates client certificates every request carries the
gateway's verdict to the backend (X-Forwarded-Client-Cert-Verify; tls.py).

A request runs without a task when it can (proxy.serve): answered at once, or
relayed by the backend connection's callbacks (exchange.Exchange), which call
`finished()` or `failed()` at its end; otherwise as a task (`run()`). Either way,
`_account` counts it once and `_next_cycle` moves on to the next request. A
pipelined request is read at once, before reading resumes in earnest, and a run of
them answered at once is read in one loop, never one inside the other's end.

Flow control: when the client's transport buffer is full (`pause_writing`), the
exchange stops reading the backend's response, whose connection then pauses its
own socket (upstream.py); `resume_writing` sets it going again.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import socket
import ssl
import sys
import time
import traceback
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import h11

from l7.accesslog import AccessLog
from l7.filters import CLIENT_CERT, CLIENT_VERIFY, CompiledModifier, outgoing_response_headers
from l7.h1head import Fields
from l7.h1server import (
    CONTINUE,
    NEED_DATA,
    NO_TRAILERS,
    ProtocolError,
    RequestParser,
    relayed_head,
    response_head,
    switch_head,
)
from l7.limits import Limits
from l7.proxy import Pending, PortState, serve
from l7.router import ListenerTable
from l7.stats import WorkerStats
from l7.tick import send as tick_send
from l7.tls import (
    ClientVerifiers,
    client_certificate_refused,
    client_certificate_verdict,
    require_client_certificates,
)
from l7.upstream import UpstreamConnection
from l7.websocket import Tunnel

if TYPE_CHECKING:
    from l7.exchange import Exchange

FLUSH_AT = 64 * 1024
# Failures of the gateway's own logged on stderr (with their tracebacks), per port and
# worker: a bug hit by every request must not bury the log.
LOGGED_FAILURES = 10


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


REASONS = {
    204: b"No Content",
    400: b"Bad Request",
    404: b"Not Found",
    408: b"Request Timeout",
    413: b"Content Too Large",
    421: b"Misdirected Request",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


class State(enum.Enum):
    IDLE = "idle"
    BODY = "body"
    BUSY = "busy"
    TUNNEL = "tunnel"
    CLOSED = "closed"


class ClientConnection(asyncio.Protocol):
    def __init__(self, server: PortServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.limits = server.limits
        self.stats: WorkerStats = server.stats
        self.parser = RequestParser(server.limits)
        self.state = State.IDLE
        self.transport: asyncio.Transport | None = None
        self.client_ip = ""
        self.ip_b = b""
        self.sni: str | None = None
        self.scheme = "https" if server.tls else "http"
        self.scheme_b = self.scheme.encode()
        self.listen_port = server.port
        # One timer per connection at most: `deadline` is when `on_deadline` is due; the
        # timer, when it fires early (the deadline moved on), sleeps again until it.
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.deadline: float | None = None
        self.on_deadline: Any = None
        self.first_byte_at = 0.0
        # Stats labels of the current request (and of the connection, for active counts).
        self.gateway_label = ""
        self.listener_label = ""
        self.route_label = ""
        self.backend_label = ""
        self.status = 0
        self.sent_bytes = 0
        # Fields forwarded with every request about the client's certificate (frontend mTLS).
        self.client_headers: list[tuple[bytes, bytes]] = []
        self.task: asyncio.Task[None] | None = None
        self.exchange: Exchange | None = None  # the response being relayed by callbacks
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.response_started = False
        # The response's body writer (h11's) from its head to its end, and what the head
        # decided: whether the connection stays open after it.
        self.writer: Any = None
        self.response_done = False
        self.keep_alive = True
        self.write_paused = False
        self.seen_bytes = False
        self.tunnel: Tunnel | None = None
        self.out = bytearray()
        self.write_pending = False  # a write of `out` is due at the end of this loop tick
        self.received_at = 0.0  # loop time the current request's head was complete
        # The same instant by perf_counter: uvloop's clock moves in milliseconds, too coarse
        # for the duration histograms.
        self.received_pc = 0.0

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = t = transport  # type: ignore[assignment]
        set_nodelay(transport)
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        self.ip_b = self.client_ip.encode("latin-1")
        table = self.server.current.table
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None:
            marker = getattr(sslobj, "nodegate_handshake", None)
            if marker is not None:
                marker[0] = True  # the handshake completed (worker.track_handshake)
            self.sni = getattr(sslobj, "nodegate_sni", None) or None
            lt = table.tls_listener((self.sni or "").lower())
            if lt is not None and lt.listener.client_validation is not None:
                verdict = client_certificate_verdict(
                    lt.listener, sslobj, self.server.fallback, self.server.verifiers
                )
                if client_certificate_refused(lt.listener, verdict):
                    self.stats.handshake_failed(lt.gateway_label, lt.listener_label)
                    t.abort()  # type: ignore[attr-defined]
                    return
                # AllowInsecureFallback "delegates client authorization to the backend":
                # it is told what the gateway made of the certificate.
                self.client_headers = [(CLIENT_VERIFY, (verdict or "NONE").encode("latin-1"))]
                der = sslobj.getpeercert(binary_form=True)
                if der:
                    digest = hashlib.sha256(der).hexdigest().encode()
                    self.client_headers.append((CLIENT_CERT, b"Hash=" + digest))
        else:
            lt = table.listener_for("")
        # Until a request names its listener, the connection counts under the SNI's (or the
        # catch-all, or the port's first) listener.
        lt = lt or (table.listeners[0] if table.listeners else None)
        if lt is not None:
            self.gateway_label, self.listener_label = lt.gateway_label, lt.listener_label
        self.server.connections.add(self)
        self._arm(self.limits.header_timeout, self._on_header_timeout)

    def data_received(self, data: bytes) -> None:
        if self.state is State.TUNNEL:
            assert self.tunnel is not None
            self.tunnel.from_client(data)
            return
        if self.state is State.IDLE:
            request = self.parser.whole(data)
            if request is not None:
                # The usual request, whole in one read: answered without parser events.
                self.seen_bytes = True
                self.first_byte_at = self.loop.time()
                self._got_request(request)
                if self._start_request():
                    self._account(request)
                    if self._next_cycle():
                        self._process()
                return
            if not self.seen_bytes:
                self.seen_bytes = True
                self.first_byte_at = self.loop.time()
        self.parser.feed(data)
        self._process()

    def eof_received(self) -> bool | None:
        if self.state is State.TUNNEL and self.tunnel is not None:
            self.tunnel.client_eof()
            return True
        self.parser.feed_eof()
        self._process()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        prev = self.state
        self.state = State.CLOSED
        self._cancel_timer()
        self.server.connections.discard(self)
        if prev is State.TUNNEL and self.tunnel is not None:
            self.tunnel.client_closed()
        if self.task is not None and not self.task.done():
            self.task.cancel()  # the task accounts for its request
        elif self.exchange is not None:
            self.exchange.cancel()
            self._account(self.request)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.tunnel is not None:
            self.tunnel.pause_backend()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.tunnel is not None:
            self.tunnel.resume_backend()
        if self.exchange is not None:
            self.exchange.on_backend()

    # --- reading requests ---

    def _process(self) -> None:
        parser = self.parser
        while self.state is State.IDLE or self.state is State.BODY:
            try:
                event: Any = parser.next_event()
            except ProtocolError as exc:
                self._refuse(exc.status)
                return
            if event is NEED_DATA:
                # Timers only while a request is incomplete: one that arrived whole in one
                # read never arms any.
                if self.state is State.BODY:
                    self._arm(self.limits.body_timeout, self._on_header_timeout)
                elif self.seen_bytes:
                    self._arm_at(
                        self.first_byte_at + self.limits.header_timeout, self._on_header_timeout
                    )
                return
            t = type(event)
            if t is h11.Request:
                self._got_request(event)
            elif t is h11.Data:
                self.body += event.data
                if len(self.body) > self.limits.max_body_bytes:
                    self._refuse(413)
                    return
            elif t is h11.EndOfMessage:
                if not self._start_request():
                    return
                # Answered at once: count it and read on here, a run of pipelined requests
                # one after the other rather than one inside the other's end.
                self._account(self.request)
                if not self._next_cycle():
                    return
            elif t is h11.ConnectionClosed:
                self._close()
                return

    def _got_request(self, request: h11.Request) -> None:
        """A request head was read: its body (if any) is read next."""
        self.request = request
        self.received_at = self.loop.time()
        self.received_pc = time.perf_counter()
        self.state = State.BODY  # self.body is empty: a new one at each cycle's start
        if self.parser.expect_continue:
            # An immediate 100, as h11 asked for (HTTP/1.1 only; RFC 9110, 10.1.1:
            # "A server that receives a 100-continue expectation in an HTTP/1.0
            # request MUST ignore that expectation.").
            self._write(CONTINUE)
            self.flush()

    def _start_request(self) -> bool:
        """Start answering the request just read; True when it was answered at once."""
        assert self.transport is not None and self.request is not None
        self._disarm()
        self.state = State.BUSY
        self.transport.pause_reading()
        self.route_label = self.backend_label = ""
        self.status = self.sent_bytes = 0
        self.task = None
        port = self.server.current  # the table this request runs on, start to end
        try:
            pending = self.server.serve(
                self, port, self.request, bytes(self.body) if self.body else b""
            )
        except Exception as exc:
            self.failed(exc)
            return False
        if pending is not None:
            self.run(pending)
            return False
        # Else answered at once, or the exchange calls finished() or failed() at its end.
        return self.exchange is None

    def run(self, pending: Coroutine[Any, Any, None]) -> None:
        """Carry on with the current request as a task."""
        self.task = self.loop.create_task(self._run(pending, self.request))

    async def _run(self, pending: Coroutine[Any, Any, None], request: h11.Request | None) -> None:
        try:
            await pending
        except asyncio.CancelledError:
            self._account(request)
            return
        except Exception as exc:
            self.failed(exc)
            return
        self.finished()

    def finished(self, now: float = 0.0) -> None:
        """The current request has been answered (or aborted): count it, move on."""
        self._account(self.request, now)
        if self._next_cycle():
            self._process()

    def failed(self, exc: BaseException | None = None) -> None:
        """The current request failed on the gateway's side (a bug, not a backend's doing;
        `exc` if it raised): a 500 if nothing was sent yet, and the connection ends either
        way, since what the failure left of the exchange is unknown (a client must not wait
        on it)."""
        if not self.response_started:
            self.simple(500, [(b"connection", b"close")])
        else:
            self.abort()
        self.server.log_error(f"request failed on {self.server.address}:{self.server.port}", exc)
        self._account(self.request)
        if self.state is not State.CLOSED:
            self._close()

    def note_route(self, lt: ListenerTable | None, route: str) -> None:
        """The listener and route the current request was routed to (for stats and logs)."""
        if lt is not None:
            self.gateway_label, self.listener_label = lt.gateway_label, lt.listener_label
        self.route_label = route

    def _account(self, request: h11.Request | None, now: float = 0.0) -> None:
        """Count the request that just ended (one the gateway answered with a status);
        `now`: its end by perf_counter, if the caller has read the clock already."""
        if not self.status:
            return  # the client went away before any answer: nothing was served
        seconds = (now or time.perf_counter()) - self.received_pc
        self.stats.request_done(
            self.gateway_label,
            self.listener_label,
            self.route_label,
            self.backend_label,
            self.status,
            seconds,
        )
        log = self.server.access_log
        if log is not None:
            target = request.target if request is not None else b""
            log.write(
                gateway=self.gateway_label,
                listener=self.listener_label,
                route=self.route_label,
                backend=self.backend_label,
                method=request.method.decode("ascii") if request is not None else "",
                path=target.split(b"?", 1)[0].decode("latin-1"),
                status=self.status,
                duration_ms=round(seconds * 1000.0, 3),
                bytes=self.sent_bytes,
            )

    def _next_cycle(self) -> bool:
        """Wait for the next request on this connection, or close it; True when a pipelined
        one is buffered already (to be read at once, before anything else is read)."""
        if self.state is not State.BUSY:
            return False
        # Either side asked to close (Connection: close, HTTP/1.0, a body ending with the
        # connection), the port is draining, or the response never ended.
        if not (self.response_done and self.keep_alive) or self.server.draining:
            self._close()
            return False
        self.parser.next_cycle()
        self.response_started = self.response_done = False
        self.keep_alive = True
        self.state = State.IDLE
        self.request = None
        self.body = bytearray()
        self.seen_bytes = False
        self._arm(self.limits.keepalive_timeout, self._on_idle_timeout)
        assert self.transport is not None
        self.transport.resume_reading()
        if self.parser.buf._data:  # a pipelined request waits in the parser's buffer
            self.seen_bytes = True
            self.first_byte_at = self.loop.time()
            return True
        return False

    # --- answering (used by proxy.serve) ---

    def start_response(
        self, status: int, headers: list[tuple[bytes, bytes]], reason: bytes = b""
    ) -> None:
        if self.response_started:
            raise h11.LocalProtocolError("a response was already started")
        if self.server.draining:
            headers = [*headers, (b"connection", b"close")]
        self.response_started = True
        self.status = status
        # The fields were parsed by h11 from the backend's response or come from checked
        # configuration (see h1server.response_head).
        p = self.parser
        head, self.writer, self.keep_alive = response_head(
            status,
            reason or REASONS.get(status, b""),
            headers,
            p.method,
            p.http_version,
            p.keep_alive,
        )
        self._write(head)

    def relay_whole(
        self,
        status: int,
        reason: bytes,
        fields: Fields,
        mods: tuple[CompiledModifier, ...],
        cors: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        """A backend's whole final response (the facts of its fields, all its body) relayed:
        what start_response, send_data and end_response write, in one write."""
        head = None
        if not mods and not cors and not self.server.draining and not self.response_started:
            p = self.parser
            head = relayed_head(
                status, reason or REASONS.get(status, b""), fields, p.method, p.keep_alive
            )
        if head is None:
            headers = outgoing_response_headers(fields.items, mods, cors)
            self.start_response(status, headers, reason)
            self.send_data(body)
            self.end_response()
            return
        # The body is all the response's Content-Length (h1client's `whole`), or none at all
        # for HEAD, 204 and 304: what h11's writer would have let through.
        self.response_started = self.response_done = True
        self.status = status
        self.sent_bytes += len(body)
        out = self.out
        out += head
        out += body
        self.flush()

    def send_data(self, data: bytes | bytearray) -> None:
        if data:
            if self.writer is None:
                raise h11.LocalProtocolError("body data without a response head")
            self.sent_bytes += len(data)
            self.writer.send_data(data, self._write)
            if len(self.out) > FLUSH_AT:
                self.flush()

    def end_response(self) -> None:
        if self.writer is None:
            raise h11.LocalProtocolError("the end of a response without its head")
        self.writer.send_eom(NO_TRAILERS, self._write)
        self.writer = None
        self.response_done = True
        self.flush()

    def simple(self, status: int, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        """A complete response of the gateway's own, with an empty body."""
        hs = [*(headers or []), (b"content-length", b"0")]
        try:
            self.start_response(status, hs)
            self.end_response()
        except h11.LocalProtocolError:
            self.abort()

    def abort(self) -> None:
        self.out.clear()
        if self.transport is not None:
            self.transport.abort()
        self.state = State.CLOSED

    async def switch_protocols(
        self, backend: UpstreamConnection, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """Relay a 101 and then bytes both ways (WebSocket), until either side closes."""
        assert self.transport is not None and backend.transport is not None
        if self.response_started or not self.parser.upgrade:
            # RFC 9110, 15.2.2: a server switches only to a protocol the client listed in
            # Upgrade (h11: no 101 without the request's proposal).
            raise h11.LocalProtocolError("101 without an Upgrade in the request")
        self.response_started = True
        self.status = 101
        self._write(switch_head(headers))
        self.write_now()  # before the tunnel's own writes
        self._disarm()
        self.state = State.TUNNEL
        leftover_client = self.parser.trailing()
        leftover_backend = backend.parser.trailing()
        self.tunnel = Tunnel(self.transport, backend, self)
        backend.tunnel = self.tunnel
        if leftover_backend:
            self.transport.write(leftover_backend)
        if leftover_client:
            backend.transport.write(leftover_client)
        self.transport.resume_reading()
        await self.tunnel.done

    # --- timers and closing ---

    def _arm(self, delay: float, callback: Any) -> None:
        self._arm_at(self.loop.time() + delay, callback)

    def _arm_at(self, when: float, callback: Any) -> None:
        """Make `callback` due at loop time `when` (replacing what was due). A timer that
        fires no later than that is kept: moving a deadline on costs no new timer."""
        self.deadline = when
        self.on_deadline = callback
        if self.timer is not None:
            if self.timer_at <= when:
                return
            self.timer.cancel()
        self.timer = self.loop.call_at(when, self._on_timer)
        self.timer_at = when

    def _on_timer(self) -> None:
        self.timer = None
        if self.deadline is None or self.state is State.CLOSED:
            return
        if self.loop.time() < self.deadline:
            self._arm_at(self.deadline, self.on_deadline)
            return
        callback, self.deadline = self.on_deadline, None
        callback()

    def _disarm(self) -> None:
        self.deadline = None

    def _cancel_timer(self) -> None:
        self.deadline = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _on_header_timeout(self) -> None:
        """RFC 9110, 15.5.9: "408 (Request Timeout) ... the server did not receive a complete
        request message within the time that it was prepared to wait"."""
        if self.state in (State.IDLE, State.BODY):
            self._refuse(408)

    def _on_idle_timeout(self) -> None:
        if self.state is State.IDLE and not self.seen_bytes:
            self._close()

    def _refuse(self, status: int) -> None:
        """Answer a malformed or over-limit request with `status` and close the connection."""
        counted = self.seen_bytes or self.state is State.BODY  # a request, not an idle socket
        self.state = State.BUSY
        self._disarm()
        if counted:
            self.route_label = self.backend_label = ""
            self.received_at = self.loop.time()
            self.stats.request_done(self.gateway_label, self.listener_label, "", "", status, 0.0)
        if not self.response_started:
            self.response_started = True
            p = self.parser
            head, _, _ = response_head(
                status,
                REASONS.get(status, b""),
                [(b"content-length", b"0"), (b"connection", b"close")],
                p.method,
                p.http_version,
                p.keep_alive,
            )
            self._write(head)
        self.flush()
        self._close()

    def _write(self, data: bytes | bytearray | None) -> None:
        """Queue bytes; `flush()` sends what a step produced in one write (one segment for
        a small response instead of head, body and end each waiting on Nagle)."""
        if data:
            self.out += data

    def flush(self) -> None:
        """Send what is queued with the rest of this event loop tick's writes: at once if
        it is the tick's first, else at the tick's end (l7/tick.py says why); at once too
        when much is queued."""
        if not self.out:
            return
        if len(self.out) >= FLUSH_AT:
            self.write_now()
        elif not self.write_pending:
            self.write_pending = True
            tick_send(self.loop, self)

    def write_due(self) -> None:
        self.write_pending = False
        self.write_now()

    def write_now(self) -> None:
        """Send what is queued now (before a close, or bytes written past the queue)."""
        if self.out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.out)
            self.out = bytearray()  # the transport may keep the one it was given
        else:
            self.out.clear()

    def _close(self) -> None:
        self.write_now()
        self._cancel_timer()
        if self.transport is not None and self.state is not State.TUNNEL:
            self.transport.close()
        self.state = State.CLOSED

    def close_if_idle(self) -> None:
        if self.state is State.IDLE:
            self._close()


class PortServer:
    """One HTTPPort in this worker: its socket, its current state, its connections."""

    def __init__(
        self,
        address: str,
        port: int,
        tls: bool,
        state: PortState,
        limits: Limits,
        ssl_context: ssl.SSLContext | None,
        stats: WorkerStats | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self.address = address
        self.port = port
        self.tls = tls
        self.current = state
        self.limits = limits
        self.ssl_context = ssl_context
        self.stats = stats if stats is not None else WorkerStats()
        self.access_log = access_log
        self.verifiers = ClientVerifiers()
        self.fallback = False  # some listener of this port is AllowInsecureFallback
        self.swap(state)
        self.connections: set[ClientConnection] = set()
        self.server: asyncio.base_events.Server | None = None
        self.draining = False
        self.errors: list[str] = []
        self.logged = 0  # failures logged on stderr so far (log_error)
        # What answers each request (proxy.serve; a test may put a failing one here).
        self.serve: Callable[[ClientConnection, PortState, h11.Request, bytes], Pending] = serve

    async def start(self) -> None:
        """Bind with SO_REUSEPORT (every worker binds the same address) and listen."""
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and self.address == "::":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((self.address, self.port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: ClientConnection(self), sock=sock, ssl=self.ssl_context, backlog=1024
        )

    def swap(self, state: PortState) -> None:
        self.current = state
        listeners = [lt.listener for lt in state.table.listeners]
        self.fallback = any(
            li.client_validation is not None
            and li.client_validation.mode == "AllowInsecureFallback"
            for li in listeners
        )
        if self.ssl_context is not None:
            require_client_certificates(self.ssl_context, listeners)

    def stop_accepting(self) -> None:
        """Close the listening socket now: no new connection is accepted once this returns."""
        self.draining = True
        if self.server is not None:
            self.server.close()

    async def drain(self, timeout: float) -> None:
        self.stop_accepting()
        for c in list(self.connections):
            c.close_if_idle()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
            for c in list(self.connections):
                c.close_if_idle()
        for c in list(self.connections):
            c.abort()
        self.connections.clear()

    def log_error(self, message: str, exc: BaseException | None = None) -> None:
        """Note a failure of the gateway's own: the last 20 in `errors`, and the first
        LOGGED_FAILURES on stderr (the agent's log) with the exception's traceback."""
        if exc is not None:
            message += f": {type(exc).__name__}: {exc}"
        self.errors.append(message)
        del self.errors[:-20]
        if self.logged >= LOGGED_FAILURES:
            return
        self.logged += 1
        print(f"nodegate l7: {message}", file=sys.stderr)
        if exc is not None:
            traceback.print_exception(exc, file=sys.stderr)
        if self.logged == LOGGED_FAILURES:
            print(
                f"nodegate l7: further failures on {self.address}:{self.port} are not logged",
                file=sys.stderr,
            )
