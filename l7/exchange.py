"""One request's exchange with a backend connection, driven by the connection's callbacks.

The backend connection calls `on_backend()` whenever it has news (bytes, EOF, its
loss) and the client connection calls it when its transport can take more; each
call reads what the response parser has and writes it to the client at once, so
relaying a response needs no task and no future. A read that is the whole response
(h1client's `ResponseParser.whole`) is relayed by `whole()` at once, head and body in
one write, without the parser's events. States:

    HEAD   the request was sent; waiting for the response head (1xx other than a
           protocol switch skipped)
    BODY   the head was written to the client; relaying the body until its end
    DONE   finished, failed or cancelled; the connection is no longer ours

Two owners:

- the common request (no timeout, retry or upgrade, a pooled connection at hand;
  proxy.start_exchange) starts in HEAD and, when it ends, tells the client
  (`ClientConnection.finished` / `failed`); a pooled connection the backend had
  closed before answering is retried once on a fresh connection by the task
  `fresh()` returns, as proxy._try_backend does;
- a request on the task path (proxy._relay) starts one in BODY once it has a head
  and awaits `done`.

Back-pressure: while the client's transport buffer is full nothing is read from the
parser, whose buffer then pauses the backend socket (upstream.HIGH_WATER); the
client's `resume_writing` calls `on_backend()` again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import h11

from l7.filters import CompiledModifier, outgoing_response_headers
from l7.h1client import NEED_DATA
from l7.upstream import BACKEND_ERRORS, ConnState, UpstreamConnection

if TYPE_CHECKING:
    from l7.server import ClientConnection

HEAD = 0
BODY = 1
DONE = 2


class Exchange:
    __slots__ = (
        "backend",
        "client",
        "conn",
        "cors",
        "done",
        "fresh",
        "mods",
        "route",
        "started",
        "state",
    )

    def __init__(
        self,
        client: ClientConnection,
        conn: UpstreamConnection,
        route: str,
        backend: str,
        mods: tuple[CompiledModifier, ...],
        cors: list[tuple[bytes, bytes]],
        started: float,
        done: asyncio.Future[None] | None = None,
        fresh: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.client = client
        self.conn = conn
        self.route = route
        self.backend = backend
        self.mods = mods
        self.cors = cors
        self.started = started  # perf_counter when the request went to the backend
        self.done = done  # the task path's future; None: the client is told directly
        self.fresh = fresh  # the task that retries on a fresh connection (HEAD only)
        self.state = HEAD
        conn.consumer = self
        client.exchange = self

    def relay(self, response: h11.Response) -> None:
        """Write the response head to the client and relay what of the body is here."""
        self.state = BODY
        try:
            headers = outgoing_response_headers(response.headers._full_items, self.mods, self.cors)
            self.client.start_response(response.status_code, headers, response.reason)
        except BaseException as exc:
            self._failed(exc)
            return
        self.on_backend()

    def whole(self, data: bytes) -> bool:
        """A read from the backend that is the whole response (h1client's `whole`): relayed
        and finished at once. False: nothing was done, `data` takes the general path."""
        if self.state != HEAD or self.client.write_paused:
            return False
        read = self.conn.parser.whole(data)
        if read is None:
            return False
        response, fields, body = read
        self.state = BODY
        client = self.client
        try:
            client.relay_whole(
                response.status_code,
                response.reason,
                fields,
                self.mods,
                self.cors,
                body,
            )
        except BaseException as exc:
            self._failed(exc)
            return True
        self._ended()
        return True

    def on_backend(self) -> None:
        """News from the backend, or room in the client's transport: move what can move."""
        if self.state == DONE or self.client.write_paused:
            return
        try:
            if self.state == HEAD:
                self._head()
            else:
                self._body()
        except BaseException as exc:
            self._failed(exc)

    def cancel(self) -> None:
        """The client went away (or the task path was cancelled): drop the connection,
        whose state is unknown."""
        if self.state == DONE:
            return
        self._release()
        if self.conn.state is not ConnState.CLOSED:
            self.conn.close()

    # --- states ---

    def _head(self) -> None:
        conn = self.conn
        while True:
            try:
                event = conn.poll()
            except BACKEND_ERRORS as exc:
                self._no_response(exc)
                return
            if event is NEED_DATA:
                return
            if type(event) is h11.Response:
                self.relay(event)
                return
            # 1xx other than a protocol switch (a 101 to a request that proposed none is
            # a BadResponse): wait for the real answer.

    def _no_response(self, exc: BaseException) -> None:
        conn = self.conn
        conn.close()
        self._release()
        client = self.client
        if self.fresh is not None and not conn.got_bytes:
            # The backend closed an idle keep-alive connection: not its fault; once more
            # on a fresh connection.
            client.run(self.fresh())
            return
        if isinstance(exc, OSError) or getattr(exc, "eject", False):
            conn.pool.eject()
        client.simple(502)
        client.finished()

    def _body(self) -> None:
        conn = self.conn
        client = self.client
        try:
            while True:
                event = conn.poll()
                if event is NEED_DATA:
                    client.flush()  # all that is here is sent before waiting for more
                    return
                t = type(event)
                if t is h11.Data:
                    client.send_data(event.data)
                elif t is h11.EndOfMessage:
                    client.end_response()
                    self._ended()
                    return
        except BACKEND_ERRORS:
            # The backend broke off mid-body: the client cannot be told with a status any more.
            self._release()
            conn.close()
            client.abort()
            self._finished()

    # --- endings ---

    def _ended(self) -> None:
        """The response was relayed to its end."""
        now = time.perf_counter()
        self.client.stats.upstream_done(self.route, self.backend, now - self.started)
        self._release()
        self.conn.finish()
        self._finished(now)

    def _release(self) -> None:
        self.state = DONE
        self.conn.consumer = None
        if self.client.exchange is self:
            self.client.exchange = None

    def _finished(self, now: float = 0.0) -> None:
        if self.done is not None:
            if not self.done.done():
                self.done.set_result(None)
        else:
            self.client.finished(now)

    def _failed(self, exc: BaseException) -> None:
        """Something not the backend's doing (a bug, a response the client side refuses)."""
        self._release()
        if self.conn.state is not ConnState.CLOSED:
            self.conn.close()
        if self.done is not None:
            if not self.done.done():
                self.done.set_exception(exc)
        elif isinstance(exc, Exception):
            self.client.failed(exc)
        else:
            raise exc
