"""`python -m bench.l7`: nodegate's L7 against nginx and haproxy as reverse proxies.

Not a test: it measures. One run starts one backend (nginx answering a fixed
200 from memory, pinned to its own core) and, one after the other, each proxy
pinned to one core (taskset) in front of it. The same load generator (wrk,
pinned next to the backend) drives each proxy with 1 and with 50 keep-alive
connections. Reported per proxy and concurrency: requests per second, p50 and
p99 latency, proxy CPU time per request (from /proc/<pid>/stat), and each as a
ratio to nginx. Output: a markdown table on stdout (and in --out).

Only loopback is used. Needs root or not, `nginx`, `haproxy` and `wrk` on PATH
(Debian: nginx-light, haproxy, wrk).

`--profile FILE` also runs nodegate's worker under cProfile for the 50-connection
load and writes the top functions to FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.nodeconfig import (
    Backend,
    Endpoint,
    HTTPEntry,
    HTTPListener,
    HTTPMatch,
    HTTPPort,
    HTTPRule,
    NodeConfig,
    Ref,
    VirtualHost,
)
from l7.engine import L7Datapath

ADDR = "127.0.0.1"
BACKEND_PORT = 18080
PORTS = {"nginx": 18081, "haproxy": 18082, "nodegate": 18083}
BODY = "x" * 64
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    proxy: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_req: float
    round: int = 0


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / CLK_TCK


def descendants(pid: int) -> list[int]:
    out = [pid]
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            if ppid == pid:
                out += descendants(int(p.name))
    return out


def wait_port(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ADDR, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {ADDR}:{port}")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(
    port: int, connections: int, seconds: int, core: int
) -> tuple[float, float, float, int]:
    """(req/s, p50 ms, p99 ms, requests) from one wrk run."""
    out = subprocess.run(
        [
            "taskset",
            "-c",
            str(core),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            f"http://{ADDR}:{port}/",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    pct = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    p = {k: _ms(*re.match(r"([\d.]+)(\w+)", v).groups()) for k, v in pct.items()}  # type: ignore[union-attr]
    if re.search(r"Non-2xx|Socket errors", out):
        print(f"warning: wrk reported errors on port {port}:\n{out}", file=sys.stderr)
    return rps, p["50"], p["99"], total


NGINX_BACKEND = """
worker_processes 1; daemon off; pid {dir}/backend.pid; error_log stderr error;
events {{ worker_connections 4096; }}
http {{ access_log off;
  server {{ listen {addr}:{port} reuseport backlog=4096; keepalive_requests 1000000;
    location / {{ default_type application/json; return 200 '{body}'; }} }} }}
"""

NGINX_PROXY = """
worker_processes 1; daemon off; pid {dir}/proxy.pid; error_log stderr error;
events {{ worker_connections 4096; }}
http {{ access_log off;
  upstream be {{ server {addr}:{backend}; keepalive 128; keepalive_requests 1000000; }}
  server {{ listen {addr}:{port} backlog=4096; keepalive_requests 1000000;
    location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }} }} }}
"""

HAPROXY = """
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  option forwardfor
  http-reuse always
frontend fe
  bind {addr}:{port}
  default_backend be
backend be
  server s1 {addr}:{backend}
