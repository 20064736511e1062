"""Backends: keep-alive pools per endpoint, balancing, ejection, retry budgets, TLS.

An `UpstreamConnection` is an asyncio Protocol around an h1client.ResponseParser
(h11's response readers without its state machine), with explicit states
(CONNECTING, ACTIVE, IDLE, CLOSED). A pooled connection is IDLE; an exchange
makes it ACTIVE until the whole response is read, and only a connection whose
response allows reuse goes back to the pool. A pooled connection that receives
bytes is closed: they would be taken for the next request's answer.

The response is read either by a coroutine (`next_event()`, which awaits a future
per wait) or by a `consumer`, whose `on_backend()` is called at once whenever the
connection has news (bytes, EOF, its loss): exchange.Exchange relays a response
that way without a task or a future.

Flow control: response bytes wait in the parser's buffer; above HIGH_WATER
buffered bytes the connection pauses reading the backend socket and resumes when
the consumer (the client side, which stops polling while its own transport's
buffer is full) has taken them below LOW_WATER, or needs more than is buffered.

Endpoints are shared by every Backend that names them, so an endpoint that
refuses or resets a connection is ejected for every route at once; when every
endpoint of a backend is ejected they are all used again (a panic threshold of
100%), as an ejection must never turn a degraded backend into a dead one.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agent.nodeconfig import Backend, BackendTLS, Certificate, RetryBudget
from l7.h1client import IDLE as PARSER_IDLE
from l7.h1client import NEED_DATA, ProtocolError, ResponseParser, serialize_request
from l7.limits import Limits
from l7.tick import send as tick_send
from l7.tls import BackendContexts, san_matches

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class UpstreamError(Exception):
    """A backend exchange that produced no usable response."""

    # Class attributes (ClassVar: so mypyc keeps them on the classes, where subclasses
    # inherit or override them).
    status: ClassVar[int] = 502
    eject: ClassVar[bool] = False


# What a backend connection raises when the backend fails it (a socket error, a reset, a
# response that is no HTTP): `except BACKEND_ERRORS as exc`, `exc` an Exception to mypyc.
BACKEND_ERRORS: tuple[type[Exception], ...] = (OSError, UpstreamError)


class ConnectFailed(UpstreamError):
    eject: ClassVar[bool] = True


class ResetBeforeResponse(UpstreamError):
    eject: ClassVar[bool] = True


class BadResponse(UpstreamError):
    pass


class BackendTLSFailed(UpstreamError):
    pass


class ConnState(enum.Enum):
    CONNECTING = "connecting"
    ACTIVE = "active"
    IDLE = "idle"
    CLOSED = "closed"


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.state = ConnState.CONNECTING
        self.parser = ResponseParser()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.idle_since = 0.0
        self.got_bytes = False
        self.lost: BaseException | None = None
        self.tunnel: Any = None  # a websocket.Tunnel once the protocol is switched
        self.consumer: Any = None  # an exchange.Exchange reading the response by callbacks
        self.out = b""  # a request to write at the end of this loop tick
        self.write_pending = False

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_backend(data)
            return
        if self.state is ConnState.IDLE:
            # Bytes nobody asked for would be read as the next request's answer.
            self.close()
            return
        self.got_bytes = True
        c = self.consumer
        if c is not None and c.whole(data):
            return
        self.parser.feed(data)
        if not self.paused and self.parser.buffered > HIGH_WATER and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            self.tunnel.backend_eof()
            return True
        self.parser.feed_eof()
        self._wake()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        prev = self.state
        self.state = ConnState.CLOSED
        self.lost = exc
        if self.tunnel is not None:
            self.tunnel.backend_closed()
        if prev is ConnState.IDLE:
            self.pool.forget(self)
        self.parser.feed_eof()
        self._wake()

    def pause_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.pause_client()

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.resume_client()

    # --- events to the consumer ---

    def _wake(self) -> None:
        c = self.consumer
        if c is not None:
            c.on_backend()
            return
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def poll(self) -> Any:
        """The next response event if what has arrived holds one, else h1client.NEED_DATA.
        Raises BadResponse for a response h11 refuses, OSError when the backend went away."""
        try:
            event = self.parser.next_event()
        except ProtocolError as exc:
            raise BadResponse(str(exc)) from exc
        if event is NEED_DATA:
            if self.state is ConnState.CLOSED:
                raise self.lost or ConnectionResetError("backend connection closed")
            if self.paused and self.transport is not None:
                self.paused = False  # the consumer needs more than is buffered
                self.transport.resume_reading()
        elif self.paused and self.parser.buffered < LOW_WATER and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return event

    async def next_event(self) -> Any:
        while True:
            event = self.poll()
            if event is not NEED_DATA:
                return event
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    # --- exchange ---

    def send(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        upgrade: bool = False,
    ) -> None:
        """Send a whole request: `headers` carry Host first and Content-Length if `body`."""
        self.send_wire(method, serialize_request(method, target, headers, body), upgrade)

    def send_wire(self, method: bytes, data: bytes, upgrade: bool = False) -> None:
        """Send a whole request of `method`, already serialized, with the rest of this event
        loop tick's writes (l7/tick.py)."""
        assert self.transport is not None
        self.state = ConnState.ACTIVE
        self.got_bytes = False
        self.parser.start(method, upgrade)
        self.out += data
        if not self.write_pending:
            self.write_pending = True
            tick_send(self.loop, self)

    def write_due(self) -> None:
        self.write_pending = False
        data, self.out = self.out, b""
        t = self.transport
        if data and t is not None and self.state is not ConnState.CLOSED and not t.is_closing():
            t.write(data)

    def finish(self) -> None:
        """The exchange is over: back to the pool if the response allows reuse, else close."""
        if self.state is ConnState.CLOSED or self.transport is None:
            return
        if self.parser.reusable():
            self.parser.state = PARSER_IDLE
            self.pool.release(self)
        else:
            self.close()

    def close(self) -> None:
        self.out = b""  # a request not written yet is not sent at all
        if self.transport is not None and self.state is not ConnState.CLOSED:
            self.transport.close()
        if self.state is ConnState.IDLE:
            self.pool.forget(self)
        self.state = ConnState.CLOSED


