"""L4 bench: nodegate (tc, XDP) against direct, nftables DNAT, haproxy and
nginx stream, side by side, inside one lab. A benchmark, not a test.

    python bench/l4/run.py [--seconds 5] [--out out/bench-l4.json]

Needs (Debian packages): iperf3 nftables haproxy nginx libnginx-mod-stream.
Traffic stays in the lab's namespaces. Workloads, each per method:
  tcp     iperf3 TCP, one stream: Gbit/s
  conn    new TCP connections per second (connect, close), 2 client processes
  udp     iperf3 UDP, 64-byte datagrams, unlimited rate: datagrams/s received
Gateway work (forwarding, NAT, proxying) runs on CPU 1: RPS steers the
gateway's veth receive processing there and the proxies are pinned there;
clients and backends are pinned to CPU 0. "cost" is the gateway core's work
(GatewayCore: its irq and softirq time, kept measurable by a soaker, plus
the proxies' own CPU time) per GB, per 1000 connections and per million
datagrams. For nodegate, the kernel also times its BPF programs
(kernel.bpf_stats_enabled): the load balancer's own part of that work.
Native XDP on veth (nodegate-xdp) runs in the sender's NAPI on CPU 0 and
needs the lab changed (see NativeXdpLab): it is compared with direct under
the same settings (direct-native); read its BPF program time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent.nodeconfig import Backend, Endpoint, L4Listener, NodeConfig, Ref  # noqa: E402
from lab.netns import Lab  # noqa: E402

GW_CPU, LOAD_CPU = 1, 0
PORT_IPERF, PORT_CONN = 5201, 7000
PIN = "/sys/fs/bpf/ngbench"

CONN_SERVER = r"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000)); s.listen(4096)
while True:
    c, _ = s.accept(); c.close()
"""

CONN_CLIENT = r"""
import socket, sys, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
n, end = 0, time.monotonic() + secs
while time.monotonic() < end:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    try:
        s.connect((host, port)); n += 1
    except OSError:
        pass
    s.close()
print(n)
"""


SOAKER = r"""
import os
os.nice(19)
os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
while True:
    pass
"""


