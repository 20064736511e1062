"""agent.metrics: what the collectors make of the datapaths' counters, and the agent's own
metrics. Data in, samples out; no sockets, no kernel."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agent import metrics
from agent.metrics import AgentMetrics, invalid_by_kind, register_datapaths
from agent.nodeconfig import L4Listener, NodeConfig, Ref
from bpf.counters import DROP_REASONS, L4Counters, ListenerCounters
from tests.observability.support import sample, scrape_registry, select, total

GW = Ref(kind="Gateway", namespace="infra", name="edge")


def l4_listener(section: str, protocol: str, address: str, port: int, route: str) -> L4Listener:
    return L4Listener(
        ref=GW.model_copy(update={"section": section}),
        gateway=GW,
        protocol=protocol,  # type: ignore[arg-type]
        address=address,
        port=port,
        route=Ref(kind=f"{protocol}Route", namespace="apps", name=route),
    )


CONFIG = NodeConfig(
    l4=(
        l4_listener("dns", "UDP", "198.18.0.10", 53, "dns"),
        l4_listener("db", "TCP", "198.18.0.10", 5432, "postgres"),
    )
)


def drops(**n: int) -> dict[str, int]:
    return {r: n.get(r, 0) for r in DROP_REASONS}


def listener_counters(
    ref: Ref | None, protocol: str, address: str, port: int, base: int
) -> ListenerCounters:
    return ListenerCounters(
        ref=ref,
        protocol=protocol,
        address=address,
        port=port,
        packets=base,
        bytes=base * 100,
        reply_packets=base + 1,
        reply_bytes=base * 100 + 1,
        new_flows=base // 10,
        drops=drops(no_backend=base % 7, conntrack=1),
    )


class FakeL4:
    name = "l4"

    def __init__(self, counters: L4Counters) -> None:
        self.value = counters
        self.calls = 0

    def counters(self) -> L4Counters:
        self.calls += 1
        return self.value


class FakeL7:
    name = "l7"

    def __init__(self, stats: dict[str, Any]) -> None:
        self.value = stats

    def stats(self) -> dict[str, Any]:
        return self.value


class Broken:
    name = "l4"

    def counters(self) -> L4Counters:
        raise OSError("map gone")


def registry_with(*datapaths: Any) -> tuple[CollectorRegistry, AgentMetrics]:
    registry = CollectorRegistry(auto_describe=False)
    agent = AgentMetrics(registry)
    register_datapaths(datapaths, registry=registry, agent=agent)
    return registry, agent


def test_l4_counters_are_keyed_to_the_gateway_listener_and_route_applied() -> None:
    dp = FakeL4(
        L4Counters(
            listeners=[
                # The address as the map key spells it; the config may spell it otherwise.
                listener_counters(CONFIG.l4[0].ref, "UDP", "198.18.0.10", 53, 40),
                listener_counters(CONFIG.l4[1].ref, "TCP", "198.18.0.10", 5432, 23),
            ],
            unattributed_drops=drops(malformed=5),
            conntrack_flows=3,
            conntrack_entries=6,
            conntrack_capacity=131072,
        )
    )
    registry, agent = registry_with(dp)
    agent.applied("l4", 1, 0.01, CONFIG)
    got = scrape_registry(registry)
    udp = {"gateway": "infra/edge", "listener": "dns", "route": "apps/dns", "protocol": "UDP"}
    tcp = {"gateway": "infra/edge", "listener": "db", "route": "apps/postgres", "protocol": "TCP"}
    assert select(got, "nodegate_l4_packets_total") == {
        sample("nodegate_l4_packets_total", **udp, direction="forward"): 40,
        sample("nodegate_l4_packets_total", **udp, direction="reply"): 41,
        sample("nodegate_l4_packets_total", **tcp, direction="forward"): 23,
        sample("nodegate_l4_packets_total", **tcp, direction="reply"): 24,
    }
    assert got[sample("nodegate_l4_bytes_total", **udp, direction="forward")] == 4000
    assert got[sample("nodegate_l4_bytes_total", **tcp, direction="reply")] == 2301
    assert select(got, "nodegate_l4_flows_total") == {
        sample("nodegate_l4_flows_total", **udp): 4,
        sample("nodegate_l4_flows_total", **tcp): 2,
    }
    assert got[sample("nodegate_l4_drops_total", **udp, reason="no_backend")] == 40 % 7
    assert got[sample("nodegate_l4_drops_total", **tcp, reason="no_backend")] == 23 % 7
    nobody = {"gateway": "", "listener": "", "route": "", "protocol": ""}
    assert got[sample("nodegate_l4_drops_total", **nobody, reason="malformed")] == 5
    assert total(got, "nodegate_l4_drops_total", reason="conntrack") == 2
    # Every reason is a series of its own (zeros included), so rate() works from the start.
    assert {dict(k[1])["reason"] for k in select(got, "nodegate_l4_drops_total", **udp)} == set(
        DROP_REASONS
    )
    assert got[sample("nodegate_l4_conntrack_entries")] == 6
    assert got[sample("nodegate_l4_conntrack_flows")] == 3
    assert got[sample("nodegate_l4_conntrack_capacity_entries")] == 131072


def test_l4_counters_of_a_service_pinned_by_a_previous_agent_wait_for_the_first_apply() -> None:
    # At start the datapath adopts the pinned services before any NodeConfig: no labels known.
    dp = FakeL4(
        L4Counters(
            listeners=[listener_counters(None, "TCP", "198.18.0.10", 5432, 10)],
            unattributed_drops=drops(),
            conntrack_flows=0,
            conntrack_entries=0,
            conntrack_capacity=64,
        )
    )
    registry, agent = registry_with(dp)
    before = scrape_registry(registry)
    unknown = {"gateway": "", "listener": "", "route": "", "protocol": "TCP"}
    assert before[sample("nodegate_l4_flows_total", **unknown)] == 1
    agent.applied("l4", 1, 0.01, CONFIG)
    after = scrape_registry(registry)
    assert (
        after[
            sample(
                "nodegate_l4_flows_total",
                gateway="infra/edge",
                listener="db",
                route="apps/postgres",
                protocol="TCP",
            )
        ]
        == 1
    )
    assert select(after, "nodegate_l4_flows_total", gateway="") == {}


L7_STATS: dict[str, Any] = {
    "requests": [
        {
            "gateway": "infra/edge",
            "listener": "http",
            "route": "apps/web",
            "backend": "apps/v1",
            "code_class": "2xx",
            "count": 7,
        },
        {
            "gateway": "infra/edge",
            "listener": "http",
            "route": "apps/web",
            "backend": "apps/v2",
            "code_class": "5xx",
            "count": 2,
        },
        {
            "gateway": "infra/edge",
            "listener": "http",
            "route": "",
            "backend": "",
            "code_class": "4xx",
            "count": 3,
        },
        # Two workers' rows for the same series are summed.
        {
            "gateway": "infra/edge",
            "listener": "http",
            "route": "apps/web",
            "backend": "apps/v1",
            "code_class": "2xx",
            "count": 1,
        },
    ],
    "request_seconds": [
        {
            "gateway": "infra/edge",
            "listener": "http",
            "route": "apps/web",
            "buckets": [[0.005, 3], [0.1, 8], ["+Inf", 9]],
            "sum": 0.25,
            "count": 9,
        },
    ],
    "upstream_seconds": [
        {
            "route": "apps/web",
            "backend": "apps/v1",
            "buckets": [[0.005, 8], [0.1, 8]],
            "sum": 0.01,
            "count": 8,
        },
    ],
    "upstream_connect_errors": [{"route": "apps/web", "backend": "apps/v2", "count": 2}],
    "upstream_timeouts": [{"route": "apps/web", "backend": "apps/v2", "count": 1}],
    "retries": [{"route": "apps/web", "backend": "apps/v2", "count": 4}],
    "retry_budget_refusals": [{"route": "apps/web", "backend": "apps/v2", "count": 1}],
    "mirror_sends": [{"route": "apps/web", "backend": "apps/shadow", "count": 5}],
    "active_connections": [{"gateway": "infra/edge", "listener": "http", "count": 2}],
    "tls_handshake_failures": [{"gateway": "infra/edge", "listener": "https", "count": 6}],
    "generation": 3,
}


def test_l7_stats_become_counters_histograms_and_gauges() -> None:
    registry, _ = registry_with(FakeL7(L7_STATS))
    got = scrape_registry(registry)
    web = {"gateway": "infra/edge", "listener": "http", "route": "apps/web"}
    assert select(got, "nodegate_http_requests_total") == {
        sample("nodegate_http_requests_total", **web, backend="apps/v1", code_class="2xx"): 8,
        sample("nodegate_http_requests_total", **web, backend="apps/v2", code_class="5xx"): 2,
        sample(
            "nodegate_http_requests_total",
            gateway="infra/edge",
            listener="http",
            route="",
            backend="",
            code_class="4xx",
        ): 3,
    }
    assert select(got, "nodegate_http_request_duration_seconds_bucket") == {
        sample("nodegate_http_request_duration_seconds_bucket", **web, le="0.005"): 3,
        sample("nodegate_http_request_duration_seconds_bucket", **web, le="0.1"): 8,
        sample("nodegate_http_request_duration_seconds_bucket", **web, le="+Inf"): 9,
    }
    assert got[sample("nodegate_http_request_duration_seconds_count", **web)] == 9
    assert got[sample("nodegate_http_request_duration_seconds_sum", **web)] == 0.25
    v1 = {"route": "apps/web", "backend": "apps/v1"}
    # Buckets without +Inf get it, equal to the count.
    assert got[sample("nodegate_http_upstream_duration_seconds_bucket", **v1, le="+Inf")] == 8
    v2 = {"route": "apps/web", "backend": "apps/v2"}
    assert got[sample("nodegate_http_upstream_connect_errors_total", **v2)] == 2
    assert got[sample("nodegate_http_upstream_timeouts_total", **v2)] == 1
    assert got[sample("nodegate_http_retries_total", **v2)] == 4
    assert got[sample("nodegate_http_retry_budget_refusals_total", **v2)] == 1
    assert (
        got[sample("nodegate_http_mirror_requests_total", route="apps/web", backend="apps/shadow")]
        == 5
    )
    assert (
        got[sample("nodegate_http_active_connections", gateway="infra/edge", listener="http")] == 2
    )
    assert (
        got[sample("nodegate_tls_handshake_failures_total", gateway="infra/edge", listener="https")]
        == 6
    )


def test_l7_stats_with_nothing_yet_give_empty_families() -> None:
    registry, _ = registry_with(FakeL7({"generation": 0}))
    got = scrape_registry(registry)
    assert select(got, "nodegate_http_requests_total") == {}
    assert got[sample("nodegate_scrape_errors_total", datapath="l7")] == 0


def test_a_datapath_that_cannot_report_is_counted_and_the_rest_still_served() -> None:
    registry, agent = registry_with(Broken(), FakeL7(L7_STATS))
    agent.translated(0.001, 1, {"Gateway": 1}, {})
    for expected in (1, 2):
        got = scrape_registry(registry)
        assert got[sample("nodegate_scrape_errors_total", datapath="l4")] == expected
        assert select(got, "nodegate_l4_packets_total") == {}
        assert total(got, "nodegate_http_requests_total") == 13
        assert got[sample("nodegate_config_generation")] == 1


def test_collectors_read_the_datapaths_under_the_lock_the_loop_applies_under() -> None:
    held: list[bool] = []

    class L4(FakeL4):
        def counters(self) -> L4Counters:
            held.append(metrics.DATAPATH_LOCK.locked())
            return super().counters()

    class L7(FakeL7):
        def stats(self) -> dict[str, Any]:
            held.append(metrics.DATAPATH_LOCK.locked())
            return super().stats()

    registry, _ = registry_with(L4(L4Counters([], drops(), 0, 0, 1)), L7(L7_STATS))
    assert not metrics.DATAPATH_LOCK.locked()
    scrape_registry(registry)
    assert held == [True, True]
    assert not metrics.DATAPATH_LOCK.locked()


def test_readiness_gates_come_before_the_generation() -> None:
    agent = AgentMetrics(CollectorRegistry(auto_describe=False))
    agent.expect_datapaths(["l4"])
    listed = False
    agent.gate("the first complete list of every served kind", lambda: listed)
    agent.translated(0.001, 1, {}, {})
    agent.applied("l4", 1, 0.01, CONFIG)
    assert agent.readiness() == (False, "waiting for the first complete list of every served kind")
    listed = True
    assert agent.readiness() == (True, "generation 1 applied")


def test_agent_metrics_report_generations_durations_objects_and_readiness() -> None:
    registry = CollectorRegistry(auto_describe=False)
    agent = AgentMetrics(registry)
    agent.expect_datapaths(["addresses", "l4", "l7"])
    assert agent.readiness() == (False, "no NodeConfig yet")
    agent.translated(0.002, 1, {"Gateway": 2, "HTTPRoute": 3}, {"HTTPRoute": 1})
    agent.applied("l4", 1, 0.05, CONFIG)
    agent.apply_failed("l7", 0.5)
    ok, why = agent.readiness()
    assert not ok and why == "generation 1; behind: addresses at 0, l7 at 0"
    agent.applied("addresses", 1, 0.001, CONFIG)
    agent.applied("l7", 1, 0.2, CONFIG)
    assert agent.readiness() == (True, "generation 1 applied")
    agent.translated(0.001, 2, {"Gateway": 2}, {})
    assert agent.readiness()[0] is False
    got = scrape_registry(registry)
    assert got[sample("nodegate_config_generation")] == 2
    assert select(got, "nodegate_config_applied_generation") == {
        sample("nodegate_config_applied_generation", datapath=d): 1
        for d in ("addresses", "l4", "l7")
    }
    assert select(got, "nodegate_objects") == {sample("nodegate_objects", kind="Gateway"): 2}
    assert select(got, "nodegate_invalid_objects") == {}
    assert got[sample("nodegate_translate_duration_seconds_count")] == 2
    assert got[sample("nodegate_apply_duration_seconds_count", datapath="l7")] == 2
    assert got[sample("nodegate_apply_failures_total", datapath="l7")] == 1
    assert sample("nodegate_apply_failures_total", datapath="l4") not in got


def test_hooks_for_the_kube_source_and_the_status_writer_count_on_the_default_registry() -> None:
    before = scrape_registry(metrics.REGISTRY)

    def delta(name: str, **labels: str) -> float:
        key = sample(name, **labels)
        return scrape_registry(metrics.REGISTRY).get(key, 0) - before.get(key, 0)

    metrics.watch_restarted("HTTPRoute", "expired")
    metrics.watch_restarted("HTTPRoute", "expired")
    metrics.status_written("Gateway")
    metrics.status_conflict("Gateway")
    metrics.status_write_failed("HTTPRoute")
    assert delta("nodegate_watch_restarts_total", kind="HTTPRoute", reason="expired") == 2
    assert delta("nodegate_status_writes_total", kind="Gateway") == 1
    assert delta("nodegate_status_conflicts_total", kind="Gateway") == 1
    assert delta("nodegate_status_write_errors_total", kind="HTTPRoute") == 1


class Key:
    def __init__(self, kind: str) -> None:
        self.kind = kind


@pytest.mark.parametrize(
    ("status", "invalid"),
    [
        ({"conditions": [{"type": "Accepted", "status": "True"}]}, False),
        ({"conditions": [{"type": "Accepted", "status": "False"}]}, True),
        ({"conditions": [{"type": "Programmed", "status": "False"}]}, False),
        ({"conditions": [{"type": "ResolvedRefs", "status": "False"}]}, True),
        ({"parents": [{"conditions": [{"type": "Accepted", "status": "True"}]}]}, False),
        (
            {
                "parents": [
                    {"conditions": [{"type": "Accepted", "status": "True"}]},
                    {"conditions": [{"type": "Accepted", "status": "False"}]},
                ]
            },
            True,
        ),
        ({}, False),
    ],
)
def test_invalid_objects_are_those_not_accepted(status: dict[str, Any], invalid: bool) -> None:
    assert invalid_by_kind({Key("HTTPRoute"): status}) == ({"HTTPRoute": 1} if invalid else {})
