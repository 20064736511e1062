"""One request through the gateway: route, filters, backend choice, retries, timeouts.

The client side (server.py) hands over a complete request head and body together
with the `PortState` that was current when the request arrived; the request runs
on that state to the end, whatever NodeConfig arrives meanwhile.

Status codes the gateway answers itself:
- 404: no route ("If no matching route is found for a given parent a HTTP 404
  status code MUST be returned"); 421: misdirected (router.py).
- 500: the rule has no backend to send to, or the chosen backendRef is invalid:
  "When a HTTPBackendRef is invalid, 500 status codes MUST be returned for requests
  that would have otherwise been routed to an invalid backend."
- 503: "When a HTTPBackendRef refers to a Service that has no ready endpoints,
  implementations SHOULD return a 503 for requests to that backend instead."
- 502: the backend could not be reached or answered garbage (after retries).
- 504: timeouts.request or timeouts.backendRequest expired before a response head.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import h11

from agent.nodeconfig import Backend, Certificate, Filters, HTTPRule, Mirror
from l7.filters import (
    CORSPolicy,
    forwarded_headers,
    header_value,
    is_preflight,
    modify_headers,
    redirect_location,
    replace_path,
    strip_hop_by_hop,
)
from l7.router import PortTable, Refused, RequestHead, Routed, host_of, split_target
from l7.upstream import (
    BackendState,
    ConnState,
    UpstreamConnection,
    UpstreamError,
    Upstreams,
)

if TYPE_CHECKING:
    from l7.server import ClientConnection

MAX_MIRRORS_IN_FLIGHT = 256
MIRROR_TIMEOUT = 10.0
MAX_BACKOFF_FACTOR = 8


@dataclass(eq=False)
class PortState:
    """A port's compiled table with its backends bound to this worker's pools."""

    table: PortTable
    states: dict[int, BackendState] = field(default_factory=dict)  # id(Backend) -> state
    cors: dict[int, CORSPolicy] = field(default_factory=dict)  # id(CORS) -> compiled


def bind_port_state(table: PortTable, upstreams: Upstreams) -> PortState:
    ps = PortState(table=table)
    for lt in table.listeners:
        client: Certificate | None = lt.listener.backend_client_certificate
        vhosts = [*lt.exact.values(), *(t for _, t in lt.wildcards)]
        if lt.any_host is not None:
            vhosts.append(lt.any_host)
        for vt in vhosts:
            for rule in vt.rules:
                filter_sets = [rule.rule.filters]
                for b in rule.rule.backends:
                    ps.states[id(b)] = upstreams.state(b, client)
                    if b.filters is not None:
                        filter_sets.append(b.filters)
                for fs in filter_sets:
                    for m in fs.mirrors:
                        ps.states[id(m.backend)] = upstreams.state(m.backend, client)
                    if fs.cors is not None:
                        ps.cors[id(fs.cors)] = CORSPolicy(fs.cors)
    return ps


class Mirrors:
    """Fire-and-forget copies of requests; never awaited by the request they copy."""

    def __init__(self) -> None:
        self.in_flight: set[asyncio.Task[None]] = set()

    def send(
        self,
        state: BackendState,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        if len(self.in_flight) >= MAX_MIRRORS_IN_FLIGHT:
            return  # a slow mirror must never cost the real traffic memory or time
        task = asyncio.get_running_loop().create_task(
            self._one(state, method, target, headers, body)
        )
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def _one(
        self,
        state: BackendState,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        # "Responses from the mirrored backend are ignored" (HTTPRequestMirrorFilter).
        pool = state.pick()
        if pool is None:
            return
        conn: UpstreamConnection | None = None
        try:
            async with asyncio.timeout(MIRROR_TIMEOUT):
                conn, _ = await pool.acquire()
                conn.send(method, target, headers, body)
                while True:
                    event = await conn.next_event()
                    if isinstance(event, h11.EndOfMessage):
                        break
            conn.finish()
        except (Exception, asyncio.CancelledError):
            if conn is not None:
                conn.close()


MIRRORS = Mirrors()


def _mirrored(m: Mirror) -> bool:
    """ "Fraction represents the fraction of requests that should be mirrored to BackendRef."""
    if m.numerator >= m.denominator:
        return True
    return random.random() * m.denominator < m.numerator


