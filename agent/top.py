"""`nodegate top`: live per-listener rates of both datapaths, from an agent's /metrics.

    nodegate top [--url http://127.0.0.1:9108/metrics] [--interval 2] [--count N]

Every interval it scrapes the endpoint and prints, per Gateway listener, what happened since
the previous scrape: for HTTP listeners (the L7 proxy) requests/s, 4xx/s and 5xx/s, and the
connections open; for TCP/UDP listeners (the eBPF datapath) packets/s and bytes/s both ways,
new flows/s and drops/s. A header gives the NodeConfig generation each datapath serves and
the conntrack table's fill. Plain ANSI (clear screen, bold); `--plain` for none.

Pure parts (rates, render) take samples and return values, so they are tested without a
terminal. A counter that went down (the agent restarted) counts from zero, as Prometheus'
rate() does.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]

CLEAR = "\x1b[H\x1b[2J"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
RESET = "\x1b[0m"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        default="http://127.0.0.1:9108/metrics",
        help="the agent's metrics endpoint (default http://127.0.0.1:9108/metrics)",
    )
    p.add_argument("--interval", type=float, default=2.0, help="seconds between screens")
    p.add_argument(
        "--count", type=int, default=0, help="screens to show, then exit (default: until ^C)"
    )
    p.add_argument("--plain", action="store_true", help="no ANSI escapes: one screen after another")


def scrape(url: str, timeout: float = 10.0) -> Samples:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        text = r.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


@dataclass
class Row:
    path: str  # "L7" | "L4"
    gateway: str
    listener: str
    protocol: str
    rates: dict[str, float] = field(default_factory=dict)  # per second
    gauges: dict[str, float] = field(default_factory=dict)


# (counter, column, label filter); a listener is named by its gateway/listener/protocol labels.
_L7: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("nodegate_http_requests_total", "req/s", {}),
    ("nodegate_http_requests_total", "4xx/s", {"code_class": "4xx"}),
    ("nodegate_http_requests_total", "5xx/s", {"code_class": "5xx"}),
)
_L4: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("nodegate_l4_packets_total", "pkt/s in", {"direction": "forward"}),
    ("nodegate_l4_packets_total", "pkt/s out", {"direction": "reply"}),
    ("nodegate_l4_bytes_total", "B/s in", {"direction": "forward"}),
    ("nodegate_l4_bytes_total", "B/s out", {"direction": "reply"}),
    ("nodegate_l4_flows_total", "flows/s", {}),
    ("nodegate_l4_drops_total", "drops/s", {}),
)


def _increase(before: float | None, after: float) -> float:
    if before is None or after < before:  # a new series, or a counter reset: from zero
        return after
    return after - before


def rates(before: Samples, after: Samples, seconds: float) -> list[Row]:
    """Per-listener rates between two scrapes `seconds` apart, sorted by path and name."""
    rows: dict[tuple[str, str, str, str], Row] = {}

    def row(path: str, labels: Mapping[str, str]) -> Row:
        gw, lst = labels.get("gateway", ""), labels.get("listener", "")
        proto = labels.get("protocol", "HTTP" if path == "L7" else "")
        key = (path, gw, lst, proto)
        if key not in rows:
            rows[key] = Row(path, gw, lst, proto)
        return rows[key]

    for path, table in (("L7", _L7), ("L4", _L4)):
        for name, column, want in table:
            for (n, labels), value in after.items():
                if n != name:
                    continue
                d = dict(labels)
                if any(d.get(k) != v for k, v in want.items()):
                    continue
                r = row(path, d)
                inc = _increase(before.get((n, labels)), value)
                r.rates[column] = r.rates.get(column, 0.0) + inc / max(seconds, 1e-9)
    for (n, labels), value in after.items():
        if n == "nodegate_http_active_connections":
            r = row("L7", dict(labels))
            r.gauges["conns"] = r.gauges.get("conns", 0.0) + value
    return [rows[k] for k in sorted(rows)]


def _human(v: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.1f}{unit}"
    return f"{v:.1f}" if v % 1 else f"{v:.0f}"


def header(after: Samples) -> str:
    gen = after.get(("nodegate_config_generation", frozenset()), 0)
    applied = sorted(
        (dict(labels)["datapath"], v)
        for (n, labels), v in after.items()
        if n == "nodegate_config_applied_generation"
    )
    parts = [f"generation {gen:.0f}"]
    parts += [f"{d} {v:.0f}" for d, v in applied]
    cap = after.get(("nodegate_l4_conntrack_capacity_entries", frozenset()))
    entries = after.get(("nodegate_l4_conntrack_entries", frozenset()))
    if cap:
        parts.append(f"conntrack {entries or 0:.0f}/{cap:.0f} ({100 * (entries or 0) / cap:.1f}%)")
    return "  ".join(parts)


def render(rows: list[Row], after: Samples, url: str, seconds: float, ansi: bool) -> str:
    bold, dim, reset = (BOLD, DIM, RESET) if ansi else ("", "", "")
    lines = [f"{bold}nodegate top{reset}  {url}  every {seconds:.1f}s", header(after), ""]
    for path, title, columns in (
        ("L7", "HTTP listeners (L7 proxy)", ["req/s", "4xx/s", "5xx/s", "conns"]),
        ("L4", "TCP/UDP listeners (eBPF)", [c for _, c, _ in _L4]),
    ):
        mine = [r for r in rows if r.path == path]
        lines.append(f"{bold}{title}{reset}")
        names = ["GATEWAY", "LISTENER", "PROTO", *(c.upper() for c in columns)]
        table = [names]
        for r in mine:
            values = {**r.rates, **r.gauges}
            table.append(
                [r.gateway or "-", r.listener or "-", r.protocol or "-"]
                + [_human(values.get(c, 0.0)) for c in columns]
            )
        if not mine:
            lines.append(f"{dim}  none{reset}")
        else:
            widths = [max(len(t[i]) for t in table) for i in range(len(names))]
            for i, t in enumerate(table):
                cells = [
                    t[j].ljust(widths[j]) if j < 3 else t[j].rjust(widths[j]) for j in range(len(t))
                ]
                text = "  " + "  ".join(cells)
                lines.append(f"{dim}{text}{reset}" if i == 0 else text)
        lines.append("")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    ansi = not args.plain and sys.stdout.isatty()
    try:
        before, t0 = scrape(args.url), time.monotonic()
    except OSError as e:
        print(f"nodegate top: {args.url}: {e}", file=sys.stderr)
        return 1
    shown = 0
    try:
        while args.count <= 0 or shown < args.count:
            time.sleep(args.interval)
            try:
                after, t1 = scrape(args.url), time.monotonic()
            except OSError as e:
                print(f"nodegate top: {args.url}: {e}", file=sys.stderr)
                return 1
            screen = render(rates(before, after, t1 - t0), after, args.url, t1 - t0, ansi)
            sys.stdout.write((CLEAR if ansi else "") + screen + "\n")
            sys.stdout.flush()
            before, t0 = after, t1
            shown += 1
    except KeyboardInterrupt:
        pass
    return 0
