"""deploy/grafana/nodegate-dashboard.json: valid, laid out, and every query names metrics and
labels the agent exposes (read from a real scrape of the collectors)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.metrics import AgentMetrics, register_datapaths
from bpf.counters import L4Counters
from tests.observability.test_metrics import (
    CONFIG,
    L7_STATS,
    FakeL4,
    FakeL7,
    drops,
    listener_counters,
)

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "nodegate-dashboard.json"


def exposed() -> dict[str, set[str]]:
    """Every sample name the agent can expose -> its labels."""
    registry = CollectorRegistry(auto_describe=False)
    agent = AgentMetrics(registry)
    l4 = FakeL4(
        L4Counters(
            [listener_counters(CONFIG.l4[0].ref, "UDP", "198.18.0.10", 53, 4)], drops(), 1, 2, 8
        )
    )
    register_datapaths([l4, FakeL7(L7_STATS)], registry=registry, agent=agent)
    agent.expect_datapaths(["l4"])
    agent.translated(0.1, 1, {"Gateway": 1}, {"HTTPRoute": 1})
    agent.applied("l4", 1, 0.1, CONFIG)
    agent.apply_failed("l4", 0.1)
    agent.watch_restarts.labels("Gateway", "expired").inc()
    agent.status_writes.labels("Gateway").inc()
    agent.status_conflicts.labels("Gateway").inc()
    agent.status_errors.labels("Gateway").inc()
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


def panels() -> list[dict[str, Any]]:
    return list(json.loads(DASHBOARD.read_text())["panels"])


def test_the_dashboard_is_laid_out_without_overlaps() -> None:
    d = json.loads(DASHBOARD.read_text())
    assert d["uid"] == "nodegate" and d["title"] == "nodegate"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    boxes = [(p["title"], p["gridPos"]) for p in d["panels"]]
    for i, (a, ga) in enumerate(boxes):
        assert ga["x"] >= 0 and ga["x"] + ga["w"] <= 24, a
        for b, gb in boxes[i + 1 :]:
            apart = (
                ga["x"] + ga["w"] <= gb["x"]
                or gb["x"] + gb["w"] <= ga["x"]
                or ga["y"] + ga["h"] <= gb["y"]
                or gb["y"] + gb["h"] <= ga["y"]
            )
            assert apart, f"{a!r} overlaps {b!r}"
    for p in d["panels"]:
        assert p["type"] == "row" or p["targets"], p["title"]


def test_every_query_names_exposed_metrics_and_their_labels() -> None:
    have = exposed()
    for p in panels():
        for t in p.get("targets", ()):
            expr = t["expr"]
            names = set(re.findall(r"\bnodegate_[a-z0-9_]+", expr))
            assert names, expr
            missing = names - set(have)
            assert not missing, f"{p['title']}: {missing} not exposed"
            labels = set().union(*(have[n] for n in names)) | {"le", "instance"}
            used = set()
            for group in re.findall(r"\bby \(([^)]*)\)", expr):
                used |= {x.strip() for x in group.split(",")}
            used |= set(re.findall(r"\{\{(\w+)\}\}", t["legendFormat"]))
            used |= set(re.findall(r"[{,]\s*(\w+)\s*[=!]~?\"", expr))
            assert used <= labels, f"{p['title']}: labels {used - labels} not on {names}"


def test_the_panels_an_operator_looks_at_first_are_there() -> None:
    exprs = {p["title"]: " ".join(t["expr"] for t in p.get("targets", ())) for p in panels()}

    def panel_with(*needles: str) -> list[str]:
        return [t for t, e in exprs.items() if all(n in e for n in needles)]

    assert panel_with("nodegate_http_requests_total", "by (gateway)")  # traffic per Gateway
    assert panel_with("nodegate_http_requests_total", "route", "code_class")  # per route, errors
    assert panel_with('code_class="5xx"')
    assert panel_with("nodegate_http_request_duration_seconds_bucket", "histogram_quantile")
    assert panel_with("nodegate_l4_flows_total")
    assert panel_with("nodegate_l4_drops_total", "reason")
    assert panel_with("nodegate_l4_conntrack_entries", "nodegate_l4_conntrack_capacity_entries")
    assert panel_with("nodegate_config_applied_generation", "instance")
