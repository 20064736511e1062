"""L7Datapath.stats() and the access log, over real sockets: the counts are the requests sent."""

from __future__ import annotations

import json
import os
import socket
import ssl
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent.nodeconfig import Certificate, Filters, NodeConfig, Redirect
from l7.engine import L7Datapath
from l7.stats import BUCKETS
from tests.l7.backends import EchoBackend
from tests.l7.certs import CA
from tests.l7.client import connect, exchange, request
from tests.l7.support import (
    TEST_LIMITS,
    Engine,
    backend,
    free_port,
    http_port,
    listener,
    match,
    rule,
    simple_port,
    vhost,
)

ADDR = "127.0.0.6"
Echo = Callable[..., EchoBackend]


def rows(stats: dict[str, Any], family: str, **labels: str) -> list[dict[str, Any]]:
    return [r for r in stats[family] if all(r[k] == v for k, v in labels.items())]


def test_requests_by_route_backend_and_class_are_exact(engine: Engine, echo: Echo) -> None:
    tag = uuid.uuid4().hex[:8]
    a, b = echo("a"), echo("b")
    port = free_port(ADDR)
    ok, other, moved = f"ok-{tag}", f"other-{tag}", f"moved-{tag}"
    g = engine.apply(
        simple_port(
            ADDR,
            port,
            (rule(backend(a, name=f"svc-a-{tag}"), name=ok), [match("/ok", "Exact")]),
            (
                rule(name=moved, filters=Filters(redirect=Redirect(hostname="x.example"))),
                [match("/moved")],
            ),
            (rule(backend(b, name=f"svc-b-{tag}"), name=other), [match("/other")]),
        )
    )
    with connect(ADDR, port) as s:  # keep-alive: several requests on one connection
        for _ in range(5):
            assert exchange(s, "GET", "/ok", "gw").status == 200
        for _ in range(3):
            assert exchange(s, "POST", "/other", "gw", body=b"x").status == 200
        for _ in range(2):
            assert exchange(s, "GET", "/moved", "gw").status == 302
        for _ in range(4):
            assert exchange(s, "GET", "/nowhere", "gw").status == 404
    st = engine.dp.stats()
    assert st["generation"] == g
    json.dumps(st)  # JSON-able as it is
    got = {
        (r["route"], r["backend"], r["code_class"]): r["count"]
        for r in st["requests"]
        if r["route"] in (f"ns/{ok}", f"ns/{other}", f"ns/{moved}")
    }
    assert got == {
        (f"ns/{ok}", f"ns/svc-a-{tag}", "2xx"): 5,
        (f"ns/{other}", f"ns/svc-b-{tag}", "2xx"): 3,
        (f"ns/{moved}", "", "3xx"): 2,
    }
    for r in rows(st, "requests", route=f"ns/{ok}"):
        assert (r["gateway"], r["listener"]) == ("ns/gw", "http")
    (hist,) = rows(st, "request_seconds", route=f"ns/{ok}")
    assert hist["count"] == 5
    assert [le for le, _ in hist["buckets"]] == list(BUCKETS)
    counts = [n for _, n in hist["buckets"]]
    assert counts == sorted(counts) and counts[-1] <= 5
    (up,) = rows(st, "upstream_seconds", route=f"ns/{other}")
    assert (up["backend"], up["count"]) == (f"ns/svc-b-{tag}", 3)
    assert up["sum"] > 0


def test_connect_errors_retries_and_mirrors_are_counted(engine: Engine, echo: Echo) -> None:
    from agent.nodeconfig import Mirror, Retry

    tag = uuid.uuid4().hex[:8]
    a, m = echo("a"), echo("m")
    port = free_port(ADDR)
    dead = EchoBackend(name="dead")  # never started: its port refuses
    dead.port = free_port(dead.address)
    mirror = Mirror(backend=backend(m, name=f"mirror-{tag}"))
    engine.apply(
        simple_port(
            ADDR,
            port,
            (
                rule(
                    backend(a, name=f"live-{tag}"),
                    name=f"mirrored-{tag}",
                    filters=Filters(mirrors=(mirror,)),
                ),
                [match("/m")],
            ),
            (
                rule(
                    backend(dead, name=f"dead-{tag}"), name=f"dead-{tag}", retry=Retry(attempts=2)
                ),
                [match("/dead")],
            ),
        )
    )
    for _ in range(4):
        assert request(ADDR, port, "/m").status == 200
    assert request(ADDR, port, "/dead").status == 502
    st = engine.dp.stats()
    (mirrors,) = rows(st, "mirror_sends", route=f"ns/mirrored-{tag}")
    assert (mirrors["backend"], mirrors["count"]) == (f"ns/mirror-{tag}", 4)
    (errors,) = rows(st, "upstream_connect_errors", route=f"ns/dead-{tag}")
    assert (errors["backend"], errors["count"]) == (f"ns/dead-{tag}", 3)  # 1 try + 2 retries
    (retries,) = rows(st, "retries", route=f"ns/dead-{tag}")
    assert retries["count"] == 2
    assert rows(st, "requests", route=f"ns/dead-{tag}")[0]["code_class"] == "5xx"


