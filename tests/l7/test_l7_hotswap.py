"""Configuration changes under load, listener drain, bind failures, WebSocket, multi-process."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from agent.nodeconfig import HTTPPort, NodeConfig
from l7.engine import L7ConfigRejected
from tests.l7.backends import EchoBackend
from tests.l7.client import connect, exchange, request
from tests.l7.support import Engine, backend, free_port, match, rule, simple_port

ADDR = "127.0.0.6"
Echo = Callable[..., EchoBackend]


@dataclass
class Sample:
    start: float
    end: float
    status: int
    backend: str | None


def test_hot_swap_under_load_never_fails_nor_strays(engine: Engine, echo: Echo) -> None:
    """Clients send continuously while routes are added, changed and removed: every request
    succeeds, and each reaches a backend some configuration in force during it allowed."""
    a, b, c = echo("a-1"), echo("b-1"), echo("c-1")
    port, extra = free_port(ADDR), free_port(ADDR)
    by_name = {"a": a, "b": b, "c": c}

    def config(step: int) -> tuple[set[str], list[HTTPPort]]:
        """/x always has a route; its backends, the other routes and a second port change."""
        plans = [["a"], ["a", "b"], ["b"], ["b", "c"], ["c"], ["a", "c"]]
        names = plans[step % len(plans)]
        routes = [
            (rule(*(backend(by_name[n], name=n) for n in names), name=f"x{step}"), [match("/x")])
        ]
        if step % 2:
            routes.insert(
                0,
                (
                    rule(backend(a, name="a"), name="exact"),
                    [match("/x/exact-only-sometimes", "Exact")],
                ),
            )
        ports = [simple_port(ADDR, port, *routes)]
        if step % 3 == 1:
            ports.append(simple_port(ADDR, extra, (rule(backend(c, name="c")), [match("/")])))
        return {f"{n}-1" for n in names}, ports

    allowed_by_gen: dict[int, set[str]] = {}
    windows: dict[int, list[float]] = {}  # generation -> [apply started, next apply returned]
    allowed, ports = config(0)
    t0 = time.monotonic()
    g = engine.apply(*ports)
    allowed_by_gen[g] = allowed
    windows[g] = [t0, float("inf")]

    samples: list[Sample] = []
    stop = threading.Event()

    def client(keepalive: bool) -> None:
        sock = connect(ADDR, port) if keepalive else None
        try:
            while not stop.is_set():
                start = time.monotonic()
                if sock is not None:
                    r = exchange(sock, "GET", "/x", "h")
                else:
                    r = request(ADDR, port, "/x")
                samples.append(Sample(start, time.monotonic(), r.status, r.backend))
        finally:
            if sock is not None:
                sock.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in (True, True, False)]
    for t in threads:
        t.start()
    try:
        for step in range(1, 25):
            time.sleep(0.05)
            allowed, ports = config(step)
            started = time.monotonic()
            g_new = engine.apply(*ports)
            done = time.monotonic()
            windows[g][1] = done  # the previous generation may serve until every worker swapped
            allowed_by_gen[g_new] = allowed
            windows[g_new] = [started, float("inf")]
            g = g_new
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert len(samples) > 100
    for s in samples:
        assert s.status == 200, s
        ok: set[str] = set()
        for gen, (begin, end) in windows.items():
            if begin <= s.end and s.start <= end:
                ok |= allowed_by_gen[gen]
        assert s.backend in ok, (s, ok)


def test_removed_listener_stops_accepting_and_drains(engine: Engine, echo: Echo) -> None:
    a = echo("a-1")
    keep, gone = free_port(ADDR), free_port(ADDR)
    engine.apply(
        simple_port(ADDR, keep, (rule(backend(a)), [match("/")])),
        simple_port(ADDR, gone, (rule(backend(a)), [match("/")])),
    )
    result: list[int] = []
    with connect(ADDR, gone) as slow:
        slow.sendall(b"GET /slow?delay=0.5 HTTP/1.1\r\nHost: h\r\n\r\n")
        time.sleep(0.1)  # the request is in flight
        engine.apply(simple_port(ADDR, keep, (rule(backend(a)), [match("/")])))
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((ADDR, gone), timeout=5).close()
        got = b""
        while chunk := slow.recv(65536):  # answered, then closed: the listener is gone
            got += chunk
        result.append(int(got.split(b" ", 2)[1]))
        assert b"connection: close" in got.lower()
    assert result == [200]
    assert request(ADDR, keep, "/").status == 200


def test_bind_failure_on_one_port_is_reported_and_others_served(engine: Engine, echo: Echo) -> None:
    a = echo("a-1")
    good = free_port(ADDR)
    with socket.socket() as squatter:  # no SO_REUSEPORT: the workers cannot share this one
        squatter.bind((ADDR, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        gen = 1000 + int(time.monotonic())
        engine.dp.apply(
            NodeConfig(
                http=(
                    simple_port(ADDR, taken, (rule(backend(a)), [match("/")])),
                    simple_port(ADDR, good, (rule(backend(a)), [match("/")])),
                )
            ),
            gen,
        )
        assert engine.dp.applied_generation() == gen
        assert set(engine.dp.port_errors()) == {f"{ADDR}:{taken}"}
        assert request(ADDR, good, "/").status == 200
    # the next configuration binds it once it is free
    engine.apply(simple_port(ADDR, taken, (rule(backend(a)), [match("/")])))
    assert request(ADDR, taken, "/").status == 200


def test_rejected_config_keeps_the_previous_one(engine: Engine, echo: Echo) -> None:
    a = echo("a-1")
    port = free_port(ADDR)
    g = engine.apply(simple_port(ADDR, port, (rule(backend(a)), [match("/")])))
    bad = simple_port(ADDR, port, (rule(backend(a)), [match("/(unclosed", "RegularExpression")]))
    with pytest.raises(L7ConfigRejected):
        engine.dp.apply(NodeConfig(http=(bad,)), g + 1)
    assert engine.dp.applied_generation() == g
    assert request(ADDR, port, "/").status == 200


def test_workers_share_the_port(engine: Engine, echo: Echo) -> None:
    """Two worker processes accept on one SO_REUSEPORT port: each answers some connections."""
    a = echo("a-1")
    port = free_port(ADDR)
    engine.apply(simple_port(ADDR, port, (rule(backend(a)), [match("/")])))
    before = a.connections
    for _ in range(40):
        assert request(ADDR, port, "/").status == 200
    # every worker keeps its own upstream pool: two workers -> two backend connections
    assert a.connections - before == 2
    assert len(engine.dp.pids()) == 2


def test_websocket_upgrade_relays_bytes_both_ways(engine: Engine, echo: Echo) -> None:
    a = echo("ws-1")
    port = free_port(ADDR)
    engine.apply(simple_port(ADDR, port, (rule(backend(a)), [match("/")])))
    with socket.create_connection((ADDR, port), timeout=10) as s:
        s.sendall(
            b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Origin: ws://gateway/test\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        for i in range(50):
            payload = b"frame-%d" % i * (1 + i * 100)
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                got += s.recv(65536)
            assert got == payload
    seen = a.requests_to("/ws")[0]
    assert seen.headers["Origin"] == ["ws://gateway/test"]
    assert seen.headers["Upgrade"] == ["websocket"]
    # the proxy keeps serving plain requests on the port
    assert request(ADDR, port, "/").status == 200


def test_pipelined_requests_answered_in_order(engine: Engine, echo: Echo) -> None:
    a = echo("a-1")
    port = free_port(ADDR)
    engine.apply(simple_port(ADDR, port, (rule(backend(a)), [match("/")])))
    with socket.create_connection((ADDR, port), timeout=10) as s:
        s.sendall(b"".join(b"GET /p%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(5)))
        got = b""
        while got.count(b'"body": ""\n}') < 5:  # five whole answers
            chunk = s.recv(65536)
            assert chunk
            got += chunk
    order = [int(x.split(b'"', 1)[0]) for x in got.split(b'"path": "/p')[1:]]
    assert order == list(range(5))
    assert list(itertools.islice((x.path for x in a.log), 5)) == [f"/p{i}" for i in range(5)]


def test_a_dead_worker_is_replaced_on_the_next_apply(engine: Engine, echo: Echo) -> None:
    a = echo("a-1")
    port = free_port(ADDR)
    engine.apply(simple_port(ADDR, port, (rule(backend(a)), [match("/")])))
    worker = engine.dp.workers[0].proc
    victim = worker.pid
    os.kill(victim, signal.SIGKILL)  # a worker this test session's engine started
    worker.wait(10)
    for _ in range(10):  # the other worker alone serves the port meanwhile
        assert request(ADDR, port, "/").status == 200
    engine.apply(simple_port(ADDR, port, (rule(backend(a)), [match("/")])))
    assert victim not in engine.dp.pids() and len(engine.dp.pids()) == 2
    for _ in range(20):
        assert request(ADDR, port, "/").status == 200