class Attempt:
    """The outcome of one try: a response head on a connection, or a status of our own."""

    __slots__ = ("conn", "response", "status")

    def __init__(
        self, conn: UpstreamConnection | None, response: h11.Response | None, status: int = 0
    ) -> None:
        self.conn = conn
        self.response = response
        self.status = status


async def _try_backend(
    state: BackendState,
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    avoid: Any,
) -> tuple[Attempt, Any]:
    """One attempt on one endpoint; a stale pooled connection is retried once, fresh."""
    pool = state.pick(avoid)
    if pool is None:
        return Attempt(None, None, 503), None
    fresh_only = False
    for _ in range(2):
        try:
            if fresh_only:
                conn, reused = await pool.connect(), False
            else:
                conn, reused = await pool.acquire()
        except UpstreamError as exc:
            if exc.eject:
                pool.eject()
            return Attempt(None, None, exc.status), pool
        try:
            conn.send(method, target, headers, body)
            while True:
                event = await conn.next_event()
                if isinstance(event, h11.Response | h11.InformationalResponse):
                    if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                        continue  # 1xx other than a protocol switch: wait for the real answer
                    return Attempt(conn, event), pool  # type: ignore[arg-type]
        except (OSError, UpstreamError, h11.LocalProtocolError) as exc:
            conn.close()
            if reused and not conn.got_bytes:
                fresh_only = True
                continue  # the backend closed an idle keep-alive connection: not its fault
            if isinstance(exc, OSError) or getattr(exc, "eject", False):
                pool.eject()
            return Attempt(None, None, 502), pool
        except BaseException:
            conn.close()  # cancelled (client gone, timeout): the connection's state is unknown
            raise
    return Attempt(None, None, 502), pool


async def _discard(conn: UpstreamConnection) -> None:
    """Read and drop the rest of a response we will not forward (a retried one)."""
    try:
        while True:
            event = await conn.next_event()
            if isinstance(event, h11.EndOfMessage):
                conn.finish()
                return
    except (OSError, UpstreamError):
        conn.close()


def _response_headers(
    response: h11.Response,
    filter_sets: Sequence[Filters],
    cors_headers: list[tuple[bytes, bytes]],
) -> list[tuple[bytes, bytes]]:
    headers = list(response.headers)
    cl = header_value(headers, b"content-length")
    headers = strip_hop_by_hop(headers)
    if cl is not None:
        headers.append((b"content-length", cl))  # keeps the framing the body is streamed in
    for fs in filter_sets:
        if fs.response_headers is not None:
            headers = modify_headers(headers, fs.response_headers)
    if cors_headers:
        drop = {n for n, _ in cors_headers}
        headers = [(n, v) for n, v in headers if n not in drop] + cors_headers
    return headers


async def serve(
    client: ClientConnection,
    port: PortState,
    request: h11.Request,
    body: bytes,
) -> None:
    """Answer one request on `client`. Never raises for anything a backend does."""
    method_b = request.method
    method = method_b.decode("ascii")
    target = request.target.decode("latin-1")
    if target.startswith(("http://", "https://")):
        # absolute-form (RFC 9112, 3.2.2): the authority in the target wins over Host.
        rest = target.split("://", 1)[1]
        authority, slash, tail = rest.partition("/")
        target = slash + tail or "/"
        host_raw = authority.encode("latin-1")
    else:
        host_raw = header_value(request.headers, b"host") or b""
    host = host_of(host_raw.decode("latin-1"))
    path, query = split_target(target)
    headers = list(request.headers)
    head = RequestHead(method=method, path=path, query=query, host=host, headers=headers)
    routed = port.table.route(head, client.sni)
    if isinstance(routed, Refused):
        await client.simple(routed.status)
        return
    await _serve_routed(client, port, routed, method_b, path, query, host, host_raw, headers, body)