@dataclass(eq=False)
class Pool:
    """Idle keep-alive connections to one endpoint (with one TLS setting)."""

    address: str
    port: int
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    tls: BackendTLS | None = None
    limits: Limits = field(default_factory=Limits)
    idle: list[UpstreamConnection] = field(default_factory=list)
    ejected_until: float = 0.0
    active: int = 0

    async def connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConnection(self),
                    self.address,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=self.server_hostname if self.ssl_context else None,
                ),
                self.limits.connect_timeout,
            )
        except ssl.SSLError as exc:
            raise BackendTLSFailed(f"TLS to {self.address}:{self.port}: {exc}") from exc
        except (OSError, TimeoutError) as err:  # not `exc`: mypyc types a name once
            raise ConnectFailed(f"connect to {self.address}:{self.port}: {err}") from err
        if self.tls is not None and self.tls.subject_alt_names:
            assert proto.transport is not None
            sslobj = proto.transport.get_extra_info("ssl_object")
            peer = sslobj.getpeercert() if sslobj is not None else None
            if not san_matches(self.tls, peer):
                proto.close()
                raise BackendTLSFailed(
                    f"{self.address}:{self.port}: certificate matches none of subjectAltNames"
                )
        return proto

    def take_idle(self) -> UpstreamConnection | None:
        """A pooled connection still fit for use, if there is one."""
        if not self.idle:
            return None
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if conn.state is ConnState.IDLE and now - conn.idle_since < self.limits.upstream_idle:
                return conn
            conn.close()
        return None

    async def acquire(self) -> tuple[UpstreamConnection, bool]:
        """A connection and whether it was reused from the pool."""
        conn = self.take_idle()
        if conn is not None:
            return conn, True
        return await self.connect(), False

    def release(self, conn: UpstreamConnection) -> None:
        if len(self.idle) >= self.limits.pool_size:
            conn.close()
            return
        conn.state = ConnState.IDLE
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)

    def close_idle(self) -> None:
        for conn in list(self.idle):
            conn.close()
        self.idle.clear()

    def eject(self) -> None:
        self.ejected_until = time.monotonic() + self.limits.eject_seconds