def test_active_connections_and_failed_handshakes(engine: Engine, echo: Echo) -> None:
    tag = uuid.uuid4().hex[:8]
    a = echo("a")
    ca = CA()
    issued = ca.issue("secure.example")
    name = f"tls-{tag}"
    port = free_port(ADDR)
    engine.apply(
        http_port(
            ADDR,
            port,
            listener(
                vhost("", (rule(backend(a)), [match("/")])),
                name=name,
                certificates=(
                    Certificate(
                        cert_pem=issued.cert_pem,
                        key_pem=issued.key_pem,
                        hostnames=("secure.example",),
                    ),
                ),
            ),
            tls=True,
        )
    )
    held = [connect(ADDR, port, sni="secure.example", ca=ca.pem) for _ in range(3)]
    try:
        for s in held:  # a request on each: every handshake is complete
            assert exchange(s, "GET", "/", "secure.example").status == 200
        st = engine.dp.stats()
        assert sum(r["count"] for r in rows(st, "active_connections", listener=name)) == 3
    finally:
        for s in held:
            s.close()
    # Two clients that do not trust the certificate give up during the handshake.
    for _ in range(2):
        with socket.create_connection((ADDR, port)) as raw:
            ctx = ssl.create_default_context()  # the system CAs: not our test CA
            with pytest.raises(ssl.SSLError):
                ctx.wrap_socket(raw, server_hostname="secure.example")
    # The failures are counted when the worker has seen each connection go: wait for that
    # (bounded), then the count is exact.
    for _ in range(200):
        st = engine.dp.stats()
        failed = sum(r["count"] for r in rows(st, "tls_handshake_failures", listener=name))
        active = sum(r["count"] for r in rows(st, "active_connections", listener=name))
        if failed >= 2 and active == 0:
            break
        time.sleep(0.02)
    assert (failed, active) == (2, 0)


@pytest.fixture
def logged() -> Iterator[tuple[L7Datapath, str]]:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "access.log")
        with open(path, "a") as f:
            dp = L7Datapath(workers=2, limits=TEST_LIMITS, access_log=True, access_log_stream=f)
            dp.start()
            try:
                yield dp, path
            finally:
                dp.stop(drain_timeout=1.0)


def test_access_log_has_one_line_per_request(logged: tuple[L7Datapath, str], echo: Echo) -> None:
    dp, path = logged
    a = echo("a")
    port = free_port(ADDR)
    dp.apply(
        NodeConfig(
            http=(
                simple_port(
                    ADDR, port, (rule(backend(a, name="logged"), name="r"), [match("/in")])
                ),
            )
        ),
        1,
    )
    for i in range(3):
        assert request(ADDR, port, f"/in/{i}?secret=1").status == 200
    assert request(ADDR, port, "/out", method="DELETE").status == 404
    dp.stats()  # a round trip through every worker: their queued lines are written by now
    with open(path) as f:
        lines = [json.loads(x) for x in f.read().splitlines()]
    assert len(lines) == 4
    assert sorted(x["path"] for x in lines) == ["/in/0", "/in/1", "/in/2", "/out"]
    ok = [x for x in lines if x["status"] == 200]
    for x in ok:
        assert (x["gateway"], x["listener"], x["route"], x["backend"], x["method"]) == (
            "ns/gw",
            "http",
            "ns/r",
            "ns/logged",
            "GET",
        )
        assert x["bytes"] > 0 and x["duration_ms"] >= 0 and x["time"].endswith("Z")
    (miss,) = [x for x in lines if x["status"] == 404]
    assert (miss["route"], miss["backend"], miss["method"]) == ("", "", "DELETE")


def test_stats_without_workers_traffic_are_empty_families() -> None:
    dp = L7Datapath(workers=1, limits=TEST_LIMITS)
    dp.start()
    try:
        st = dp.stats()
    finally:
        dp.stop(drain_timeout=1.0)
    assert st["generation"] == 0
    for family in (
        "requests",
        "request_seconds",
        "upstream_seconds",
        "upstream_connect_errors",
        "upstream_timeouts",
        "retries",
        "retry_budget_refusals",
        "mirror_sends",
        "active_connections",
        "tls_handshake_failures",
    ):
        assert st[family] == []


def test_workers_run_on_uvloop(engine: Engine) -> None:
    assert [w.loop for w in engine.dp.workers] == ["uvloop"] * len(engine.dp.workers)
