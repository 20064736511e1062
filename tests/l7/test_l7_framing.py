"""The client side's framing and keep-alive over real sockets: what h11's state machine
decided before, now decided by h1server, seen from a client (HTTP/1.0, Connection: close,
HEAD, 204, chunked and unframed bodies, a pipelined run of them)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from agent.nodeconfig import Filters, HeaderModifier, Redirect
from tests.l7.backends import EchoBackend
from tests.l7.support import Engine, backend, free_port, match, rule, simple_port

ADDR = "127.0.0.6"
Echo = Callable[..., EchoBackend]
BODY = bytes(i % 251 for i in range(1000))


@pytest.fixture(scope="module")
def port(engine: Engine) -> Iterator[int]:
    a = EchoBackend(name="a-1").start()
    p = free_port(ADDR)
    redirect = Filters(redirect=Redirect(hostname="example.org", status_code=302))
    closing = Filters(response_headers=HeaderModifier(set=(("Connection", "close"),)))
    engine.apply(
        simple_port(
            ADDR,
            p,
            (rule(filters=redirect), [match("/moved")]),
            (rule(backend(a), filters=closing), [match("/closing")]),
            (rule(backend(a)), [match("/")]),
        )
    )
    yield p
    a.stop()


def read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def head_of(data: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = dict(line.lower().split(b": ", 1) for line in lines[1:])
    return int(lines[0].split(b" ")[1]), fields, rest


def dechunk(data: bytes) -> tuple[bytes, bytes]:
    body = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert data.startswith(b"\r\n")
            return body, data[2:]
        body += data[:size]
        assert data[size : size + 2] == b"\r\n"
        data = data[size + 2 :]


# description, request, expected status, framing of the answer, whether the proxy closes
CASES = [
    ("HTTP/1.0", b"GET /bytes?size=1000 HTTP/1.0\r\n\r\n", 200, "length", True),
    ("Connection: close", b"GET /bytes?size=1000 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
     200, "length", True),
    ("chunked from the backend", b"GET /bytes?size=1000&chunked=1 HTTP/1.1\r\nHost: h\r\n\r\n",
     200, "chunked", False),
    # RFC 9112, 6.3: without chunked, an HTTP/1.0 client's body ends with the connection.
    ("chunked to HTTP/1.0", b"GET /bytes?size=1000&chunked=1 HTTP/1.0\r\n\r\n", 200,
     "close", True),
    ("HEAD", b"HEAD /bytes?size=1000 HTTP/1.1\r\nHost: h\r\n\r\n", 200, "none", False),
    ("204", b"GET /status/204 HTTP/1.1\r\nHost: h\r\n\r\n", 204, "none", False),
    # A ResponseHeaderModifier that sets Connection: close ends the connection, as h11 did.
    ("Connection: close set by a filter", b"GET /closing HTTP/1.1\r\nHost: h\r\n\r\n", 200,
     "length", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_bytes", "status", "framing", "closes"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_framing_and_keep_alive(
    port: int, request_bytes: bytes, status: int, framing: str, closes: bool
) -> None:
    with socket.create_connection((ADDR, port), timeout=10) as s:
        follow = b"GET /bytes?size=10 HTTP/1.1\r\nHost: h\r\n\r\n"
        # A request behind it: answered on the same connection unless this one closes it.
        s.sendall(request_bytes + follow)
        got = read_all(s) if closes else b""
        if not closes:
            s.shutdown(socket.SHUT_WR)
            got = read_all(s)
    code, fields, rest = head_of(got)
    assert code == status
    assert (fields.get(b"connection") == b"close") is closes
    if framing == "length":
        n = int(fields[b"content-length"])
        body, rest = rest[:n], rest[n:]
        if code == 200 and b"size=1000" in request_bytes:
            assert body == BODY
    elif framing == "chunked":
        assert fields[b"transfer-encoding"] == b"chunked"
        assert b"content-length" not in fields
        body, rest = dechunk(rest)
        assert body == BODY
    elif framing == "close":
        assert b"transfer-encoding" not in fields and b"content-length" not in fields
        assert rest == BODY
        rest = b""
    else:  # no body, whatever the fields say
        if b"size=1000" in request_bytes:
            assert fields[b"content-length"] == b"1000"  # HEAD: the GET's fields
    if closes:
        assert rest == b""  # the request behind it was never answered
    else:
        follow_code, _, follow_body = head_of(rest)
        assert follow_code == 200 and follow_body == BODY[:10]


def test_a_long_pipelined_run_answered_by_the_gateway(port: int) -> None:
    """Thousands of pipelined requests the gateway answers itself (no backend, no waiting)
    are read one after the other, then a forwarded one, all in order."""
    n = 3000
    with socket.create_connection((ADDR, port), timeout=30) as s:
        s.sendall(
            b"GET /moved HTTP/1.1\r\nHost: h\r\n\r\n" * n
            + b"GET /bytes?size=10 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        got = read_all(s)
    assert got.count(b"HTTP/1.1 302 ") == n
    assert got.count(b"location: http://example.org:%d/moved" % port) == n
    last = got.rsplit(b"HTTP/1.1 ", 1)[1]
    assert last.startswith(b"200 ") and last.endswith(b"\r\n\r\n" + BODY[:10])


def test_informational_answers_before_the_response_are_skipped(port: int) -> None:
    """A backend's 103 is not the answer: the proxy waits for the final response (on a new
    connection, then on the pooled one: the task path, then the callback path)."""
    with socket.create_connection((ADDR, port), timeout=10) as s:
        for _ in range(3):
            s.sendall(b"GET /bytes?size=10&early=1 HTTP/1.1\r\nHost: h\r\n\r\n")
            got = b""
            while not got.endswith(BODY[:10]):
                chunk = s.recv(65536)
                assert chunk
                got += chunk
            assert got.startswith(b"HTTP/1.1 200 ")
