"""One request through the gateway: route, filters, backend choice, retries, timeouts.

The client side (server.py) hands over a complete request head and body together
with the `PortState` that was current when the request arrived; the request runs
on that state to the end, whatever NodeConfig arrives meanwhile.

`serve` runs without awaiting: routing, filters and answers of the gateway's own
are immediate, and the common forwarded request (no timeout, retry or upgrade,
a pooled connection at hand) is sent at once and its response relayed by the
connections' callbacks (exchange.Exchange). Everything else (a new connection,
timeouts, retries, WebSocket) runs as a task: `serve` returns its coroutine.

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
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import h11

from agent.nodeconfig import Certificate, HTTPRule, Mirror
from l7.exchange import Exchange
from l7.filters import (
    CompiledModifier,
    CORSPolicy,
    Headers,
    header_value,
    is_preflight,
    outgoing_request_headers,
    redirect_location,
    replace_path,
)
from l7.h1client import request_wire
from l7.h1head import Fields
from l7.router import PortTable, Refused, RequestHead, Routed, Rule, host_of, split_target
from l7.stats import WorkerStats
from l7.upstream import (
    BACKEND_ERRORS,
    BackendState,
    Pool,
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
    ) -> bool:
        """Start a copy; False when too many are in flight already."""
        if len(self.in_flight) >= MAX_MIRRORS_IN_FLIGHT:
            return False  # a slow mirror must never cost the real traffic memory or time
        task = asyncio.get_running_loop().create_task(
            self._one(state, method, target, headers, body)
        )
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)
        return True

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
                    if type(event) is h11.EndOfMessage:
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

    __slots__ = ("conn", "response", "started", "status")

    def __init__(
        self,
        conn: UpstreamConnection | None,
        response: h11.Response | h11.InformationalResponse | None,
        status: int = 0,
        started: float = 0.0,
    ) -> None:
        self.conn = conn
        self.response = response
        self.status = status
        self.started = started  # perf_counter when the request went to the backend


async def _try_backend(
    state: BackendState,
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    upgrade: bool,
    avoid: Any,
    stats: WorkerStats,
    route: str,
    pool: Pool | None = None,
    fresh_only: bool = False,
) -> tuple[Attempt, Any]:
    """One attempt on one endpoint (`pool` if already picked); a stale pooled connection
    is retried once, fresh."""
    if pool is None:
        pool = state.pick(avoid)
    if pool is None:
        return Attempt(None, None, 503), None
    for _ in range(2):
        try:
            if fresh_only:
                conn, reused = await pool.connect(), False
            else:
                conn, reused = await pool.acquire()
        except UpstreamError as exc:
            if exc.eject:
                pool.eject()
            # Refused, timed out, or TLS to the backend failed: no connection.
            stats.count("upstream_connect_errors", route, state.label)
            return Attempt(None, None, exc.status), pool
        try:
            started = time.perf_counter()
            conn.send(method, target, headers, body, upgrade)
            while True:
                event = await conn.next_event()
                t = type(event)
                if t is h11.Response or (
                    t is h11.InformationalResponse and event.status_code == 101
                ):
                    return Attempt(conn, event, 0, started), pool
                # 1xx other than a protocol switch: wait for the real answer
        except BACKEND_ERRORS as failure:
            # (Not named `exc`: mypyc gives a name one type per function, and the `exc`
            # above is an UpstreamError.)
            conn.close()
            if reused and not conn.got_bytes:
                fresh_only = True
                continue  # the backend closed an idle keep-alive connection: not its fault
            if isinstance(failure, OSError) or getattr(failure, "eject", False):
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
            if type(event) is h11.EndOfMessage:
                conn.finish()
                return
    except BACKEND_ERRORS:
        conn.close()


def _target_parts(request: h11.Request, fields: Fields) -> tuple[str, bytes, bool]:
    """(origin-form target, host bytes, whether the target was absolute-form); `fields`:
    the facts of the request's fields (their Host value)."""
    target = request.target.decode("latin-1")
    if target[:1] != "/" and target.startswith(("http://", "https://")):
        # absolute-form (RFC 9112, 3.2.2): the authority in the target wins over Host.
        rest = target.split("://", 1)[1]
        authority, slash, tail = rest.partition("/")
        return slash + tail or "/", authority.encode("latin-1"), True
    return target, fields.host, False


