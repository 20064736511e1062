"""End to end over loopback: two worker processes, echo backends, a NodeConfig per test."""

from __future__ import annotations

import collections
import socket
import time
import uuid
from collections.abc import Callable

from agent.nodeconfig import (
    CORS,
    Filters,
    HeaderModifier,
    Mirror,
    PathModifier,
    Redirect,
    Retry,
    RetryBudget,
    URLRewrite,
)
from tests.l7.backends import EchoBackend
from tests.l7.client import connect, exchange, request
from tests.l7.support import Engine, backend, free_port, match, rule, simple_port

ADDR = "127.0.0.3"
Echo = Callable[..., EchoBackend]


def test_routes_by_path_method_header_and_query(engine: Engine, echo: Echo) -> None:
    a, b, c, d = echo("a-1"), echo("b-1"), echo("c-1"), echo("d-1")
    port = free_port(ADDR)
    engine.apply(
        simple_port(
            ADDR,
            port,
            (rule(backend(a, name="a")), [match("/exact", "Exact")]),
            (rule(backend(b, name="b")), [match("/", method="POST")]),
            (
                rule(backend(c, name="c")),
                [
                    match("/", headers=(("Exact", "version", "two"),)),
                    match("/", query_params=(("Exact", "v", "2"),)),
                ],
            ),
            (rule(backend(d, name="d")), [match("/")]),
        )
    )
    assert request(ADDR, port, "/exact").backend == "a-1"
    assert request(ADDR, port, "/exact/more").backend == "d-1"
    assert request(ADDR, port, "/x", method="POST", body=b"hello").backend == "b-1"
    assert request(ADDR, port, "/x", headers={"Version": "two"}).backend == "c-1"
    assert request(ADDR, port, "/x?v=2").backend == "c-1"
    r = request(ADDR, port, "/x?q=1", host="gw.example:81", headers={"X-Echo": "1"})
    seen = r.json()
    assert (seen["pod"], seen["path"], seen["host"], seen["method"]) == (
        "d-1",
        "/x?q=1",
        "gw.example:81",
        "GET",
    )
    assert seen["headers"]["X-Echo"] == ["1"]
    assert seen["headers"]["X-Forwarded-For"] == ["127.0.0.1"]
    assert seen["headers"]["X-Forwarded-Proto"] == ["http"]
    assert seen["headers"]["X-Forwarded-Host"] == ["gw.example:81"]
    assert request(ADDR, port, "/x", method="POST", body=b"payload").json()["body"] == "payload"


def test_no_route_404_invalid_500_no_endpoints_503(engine: Engine, echo: Echo) -> None:
    a = echo("a-1")
    port = free_port(ADDR)
    engine.apply(
        simple_port(
            ADDR,
            port,
            (rule(backend(a)), [match("/ok", "Exact")]),
            (rule(backend(name="gone", invalid="Service ns/gone not found")), [match("/invalid")]),
            (rule(), [match("/no-backends")]),
            (rule(backend(name="empty")), [match("/no-endpoints")]),
        )
    )
    assert request(ADDR, port, "/ok").status == 200
    assert request(ADDR, port, "/nothing").status == 404
    assert request(ADDR, port, "/invalid").status == 500
    assert request(ADDR, port, "/no-backends").status == 500
    assert request(ADDR, port, "/no-endpoints").status == 503


def test_invalid_backend_gets_its_weight_share_of_500s(engine: Engine, echo: Echo) -> None:
    a = echo("a-1")
    port = free_port(ADDR)
    engine.apply(
        simple_port(
            ADDR,
            port,
            (rule(backend(a, weight=1), backend(name="bad", weight=1, invalid="x")), [match("/")]),
        )
    )
    with connect(ADDR, port) as sock:
        codes = collections.Counter(exchange(sock, "GET", "/", "h").status for _ in range(400))
    assert set(codes) == {200, 500}
    assert 140 <= codes[500] <= 260  # 50% +- 6 standard deviations