def cpu_columns(cpu: int) -> list[int]:
    """The /proc/stat jiffies of one CPU: user nice system idle iowait irq softirq ..."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            return [int(x) for x in line.split()[1:]]
    raise LookupError(f"cpu{cpu} not in /proc/stat")


def tree_ticks(roots: list[int]) -> int:
    """utime + stime, in clock ticks, of the processes `roots` and their descendants."""
    stats: dict[int, tuple[int, int]] = {}  # pid -> (ppid, ticks)
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            stats[int(d.name)] = (int(f[1]), int(f[11]) + int(f[12]))
    keep, grew = set(roots) & set(stats), True
    while grew:
        more = {pid for pid, (ppid, _) in stats.items() if ppid in keep} - keep
        keep |= more
        grew = bool(more)
    return sum(stats[pid][1] for pid in keep)


class GatewayCore:
    """How much CPU the gateway's work takes on GW_CPU, robust to other load.

    The kernel samples CPU time at the tick (no IRQ time accounting in this
    kernel), and under NO_HZ an idle CPU has no tick, so softirq work done on
    a CPU woken from idle (RPS backlog, NAPI) is mostly never sampled. A
    soaker (SCHED_IDLE, nice 19: the scheduler's least weight) keeps GW_CPU
    out of idle for the whole run, so the tick runs and lands in the irq and
    softirq columns whenever packet work runs, whichever task it interrupts.
    The gateway's work is then those two columns plus the CPU time of the
    method's own processes (haproxy, nginx): other processes that happen to
    run on the machine are left out, which wall time minus idle would not."""

    def __init__(self) -> None:
        self.pids: list[int] = []  # the method's processes (proxies)

    def __enter__(self) -> GatewayCore:
        self.soaker = subprocess.Popen(pinned([sys.executable, "-c", SOAKER], GW_CPU))
        return self

    def __exit__(self, *a: object) -> None:
        self.soaker.kill()
        self.soaker.wait()

    def sample(self) -> float:
        """Seconds of gateway work on GW_CPU so far (a counter; use differences)."""
        c = cpu_columns(GW_CPU)
        return (c[5] + c[6] + tree_ticks(self.pids)) / os.sysconf("SC_CLK_TCK")


CORE = GatewayCore()


class Meter:
    """Gateway-core seconds (CORE) and, per CPU, wall time minus idle."""

    def __enter__(self) -> Meter:
        self.t0, self.i0, self.g0 = time.monotonic(), idle_times(), CORE.sample()
        return self

    def __exit__(self, *a: object) -> None:
        self.t1, self.i1, g1 = time.monotonic(), idle_times(), CORE.sample()
        wall = self.t1 - self.t0
        self.busy = {c: max(0.0, wall - (self.i1[c] - self.i0[c])) for c in self.i0}
        self.busy[GW_CPU] = g1 - self.g0


def idle_times() -> dict[int, float]:
    """cpu -> idle + iowait seconds (exact under NO_HZ, unlike the busy columns)."""
    hz = os.sysconf("SC_CLK_TCK")
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            f = [int(x) for x in line.split()[1:]]
            out[int(line.split()[0][3:])] = (f[3] + f[4]) / hz
    return out


def listener(proto: str, vip: str, port: int, backend: str, bport: int) -> L4Listener:
    r = Ref(kind="Gateway", namespace="bench", name="gw", section=f"{proto}{port}")
    b = Backend(
        ref=Ref(kind="Service", namespace="bench", name="b"),
        endpoints=(Endpoint(address=backend, port=bport),),
    )
    return L4Listener(ref=r, gateway=r, protocol=proto, address=vip, port=port, backends=(b,))  # type: ignore[arg-type]


def _rps(netns: str, ifnames: list[str], cpu: int) -> None:
    mask = format(1 << cpu, "x")
    script = "; ".join(
        f"for q in /sys/class/net/{n}/queues/rx-*; do echo {mask} > $q/rps_cpus; done"
        for n in ifnames
    )
    subprocess.run(["ip", "netns", "exec", netns, "sh", "-c", script], check=True)


def set_rps(lab: Lab) -> None:
    """Receive work of the gateway node's links on GW_CPU, of the switch's
    ports (bridge, and so the hosts behind them) on LOAD_CPU."""
    _rps(lab.gateway.netns, [link.name for link in lab.gateway.links.values()], GW_CPU)
    ports = subprocess.run(
        ["ip", "-n", lab.switch, "-o", "link", "show", "type", "veth"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in ports.splitlines()]
    _rps(lab.switch, names, LOAD_CPU)


def pinned(argv: list[str], cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv]


class Bench:
    def __init__(self, lab: Lab, seconds: float, tmp: Path) -> None:
        self.lab, self.seconds, self.tmp = lab, seconds, tmp
        self.backend = lab.backends[0]
        self.vip = str(lab.gateway.add_address())
        self.baddr = str(self.backend.address)
        self.backend.run(
            pinned(["iperf3", "-s", "-p", str(PORT_IPERF)], LOAD_CPU), stdout=subprocess.DEVNULL
        )
        self.backend.run(pinned([sys.executable, "-c", CONN_SERVER], LOAD_CPU))
        set_rps(lab)
        time.sleep(0.5)

    def iperf(self, target: str, udp: bool) -> dict[str, Any]:
        argv = ["iperf3", "-c", target, "-p", str(PORT_IPERF), "-t", str(self.seconds), "-J"]
        if udp:
            argv += ["-u", "-b", "0", "-l", "64"]
        with Meter() as m:
            out = self.lab.client.check_output(pinned(argv, LOAD_CPU), timeout=self.seconds + 30)
        end = json.loads(out)["end"]
        if udp:
            s = end["sum"]
            received = s["packets"] - s["lost_packets"]
            return {"rate": received / s["seconds"], "units": received / 1e6, "busy": m.busy}
        s = end["sum_received"]
        return {"rate": s["bits_per_second"] / 1e9, "units": s["bytes"] / 1e9, "busy": m.busy}

    def conns(self, target: str) -> dict[str, Any]:
        argv = pinned(
            [sys.executable, "-c", CONN_CLIENT, target, str(PORT_CONN), str(self.seconds)], LOAD_CPU
        )
        with Meter() as m:
            procs = [self.lab.client.run(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
            n = sum(int(p.communicate(timeout=self.seconds + 30)[0]) for p in procs)
        return {"rate": n / self.seconds, "units": n / 1000, "busy": m.busy}

    def runs(self, target: str, udp: bool = True) -> dict[str, Any]:
        """Workload name -> a call running it; a failure is returned, not
        raised, so one failed workload never hides the others."""

        def guarded(fn: Any) -> Any:
            def call() -> dict[str, Any]:
                try:
                    return dict(fn())
                except Exception as e:
                    return {"error": f"{type(e).__name__}: {e}"[:300]}

            return call

        runs = {"tcp": lambda: self.iperf(target, False), "conn": lambda: self.conns(target)}
        if udp:
            runs["udp"] = lambda: self.iperf(target, True)
        return {name: guarded(fn) for name, fn in runs.items()}

    def all(self, target: str, udp: bool = True) -> dict[str, Any]:
        return {name: fn() for name, fn in self.runs(target, udp).items()}


def prog_stats(pid: int) -> dict[str, tuple[int, int]]:
    """prog id -> (run_time_ns, run_cnt) of every BPF program the process holds
    (its fds' fdinfo; counted while kernel.bpf_stats_enabled is 1)."""
    out: dict[str, tuple[int, int]] = {}
    for fd in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            info = dict(line.split(":", 1) for line in fd.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if "prog_id" in info and "run_cnt" in info:  # one entry per program, not per fd
            out[info["prog_id"].strip()] = (int(info["run_time_ns"]), int(info["run_cnt"]))
    return out


class BpfStats:
    """kernel.bpf_stats_enabled=1 for the run (restored after): the kernel
    then times every BPF program run, helpers included."""

    PATH = Path("/proc/sys/kernel/bpf_stats_enabled")

    def __enter__(self) -> BpfStats:
        self.old = self.PATH.read_text().strip()
        self.PATH.write_text("1")
        return self

    def __exit__(self, *a: object) -> None:
        self.PATH.write_text(self.old)


def run_nodegate(b: Bench, mode: str) -> dict[str, Any]:
    cfg = b.tmp / "l4.json"
    cfg.write_text(
        NodeConfig(
            l4=(
                listener("TCP", b.vip, PORT_IPERF, b.baddr, PORT_IPERF),
                listener("UDP", b.vip, PORT_IPERF, b.baddr, PORT_IPERF),
                listener("TCP", b.vip, PORT_CONN, b.baddr, PORT_CONN),
            )
        ).model_dump_json()
    )
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.datapath.gateway_agent",
            "--netns",
            b.lab.gateway.netns,
            "--pin-dir",
            PIN,
            "--mode",
            mode,
            str(cfg),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert agent.stdout is not None and agent.stdin is not None
    json.loads(agent.stdout.readline())
    try:
        with BpfStats():
            out: dict[str, Any] = {}
            for name, fn in b.runs(b.vip).items():
                before = prog_stats(agent.pid)
                out[name] = fn()
                after = prog_stats(agent.pid)
                ns = sum(after[k][0] - before.get(k, (0, 0))[0] for k in after)
                runs = sum(after[k][1] - before.get(k, (0, 0))[1] for k in after)
                if "error" not in out[name]:
                    out[name]["prog_ns"], out[name]["prog_runs"] = ns, runs
            return out
    finally:
        agent.stdin.write("exit\n")
        agent.stdin.flush()
        agent.wait()
        from bpf.datapath import cleanup
        from tests.datapath.conftest import in_netns

        with in_netns(b.lab.gateway.netns):
            cleanup(PIN)


class NativeXdpLab:
    """What native XDP on veth needs from the rest of the lab, for as long as
    the method runs (a real NIC needs neither): an XDP program (ng_pass) on
    every switch port that XDP_REDIRECT sends into, and senders computing
    full checksums (xdp_frames carry no CHECKSUM_PARTIAL), which also turns
    their TSO off. `direct-native` is direct under the same settings: the
    baseline nodegate-xdp is compared with."""

    def __init__(self, b: Bench) -> None:
        self.b = b

    def __enter__(self) -> NativeXdpLab:
        from bpf.bpffs import ensure_pin_dir
        from bpf.compile import compile_datapath
        from bpf.netlink import Netlink
        from bpf.options import Options
        from tests.datapath.conftest import in_netns, set_tx_checksum

        opt = Options(
            pin_dir=f"{PIN}-pass", max_services=1, max_backends=1, maglev_size=3, ct_size=16
        )
        ensure_pin_dir(opt.pin_dir)
        self.compiled = compile_datapath(opt.cflags(), programs=("ng_pass",))
        with in_netns(self.b.lab.switch), Netlink() as nl:
            self.ports = [i.index for i in nl.interfaces() if i.kind == "veth"]
            for index in self.ports:
                nl.attach_xdp(index, self.compiled.progs["ng_pass"], generic=False)
        self.links = [
            (h.netns, link.name)
            for h in (self.b.lab.client, self.b.backend)
            for link in h.links.values()
        ]
        for netns, name in self.links:
            set_tx_checksum(netns, name, on=False)
        return self

    def __exit__(self, *a: object) -> None:
        import shutil

        from bpf.netlink import Netlink
        from tests.datapath.conftest import in_netns, set_tx_checksum

        for netns, name in self.links:
            set_tx_checksum(netns, name, on=True)
        with in_netns(self.b.lab.switch), Netlink() as nl:
            for index in self.ports:
                nl.detach_xdp(index)
        self.compiled.close()
        shutil.rmtree(f"{PIN}-pass", ignore_errors=True)


def run_native(b: Bench, target: str | None) -> dict[str, Any]:
    """Under NativeXdpLab: direct to the backend (target set) or nodegate
    with native XDP (target None)."""
    with NativeXdpLab(b):
        return b.all(target) if target else run_nodegate(b, "xdp")


def run_nft(b: Bench) -> dict[str, Any]:
    rules = f"""
table ip ngbench {{
  chain pre {{
    type nat hook prerouting priority dstnat;
    ip daddr {b.vip} tcp dport {{ {PORT_IPERF}, {PORT_CONN} }} dnat to {b.baddr};
    ip daddr {b.vip} udp dport {PORT_IPERF} dnat to {b.baddr};
  }}
  chain post {{ type nat hook postrouting priority srcnat; ip daddr {b.baddr} masquerade; }}
}}
"""
    f = b.tmp / "nft.conf"
    f.write_text(rules)
    b.lab.gateway.check_output(["nft", "-f", str(f)])
    try:
        return b.all(b.vip)
    finally:
        b.lab.gateway.check_output(["nft", "delete", "table", "ip", "ngbench"])


def run_haproxy(b: Bench) -> dict[str, Any]:
    f = b.tmp / "haproxy.cfg"
    f.write_text(f"""
global
  maxconn 8000
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen iperf
  bind {b.vip}:{PORT_IPERF}
  server b {b.baddr}:{PORT_IPERF}
listen conn
  bind {b.vip}:{PORT_CONN}
  server b {b.baddr}:{PORT_CONN}
""")
    log = (b.tmp / "haproxy.log").open("wb")
    p = b.lab.gateway.run(pinned(["haproxy", "-f", str(f), "-db"], GW_CPU), stdout=log, stderr=log)
    time.sleep(1)
    CORE.pids = [p.pid]
    try:
        return b.all(b.vip, udp=False)  # haproxy has no UDP
    finally:
        CORE.pids = []
        p.terminate()
        p.wait()


def run_nginx(b: Bench) -> dict[str, Any]:
    f = b.tmp / "nginx.conf"
    f.write_text(f"""
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
pid {b.tmp}/nginx.pid;
error_log stderr;
events {{ worker_connections 8000; }}
stream {{
  server {{ listen {b.vip}:{PORT_IPERF}; proxy_pass {b.baddr}:{PORT_IPERF}; }}
  server {{ listen {b.vip}:{PORT_CONN}; proxy_pass {b.baddr}:{PORT_CONN}; }}
}}
""")
    p = b.lab.gateway.run(
        pinned(["nginx", "-c", str(f)], GW_CPU),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)
    CORE.pids = [p.pid]
    try:
        return b.all(b.vip, udp=False)  # not measured: see bench/l4/README.md
    finally:
        CORE.pids = []
        p.terminate()
        p.wait()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "out/bench-l4.json")
    ap.add_argument(
        "--methods",
        default="direct,nodegate-tc,nodegate-xdp-generic,direct-native,nodegate-xdp,"
        "nftables,haproxy,nginx",
    )
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each figure is the median")
    args = ap.parse_args()
    rounds: list[dict[str, Any]] = []
    with Lab(backends=1) as lab, tempfile.TemporaryDirectory() as tmp, CORE:
        b = Bench(lab, args.seconds, Path(tmp))
        runs = {
            "direct": lambda: b.all(b.baddr),
            "nodegate-tc": lambda: run_nodegate(b, "tc"),
            "nodegate-xdp-generic": lambda: run_nodegate(b, "xdp-generic"),
            "direct-native": lambda: run_native(b, b.baddr),
            "nodegate-xdp": lambda: run_native(b, None),
            "nftables": lambda: run_nft(b),
            "haproxy": lambda: run_haproxy(b),
            "nginx": lambda: run_nginx(b),
        }
        for i in range(args.repeat):  # methods interleaved, so drift hits all alike
            got: dict[str, Any] = {}
            for name in args.methods.split(","):
                print(f"... round {i + 1}: {name}", flush=True)
                got[name] = runs[name]()
            rounds.append(got)
    results = median_of(rounds)
    report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"median": results, "rounds": rounds}, indent=1))
    return 0


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method and workload: the median rate, units and per-CPU busy time."""
    out: dict[str, Any] = {}
    for name in rounds[0]:
        out[name] = {}
        for w in rounds[0][name]:
            ok = [r[name][w] for r in rounds if "error" not in r[name][w]]
            if not ok:
                out[name][w] = rounds[0][name][w]
                continue
            # busy per unit, so the median cost is of a ratio, not of two medians
            per = sorted(ok, key=lambda x: x["busy"][GW_CPU] / x["units"] if x["units"] else 0)
            mid = per[len(per) // 2]
            out[name][w] = {
                "rate": statistics.median(x["rate"] for x in ok),
                "units": mid["units"],
                "busy": mid["busy"],
                **{k: mid[k] for k in ("prog_ns", "prog_runs") if k in mid},
            }
    return out


def report(results: dict[str, Any]) -> None:
    nan = float("nan")
    works = ("tcp", "conn", "udp")

    def cost(r: dict[str, Any] | None) -> float:
        """Gateway-core CPU-seconds per unit (GB, 1000 connections, M datagrams)."""
        if not r or "error" in r or not r["units"]:
            return nan
        busy = r["busy"]
        return float(busy.get(str(GW_CPU), busy.get(GW_CPU, nan))) / float(r["units"])

    def prog(r: dict[str, Any] | None) -> float:
        """nodegate's BPF programs' CPU-seconds per unit (bpf_stats)."""
        if not r or not r.get("prog_runs") or not r["units"]:
            return nan
        return float(r["prog_ns"]) / 1e9 / float(r["units"])

    def rate(r: dict[str, Any] | None) -> float:
        return float(r["rate"]) if r and "rate" in r else nan

    def baseline(name: str) -> str:
        """What a method's rate is compared with: direct under the same link
        settings (direct-native for nodegate-xdp)."""
        return (
            "direct-native" if name == "nodegate-xdp" and "direct-native" in results else "direct"
        )

    print(
        f"{'method':22} {'TCP Gb/s':>9} {'conn/s':>9} {'UDP pps':>10} | gateway core CPU-s "
        f"per GB, per 1k conn, per M dgram | BPF programs' share of it"
    )
    for name, r in results.items():
        print(
            f"{name:22} {rate(r['tcp']):9.2f} {rate(r['conn']):9.0f} {rate(r.get('udp')):10.0f} | "
            + " ".join(f"{cost(r.get(w)):8.3f}" for w in works)
            + " | "
            + " ".join(f"{prog(r.get(w)):7.3f}" for w in works)
        )
        for w, x in r.items():
            if "error" in x:
                print(f"    {w}: {x['error']}")
    for name, r in results.items():
        runs = [
            f"{w} {r[w]['prog_ns'] / r[w]['prog_runs']:.0f}"
            for w in works
            if w in r and r[w].get("prog_runs")
        ]
        if runs:
            print(f"{name}: ns per BPF program run: " + ", ".join(runs))
    for ours in ("nodegate-tc", "nodegate-xdp-generic", "nodegate-xdp"):
        base = baseline(ours)
        if ours in results and base in results:
            ratios = ", ".join(
                f"{w} {rate(results[ours].get(w)) / rate(results[base].get(w)):.2f}" for w in works
            )
            print(f"{ours} / {base}, rate: {ratios}")
    for ours in ("nodegate-tc", "nodegate-xdp-generic"):
        for peer in ("nftables", "haproxy"):
            if ours in results and peer in results:
                ratios = ", ".join(
                    f"{w} {cost(results[ours].get(w)) / cost(results[peer].get(w)):.2f}"
                    for w in works
                )
                print(f"{ours} / {peer}, gateway core CPU per unit: {ratios}")


if __name__ == "__main__":
    sys.exit(main())
