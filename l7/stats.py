"""Per-worker L7 counters and histograms, and their sum over workers.

Every key is built from NodeConfig refs and small enums only: Gateway and route
as "namespace/name", the listener's name, the backend Service as
"namespace/name", a status class ("2xx"). Never a path, a host or a client
address: those may appear in the access log, not here. Route "" means no route
matched; backend "" means the gateway answered without a backend (404, a
redirect, a CORS preflight, an invalid backendRef).

The hot path pays a dict increment per counter and a bisect plus two additions
per histogram observation; `snapshot()` (asked for over the control channel)
turns the dicts into the JSON-able rows `L7Datapath.stats()` sums.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from typing import Any

# Prometheus client's default histogram buckets (seconds); +Inf is the count.
BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)

CODE_CLASSES = ("1xx", "1xx", "2xx", "3xx", "4xx", "5xx")

# Counters keyed by (route, backend).
BACKEND_COUNTERS = (
    "upstream_connect_errors",
    "upstream_timeouts",
    "retries",
    "retry_budget_refusals",
    "mirror_sends",
)


def code_class(status: int) -> str:
    return CODE_CLASSES[status // 100] if 100 <= status < 600 else "5xx"


class Histogram:
    """Observations counted per bucket (not cumulative until snapshot), with sum and count."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one: above the largest bucket
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        # Prometheus buckets are upper bounds, inclusive ("le").
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    def row(self) -> dict[str, Any]:
        cumulative = []
        n = 0
        for le, c in zip(BUCKETS, self.counts, strict=False):
            n += c
            cumulative.append([le, n])
        return {"buckets": cumulative, "sum": self.sum, "count": n + self.counts[-1]}


class WorkerStats:
    """One worker's counters, written by the request path, read by `snapshot()`."""

    def __init__(self) -> None:
        # (gateway, listener, route, backend, code class) -> requests answered
        self.requests: dict[tuple[str, str, str, str, str], int] = {}
        self.request_seconds: dict[tuple[str, str, str], Histogram] = {}
        self.upstream_seconds: dict[tuple[str, str], Histogram] = {}
        self.backend_counters: dict[str, dict[tuple[str, str], int]] = {
            name: {} for name in BACKEND_COUNTERS
        }
        self.tls_handshake_failures: dict[tuple[str, str], int] = {}

    def request_done(
        self,
        gateway: str,
        listener: str,
        route: str,
        backend: str,
        status: int,
        seconds: float,
    ) -> None:
        key = (
            gateway,
            listener,
            route,
            backend,
            CODE_CLASSES[status // 100] if 100 <= status < 600 else "5xx",  # code_class
        )
        self.requests[key] = self.requests.get(key, 0) + 1
        hkey = (gateway, listener, route)
        h = self.request_seconds.get(hkey)
        if h is None:
            h = self.request_seconds[hkey] = Histogram()
        h.observe(seconds)

    def upstream_done(self, route: str, backend: str, seconds: float) -> None:
        key = (route, backend)
        h = self.upstream_seconds.get(key)
        if h is None:
            h = self.upstream_seconds[key] = Histogram()
        h.observe(seconds)

    def count(self, counter: str, route: str, backend: str) -> None:
        d = self.backend_counters[counter]
        key = (route, backend)
        d[key] = d.get(key, 0) + 1

    def handshake_failed(self, gateway: str, listener: str) -> None:
        key = (gateway, listener)
        self.tls_handshake_failures[key] = self.tls_handshake_failures.get(key, 0) + 1

    def snapshot(self, active: Mapping[tuple[str, str], int], generation: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": [
                {
                    "gateway": g,
                    "listener": li,
                    "route": r,
                    "backend": b,
                    "code_class": c,
                    "count": n,
                }
                for (g, li, r, b, c), n in self.requests.items()
            ],
            "request_seconds": [
                {"gateway": g, "listener": li, "route": r, **h.row()}
                for (g, li, r), h in self.request_seconds.items()
            ],
            "upstream_seconds": [
                {"route": r, "backend": b, **h.row()} for (r, b), h in self.upstream_seconds.items()
            ],
            "active_connections": [
                {"gateway": g, "listener": li, "count": n} for (g, li), n in active.items()
            ],
            "tls_handshake_failures": [
                {"gateway": g, "listener": li, "count": n}
                for (g, li), n in self.tls_handshake_failures.items()
            ],
            "generation": generation,
        }
        for name, d in self.backend_counters.items():
            out[name] = [{"route": r, "backend": b, "count": n} for (r, b), n in d.items()]
        return out


# The label fields of each family, in row order (what identifies a row when summing).
LABELS: dict[str, tuple[str, ...]] = {
    "requests": ("gateway", "listener", "route", "backend", "code_class"),
    "request_seconds": ("gateway", "listener", "route"),
    "upstream_seconds": ("route", "backend"),
    "active_connections": ("gateway", "listener"),
    "tls_handshake_failures": ("gateway", "listener"),
    **{name: ("route", "backend") for name in BACKEND_COUNTERS},
}
HISTOGRAMS = ("request_seconds", "upstream_seconds")


def empty() -> dict[str, Any]:
    out: dict[str, Any] = {name: [] for name in LABELS}
    out["generation"] = 0
    return out


def merge(snapshots: Iterable[Mapping[str, Any]], generation: int) -> dict[str, Any]:
    """Sum worker snapshots row by row (counts, and histograms bucket by bucket)."""
    snaps = list(snapshots)
    out = empty()
    for name, labels in LABELS.items():
        rows: dict[tuple[str, ...], dict[str, Any]] = {}
        for snap in snaps:
            for row in snap.get(name, ()):
                key = tuple(str(row[x]) for x in labels)
                have = rows.get(key)
                if have is None:
                    rows[key] = {
                        **row,
                        **(
                            {"buckets": [list(b) for b in row["buckets"]]}
                            if name in HISTOGRAMS
                            else {}
                        ),
                    }
                    continue
                have["count"] += row["count"]
                if name in HISTOGRAMS:
                    have["sum"] += row["sum"]
                    for mine, theirs in zip(have["buckets"], row["buckets"], strict=True):
                        mine[1] += theirs[1]
        out[name] = list(rows.values())
    out["generation"] = generation
    return out