def test_weighted_backends_and_endpoint_balancing(engine: Engine, echo: Echo) -> None:
    v1a, v1b, v2, v3 = echo("v1-a"), echo("v1-b"), echo("v2-a"), echo("v3-a")
    port = free_port(ADDR)
    engine.apply(
        simple_port(
            ADDR,
            port,
            (
                rule(
                    backend(v1a, v1b, name="v1", weight=70),
                    backend(v2, name="v2", weight=30),
                    backend(v3, name="v3", weight=0),
                ),
                [match("/")],
            ),
        )
    )
    with connect(ADDR, port) as sock:
        pods = collections.Counter(exchange(sock, "GET", "/", "h").backend for _ in range(1000))
    assert "v3-a" not in pods  # weight 0 receives nothing
    v1 = pods["v1-a"] + pods["v1-b"]
    assert 610 <= v1 <= 790  # 700 +- 6 standard deviations
    # round robin over a Service's endpoints: the two pods split v1's share nearly evenly
    assert abs(pods["v1-a"] - pods["v1-b"]) <= 0.1 * v1 + 4


def test_header_modifiers_rewrite_and_redirect(engine: Engine, echo: Echo) -> None:
    a = echo("a-1")
    port = free_port(ADDR)
    mods = Filters(
        request_headers=HeaderModifier(
            set=(("X-Header-Set", "set-overwrites-values"),),
            add=(("X-Header-Add", "add-appends-values"),),
            remove=("X-Header-Remove",),
        ),
        response_headers=HeaderModifier(
            set=(("X-Resp-Set", "s"),), add=(("X-Resp-Add", "a"),), remove=("X-Resp-Remove",)
        ),
    )
    backend_mod = Filters(
        request_headers=HeaderModifier(add=(("X-Backend", "b"),)),
        response_headers=HeaderModifier(set=(("X-From-Backend-Filter", "1"),)),
    )
    engine.apply(
        simple_port(
            ADDR,
            port,
            (rule(backend(a, filters=backend_mod), filters=mods), [match("/mod")]),
            (
                rule(
                    backend(a),
                    filters=Filters(
                        rewrite=URLRewrite(
                            hostname="rewritten.example",
                            path=PathModifier(type="ReplacePrefixMatch", value="/new"),
                        )
                    ),
                ),
                [match("/old")],
            ),
            (
                rule(
                    backend(a),
                    filters=Filters(
                        rewrite=URLRewrite(path=PathModifier(type="ReplaceFullPath", value="/full"))
                    ),
                ),
                [match("/full")],
            ),
            (
                rule(
                    filters=Filters(
                        redirect=Redirect(scheme="https", hostname="example.org", status_code=301)
                    )
                ),
                [match("/redirect")],
            ),
            (
                rule(
                    filters=Filters(
                        redirect=Redirect(
                            path=PathModifier(type="ReplacePrefixMatch", value="/replacement"),
                            port=8080,
                            status_code=308,
                        )
                    )
                ),
                [match("/prefix")],
            ),
        )
    )
    r = request(
        ADDR,
        port,
        "/mod",
        headers=[
            ("X-Header-Set", "old"),
            ("X-Header-Add", "first"),
            ("X-Header-Remove", "x"),
            ("X-Echo-Set-Header", "X-Resp-Remove: gone, X-Resp-Set: old"),
        ],
    )
    seen = r.json()["headers"]
    assert seen["X-Header-Set"] == ["set-overwrites-values"]
    assert seen["X-Header-Add"] == ["first", "add-appends-values"]
    assert "X-Header-Remove" not in seen
    assert seen["X-Backend"] == ["b"]
    assert r.headers["x-resp-set"] == "s" and r.headers["x-resp-add"] == "a"
    assert "x-resp-remove" not in r.headers
    assert r.headers["x-from-backend-filter"] == "1"
    seen = request(ADDR, port, "/old/path?x=1").json()
    assert (seen["host"], seen["path"]) == ("rewritten.example", "/new/path?x=1")
    assert request(ADDR, port, "/full/a/b").json()["path"] == "/full"
    r = request(ADDR, port, "/redirect/x?y=1", host="gw.example")
    assert (r.status, r.headers["location"]) == (301, "https://example.org/redirect/x?y=1")
    r = request(ADDR, port, "/prefix/lemon", host="gw.example")
    assert (r.status, r.headers["location"]) == (308, "http://gw.example:8080/replacement/lemon")