"""


@contextmanager
def process(args: list[str], core: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["taskset", "-c", str(core), *args], stdout=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def nodegate_config() -> NodeConfig:
    backend = Backend(
        ref=Ref(kind="Service", namespace="bench", name="be"),
        port=BACKEND_PORT,
        endpoints=(Endpoint(address=ADDR, port=BACKEND_PORT),),
    )
    rule = HTTPRule(ref=Ref(kind="HTTPRoute", namespace="bench", name="r"), backends=(backend,))
    vhost = VirtualHost(hostname="", rules=(rule,), entries=(HTTPEntry(match=HTTPMatch(), rule=0),))
    listener = HTTPListener(
        ref=Ref(kind="Gateway", namespace="bench", name="gw", section="http"),
        gateway=Ref(kind="Gateway", namespace="bench", name="gw"),
        hostname="",
        virtual_hosts=(vhost,),
    )
    return NodeConfig(
        http=(HTTPPort(address=ADDR, port=PORTS["nodegate"], tls=False, listeners=(listener,)),)
    )


@contextmanager
def nodegate(core: int, profile: str | None = None) -> Iterator[list[int]]:
    if profile:
        os.environ["NODEGATE_L7_PROFILE"] = profile
    dp = L7Datapath(workers=1)
    dp.start()
    os.environ.pop("NODEGATE_L7_PROFILE", None)
    try:
        for pid in dp.pids():
            os.sched_setaffinity(pid, {core})
        dp.apply(nodegate_config(), 1)
        yield dp.pids()
    finally:
        dp.stop(drain_timeout=1.0)


def measure(
    name: str, pids: list[int], seconds: int, wrk_core: int, round_: int = 0
) -> list[Result]:
    port = PORTS[name]
    wait_port(port)
    run_wrk(port, 10, 1, wrk_core)  # warm-up: pools, caches
    out = []
    for conns in (1, 50):
        before = cpu_seconds(pids)
        rps, p50, p99, total = run_wrk(port, conns, seconds, wrk_core)
        cpu = cpu_seconds(pids) - before
        out.append(Result(name, conns, rps, p50, p99, cpu / max(total, 1) * 1e6, round_))
    return out


# A row's figures and their ratios to nginx's in the same round.
FIGURES = ("rps", "p50_ms", "p99_ms", "cpu_us_per_req")


def summary(results: list[Result]) -> list[tuple[Result, dict[str, float]]]:
    """One row per proxy and concurrency: the median of each figure over the rounds, and
    the median of its ratio to nginx's figure in the same round (paired, so that what the
    machine's neighbours did in one round does not leak into another's ratio)."""
    nginx = {(r.round, r.connections): r for r in results if r.proxy == "nginx"}
    rows: dict[tuple[str, int], list[Result]] = {}
    for r in results:
        rows.setdefault((r.proxy, r.connections), []).append(r)
    out = []
    for (proxy, conns), runs in rows.items():
        med = Result(
            proxy,
            conns,
            *(statistics.median(getattr(r, f) for r in runs) for f in FIGURES),
        )
        ratios = {
            f: statistics.median(getattr(r, f) / getattr(nginx[(r.round, conns)], f) for r in runs)
            for f in FIGURES
        }
        out.append((med, ratios))
    return out


def table(results: list[Result]) -> str:
    cols = [
        "proxy",
        "conns",
        "req/s",
        "vs-nginx",
        "p50-ms",
        "p99-ms",
        "p99-vs-nginx",
        "CPU-µs/req",
        "CPU-vs-nginx",
    ]
    lines = [
        "| " + " | ".join(c.replace("-", " ") for c in cols) + " |",
        "|---|" + "---:|" * (len(cols) - 1),
    ]
    for r, ratio in summary(results):
        cells = [
            r.proxy,
            str(r.connections),
            f"{r.rps:,.0f}",
            f"{ratio['rps']:.2f}",
            f"{r.p50_ms:.3f}",
            f"{r.p99_ms:.3f}",
            f"{ratio['p99_ms']:.2f}",
            f"{r.cpu_us_per_req:.1f}",
            f"{ratio['cpu_us_per_req']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rounds_table(results: list[Result], proxy: str = "nodegate", conns: int = 50) -> str:
    """`proxy` at `conns` connections round by round, each figure against nginx's of the
    same round."""
    nginx = {r.round: r for r in results if r.proxy == "nginx" and r.connections == conns}
    lines = [
        f"| round | {proxy} req/s | vs nginx | p99 ms | nginx p99 ms | p99 vs nginx "
        "| CPU µs/req | CPU vs nginx |",
        "|---|" + "---:|" * 7,
    ]
    for r in results:
        if r.proxy != proxy or r.connections != conns:
            continue
        b = nginx[r.round]
        cells = [
            str(r.round + 1),
            f"{r.rps:,.0f}",
            f"{r.rps / b.rps:.2f}",
            f"{r.p99_ms:.2f}",
            f"{b.p99_ms:.2f}",
            f"{r.p99_ms / b.p99_ms:.2f}",
            f"{r.cpu_us_per_req:.1f}",
            f"{r.cpu_us_per_req / b.cpu_us_per_req:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.l7", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=int, default=10, help="per measurement (default 10)")
    parser.add_argument("--proxy-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1, help="wrk and the backend (default 1)")
    parser.add_argument("--out", type=Path, help="also write the table here")
    parser.add_argument("--json", type=Path, help="write raw results as JSON")
    parser.add_argument("--profile", help="write a cProfile summary of nodegate's worker here")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every proxy this many times, interleaved, and report medians (default 1)",
    )
    args = parser.parse_args(argv)
    for tool in ("nginx", "haproxy", "wrk", "taskset"):
        if shutil.which(tool) is None:
            print(
                f"{tool} is not installed (Debian: apt-get install nginx-light haproxy wrk)",
                file=sys.stderr,
            )
            return 2
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="nodegate-bench-") as d:
        cfg = Path(d)
        (cfg / "backend.conf").write_text(
            NGINX_BACKEND.format(dir=d, addr=ADDR, port=BACKEND_PORT, body=BODY)
        )
        (cfg / "proxy.conf").write_text(
            NGINX_PROXY.format(dir=d, addr=ADDR, port=PORTS["nginx"], backend=BACKEND_PORT)
        )
        (cfg / "haproxy.cfg").write_text(
            HAPROXY.format(addr=ADDR, port=PORTS["haproxy"], backend=BACKEND_PORT)
        )

        def nginx_args(conf: str) -> list[str]:
            return ["nginx", "-p", d, "-e", "stderr", "-c", str(cfg / conf)]

        with process(nginx_args("backend.conf"), args.load_core):
            wait_port(BACKEND_PORT)
            for n in range(args.rounds):
                with process(nginx_args("proxy.conf"), args.proxy_core) as p:
                    time.sleep(0.3)
                    results += measure("nginx", descendants(p.pid), args.seconds, args.load_core, n)
                with process(["haproxy", "-f", str(cfg / "haproxy.cfg")], args.proxy_core) as p:
                    time.sleep(0.3)
                    results += measure(
                        "haproxy", descendants(p.pid), args.seconds, args.load_core, n
                    )
                with nodegate(args.proxy_core, args.profile if n == 0 else None) as pids:
                    results += measure("nodegate", pids, args.seconds, args.load_core, n)
    out = table(results)
    if args.rounds > 1:
        out += "\n\nnodegate at 50 connections, round by round:\n\n" + rounds_table(results)
    header = (
        f"nodegate L7 vs nginx vs haproxy, one core each (taskset -c {args.proxy_core}), "
        f"wrk and backend on core {args.load_core}, {args.seconds}s per cell, loopback, "
        f"{len(BODY)}-byte responses"
        + (
            f"; {args.rounds} rounds (the proxies in turn in each), medians, each ratio the "
            "median of the rounds' ratios to nginx"
            if args.rounds > 1
            else ""
        )
        + "\n\n"
    )
    print(header + out)
    if args.out:
        args.out.write_text(header + out + "\n")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    return 0