Pending = Coroutine[Any, Any, None] | None

# Host values seen before, with the host routing compares (router.host_of of them): a
# client names the same host request after request. At most _HOSTS_MAX values of up to
# _HOST_LONGEST bytes (a DNS name and a port), emptied when full.
_HOSTS: dict[bytes, str] = {}
_HOSTS_MAX = 1024
_HOST_LONGEST = 262


def serve(
    client: ClientConnection,
    port: PortState,
    request: h11.Request,
    body: bytes,
) -> Pending:
    """Answer one request on `client`: None when it is answered or its exchange is under
    way (the client is told when it ends), else the coroutine to run as its task. Never
    raises for anything a backend does."""
    fields = client.parser.fields
    assert fields is not None  # the parser notes them with every request head
    target, host_raw, absolute = _target_parts(request, fields)
    host = _HOSTS.get(host_raw)
    if host is None:
        host = host_of(host_raw.decode("latin-1"))
        if len(host_raw) <= _HOST_LONGEST:
            if len(_HOSTS) >= _HOSTS_MAX:
                _HOSTS.clear()
            _HOSTS[host_raw] = host
    path, query = split_target(target)
    method = request.method.decode("ascii")
    head = RequestHead(method, path, query, host, request.headers)
    routed = port.table.route(head, client.sni)
    if isinstance(routed, Refused):
        client.note_route(routed.listener, "")
        client.simple(routed.status)
        return None
    client.note_route(routed.listener, routed.rule.label)
    return _serve_routed(
        client, port, routed, request, fields, method, path, query, host, host_raw, absolute,
        body,
    )  # fmt: skip


def _serve_routed(
    client: ClientConnection,
    port: PortState,
    routed: Routed,
    request: h11.Request,
    fields: Fields,
    method: str,
    path: str,
    query: str,
    host: str,
    host_raw: bytes,
    absolute: bool,
    body: bytes,
) -> Pending:
    rule_t: Rule = routed.rule
    rule: HTTPRule = rule_t.rule
    filters = rule.filters
    method_b = request.method
    # CORS, "preflights answered by the gateway".
    cors_out: list[tuple[bytes, bytes]] = []
    if filters.cors is not None:
        headers = request.headers
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
                client.simple(204, extra)
                return None
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
        client.simple(filters.redirect.status_code, [(b"location", location.encode("latin-1"))])
        return None
    target_b = request.target
    if filters.rewrite is not None:
        if filters.rewrite.hostname:
            host_raw = filters.rewrite.hostname.encode("latin-1")
        if filters.rewrite.path is not None:
            path = replace_path(filters.rewrite.path, path, routed.match)
            absolute = True  # the target is rebuilt below
    if absolute:
        target_b = (path + ("?" + query if query else "")).encode("latin-1")
    stats = client.stats
    out_headers: Headers | None = None
    upgrade = False
    if (
        fields.special
        or body
        or rule_t.request_mod is not None
        or client.client_headers
        or filters.mirrors
    ):
        out_headers, upgrade = _outgoing(client, request, rule_t.request_mod, host_raw, body)
        for m in filters.mirrors:
            if _mirrored(m):
                ms = port.states[id(m.backend)]
                if MIRRORS.send(ms, method_b, target_b, out_headers, body):
                    stats.count("mirror_sends", rule_t.label, ms.label)
    # Else the usual request: its fields go as they came (h1client.request_wire), and
    # the list of them is built only if something below needs it.
    backend = rule_t.pick(random.random())
    if backend is None or backend.invalid:
        client.simple(500)
        return None
    state = port.states[id(backend)]
    client.backend_label = state.label
    if not backend.endpoints:
        client.simple(503)
        return None
    response_mods = rule_t.response_mods
    if backend.filters is not None:
        bf = backend.filters
        request_mod, response_mods = rule_t.backend_mods[id(backend)]
        if out_headers is None:
            out_headers, upgrade = _outgoing(client, request, rule_t.request_mod, host_raw, body)
        if request_mod is not None:
            out_headers = request_mod.apply(out_headers)
        for m in bf.mirrors:
            if _mirrored(m):
                ms = port.states[id(m.backend)]
                if MIRRORS.send(ms, method_b, target_b, out_headers, body):
                    stats.count("mirror_sends", rule_t.label, ms.label)
    if state.budget is not None:
        state.budget.note_request()
    pool = None
    if (
        rule.request_timeout is None
        and rule.retry is None
        and rule.backend_timeout is None
        and not upgrade
    ):
        pool = state.pick()
        conn = pool.take_idle() if pool is not None else None
        if conn is not None:
            # The common case: one attempt on a pooled connection, relayed by callbacks.
            route = rule_t.label
            label = state.label
            if out_headers is None:
                fresh = partial(
                    _forward_fresh, client, rule_t, state, request, host_raw, method_b,
                    target_b, response_mods, cors_out, pool,
                )  # fmt: skip
                wire = request_wire(
                    method_b, target_b, host_raw, fields.wires, client.ip_b, client.scheme_b
                )
                started = time.perf_counter()
                Exchange(client, conn, route, label, response_mods, cors_out, started, None, fresh)
                conn.send_wire(method_b, wire)
                return None

            # The task that retries on a fresh connection (a partial, not a closure: a
            # closure would make every variable it names a cell on every call).
            fresh = partial(
                _forward, client, rule_t, state, method_b, target_b, out_headers, body,
                response_mods, cors_out, upgrade, pool, True,
            )  # fmt: skip
            started = time.perf_counter()
            Exchange(client, conn, route, label, response_mods, cors_out, started, None, fresh)
            conn.send(method_b, target_b, out_headers, body, upgrade)
            return None
    if out_headers is None:
        out_headers, upgrade = _outgoing(client, request, rule_t.request_mod, host_raw, body)
    return _forward(
        client, rule_t, state, method_b, target_b, out_headers, body,
        response_mods, cors_out, upgrade, pool,
    )  # fmt: skip