def test_request_and_backend_timeouts_answer_504(engine: Engine, echo: Echo) -> None:
    a = echo("a-1")
    port = free_port(ADDR)
    engine.apply(
        simple_port(
            ADDR,
            port,
            (rule(backend(a), request_timeout=0.3), [match("/request-timeout")]),
            (rule(backend(a), backend_timeout=0.3), [match("/backend-timeout")]),
            (rule(backend(a)), [match("/")]),
        )
    )
    assert request(ADDR, port, "/request-timeout").status == 200
    assert request(ADDR, port, "/request-timeout?delay=1").status == 504
    assert request(ADDR, port, "/backend-timeout?delay=1").status == 504
    assert request(ADDR, port, "/no-timeout?delay=0.6").status == 200


def test_retries_on_codes_and_resets(engine: Engine, echo: Echo) -> None:
    a = echo("retry-1")
    port = free_port(ADDR)
    engine.apply(
        simple_port(
            ADDR,
            port,
            (
                rule(backend(a), retry=Retry(attempts=3, codes=(500,), backoff=0.01)),
                [match("/retry/code-500-attempts-3")],
            ),
            (
                rule(backend(a), retry=Retry(attempts=2, codes=(500, 502, 503, 504))),
                [match("/retry/code-all-attempts-2")],
            ),
            (rule(backend(a)), [match("/")]),
        )
    )

    def go(path: str, code: int | None, succeed_after: int) -> int:
        q = f"succeedAfter={succeed_after}&uuid={uuid.uuid4()}" + (
            f"&responseCode={code}" if code else ""
        )
        return request(ADDR, port, f"{path}?{q}").status

    assert go("/retry/code-500-attempts-3", 500, 2) == 200
    assert go("/retry/code-500-attempts-3", 500, 4) == 500
    assert go("/retry/code-500-attempts-3", 503, 2) == 503  # 503 is not in this rule's codes
    assert go("/retry/code-all-attempts-2", 502, 1) == 200
    assert go("/retry/code-all-attempts-2", 504, 3) == 504
    assert go("/retry/code-all-attempts-2", None, 2) == 200  # connection resets are retried too
    assert go("/retry/no-retry", 500, 1) == 500
    # A reset without retries is a 502. (A GET reset on a pooled keep-alive connection before
    # any byte is sent once more on a fresh one, as a stale connection looks just like it.)
    assert go("/retry/no-retry", None, 2) == 502


def test_retry_budget_limits_retries(engine: Engine, echo: Echo) -> None:
    a = echo("budget-1")
    port = free_port(ADDR)
    budget = RetryBudget(percent=0, interval=60, min_retries=2, min_interval=60)
    engine.apply(
        simple_port(
            ADDR,
            port,
            (
                rule(backend(a, retry_budget=budget), retry=Retry(attempts=1, codes=(500,))),
                [match("/")],
            ),
        )
    )
    # One worker (one keep-alive connection) serves them all: its budget allows two retries per minute.
    with connect(ADDR, port) as sock:
        got = [
            exchange(
                sock, "GET", f"/retry?responseCode=500&succeedAfter=1&uuid={uuid.uuid4()}", "h"
            ).status
            for _ in range(4)
        ]
    assert got == [200, 200, 500, 500]


def test_refusing_endpoint_is_ejected(engine: Engine, echo: Echo) -> None:
    a = echo("alive-1")
    dead_port = free_port("127.0.0.1")  # nothing listens there: connections are refused
    dead = EchoBackend(name="dead", port=dead_port)
    port = free_port(ADDR)
    engine.apply(simple_port(ADDR, port, (rule(backend(a, dead)), [match("/")])))
    with connect(ADDR, port) as sock:
        codes = [exchange(sock, "GET", "/", "h").status for _ in range(20)]
    # Round robin reaches the dead endpoint once, then it sits out: every other answer is good.
    assert codes.count(502) == 1
    assert codes.count(200) == 19