async def _serve_routed(
    client: ClientConnection,
    port: PortState,
    routed: Routed,
    method_b: bytes,
    path: str,
    query: str,
    host: str,
    host_raw: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    rule: HTTPRule = routed.rule.rule
    filters = rule.filters
    method = method_b.decode("ascii")
    # CORS, "preflights answered by the gateway".
    cors_out: list[tuple[bytes, bytes]] = []
    if filters.cors is not None:
        policy = port.cors[id(filters.cors)]
        origin_b = header_value(headers, b"origin")
        if origin_b is not None:
            origin = origin_b.decode("latin-1")
            allowed = policy.allows(origin)
            if is_preflight(method, headers):
                # "If the request `Origin` does not match the configured allowed origins, the
                # gateway returns 204/200 response but doesn't set the relevant cross-origin
                # response headers."
                extra = []
                if allowed:
                    want = (header_value(headers, b"access-control-request-method") or b"").decode(
                        "latin-1"
                    )
                    want_headers = (
                        header_value(headers, b"access-control-request-headers") or b""
                    ).decode("latin-1")
                    extra = policy.preflight_headers(origin, want, want_headers)
                await client.simple(204, extra)
                return
            if allowed:
                cors_out = policy.response_headers(origin)
    if filters.redirect is not None:
        location = redirect_location(
            filters.redirect,
            scheme=client.scheme,
            host=host,
            listener_port=client.listen_port,
            path=path,
            query=query,
            match=routed.match,
        )
        await client.simple(
            filters.redirect.status_code, [(b"location", location.encode("latin-1"))]
        )
        return
    if filters.request_headers is not None:
        headers = modify_headers(headers, filters.request_headers)
    if filters.rewrite is not None:
        if filters.rewrite.hostname:
            host_raw = filters.rewrite.hostname.encode("latin-1")
        if filters.rewrite.path is not None:
            path = replace_path(filters.rewrite.path, path, routed.match)
    target_b = (path + ("?" + query if query else "")).encode("latin-1")
    upgrade = _is_websocket(headers)
    out_headers = strip_hop_by_hop(headers, keep_upgrade=upgrade)
    out_headers = [(n, v) for n, v in out_headers if n != b"host"]
    out_headers = forwarded_headers(out_headers, client.client_ip, client.scheme, host_raw)
    out_headers.insert(0, (b"host", host_raw))
    if body:
        out_headers.append((b"content-length", str(len(body)).encode()))
    for m in filters.mirrors:
        if _mirrored(m):
            MIRRORS.send(port.states[id(m.backend)], method_b, target_b, out_headers, body)
    backend = routed.rule.pick(random.random())
    if backend is None or backend.invalid:
        await client.simple(500)
        return
    if not backend.endpoints:
        await client.simple(503)
        return
    state = port.states[id(backend)]
    if backend.filters is not None:
        bf = backend.filters
        if bf.request_headers is not None:
            out_headers = modify_headers(out_headers, bf.request_headers)
        for m in bf.mirrors:
            if _mirrored(m):
                MIRRORS.send(port.states[id(m.backend)], method_b, target_b, out_headers, body)
    filter_sets = [filters] + ([backend.filters] if backend.filters is not None else [])
    try:
        # timeouts.request: "Request specifies the maximum duration for a gateway to respond
        # to an HTTP request. If the gateway has not been able to respond before this deadline
        # is met, the gateway MUST return a timeout error." Counted from the complete head.
        deadline = (
            client.received_at + rule.request_timeout if rule.request_timeout is not None else None
        )
        async with asyncio.timeout_at(deadline):
            await _forward(
                client,
                rule,
                backend,
                state,
                method_b,
                target_b,
                out_headers,
                body,
                filter_sets,
                cors_out,
                upgrade,
            )
    except TimeoutError:
        # timeouts.request: "the gateway MUST immediately return a timeout error" (504).
        if client.response_started:
            client.abort()
        else:
            await client.simple(504)


def _is_websocket(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    up = header_value(headers, b"upgrade")
    if up is None or up.strip().lower() != b"websocket":
        return False
    return any(n == b"connection" and b"upgrade" in v.lower() for n, v in headers)


async def _forward(
    client: ClientConnection,
    rule: HTTPRule,
    backend: Backend,
    state: BackendState,
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    filter_sets: Sequence[Filters],
    cors_out: list[tuple[bytes, bytes]],
    upgrade: bool,
) -> None:
    retry = rule.retry
    tries = 1 + (retry.attempts if retry is not None else 0)
    codes = frozenset(retry.codes) if retry is not None else frozenset()
    if state.budget is not None:
        state.budget.note_request()
    last_pool: Any = None
    for n in range(tries):
        final = n == tries - 1
        attempt: Attempt
        try:
            async with asyncio.timeout(rule.backend_timeout):
                attempt, last_pool = await _try_backend(
                    state, method, target, headers, body, last_pool
                )
                if attempt.response is not None and attempt.conn is not None:
                    status = attempt.response.status_code
                    if not final and status in codes and _may_retry(state):
                        asyncio.get_running_loop().create_task(_discard(attempt.conn))
                        await _backoff(retry.backoff if retry else None, n)
                        continue
                    await _relay(
                        client, attempt.conn, attempt.response, filter_sets, cors_out, upgrade
                    )
                    return
        except TimeoutError:
            # timeouts.backendRequest expired on this attempt; "the Gateway should wait for
            # at least the specified backoff duration before attempting to retry".
            if final or retry is None or not _may_retry(state) or client.response_started:
                if client.response_started:
                    client.abort()
                else:
                    await client.simple(504)
                return
            await _backoff(retry.backoff, n)
            continue
        # No response: connection refused, reset, bad TLS, no endpoint.
        if final or retry is None or attempt.status == 503 or not _may_retry(state):
            await client.simple(attempt.status)
            return
        await _backoff(retry.backoff, n)


def _may_retry(state: BackendState) -> bool:
    return state.budget is None or state.budget.allow_retry()


async def _backoff(base: float | None, n: int) -> None:
    """ "unsuccessful backend requests are not retried before the configured minimum duration";
    exponential with jitter, capped at MAX_BACKOFF_FACTOR times the minimum."""
    if not base:
        return
    factor = min(2**n, MAX_BACKOFF_FACTOR)
    await asyncio.sleep(base * factor * (1 + random.random() * 0.25))


async def _relay(
    client: ClientConnection,
    conn: UpstreamConnection,
    response: h11.Response,
    filter_sets: Sequence[Filters],
    cors_out: list[tuple[bytes, bytes]],
    upgrade: bool,
) -> None:
    if response.status_code == 101:
        if not upgrade:
            conn.close()
            await client.simple(502)
            return
        headers = [(n, v) for n, v in response.headers]
        await client.switch_protocols(conn, headers)
        return
    headers = _response_headers(response, filter_sets, cors_out)
    client.start_response(response.status_code, headers, response.reason)
    try:
        while True:
            if not conn.events:
                client.flush()  # all that is here is sent before waiting for more
            if client.write_paused:
                await client.drain()  # back-pressure: the backend socket pauses meanwhile
            event = await conn.next_event()
            if isinstance(event, h11.Data):
                client.send_data(event.data)
            elif isinstance(event, h11.EndOfMessage):
                client.end_response()
                conn.finish()
                return
    except (OSError, UpstreamError):
        # The backend broke off mid-body: the client cannot be told with a status any more.
        conn.close()
        client.abort()
    except BaseException:
        if conn.state is not ConnState.CLOSED:
            conn.close()
        raise