def _outgoing(
    client: ClientConnection,
    request: h11.Request,
    mod: CompiledModifier | None,
    host_raw: bytes,
    body: bytes,
) -> tuple[Headers, bool]:
    """The fields the request is forwarded with (filters.outgoing_request_headers, and the
    body's Content-Length), and whether it is a WebSocket handshake."""
    out, upgrade = outgoing_request_headers(
        request.headers._full_items,
        mod,
        client.ip_b,
        client.scheme_b,
        host_raw,
        client.client_headers,
    )
    if body:
        out.append((b"content-length", str(len(body)).encode()))
    return out, upgrade


def _forward_fresh(
    client: ClientConnection,
    rule_t: Rule,
    state: BackendState,
    request: h11.Request,
    host_raw: bytes,
    method: bytes,
    target: bytes,
    response_mods: tuple[CompiledModifier, ...],
    cors_out: list[tuple[bytes, bytes]],
    pool: Pool | None,
) -> Coroutine[Any, Any, None]:
    """The fresh-connection retry of a request sent as its wire form: its fields built now."""
    headers, upgrade = _outgoing(client, request, rule_t.request_mod, host_raw, b"")
    return _forward(
        client, rule_t, state, method, target, headers, b"", response_mods, cors_out,
        upgrade, pool, True,
    )  # fmt: skip