def test_mirrors_copy_requests_and_never_slow_them(engine: Engine, echo: Echo) -> None:
    main, m1, m2, half = echo("main-1"), echo("mirror1-1"), echo("mirror2-1"), echo("half-1")
    dead = EchoBackend(name="dead", port=free_port("127.0.0.1"))
    port = free_port(ADDR)
    mirrors = (
        Mirror(backend=backend(m1, name="m1")),
        Mirror(backend=backend(m2, name="m2")),
        Mirror(backend=backend(dead, name="dead")),
    )
    engine.apply(
        simple_port(
            ADDR,
            port,
            (
                rule(
                    backend(main),
                    filters=Filters(
                        mirrors=mirrors, request_headers=HeaderModifier(set=(("X-Set", "1"),))
                    ),
                ),
                [match("/mirror")],
            ),
            (
                rule(
                    backend(main),
                    filters=Filters(
                        mirrors=(
                            Mirror(backend=backend(half, name="half"), numerator=1, denominator=2),
                        )
                    ),
                ),
                [match("/half")],
            ),
        )
    )
    r = request(ADDR, port, "/mirror?id=1")
    assert r.backend == "main-1"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (
        m1.requests_to("/mirror") and m2.requests_to("/mirror")
    ):
        time.sleep(0.05)
    for m in (m1, m2):
        seen = m.requests_to("/mirror")
        assert [s.path for s in seen] == ["/mirror?id=1"]
        assert seen[0].headers["X-Set"] == ["1"]
    with connect(ADDR, port) as sock:
        for i in range(400):
            assert exchange(sock, "GET", f"/half?i={i}", "h").backend == "main-1"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len({s.path for s in half.requests_to("/half")}) < 140:
        time.sleep(0.05)
    time.sleep(0.3)
    assert 140 <= len(half.requests_to("/half")) <= 260  # 200 +- 6 standard deviations


def test_cors_preflight_answered_by_gateway(engine: Engine, echo: Echo) -> None:
    a = echo("a-1")
    port = free_port(ADDR)
    cors = CORS(
        allow_origins=("https://www.foo.com", "https://*.bar.com"),
        allow_credentials=True,
        allow_methods=("GET", "OPTIONS"),
        allow_headers=("x-header-1", "x-header-2"),
        expose_headers=("x-header-3",),
        max_age=3600,
    )
    engine.apply(
        simple_port(ADDR, port, (rule(backend(a), filters=Filters(cors=cors)), [match("/cors")]))
    )
    pre = {
        "Origin": "https://xpto.www.bar.com",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-header-1",
    }
    r = request(ADDR, port, "/cors", method="OPTIONS", headers=pre)
    assert r.status == 204 and r.backend is None
    assert r.headers["access-control-allow-origin"] == "https://xpto.www.bar.com"
    assert r.headers["access-control-allow-methods"] == "GET, OPTIONS"
    assert r.headers["access-control-allow-headers"] == "x-header-1, x-header-2"
    assert r.headers["access-control-expose-headers"] == "x-header-3"
    assert r.headers["access-control-max-age"] == "3600"
    assert r.headers["access-control-allow-credentials"] == "true"
    r = request(
        ADDR,
        port,
        "/cors",
        method="OPTIONS",
        headers={"Origin": "https://foobar.com", "Access-Control-Request-Method": "GET"},
    )
    assert r.status == 204 and r.backend is None and "access-control-allow-origin" not in r.headers
    r = request(ADDR, port, "/cors", headers={"Origin": "https://www.foo.com"})
    assert r.backend == "a-1" and r.headers["access-control-allow-origin"] == "https://www.foo.com"
    assert r.headers["access-control-expose-headers"] == "x-header-3"
    r = request(ADDR, port, "/cors", headers={"Origin": "https://foobar.com"})
    assert r.backend == "a-1" and "access-control-allow-origin" not in r.headers
    assert not [s for s in a.log if s.method == "OPTIONS"]


