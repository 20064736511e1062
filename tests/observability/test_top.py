"""`nodegate top`: rates between two scrapes (pure), and the command against a real endpoint."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from agent.health import HealthServer
from agent.metrics import AgentMetrics, register_datapaths
from agent.top import rates, render
from bpf.counters import DROP_REASONS, L4Counters, ListenerCounters
from tests.observability.support import Sample, sample
from tests.observability.test_metrics import CONFIG

L7 = {"gateway": "obs/edge", "listener": "http", "route": "obs/web", "backend": "obs/echo"}
UDP = {"gateway": "obs/edge", "listener": "udp", "route": "obs/udp", "protocol": "UDP"}


def scrape_at(
    requests_2xx: float, requests_5xx: float, packets: float, drops: float
) -> dict[Sample, float]:
    return {
        sample("nodegate_http_requests_total", **L7, code_class="2xx"): requests_2xx,
        sample("nodegate_http_requests_total", **L7, code_class="5xx"): requests_5xx,
        sample("nodegate_http_active_connections", gateway="obs/edge", listener="http"): 3,
        sample("nodegate_l4_packets_total", **UDP, direction="forward"): packets,
        sample("nodegate_l4_packets_total", **UDP, direction="reply"): packets / 2,
        sample("nodegate_l4_drops_total", **UDP, reason="no_backend"): drops,
        sample(
            "nodegate_l4_drops_total",
            gateway="",
            listener="",
            route="",
            protocol="",
            reason="malformed",
        ): 0,
        sample("nodegate_config_generation"): 4,
        sample("nodegate_config_applied_generation", datapath="l4"): 4,
        sample("nodegate_config_applied_generation", datapath="l7"): 3,
        sample("nodegate_l4_conntrack_entries"): 50,
        sample("nodegate_l4_conntrack_capacity_entries"): 200,
    }


def test_rates_per_listener_between_two_scrapes() -> None:
    rows = rates(scrape_at(100, 10, 1000, 0), scrape_at(140, 14, 1600, 2), seconds=2.0)
    by = {(r.path, r.gateway, r.listener, r.protocol): r for r in rows}
    assert set(by) == {
        ("L4", "", "", ""),
        ("L4", "obs/edge", "udp", "UDP"),
        ("L7", "obs/edge", "http", "HTTP"),
    }
    http = by[("L7", "obs/edge", "http", "HTTP")]
    assert http.rates == {"req/s": 22.0, "5xx/s": 2.0}
    assert http.gauges == {"conns": 3}
    udp = by[("L4", "obs/edge", "udp", "UDP")]
    assert udp.rates == {"pkt/s in": 300.0, "pkt/s out": 150.0, "drops/s": 1.0}


def test_a_counter_that_went_down_counts_from_zero() -> None:
    rows = rates(scrape_at(100, 10, 1000, 0), scrape_at(6, 0, 10, 0), seconds=1.0)
    http = next(r for r in rows if r.path == "L7")
    assert http.rates["req/s"] == 6.0


def test_render_lists_both_paths_and_the_header() -> None:
    after = scrape_at(140, 14, 1600, 2)
    text = render(
        rates(scrape_at(100, 10, 1000, 0), after, 2.0), after, "http://x/metrics", 2.0, ansi=False
    )
    lines = text.splitlines()
    assert lines[1] == "generation 4  l4 4  l7 3  conntrack 50/200 (25.0%)"
    assert "\x1b" not in text
    http = next(line for line in lines if "http" in line and "HTTP" in line)
    assert http.split() == ["obs/edge", "http", "HTTP", "22", "0", "2", "3"]
    udp = next(line for line in lines if " udp " in line)
    assert udp.split() == ["obs/edge", "udp", "UDP", "300", "150", "0", "0", "0", "1"]
    assert "\x1b[1m" in render([], after, "u", 1.0, ansi=True)


class GrowingL4:
    """An L4 datapath whose UDP listener forwards 10 packets between reads."""

    name = "l4"

    def __init__(self) -> None:
        self.reads = 0

    def counters(self) -> L4Counters:
        self.reads += 1
        lc = ListenerCounters(
            ref=CONFIG.l4[0].ref,
            protocol="UDP",
            address="198.18.0.10",
            port=53,
            packets=10 * self.reads,
            bytes=0,
            reply_packets=0,
            reply_bytes=0,
            new_flows=self.reads,
            drops=dict.fromkeys(DROP_REASONS, 0),
        )
        return L4Counters([lc], dict.fromkeys(DROP_REASONS, 0), 3, 6, 100)


@pytest.fixture
def endpoint() -> Iterator[str]:
    registry = CollectorRegistry(auto_describe=False)
    agent = AgentMetrics(registry)
    register_datapaths([GrowingL4()], registry=registry, agent=agent)
    agent.expect_datapaths(["l4"])
    agent.translated(0.001, 2, {}, {})
    agent.applied("l4", 2, 0.01, CONFIG)
    server = HealthServer.start("127.0.0.1:0", registry=registry, agent=agent)
    try:
        yield f"http://127.0.0.1:{server.port}/metrics"
    finally:
        server.close()


def test_nodegate_top_shows_screens_from_a_live_endpoint(endpoint: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "top",
            "--url",
            endpoint,
            "--interval",
            "0.1",
            "--count",
            "2",
            "--plain",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    screens = out.stdout.split("nodegate top  ")[1:]
    assert len(screens) == 2
    for screen in screens:
        lines = screen.splitlines()
        assert lines[1] == "generation 2  l4 2  conntrack 6/100 (6.0%)"
        row = next(line.split() for line in lines if " dns " in line)
        assert row[:3] == ["infra/edge", "dns", "UDP"]
        assert float(row[3].rstrip("k")) > 0  # packets in: 10 per read, whatever the interval


def test_nodegate_top_says_when_the_endpoint_is_not_there() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "top",
            "--url",
            "http://127.0.0.1:9/metrics",
            "--count",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "nodegate top: http://127.0.0.1:9/metrics:" in out.stderr