class Budget:
    """XBackendTrafficPolicy retryConstraint: "BudgetPercent defines the maximum percentage
    of active requests that may be made up of retries" over `interval`, and "MinRetryRate
    defines the minimum rate of retries that will be allowable over a specified duration of
    time" (always allowed, whatever the percentage)."""

    def __init__(self, budget: RetryBudget) -> None:
        self.budget = budget
        self.requests: collections.deque[float] = collections.deque()
        self.retries: collections.deque[float] = collections.deque()

    def _trim(self, now: float) -> None:
        horizon = now - max(self.budget.interval, self.budget.min_interval)
        for q in (self.requests, self.retries):
            while q and q[0] < horizon:
                q.popleft()

    def note_request(self) -> None:
        now = time.monotonic()
        self._trim(now)
        self.requests.append(now)

    def allow_retry(self) -> bool:
        now = time.monotonic()
        self._trim(now)
        b = self.budget
        recent = sum(1 for t in self.retries if t >= now - b.min_interval)
        allowed = recent < b.min_retries
        if not allowed:
            in_window = sum(1 for t in self.retries if t >= now - b.interval)
            requests = sum(1 for t in self.requests if t >= now - b.interval)
            allowed = in_window < requests * b.percent / 100
        if allowed:
            self.retries.append(now)
        return allowed


class BackendState:
    """A resolved Backend with its endpoints' pools and a round-robin cursor."""

    def __init__(self, backend: Backend, pools: Sequence[Pool]) -> None:
        self.backend = backend
        self.label = f"{backend.ref.namespace}/{backend.ref.name}"  # for stats and logs
        self.pools = list(pools)
        self.cursor = 0
        self.budget = Budget(backend.retry_budget) if backend.retry_budget else None

    def pick(self, avoid: Pool | None = None) -> Pool | None:
        """Round robin over endpoints not ejected (and not `avoid`, if another exists)."""
        n = len(self.pools)
        if not n:
            return None
        fallback = None
        for _ in range(n):
            pool = self.pools[self.cursor % n]
            self.cursor += 1
            until = pool.ejected_until
            if until and until > time.monotonic():
                fallback = fallback or pool
                continue
            if pool is avoid and n > 1:
                fallback = fallback or pool
                continue
            return pool
        return fallback or self.pools[self.cursor % n]


class Upstreams:
    """Every pool and backend state of a worker, rebuilt (reusing what stays) per NodeConfig."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.contexts = BackendContexts()
        self.pools: dict[tuple[Any, ...], Pool] = {}
        self.states: dict[tuple[Any, ...], BackendState] = {}

    def _pool(
        self, address: str, port: int, tls: BackendTLS | None, client: Certificate | None
    ) -> Pool:
        key = (address, port, tls, client if tls else None)
        pool = self.pools.get(key)
        if pool is None:
            ctx = self.contexts.get(tls, client) if tls is not None else None
            pool = Pool(
                address=address,
                port=port,
                ssl_context=ctx,
                server_hostname=tls.hostname if tls else None,
                tls=tls,
                limits=self.limits,
            )
            self.pools[key] = pool
        return pool

    def state(self, backend: Backend, client: Certificate | None) -> BackendState:
        key = (
            backend.ref,
            backend.port,
            backend.endpoints,
            backend.tls,
            backend.retry_budget,
            client,
        )
        st = self.states.get(key)
        if st is None:
            st = BackendState(
                backend,
                [self._pool(e.address, e.port, backend.tls, client) for e in backend.endpoints],
            )
            self.states[key] = st
        return st

    def retain(self, used: set[int]) -> None:
        """Drop states and pools no current table uses (`used` = ids of BackendStates)."""
        live_pools: set[int] = set()
        for key, st in list(self.states.items()):
            if id(st) not in used:
                del self.states[key]
            else:
                live_pools.update(id(p) for p in st.pools)
        for key, pool in list(self.pools.items()):
            if id(pool) not in live_pools:
                pool.close_idle()
                del self.pools[key]