async def _forward(
    client: ClientConnection,
    rule_t: Rule,
    state: BackendState,
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    response_mods: tuple[CompiledModifier, ...],
    cors_out: list[tuple[bytes, bytes]],
    upgrade: bool,
    pool: Pool | None = None,
    fresh_only: bool = False,
) -> None:
    """The request's attempts (on `pool` first, if already picked; `fresh_only`: on a new
    connection, a pooled one having been closed by the backend)."""
    rule = rule_t.rule
    retry = rule.retry
    stats = client.stats
    route = rule_t.label
    # timeouts.request: "Request specifies the maximum duration for a gateway to respond to
    # an HTTP request. If the gateway has not been able to respond before this deadline is
    # met, the gateway MUST return a timeout error." Counted from the complete head.
    timeout = rule.request_timeout
    deadline = None if timeout is None else client.received_at + timeout
    try:
        async with asyncio.timeout_at(deadline):
            if retry is None and rule.backend_timeout is None:
                # One attempt, no timer of its own.
                attempt, _ = await _try_backend(
                    state,
                    method,
                    target,
                    headers,
                    body,
                    upgrade,
                    None,
                    stats,
                    route,
                    pool,
                    fresh_only,
                )
                if attempt.response is not None and attempt.conn is not None:
                    await _relay(
                        client, attempt, response_mods, cors_out, upgrade, route, state.label
                    )
                else:
                    client.simple(attempt.status)
                return
            tries = 1 + (retry.attempts if retry is not None else 0)
            codes = frozenset(retry.codes) if retry is not None else frozenset()
            last_pool: Any = None
            for n in range(tries):
                final = n == tries - 1
                retried_status = False  # a response whose status is retried
                if n:
                    stats.count("retries", route, state.label)
                try:
                    async with asyncio.timeout(rule.backend_timeout):
                        attempt, last_pool = await _try_backend(
                            state, method, target, headers, body, upgrade, last_pool, stats, route,
                            pool if n == 0 else None,
                        )  # fmt: skip
                        if attempt.response is not None and attempt.conn is not None:
                            status = attempt.response.status_code
                            if not final and status in codes and _may_retry(state, stats, route):
                                asyncio.get_running_loop().create_task(_discard(attempt.conn))
                                retried_status = True
                            else:
                                await _relay(
                                    client,
                                    attempt,
                                    response_mods,
                                    cors_out,
                                    upgrade,
                                    route,
                                    state.label,
                                )
                                return
                except TimeoutError:
                    # timeouts.backendRequest expired on this attempt; "the Gateway should wait for
                    # at least the specified backoff duration before attempting to retry".
                    stats.count("upstream_timeouts", route, state.label)
                    if (
                        final
                        or retry is None
                        or client.response_started
                        or not _may_retry(state, stats, route)
                    ):
                        if client.response_started:
                            client.abort()
                        else:
                            client.simple(504)
                        return
                    await _backoff(retry.backoff, n)
                    continue
                if retried_status:
                    # The backoff between attempts, outside the attempt's backendRequest
                    # timeout (and out of the `async with`: mypyc compiles no `continue`
                    # inside a try/finally).
                    await _backoff(retry.backoff if retry else None, n)
                    continue
                # No response: connection refused, reset, bad TLS, no endpoint.
                if (
                    final
                    or retry is None
                    or attempt.status == 503
                    or not _may_retry(state, stats, route)
                ):
                    client.simple(attempt.status)
                    return
                await _backoff(retry.backoff, n)
    except TimeoutError:
        # timeouts.request: "the gateway MUST immediately return a timeout error" (504).
        stats.count("upstream_timeouts", route, state.label)
        if client.response_started:
            client.abort()
        else:
            client.simple(504)


def _may_retry(state: BackendState, stats: WorkerStats, route: str) -> bool:
    if state.budget is None or state.budget.allow_retry():
        return True
    stats.count("retry_budget_refusals", route, state.label)
    return False


async def _backoff(base: float | None, n: int) -> None:
    """ "unsuccessful backend requests are not retried before the configured minimum duration";
    exponential with jitter, capped at MAX_BACKOFF_FACTOR times the minimum."""
    if not base:
        return
    factor = min(2**n, MAX_BACKOFF_FACTOR)
    await asyncio.sleep(base * factor * (1 + random.random() * 0.25))


async def _relay(
    client: ClientConnection,
    attempt: Attempt,
    response_mods: tuple[CompiledModifier, ...],
    cors_out: list[tuple[bytes, bytes]],
    upgrade: bool,
    route: str,
    backend: str,
) -> None:
    conn = attempt.conn
    response = attempt.response
    assert conn is not None and response is not None
    if response.status_code == 101:
        if not upgrade:
            conn.close()
            client.simple(502)
            return
        headers = [(n, v) for _, n, v in response.headers._full_items]
        await client.switch_protocols(conn, headers)
        return
    assert type(response) is h11.Response  # a 1xx other than 101 is never an Attempt's
    done = asyncio.get_running_loop().create_future()
    exchange = Exchange(
        client, conn, route, backend, response_mods, cors_out, attempt.started, done
    )
    exchange.relay(response)
    try:
        await done
    except BaseException:
        exchange.cancel()  # cancelled (client gone, timeout) mid-body
        raise
