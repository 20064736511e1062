"""Prometheus metrics of one node's agent: both datapaths keyed to Gateway API objects, and the
agent's own loop.

    AGENT.applied("l4", generation, seconds, config)   # the reconcile loop reports
    watch_restarted("HTTPRoute", "expired")            # the kube source reports
    status_written("Gateway") / status_conflict("Gateway")
    register_datapaths(datapaths)                      # L4 and L7 collectors on REGISTRY

Names follow `nodegate_<noun>_<unit>`: counters end `_total`, durations `_seconds`.
Labels come only from Gateway API object names ("namespace/name", listener names) and small
enums (protocol, direction, drop reason, status class, datapath, kind): never a path, a host
or a client address.

Invariants:
- The datapath collectors read the datapaths on the scraping thread. A datapath is not
  thread-safe, so every read happens under DATAPATH_LOCK, which the reconcile loop holds
  around each apply(): a scrape never sees a half-applied configuration, and never talks to
  an L7 worker while apply() does.
- The L4 collector reads per-listener counters (one per-CPU map lookup per listener) and the
  conntrack figures bpf.datapath reports; it keeps nothing per flow.
- A datapath that fails to report is counted in nodegate_scrape_errors_total{datapath} and
  left out of that scrape; the rest of the scrape is served.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from agent.nodeconfig import NodeConfig, Ref

log = logging.getLogger(__name__)

# One sample per series: the `_created` companions double the output for nothing we chart.
disable_created_metrics()

DATAPATH_LOCK = threading.Lock()

# Seconds: translate and apply run from well under a millisecond (a few objects) to
# seconds (bcc maps with thousands of endpoints, many L7 workers).
_LOOP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def ref_label(ref: Ref | None) -> str:
    """A Gateway API object as a label value: "namespace/name" ("" for none)."""
    return f"{ref.namespace}/{ref.name}" if ref is not None else ""


# --------------------------------------------------------------------------
# the agent loop


class AgentMetrics:
    """What the reconcile loop, the sources and the status writer report.

    Thread-safe: the loop, the kube watch threads and the status writer call in from their
    own threads; the scrape reads under the same lock.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._expected: tuple[str, ...] = ()
        self._applied: dict[str, int] = {}
        self._configs: dict[str, NodeConfig] = {}
        self._objects: dict[str, int] = {}
        self._invalid: dict[str, int] = {}
        self._gates: list[tuple[str, Callable[[], bool]]] = []
        self.translate_seconds = Histogram(
            "nodegate_translate_duration_seconds",
            "Time to translate the store into a NodeConfig and statuses",
            buckets=_LOOP_BUCKETS,
            registry=registry,
        )
        self.apply_seconds = Histogram(
            "nodegate_apply_duration_seconds",
            "Time a datapath took to apply a NodeConfig (failed attempts included)",
            ["datapath"],
            buckets=_LOOP_BUCKETS,
            registry=registry,
        )
        self.apply_failures = Counter(
            "nodegate_apply_failures_total",
            "NodeConfigs a datapath refused or failed to apply (it keeps the previous one)",
            ["datapath"],
            registry=registry,
        )
        self.watch_restarts = Counter(
            "nodegate_watch_restarts_total",
            "Watches of the API server started again, by kind and why (expired: 410 Gone "
            "and a relist; error; closed)",
            ["kind", "reason"],
            registry=registry,
        )
        self.status_writes = Counter(
            "nodegate_status_writes_total",
            "Status subresource writes that the API server accepted, by kind",
            ["kind"],
            registry=registry,
        )
        self.status_conflicts = Counter(
            "nodegate_status_conflicts_total",
            "Status writes refused with 409 Conflict (the object changed; re-read and retried)",
            ["kind"],
            registry=registry,
        )
        self.status_errors = Counter(
            "nodegate_status_write_errors_total",
            "Status writes that failed otherwise, by kind",
            ["kind"],
            registry=registry,
        )
        registry.register(_AgentState(self))

    # --- the reconcile loop -----------------------------------------------------

    def expect_datapaths(self, names: Iterable[str]) -> None:
        """The datapaths every NodeConfig must reach before the node is ready."""
        with self._lock:
            self._expected = tuple(names)

    def translated(
        self,
        seconds: float,
        generation: int,
        objects: Mapping[str, int],
        invalid: Mapping[str, int],
    ) -> None:
        self.translate_seconds.observe(seconds)
        with self._lock:
            self._generation = generation
            self._objects = dict(objects)
            self._invalid = dict(invalid)

    def applied(self, datapath: str, generation: int, seconds: float, config: NodeConfig) -> None:
        self.apply_seconds.labels(datapath).observe(seconds)
        with self._lock:
            self._applied[datapath] = generation
            self._configs[datapath] = config

    def apply_failed(self, datapath: str, seconds: float) -> None:
        self.apply_seconds.labels(datapath).observe(seconds)
        self.apply_failures.labels(datapath).inc()

    # --- what the scrape and the probes read ---------------------------------------

    def config(self, datapath: str) -> NodeConfig | None:
        """The NodeConfig `datapath` serves (its last successful apply)."""
        with self._lock:
            return self._configs.get(datapath)

    def gate(self, waiting_for: str, check: Callable[[], bool]) -> None:
        """Readiness also needs check() true; until it is, /readyz says what it waits for
        (cluster mode: the first complete list of every served kind)."""
        with self._lock:
            self._gates.append((waiting_for, check))

    def readiness(self) -> tuple[bool, str]:
        """Whether every gate is open and every datapath applied the current NodeConfig,
        and what is behind if not."""
        with self._lock:
            gates = list(self._gates)
        for waiting_for, check in gates:  # outside the lock: a check may take its own
            if not check():
                return False, f"waiting for {waiting_for}"
        with self._lock:
            if self._generation == 0:
                return False, "no NodeConfig yet"
            behind = [
                f"{d} at {self._applied.get(d, 0)}"
                for d in self._expected
                if self._applied.get(d, 0) != self._generation
            ]
            if behind:
                return False, f"generation {self._generation}; behind: {', '.join(behind)}"
            return True, f"generation {self._generation} applied"

    def state(self) -> tuple[int, dict[str, int], dict[str, int], dict[str, int]]:
        with self._lock:
            applied = {d: self._applied.get(d, 0) for d in self._expected}
            applied.update(self._applied)
            return self._generation, applied, dict(self._objects), dict(self._invalid)


