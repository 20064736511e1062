"""agent.health: /metrics, /healthz and /readyz over a real loopback socket."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from agent.health import HealthServer, Liveness, parse_address
from agent.metrics import AgentMetrics
from agent.nodeconfig import NodeConfig
from tests.observability.support import parse, sample


def get(port: int, path: str, accept: str = "") -> tuple[int, str, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


class Served:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.agent = AgentMetrics(self.registry)
        self.liveness = Liveness(stale_after=60)
        self.server = HealthServer.start(
            "127.0.0.1:0", registry=self.registry, agent=self.agent, liveness=self.liveness
        )


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served()
    try:
        yield s
    finally:
        s.server.close()


def test_metrics_is_the_registry_in_the_prometheus_text_format(served: Served) -> None:
    served.agent.translated(0.001, 4, {"Gateway": 1}, {})
    code, ctype, body = get(served.server.port, "/metrics")
    assert code == 200 and ctype.startswith("text/plain; version=0.0.4")
    got = parse(body)
    assert got[sample("nodegate_config_generation")] == 4
    assert got[sample("nodegate_objects", kind="Gateway")] == 1
    code, ctype, body = get(
        served.server.port, "/metrics", accept="application/openmetrics-text; version=1.0.0"
    )
    assert code == 200 and ctype.startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")


def test_readyz_once_every_datapath_applied_the_current_generation(served: Served) -> None:
    port = served.server.port
    served.agent.expect_datapaths(["l4", "l7"])
    assert get(port, "/readyz")[::2] == (503, "no NodeConfig yet\n")
    served.agent.translated(0.001, 1, {}, {})
    served.agent.applied("l4", 1, 0.01, NodeConfig())
    assert get(port, "/readyz")[::2] == (503, "generation 1; behind: l7 at 0\n")
    served.agent.applied("l7", 1, 0.01, NodeConfig())
    assert get(port, "/readyz")[::2] == (200, "generation 1 applied\n")
    served.agent.translated(0.001, 2, {}, {})
    assert get(port, "/readyz")[0] == 503


def test_healthz_while_the_loop_goes_round(served: Served) -> None:
    port = served.server.port
    assert get(port, "/healthz")[::2] == (200, "alive\n")
    served.liveness.last -= 120  # the loop last ticked two minutes ago
    code, _, body = get(port, "/healthz")
    assert code == 503 and body.startswith("the reconcile loop has not run for 12")
    served.liveness.tick()
    assert get(port, "/healthz")[0] == 200
    assert get(port, "/nothing")[0] == 404


def test_an_address_in_use_is_refused() -> None:
    a = HealthServer.start("127.0.0.1:0", registry=CollectorRegistry())
    try:
        with pytest.raises(OSError):
            HealthServer.start(f"127.0.0.1:{a.port}", registry=CollectorRegistry())
    finally:
        a.close()


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("0.0.0.0:9108", ("0.0.0.0", 9108)),
        (":9108", ("", 9108)),
        ("[::1]:9108", ("::1", 9108)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
    ],
)
def test_parse_address(text: str, parsed: tuple[str, int]) -> None:
    assert parse_address(text) == parsed


@pytest.mark.parametrize("text", ["9108", "host:", "host:http", "h:70000"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)
