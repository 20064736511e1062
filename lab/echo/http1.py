"""HTTP/1.x connections for the echo server: an asyncio.Protocol wrapping h11.Connection.

Modelled on uvicorn's H11Protocol. h11 parses and frames; this class moves
bytes, runs one request at a time through EchoApp, and carries out the
outcome: a reply, a RST, a silent close, or a hijack into WebSocket frames.

Connection states:

    NEW --request--> ACTIVE --reply, keep-alive--> IDLE --request--> ACTIVE
    ACTIVE --/ws accepted--> UPGRADED (frames until close)
    any --error, close, reset, peer gone--> CLOSED

Invariants:
- At most one request is in the application at a time; pipelined bytes wait
  in h11 and reading pauses (h11 PAUSED) until the reply is written.
- Reading also pauses while the transport's write buffer is over its high
  mark, so a client that sends without reading cannot grow our memory.
- Malformed input gets Go net/http's raw `400 Bad Request` (or h11's status
  hint, e.g. 431) and the connection closes; no input can end the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
import sys
import traceback
from typing import cast

import h11

from lab.echo import routes, websocket
from lab.echo.requestlog import format_addr
from lab.echo.tlsinfo import ServerTLS, TLSInfo

MAX_HEADER_BYTES = 1 << 20  # net/http DefaultMaxHeaderBytes
MAX_KEPT_BODY = 10 << 20  # only form bodies are read; keep what ParseForm would


class ConnectionState(enum.Enum):
    NEW = "new"
    ACTIVE = "active"
    IDLE = "idle"
    UPGRADED = "upgraded"
    CLOSED = "closed"


def go_bad_request(code: int, detail: str = "") -> bytes:
    """Returns: what net/http writes, raw, when it cannot read a request."""
    public = f"{code} {routes.status_text(code)}"
    if detail:
        public += f": {detail}"
    return (
        f"HTTP/1.0 {public}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Connection: close\r\n\r\n{public}"
    ).encode()


class HTTPConnection(asyncio.Protocol):
    def __init__(self, app: routes.EchoApp, server_tls: ServerTLS | None = None) -> None:
        self._app = app
        self._server_tls = server_tls
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self._transport: asyncio.Transport | None = None
        self.state = ConnectionState.NEW
        self._remote = ""
        self._tls: TLSInfo | None = None
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._task: asyncio.Task[None] | None = None
        self._read_paused_for: set[str] = set()
        self._ws: websocket.EchoSession | None = None

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._remote = format_addr(transport.get_extra_info("peername"))
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None and self._server_tls is not None:
            self._tls = self._server_tls.describe(sslobj)

    def data_received(self, data: bytes) -> None:
        if self.state is ConnectionState.UPGRADED:
            self._ws_receive(data)
            return
        if self.state is ConnectionState.CLOSED:
            return
        self._conn.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        if self.state is ConnectionState.UPGRADED and self._ws is not None:
            self._write(self._ws.eof())
            self._close()
            return None
        if self.state is not ConnectionState.CLOSED:
            self._conn.receive_data(b"")
            self._process()
        # Keep the write side open so a request still in the application
        # gets its reply after the client half-closed (TLS cannot half-close).
        return self._tls is None and self.state is not ConnectionState.CLOSED

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = ConnectionState.CLOSED
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def pause_writing(self) -> None:
        self._pause("write")

    def resume_writing(self) -> None:
        self._resume("write")

    # -- reading requests ----------------------------------------------------

    def _process(self) -> None:
        """Pulls h11 events until it needs bytes, or a request goes to the application."""
        while self.state in (ConnectionState.NEW, ConnectionState.IDLE, ConnectionState.ACTIVE):
            if self._task is not None:
                return
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._reject(exc.error_status_hint)
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                self._pause("h11")
                return
            if isinstance(event, h11.Request):
                self._begin(event)
            elif isinstance(event, h11.Data):
                room = MAX_KEPT_BODY - len(self._body)
                if room > 0:
                    self._body += event.data[:room]
            elif isinstance(event, h11.EndOfMessage):
                self._dispatch()
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return

    def _begin(self, event: h11.Request) -> None:
        self.state = ConnectionState.ACTIVE
        hosts = [v for n, v in event.headers if n == b"host"]
        if len(hosts) > 1:
            self._reject(400, "too many Host headers")
            return
        self._request = event
        self._body = bytearray()
        if self._conn.they_are_waiting_for_100_continue:
            self._send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))

    def _dispatch(self) -> None:
        event = self._request
        if event is None or self._transport is None:
            return
        request = routes.EchoRequest(
            method=event.method.decode("latin-1"),
            target=event.target.decode("latin-1"),
            http_version=event.http_version.decode("latin-1"),
            headers=tuple(event.headers.raw_items()),
            body=bytes(self._body),
            remote=self._remote,
            tls=self._tls,
        )
        self._task = asyncio.get_running_loop().create_task(self._respond(request))

    async def _respond(self, request: routes.EchoRequest) -> None:
        try:
            outcome = await self._app.handle(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Like Go's server recovering a handler panic: log, drop the connection.
            traceback.print_exc(file=sys.stderr)
            outcome = routes.Hangup()
        self._task = None
        if self.state is ConnectionState.CLOSED:
            return
        try:
            self._carry_out(request, outcome)
        except h11.LocalProtocolError:
            traceback.print_exc(file=sys.stderr)
            self._close()

    # -- answering -----------------------------------------------------------

    def _carry_out(self, request: routes.EchoRequest, outcome: routes.Outcome) -> None:
        if isinstance(outcome, routes.Reply):
            self._reply(request, outcome)
        elif isinstance(outcome, routes.Reset):
            self._reset()
        elif isinstance(outcome, routes.Raw):
            self._write(outcome.data)
            if outcome.websocket:
                self._upgrade()
            else:
                self._close()
        else:
            self._close()

    def _reply(self, request: routes.EchoRequest, reply: routes.Reply) -> None:
        status = reply.status
        headers = [*reply.headers, (b"Date", routes.http_date())]
        if reply.close:
            headers.append((b"Connection", b"close"))
        if 100 <= status < 200:
            # net/http sends a 1xx at once, then 200 when the handler returns.
            self._send(
                h11.InformationalResponse(
                    status_code=status,
                    headers=headers,
                    reason=routes.status_text(status).encode(),
                )
            )
            status, reply = 200, routes.Reply(200, close=reply.close)
            headers = [(b"Date", routes.http_date())]
        if status not in (204, 304):
            headers.append((b"Content-Length", str(len(reply.body)).encode()))
        self._send(
            h11.Response(
                status_code=status,
                headers=headers,
                reason=routes.status_text(status).encode(),
            )
        )
        if reply.body and request.method != "HEAD" and status not in (204, 304):
            self._send(h11.Data(data=reply.body))
        self._send(h11.EndOfMessage())
        self._next_cycle()

    def _next_cycle(self) -> None:
        if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
            self._conn.start_next_cycle()
            self.state = ConnectionState.IDLE
            self._request = None
            self._resume("h11")
            self._process()
        else:
            self._close()

    def _reject(self, code: int, detail: str = "") -> None:
        self._write(go_bad_request(code, detail))
        self._close()

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout turns close() into a RST.
        if self._transport is None:
            return
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.state = ConnectionState.CLOSED
        self._transport.abort()

    def _upgrade(self) -> None:
        self.state = ConnectionState.UPGRADED
        self._ws = websocket.EchoSession()
        leftover, closed = self._conn.trailing_data
        self._resume("h11")
        if leftover:
            self._ws_receive(leftover)
        if closed and self.state is ConnectionState.UPGRADED:
            self._write(self._ws.eof())
            self._close()

    def _ws_receive(self, data: bytes) -> None:
        if self._ws is None:
            return
        self._write(self._ws.receive(data))
        if self._ws.closed:
            self._close()

    # -- transport plumbing --------------------------------------------------

    def _send(self, event: h11.Event) -> None:
        data = self._conn.send(event)
        if data:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _close(self) -> None:
        self.state = ConnectionState.CLOSED
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _pause(self, reason: str) -> None:
        if self._transport is None or reason in self._read_paused_for:
            return
        if not self._read_paused_for and not self._transport.is_closing():
            self._transport.pause_reading()
        self._read_paused_for.add(reason)

    def _resume(self, reason: str) -> None:
        if self._transport is None or reason not in self._read_paused_for:
            return
        self._read_paused_for.discard(reason)
        if not self._read_paused_for and not self._transport.is_closing():
            self._transport.resume_reading()