class _AgentState(Collector):
    """The agent's gauges, from AgentMetrics' last reports."""

    def __init__(self, agent: AgentMetrics) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        generation, applied, objects, invalid = self.agent.state()
        g = GaugeMetricFamily(
            "nodegate_config_generation",
            "Generation of the newest NodeConfig the agent translated (rises by one per change)",
        )
        g.add_metric([], generation)
        yield g
        a = GaugeMetricFamily(
            "nodegate_config_applied_generation",
            "Generation of the NodeConfig each datapath serves",
            labels=["datapath"],
        )
        for d, gen in sorted(applied.items()):
            a.add_metric([d], gen)
        yield a
        o = GaugeMetricFamily(
            "nodegate_objects", "Objects in the store at the last translation", labels=["kind"]
        )
        for k, n in sorted(objects.items()):
            o.add_metric([k], n)
        yield o
        i = GaugeMetricFamily(
            "nodegate_invalid_objects",
            "Objects of this controller with Accepted or ResolvedRefs not True (a Route: for "
            "one of its parents) at the last translation",
            labels=["kind"],
        )
        for k, n in sorted(invalid.items()):
            i.add_metric([k], n)
        yield i


REGISTRY = CollectorRegistry(auto_describe=False)
AGENT = AgentMetrics(REGISTRY)


# Hooks for the kube source and the status writer (they run on their own threads).


def watch_restarted(kind: str, reason: str) -> None:
    """A watch of `kind` ended and starts again; reason: "expired" (410 Gone, relist),
    "error" or "closed" (the server ended it)."""
    AGENT.watch_restarts.labels(kind, reason).inc()


def status_written(kind: str) -> None:
    """The API server accepted a status write of an object of `kind`."""
    AGENT.status_writes.labels(kind).inc()


def status_conflict(kind: str) -> None:
    """A status write of `kind` came back 409 Conflict."""
    AGENT.status_conflicts.labels(kind).inc()


