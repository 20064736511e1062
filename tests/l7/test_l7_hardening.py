"""Smuggling shapes, limits and slow clients: each refused (and the connection closed)
while a well-behaved keep-alive client on the same port keeps being served."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from tests.l7.backends import EchoBackend
from tests.l7.client import connect, exchange, raw
from tests.l7.support import TEST_LIMITS, Engine, backend, free_port, match, rule, simple_port

ADDR = "127.0.0.5"
Echo = Callable[..., EchoBackend]

GET = b"GET / HTTP/1.1\r\nHost: a\r\n"
SHAPES = [
    (
        "content-length and transfer-encoding",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "transfer-encoding and content-length",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "duplicate differing content-length",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    ),
    (
        "content-length list",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!",
        400,
    ),
    (
        "signed content-length",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
        400,
    ),
    (
        "non-hex chunk size",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "negative chunk size",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "0x chunk size",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk size overflowing 64 bits",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1"
        + b"0" * 20
        + b"\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    ("obs-fold", GET + b"X-Folded: a\r\n b\r\n\r\n", 400),
    ("obs-fold with tab", GET + b"X-Folded: a\r\n\tb\r\n\r\n", 400),
    ("bare CR in a header", GET + b"X-Bad: a\rb\r\n\r\n", 400),
    ("bare CR ending the request line", b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    ("space before the colon", GET + b"Transfer-Encoding : chunked\r\n\r\n", 400),
    ("no Host", b"GET / HTTP/1.1\r\n\r\n", 400),
    (
        "too many header fields",
        GET + b"".join(b"X-%d: v\r\n" % i for i in range(TEST_LIMITS.max_headers + 1)) + b"\r\n",
        431,
    ),
    (
        "header block too large",
        GET + b"X-Big: " + b"v" * (TEST_LIMITS.max_header_bytes + 1) + b"\r\n\r\n",
        431,
    ),
    (
        "declared body too large",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
        % (TEST_LIMITS.max_body_bytes + 1),
        413,
    ),
    (
        "chunked body too large",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"8000\r\n" + b"x" * 0x8000 + b"\r\n") * 3
        + b"0\r\n\r\n",
        413,
    ),
]


@pytest.fixture(scope="module")
def served(engine: Engine) -> tuple[int, EchoBackend]:
    a = EchoBackend(name="a-1").start()
    port = free_port(ADDR)
    engine.apply(simple_port(ADDR, port, (rule(backend(a)), [match("/")])))
    yield port, a  # type: ignore[misc]
    a.stop()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.mark.parametrize(("shape", "data", "status"), SHAPES, ids=[s[0] for s in SHAPES])
def test_refused_and_closed_while_others_served(
    served: tuple[int, EchoBackend], shape: str, data: bytes, status: int
) -> None:
    port, a = served
    before = len(a.log)
    with connect(ADDR, port) as good:
        assert exchange(good, "GET", "/before", "h").status == 200
        got = raw(ADDR, port, data)  # returns when the proxy closes the connection
        assert got.startswith(b"HTTP/1.1 "), got[:100]
        assert status_of(got) == status
        assert got.count(b"HTTP/1.1 ") == 1  # one answer, then the connection is closed
        assert b"connection: close" in got.lower()
        assert exchange(good, "GET", "/after", "h").status == 200
    # nothing of the refused request reached the backend
    assert [s.path for s in a.log[before:]] == ["/before", "/after"]


def test_pipelined_smuggling_attempt_forwards_nothing_behind_it(
    served: tuple[int, EchoBackend],
) -> None:
    port, a = served
    before = len(a.log)
    smuggled = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    got = raw(ADDR, port, smuggled)
    assert status_of(got) == 400 and got.count(b"HTTP/1.1 ") == 1
    assert not a.requests_to("/smuggled")
    assert len(a.log) == before


def test_slow_header_client_gets_408_and_is_closed(served: tuple[int, EchoBackend]) -> None:
    port, _ = served
    with socket.create_connection((ADDR, port), timeout=10) as slow, connect(ADDR, port) as good:
        # a slowloris: one byte at a time, never finishing the head
        for i, b in enumerate(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: "):
            try:
                slow.sendall(bytes([b]))
            except OSError:
                break  # already refused and closed
            time.sleep(0.1)
            if i % 5 == 0:
                assert exchange(good, "GET", "/meanwhile", "h").status == 200
        got = b""
        while chunk := slow.recv(65536):
            got += chunk
        assert status_of(got) == 408


def test_slow_body_client_gets_408(served: tuple[int, EchoBackend]) -> None:
    port, _ = served
    got = raw(
        ADDR, port, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", timeout=10
    )
    assert status_of(got) == 408


def test_idle_keepalive_connection_is_closed(served: tuple[int, EchoBackend]) -> None:
    port, _ = served
    with connect(ADDR, port, timeout=10) as idle:
        assert exchange(idle, "GET", "/", "h").status == 200
        assert idle.recv(1) == b""  # the proxy closed it after keepalive_timeout, silently


def test_hop_by_hop_headers_removed_both_ways(served: tuple[int, EchoBackend]) -> None:
    port, _ = served
    with connect(ADDR, port) as sock:
        r = exchange(
            sock,
            "GET",
            "/",
            "h",
            [
                ("Connection", "keep-alive, X-Private"),
                ("X-Private", "secret"),
                ("Keep-Alive", "timeout=5"),
                ("TE", "trailers"),
                ("Proxy-Connection", "x"),
                ("X-Echo-Set-Header", "Keep-Alive: timeout=99"),
            ],
        )
    seen = r.json()["headers"]
    for name in ("Connection", "X-Private", "Keep-Alive", "Te", "Proxy-Connection"):
        assert name not in seen
    assert "keep-alive" not in r.headers


def test_expect_100_continue(served: tuple[int, EchoBackend]) -> None:
    port, _ = served
    with socket.create_connection((ADDR, port), timeout=10) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert s.recv(65536).startswith(b"HTTP/1.1 100 ")
        s.sendall(b"hello")
        got = b""
        while b'"body": "hello"' not in got:
            chunk = s.recv(65536)
            assert chunk
            got += chunk
        assert got.startswith(b"HTTP/1.1 200 ")