def test_timed_out_attempts_close_their_backend_connections(engine: Engine, echo: Echo) -> None:
    """A request cut short by a timeout leaves nothing behind: its backend connection, in an
    unknown state, is closed rather than kept busy or pooled."""
    a = echo("a-1")
    port = free_port(ADDR)
    engine.apply(simple_port(ADDR, port, (rule(backend(a), request_timeout=0.2), [match("/")])))
    for _ in range(10):
        assert request(ADDR, port, "/warm").status == 200
    pooled = a.open_connections  # idle keep-alive connections, one or two per worker
    for i in range(5):
        assert request(ADDR, port, f"/slow{i}?delay=1").status == 504
    deadline = time.monotonic() + 10
    while a.open_connections > pooled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert a.open_connections <= pooled
    assert request(ADDR, port, "/after").status == 200


def test_a_pooled_connection_reset_before_any_byte_is_retried_fresh(
    engine: Engine, echo: Echo
) -> None:
    """The backend closing a pooled keep-alive connection as a request goes out looks like
    a reset before any byte: without a retry policy, it is sent once more on a new one."""
    a = echo("a-1")
    port = free_port(ADDR)
    engine.apply(simple_port(ADDR, port, (rule(backend(a)), [match("/")])))
    with connect(ADDR, port) as sock:
        # One client connection is one worker: the second request finds the first's pooled.
        assert exchange(sock, "GET", "/warm", "h").status == 200
        before = a.connections
        r = exchange(sock, "GET", f"/retry?succeedAfter=1&uuid={uuid.uuid4()}", "h")
        assert r.status == 200
        assert a.connections == before + 1  # the second try went on a fresh connection


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response's head and its body, de-chunked (the client side's framing)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    fields = dict(line.split(b": ", 1) for line in head.lower().split(b"\r\n")[1:] if b": " in line)
    if b"content-length" in fields:
        length = int(fields[b"content-length"])
        while len(rest) < length:
            chunk = sock.recv(1 << 20)
            assert chunk
            rest += chunk
        return head, rest[:length]
    assert fields.get(b"transfer-encoding") == b"chunked"
    body = b""
    while True:
        while b"\r\n" not in rest:
            rest += sock.recv(1 << 20)
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        while len(rest) < size + 2:
            chunk = sock.recv(1 << 20)
            assert chunk
            rest += chunk
        if size == 0:
            return head, body
        body += rest[:size]
        rest = rest[size + 2 :]


def test_large_responses_to_a_client_that_reads_late(engine: Engine, echo: Echo) -> None:
    """Back-pressure: a client that does not read fills the proxy's buffer, the relay stops
    reading the backend, and every byte arrives once it reads; with Content-Length and
    chunked, then the connection serves the next request."""
    a = echo("a-1")
    port = free_port(ADDR)
    engine.apply(simple_port(ADDR, port, (rule(backend(a)), [match("/")])))
    size = 8 * 1024 * 1024
    expected = bytes(i % 251 for i in range(size))
    with connect(ADDR, port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        for query in ("", "&chunked=1", "", "&chunked=1"):  # fresh, then pooled connections
            sock.sendall(
                b"GET /bytes?size=%d%s HTTP/1.1\r\nHost: h\r\n\r\n" % (size, query.encode())
            )
            time.sleep(0.3)  # not reading: the proxy's transport buffer fills and pauses
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert body == expected
        assert exchange(sock, "GET", "/after", "h").status == 200


def test_a_client_gone_mid_response_leaves_the_proxy_serving(engine: Engine, echo: Echo) -> None:
    a = echo("a-1")
    port = free_port(ADDR)
    engine.apply(simple_port(ADDR, port, (rule(backend(a)), [match("/")])))
    for _ in range(3):
        with connect(ADDR, port) as sock:
            assert exchange(sock, "GET", "/warm", "h").status == 200  # a pooled connection
            sock.sendall(b"GET /bytes?size=%d HTTP/1.1\r\nHost: h\r\n\r\n" % (32 << 20))
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        # closed mid-body: the backend connection, mid-response, must not be pooled
    for _ in range(5):
        assert request(ADDR, port, "/after").status == 200