def status_write_failed(kind: str) -> None:
    """A status write of `kind` failed for any other reason."""
    AGENT.status_errors.labels(kind).inc()


def count_by_kind(keys: Iterable[Any]) -> dict[str, int]:
    """Objects per kind, from ObjectKeys (anything with a `kind`)."""
    out: dict[str, int] = {}
    for k in keys:
        out[k.kind] = out.get(k.kind, 0) + 1
    return out


def invalid_by_kind(statuses: Mapping[Any, Mapping[str, Any]]) -> dict[str, int]:
    """Objects whose status has Accepted or ResolvedRefs not True (themselves, or for one
    of a Route's parents), per kind."""
    out: dict[str, int] = {}
    for k, status in statuses.items():
        if _not_accepted(status):
            out[k.kind] = out.get(k.kind, 0) + 1
    return out


def _not_accepted(status: Mapping[str, Any]) -> bool:
    for c in status.get("conditions", ()):
        if c.get("type") in _VALIDITY and c.get("status") != "True":
            return True
    return any(_not_accepted(p) for p in status.get("parents", ()))


_VALIDITY = ("Accepted", "ResolvedRefs")


# --------------------------------------------------------------------------
# the datapaths


class _ScrapeErrors:
    def __init__(self) -> None:
        # Registered after the collectors (see register_datapaths): a scrape reports the
        # error it met itself.
        self.counter = Counter(
            "nodegate_scrape_errors_total",
            "Scrapes in which a datapath could not report its counters (left out of that scrape)",
            ["datapath"],
            registry=None,
        )


_ERRORS: dict[CollectorRegistry, _ScrapeErrors] = {}


class L4Source(Protocol):
    """What the L4 collector needs of bpf.datapath.L4Datapath."""

    name: str

    def counters(self) -> Any: ...


class L7Source(Protocol):
    """What the L7 collector needs of l7.engine.L7Datapath."""

    name: str

    def stats(self) -> dict[str, Any]: ...


def _l4_key(address: str, port: int, protocol: str) -> tuple[str, int, str]:
    with contextlib.suppress(ValueError):
        address = str(ipaddress.ip_address(address))
    return address, port, protocol


class L4Collector(Collector):
    """Per-listener counters of the eBPF datapath, keyed gateway / listener / route / protocol.

    The route comes from the NodeConfig the datapath applied (its listener's one route); a
    service the agent found pinned from a previous run and has not configured yet has empty
    labels until the first apply.
    """

    def __init__(
        self,
        datapath: L4Source,
        agent: AgentMetrics,
        errors: _ScrapeErrors,
        lock: threading.Lock = DATAPATH_LOCK,
    ) -> None:
        self.datapath = datapath
        self.agent = agent
        self.errors = errors
        self.lock = lock

    def collect(self) -> Iterator[Metric]:
        try:
            with self.lock:
                c = self.datapath.counters()
        except Exception:
            log.exception("metrics: the %s datapath could not report", self.datapath.name)
            self.errors.counter.labels(self.datapath.name).inc()
            return
        config = self.agent.config(self.datapath.name)
        routes: dict[tuple[str, int, str], tuple[str, str, str]] = {}
        for lst in config.l4 if config is not None else ():
            routes[_l4_key(lst.address, lst.port, lst.protocol)] = (
                ref_label(lst.gateway),
                lst.ref.section,
                ref_label(lst.route),
            )
        labels = ["gateway", "listener", "route", "protocol"]
        packets = CounterMetricFamily(
            "nodegate_l4_packets",
            "Packets the eBPF datapath forwarded for a listener: direction forward (client to "
            "backend) or reply (backend to client)",
            labels=[*labels, "direction"],
        )
        octets = CounterMetricFamily(
            "nodegate_l4_bytes",
            "Bytes (IP packets, headers included) the eBPF datapath forwarded for a listener",
            labels=[*labels, "direction"],
        )
        flows = CounterMetricFamily(
            "nodegate_l4_flows",
            "New flows (connections, UDP flows) the eBPF datapath assigned a backend",
            labels=labels,
        )
        drops = CounterMetricFamily(
            "nodegate_l4_drops",
            "Packets the eBPF datapath dropped or refused, by reason; those no listener owns "
            "(malformed) have empty gateway, listener and route",
            labels=[*labels, "reason"],
        )
        sums: dict[tuple[str, ...], list[int]] = {}
        drop_sums: dict[tuple[str, ...], int] = {}
        for lc in c.listeners:
            key = _l4_key(lc.address, lc.port, lc.protocol)
            gw, listener, route = routes.get(key, ("", "", ""))
            if not gw and lc.ref is not None:
                listener = lc.ref.section
            ls: tuple[str, ...] = (gw, listener, route, str(lc.protocol))
            s = sums.setdefault(ls, [0, 0, 0, 0, 0])
            for i, v in enumerate(
                (lc.packets, lc.reply_packets, lc.bytes, lc.reply_bytes, lc.new_flows)
            ):
                s[i] += int(v)
            for reason, n in lc.drops.items():
                drop_sums[(*ls, reason)] = drop_sums.get((*ls, reason), 0) + int(n)
        for reason, n in c.unattributed_drops.items():
            k = ("", "", "", "", reason)
            drop_sums[k] = drop_sums.get(k, 0) + int(n)
        maglev = GaugeMetricFamily(
            "nodegate_l4_maglev_generation",
            "The NodeConfig generation that last wrote a listener's Maglev table",
            labels=labels,
        )
        gens: dict[tuple[str, ...], int] = {}
        for lc in c.listeners:
            key = _l4_key(lc.address, lc.port, lc.protocol)
            gw, listener, route = routes.get(key, ("", "", ""))
            if gw:
                grow: tuple[str, ...] = (gw, listener, route, str(lc.protocol))
                gens[grow] = max(gens.get(grow, 0), int(lc.maglev_generation))
        for gkey, gen in sorted(gens.items()):
            maglev.add_metric(list(gkey), gen)
        for row, s in sorted(sums.items()):
            packets.add_metric([*row, "forward"], s[0])
            packets.add_metric([*row, "reply"], s[1])
            octets.add_metric([*row, "forward"], s[2])
            octets.add_metric([*row, "reply"], s[3])
            flows.add_metric(list(row), s[4])
        for dk, n in sorted(drop_sums.items()):
            drops.add_metric(list(dk), n)
        yield from (packets, octets, flows, drops, maglev)
        ct = GaugeMetricFamily(
            "nodegate_l4_conntrack_entries",
            "Live entries in the eBPF conntrack table (two per flow: forward and reply)",
        )
        ct.add_metric([], c.conntrack_entries)
        cf = GaugeMetricFamily(
            "nodegate_l4_conntrack_flows", "Live flows in the eBPF conntrack table"
        )
        cf.add_metric([], c.conntrack_flows)
        cap = GaugeMetricFamily(
            "nodegate_l4_conntrack_capacity_entries",
            "Entries the eBPF conntrack table holds before it evicts the least recently used",
        )
        cap.add_metric([], c.conntrack_capacity)
        age = GaugeMetricFamily(
            "nodegate_l4_conntrack_sample_age_seconds",
            "How old the conntrack figures are: a background walk samples them (a walk's cost "
            "grows with the flows, so scrapes never pay it)",
        )
        sampled = getattr(c, "conntrack_sampled_at", 0.0)
        age.add_metric([], time.monotonic() - sampled if sampled else float("nan"))
        yield from (ct, cf, cap, age)


# The L7 stats' counters: stats key -> (metric name without _total, help, labels).
_L7_COUNTERS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "requests",
        "nodegate_http_requests",
        "HTTP requests answered, by Gateway, listener, route, backend and status class "
        '(route "" : no route matched; backend "" : answered without a backend)',
        ("gateway", "listener", "route", "backend", "code_class"),
    ),
    (
        "upstream_connect_errors",
        "nodegate_http_upstream_connect_errors",
        "Connections to a backend that failed",
        ("route", "backend"),
    ),
    (
        "upstream_timeouts",
        "nodegate_http_upstream_timeouts",
        "Requests to a backend that timed out",
        ("route", "backend"),
    ),
    ("retries", "nodegate_http_retries", "Requests retried on a backend", ("route", "backend")),
    (
        "retry_budget_refusals",
        "nodegate_http_retry_budget_refusals",
        "Retries the retry budget refused",
        ("route", "backend"),
    ),
    (
        "mirror_sends",
        "nodegate_http_mirror_requests",
        "Requests mirrored to a backend (RequestMirror)",
        ("route", "backend"),
    ),
    (
        "tls_handshake_failures",
        "nodegate_tls_handshake_failures",
        "TLS handshakes with clients that failed",
        ("gateway", "listener"),
    ),
)
_L7_HISTOGRAMS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "request_seconds",
        "nodegate_http_request_duration_seconds",
        "Time from a request's head to the end of its response, by Gateway, listener and route",
        ("gateway", "listener", "route"),
    ),
    (
        "upstream_seconds",
        "nodegate_http_upstream_duration_seconds",
        "Time from sending a request to a backend to the end of its response",
        ("route", "backend"),
    ),
)


class L7Collector(Collector):
    """The L7 workers' counters, summed over workers by L7Datapath.stats()."""

    def __init__(
        self, datapath: L7Source, errors: _ScrapeErrors, lock: threading.Lock = DATAPATH_LOCK
    ) -> None:
        self.datapath = datapath
        self.errors = errors
        self.lock = lock

    def collect(self) -> Iterator[Metric]:
        try:
            with self.lock:
                stats = self.datapath.stats()
        except Exception:
            log.exception("metrics: the %s datapath could not report", self.datapath.name)
            self.errors.counter.labels(self.datapath.name).inc()
            return
        for key, name, doc, labels in _L7_COUNTERS:
            c = CounterMetricFamily(name, doc, labels=list(labels))
            for row, n in _sum_rows(stats.get(key, ()), labels).items():
                c.add_metric(list(row), n)
            yield c
        for key, name, doc, labels in _L7_HISTOGRAMS:
            h = HistogramMetricFamily(name, doc, labels=list(labels))
            for row in stats.get(key, ()):
                h.add_metric(
                    [str(row.get(x, "")) for x in labels],
                    _buckets(row["buckets"], int(row["count"])),
                    sum_value=float(row["sum"]),
                )
            yield h
        a = GaugeMetricFamily(
            "nodegate_http_active_connections",
            "Client connections open on a listener",
            labels=["gateway", "listener"],
        )
        for row, n in _sum_rows(
            stats.get("active_connections", ()), ("gateway", "listener")
        ).items():
            a.add_metric(list(row), n)
        yield a


def _sum_rows(
    rows: Iterable[Mapping[str, Any]], labels: Sequence[str]
) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}
    for row in rows:
        k = tuple(str(row.get(x, "")) for x in labels)
        out[k] = out.get(k, 0) + int(row["count"])
    return out


def _buckets(buckets: Iterable[Sequence[Any]], count: int) -> list[tuple[str, float]]:
    """[[le, cumulative], ...] as prometheus_client wants them, ending with +Inf = count."""
    out: list[tuple[str, float]] = []
    for le, n in buckets:
        bound = float(le)  # float("+Inf") and float("inf") both parse
        if math.isinf(bound):
            continue
        out.append((floatToGoString(bound), float(n)))
    out.append(("+Inf", float(count)))
    return out


def register_datapaths(
    datapaths: Iterable[Any],
    registry: CollectorRegistry = REGISTRY,
    agent: AgentMetrics = AGENT,
) -> list[Collector]:
    """Register a collector for each datapath that reports counters (L4: counters(), L7:
    stats()); the collectors, to unregister."""
    errors = _ERRORS.get(registry)
    first = errors is None
    if errors is None:
        errors = _ERRORS[registry] = _ScrapeErrors()
    added: list[Collector] = []
    for d in datapaths:
        collector: Collector
        if callable(getattr(d, "counters", None)):
            collector = L4Collector(d, agent, errors)
        elif callable(getattr(d, "stats", None)):
            collector = L7Collector(d, errors)
        else:
            continue
        registry.register(collector)
        errors.counter.labels(d.name)
        added.append(collector)
    if first:
        registry.register(errors.counter)
    return added
