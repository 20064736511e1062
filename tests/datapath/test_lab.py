"""The datapath in the lab: real programs on the gateway node's interfaces,
real echo backends, a client. Traffic goes client -> gateway (ng_tc or
ng_xdp) -> backend and back, NATed in the kernel; no userspace process on
the gateway holds a socket on a listener port.

The agent is tests/datapath/gateway_agent.py, run in the gateway's network
namespace (it compiles with bcc, like `nodegate run` will).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.nodeconfig import Backend, Endpoint, L4Listener, NodeConfig, Ref
from bpf.datapath import cleanup
from bpf.netlink import Netlink
from lab.netns import Host, Lab
from tests.datapath import clients
from tests.datapath.conftest import in_netns, pin_dir_for, set_tx_checksum

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
NS = "gateway-conformance-infra"
TCP_PORT, UDP_PORT, REJECT_PORT, REJECT_UDP = 9300, 5300, 9301, 5301


def pod(i: int) -> str:
    return f"backend-v{i + 1}-6d8f7c9b5-x7k2p"


def deployment(p: str) -> str:
    return p.rsplit("-", 2)[0]


def gw_ref(section: str) -> Ref:
    return Ref(kind="Gateway", namespace=NS, name="gw", section=section)


def backends(lab: Lab, port: int, weights: tuple[int, ...]) -> tuple[Backend, ...]:
    return tuple(
        Backend(
            ref=Ref(kind="Service", namespace=NS, name=f"backend-v{i + 1}"),
            weight=w,
            endpoints=(Endpoint(address=str(b.address), port=port),),
        )
        for i, (b, w) in enumerate(zip(lab.backends, weights, strict=False))
    )


def config(lab: Lab, vip: str, weights: tuple[int, ...] = (70, 30, 0)) -> NodeConfig:
    invalid = Backend(
        ref=Ref(kind="Service", namespace=NS, name="gone"), weight=1, invalid="BackendNotFound"
    )
    valid = Backend(
        ref=Ref(kind="Service", namespace=NS, name="backend-v1"),
        weight=1,
        endpoints=(Endpoint(address=str(lab.backends[0].address), port=3000),),
    )
    valid_u = valid.model_copy(
        update={"endpoints": (Endpoint(address=str(lab.backends[0].address), port=8080),)}
    )

    def lst(name: str, proto: str, port: int, bes: tuple[Backend, ...]) -> L4Listener:
        return L4Listener(
            ref=gw_ref(name),
            gateway=gw_ref(""),
            protocol=proto,
            address=vip,
            port=port,
            backends=bes,
        )  # type: ignore[arg-type]

    return NodeConfig(
        l4=(
            lst("tcp", "TCP", TCP_PORT, backends(lab, 3000, weights)),
            lst("udp", "UDP", UDP_PORT, backends(lab, 8080, weights)),
            lst("half-invalid", "TCP", REJECT_PORT, (valid, invalid)),
            lst("half-invalid-udp", "UDP", REJECT_UDP, (valid_u, invalid)),
        )
    )


class Agent:
    """gateway_agent in the gateway namespace, talked to over pipes."""

    def __init__(self, lab: Lab, pin_dir: str, mode: str, cfg: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.datapath.gateway_agent",
                "--netns",
                lab.gateway.netns,
                "--pin-dir",
                pin_dir,
                "--mode",
                mode,
                str(cfg),
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.ready = self._read()
        assert self.ready.get("ready"), self.ready

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"agent exited with {self.proc.wait()}")
        return json.loads(line)  # type: ignore[no-any-return]

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def exit(self) -> None:
        if self.proc.poll() is None:
            self.ask_noreply("exit")
            self.proc.wait(timeout=30)

    def ask_noreply(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()


def run_json(host: Host, code: str, *args: object) -> dict[str, Any]:
    out = host.check_output([sys.executable, "-c", code, *map(str, args)], timeout=120, cwd=REPO)
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def served(
    lab: Lab, pin_root: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Echo backends on b1..b3, a VIP, and the config file."""
    while len(lab.backends) < 3:
        lab.add_host()
    procs = [
        b.run(
            [
                sys.executable,
                "-m",
                "lab.echo",
                "--namespace",
                NS,
                "--pod",
                pod(i),
                "--service",
                f"backend-v{i + 1}",
                "--tcp-port",
                "3000",
                "--udp-port",
                "8080",
                "--log",
                os.devnull,
            ],
            cwd=REPO,
        )
        for i, b in enumerate(lab.backends[:3])
    ]
    vip = str(lab.gateway.add_address())
    cfg = tmp_path_factory.mktemp("l4") / "config.json"
    cfg.write_text(config(lab, vip).model_dump_json())
    yield {"vip": vip, "cfg": cfg, "procs": procs}


def gateway_sockets(lab: Lab, *ports: int) -> list[str]:
    """Sockets of any state on the gateway node with a local port in ports."""
    out = lab.gateway.check_output(["ss", "-Hantu"])
    return [
        line for line in out.splitlines() if any(f":{p} " in line.split()[4] + " " for p in ports)
    ]


def test_tc_mode_serves_tcp_and_udp_in_the_kernel(lab: Lab, served: dict[str, Any]) -> None:
    pin = pin_dir_for("tc")
    agent = Agent(lab, pin, "tc", served["cfg"])
    try:
        assert set(agent.ready["attached"].values()) == {"tc"}
        vip = served["vip"]
        tcp = run_json(lab.client, clients.TCP_SAMPLE, vip, TCP_PORT, 200)
        udp = run_json(lab.client, clients.UDP_SAMPLE, vip, UDP_PORT, 200)
        for got in (tcp["pods"], udp["pods"]):
            by = {deployment(p): n for p, n in got.items()}
            assert sum(by.values()) == 200
            assert "backend-v3" not in by  # weight 0: no new flows
            assert 0.55 <= by["backend-v1"] / 200 <= 0.85, by  # 70%, about 4.5 sd either way
        assert udp["silent"] == 0 and tcp["refused"] == 0
        # Nothing on the gateway node holds a socket on the listener ports.
        assert gateway_sockets(lab, TCP_PORT, UDP_PORT) == []
        c = agent.ask("counters")
        by_port = {(x["protocol"], x["port"]): x for x in c["listeners"]}
        assert by_port[("TCP", TCP_PORT)]["new_flows"] == 200
        assert by_port[("UDP", UDP_PORT)]["new_flows"] == 200
        assert by_port[("UDP", UDP_PORT)]["reply_packets"] == 200
        assert c["conntrack_flows"] >= 400 and c["conntrack_capacity"] > 0
    finally:
        agent.exit()


def test_a_backend_port_unreachable_reaches_the_udp_client(
    lab: Lab, served: dict[str, Any], tmp_path: Path
) -> None:
    """A UDP listener whose backend has nothing on the port: the backend's kernel answers
    "port unreachable" to the node's full-NAT address, and the datapath sends it on to
    the client as from the VIP, so a connected socket fails at once (ECONNREFUSED)
    instead of waiting out a timeout. The listener beside it still answers."""
    dead = Backend(
        ref=Ref(kind="Service", namespace=NS, name="backend-v1"),
        endpoints=(Endpoint(address=str(lab.backends[0].address), port=8099),),
    )
    vip = served["vip"]
    base = config(lab, vip)
    listener = base.l4[1].model_copy(
        update={"ref": gw_ref("dead"), "port": 5399, "backends": (dead,)}
    )
    cfg = tmp_path / "dead.json"
    cfg.write_text(base.model_copy(update={"l4": (*base.l4, listener)}).model_dump_json())
    agent = Agent(lab, pin_dir_for("tc"), "tc", cfg)
    try:
        assert run_json(lab.client, clients.UDP_ONE, vip, 5399) == {"result": "refused"}
        assert run_json(lab.client, clients.UDP_ONE, vip, UDP_PORT) == {"result": "answer"}
        c = agent.ask("counters")
        dead_counts = next(x for x in c["listeners"] if x["port"] == 5399)
        assert dead_counts["packets"] == 1 and dead_counts["reply_packets"] == 1  # the ICMP
    finally:
        agent.exit()


def test_invalid_share_is_rejected_in_proportion(lab: Lab, served: dict[str, Any]) -> None:
    agent = Agent(lab, pin_dir_for("tc"), "tc", served["cfg"])
    try:
        vip = served["vip"]
        tcp = run_json(lab.client, clients.TCP_SAMPLE, vip, REJECT_PORT, 200)
        udp = run_json(lab.client, clients.UDP_SAMPLE, vip, REJECT_UDP, 200)
        # backendRefs valid:invalid = 1:1 -> about half refused (RST), half served.
        assert 60 <= tcp["refused"] <= 140, tcp
        assert sum(tcp["pods"].values()) == 200 - tcp["refused"]
        assert 60 <= udp["silent"] <= 140, udp
        c = agent.ask("counters")
        by_port = {(x["protocol"], x["port"]): x for x in c["listeners"]}
        assert by_port[("TCP", REJECT_PORT)]["drops"]["rejected"] == tcp["refused"]
        assert by_port[("UDP", REJECT_UDP)]["drops"]["invalid_backend"] == udp["silent"]
    finally:
        agent.exit()


def _tc_prog_ids(lab: Lab) -> list[str]:
    out = lab.gateway.check_output(
        ["tc", "filter", "show", "dev", lab.gateway.client_link.name, "ingress"]
    )
    return [w.split()[0] for w in out.split(" id ")[1:]]


def test_sigkill_and_restart_keep_established_flows(lab: Lab, served: dict[str, Any]) -> None:
    pin = pin_dir_for("restart")
    vip = served["vip"]
    first = Agent(lab, pin, "tc", served["cfg"])
    client = lab.client.run(
        [sys.executable, "-c", clients.LONG_LIVED, vip, str(TCP_PORT), str(UDP_PORT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert client.stdin is not None and client.stdout is not None

    def probe() -> dict[str, Any]:
        client.stdin.write("probe\n")  # type: ignore[union-attr]
        client.stdin.flush()  # type: ignore[union-attr]
        return json.loads(client.stdout.readline())  # type: ignore[union-attr]

    try:
        hello = json.loads(client.stdout.readline())
        before = probe()
        assert before["tcp"] == "PONG\n" and before["tcp_pod"] == hello["tcp_pod"]
        old_ids = _tc_prog_ids(lab)

        first.kill()  # SIGKILL: no cleanup ran
        during = probe()
        assert during == before, "flows must keep working while no agent runs"

        second = Agent(lab, pin, "tc", served["cfg"])
        try:
            assert _tc_prog_ids(lab) != old_ids, "the new agent replaces the program"
            after = probe()
            assert after == before, "same TCP connection, same backend; same UDP flow, same backend"
            fresh = run_json(lab.client, clients.TCP_SAMPLE, vip, TCP_PORT, 20)
            assert sum(fresh["pods"].values()) == 20
        finally:
            second.exit()
    finally:
        client.kill()
        client.wait()
        if first.proc.poll() is None:
            first.kill()


def test_apply_changes_backends_without_moving_established_flows(
    lab: Lab, served: dict[str, Any], tmp_path: Path
) -> None:
    vip = served["vip"]
    agent = Agent(lab, pin_dir_for("tc"), "tc", served["cfg"])
    client = lab.client.run(
        [sys.executable, "-c", clients.LONG_LIVED, vip, str(TCP_PORT), str(UDP_PORT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert client.stdin is not None and client.stdout is not None
    try:
        hello = json.loads(client.stdout.readline())
        client.stdin.write("probe\n")
        client.stdin.flush()
        before = json.loads(client.stdout.readline())
        # Everything to the third backend now: new flows go there, old ones stay.
        moved = tmp_path / "moved.json"
        moved.write_text(config(lab, vip, weights=(0, 0, 1)).model_dump_json())
        assert agent.ask(f"apply {moved} 2")["ok"]
        client.stdin.write("probe\n")
        client.stdin.flush()
        after = json.loads(client.stdout.readline())
        assert after == before and after["tcp_pod"] == hello["tcp_pod"]
        fresh = run_json(lab.client, clients.TCP_SAMPLE, vip, TCP_PORT, 20)
        assert {deployment(p) for p in fresh["pods"]} == {"backend-v3"}
        # A config that does not fit is refused whole; the last one keeps serving.
        too_big = tmp_path / "too-big.json"
        cfg = config(lab, vip, weights=(1, 0, 0))
        extra = tuple(cfg.l4[0].model_copy(update={"port": 10000 + i}) for i in range(64))
        too_big.write_text(cfg.model_copy(update={"l4": cfg.l4 + extra}).model_dump_json())
        refused = agent.ask(f"apply {too_big} 3")
        assert not refused["ok"] and "max_services" in refused["error"]
        fresh = run_json(lab.client, clients.TCP_SAMPLE, vip, TCP_PORT, 20)
        assert {deployment(p) for p in fresh["pods"]} == {"backend-v3"}
        assert agent.ask(f"apply {served['cfg']} 4")["ok"]
    finally:
        client.kill()
        client.wait()
        agent.exit()


def _prepare_native_xdp_on_veth(lab: Lab, pass_fd: int) -> None:
    """What native XDP on veth needs from the rest of the lab (a real NIC
    needs neither): an XDP program on every veth that XDP_REDIRECT sends
    into (the switch side), and senders that compute full checksums, since
    xdp_frames do not carry CHECKSUM_PARTIAL."""
    with in_netns(lab.switch), Netlink() as nl:
        for iface in nl.interfaces():
            if iface.kind == "veth":
                nl.attach_xdp(iface.index, pass_fd, generic=False)
    for host in [lab.client, *lab.backends]:
        for link in host.links.values():
            set_tx_checksum(host.netns, link.name, on=False)


@pytest.mark.parametrize("mode", ["xdp-generic", "xdp"])
def test_xdp_modes_serve_tcp_and_udp(
    lab: Lab, served: dict[str, Any], mode: str, pass_prog: int
) -> None:
    if mode == "xdp":
        _prepare_native_xdp_on_veth(lab, pass_prog)
    agent = Agent(lab, pin_dir_for("tc"), mode, served["cfg"])
    try:
        assert set(agent.ready["attached"].values()) == {mode}
        vip = served["vip"]
        tcp = run_json(lab.client, clients.TCP_SAMPLE, vip, TCP_PORT, 50)
        udp = run_json(lab.client, clients.UDP_SAMPLE, vip, UDP_PORT, 50)
        assert sum(tcp["pods"].values()) == 50 and udp["silent"] == 0
        assert gateway_sockets(lab, TCP_PORT, UDP_PORT) == []
        link = lab.gateway.ip("link", "show", lab.gateway.client_link.name)
        assert ("xdpgeneric" if mode == "xdp-generic" else " xdp ") in link
    finally:
        agent.exit()


def test_cleanup_removes_programs_maps_and_ports(lab: Lab, served: dict[str, Any]) -> None:
    pin = pin_dir_for("tc")
    agent = Agent(lab, pin, "xdp-generic", served["cfg"])
    agent.exit()
    with in_netns(lab.gateway.netns):
        reserved_before = Path("/proc/sys/net/ipv4/ip_local_reserved_ports").read_text()
        removed = cleanup(pin)
        reserved_after = Path("/proc/sys/net/ipv4/ip_local_reserved_ports").read_text()
    assert "61000-65000" in reserved_before and "61000" not in reserved_after
    assert any(r.startswith("tc filter ng_tc") for r in removed)
    assert any(r.startswith("XDP program ng_xdp") for r in removed)
    assert any(r.endswith("/ng_ct") for r in removed)
    assert not os.path.exists(pin)
    out = lab.gateway.check_output(
        ["tc", "filter", "show", "dev", lab.gateway.client_link.name, "ingress"]
    )
    assert "ng_tc" not in out
    assert "xdp" not in lab.gateway.ip("link", "show", lab.gateway.client_link.name)
    with in_netns(lab.gateway.netns):
        assert cleanup(pin) == []


V6_PORT_TCP, V6_PORT_UDP, V6_PORT_DEAD = 9400, 5400, 5401


def _enable_ipv6(lab: Lab) -> tuple[str, list[str]]:
    """IPv6 on the lab (it starts IPv4 only): the gateway node routes
    fd00:18::/64 (clients) and fd00:19::/64 (backends); the VIP is fd00:18:1::1."""

    def sysctls(host: Host, forwarding: bool) -> None:
        names = ["all", "default", *(link.name for link in host.links.values())]
        argv = [f"net.ipv6.conf.{n}.disable_ipv6=0" for n in names]
        argv += [f"net.ipv6.conf.all.forwarding={int(forwarding)}"]
        host.check_output(["sysctl", "-q", "-w", *argv])

    gw = lab.gateway
    sysctls(gw, True)
    gw.ip("addr", "replace", "fd00:18::1/64", "dev", gw.client_link.name, "nodad")
    gw.ip("addr", "replace", "fd00:19::1/64", "dev", gw.backend_link.name, "nodad")
    gw.ip("addr", "replace", "fd00:18:1::1/128", "dev", gw.client_link.name, "nodad")
    sysctls(lab.client, False)
    lab.client.ip(
        "addr", "replace", "fd00:18::2/64", "dev", lab.client.links["client"].name, "nodad"
    )
    lab.client.ip("-6", "route", "replace", "fd00::/16", "via", "fd00:18::1")
    addrs = []
    for i, b in enumerate(lab.backends[:3]):
        sysctls(b, False)
        addr = f"fd00:19::{i + 2}"
        b.ip("addr", "replace", f"{addr}/64", "dev", b.links["backend"].name, "nodad")
        b.ip("-6", "route", "replace", "default", "via", "fd00:19::1")
        addrs.append(addr)
    return "fd00:18:1::1", addrs


def test_ipv6_tcp_and_udp_end_to_end(lab: Lab, served: dict[str, Any], tmp_path: Path) -> None:
    vip6, addrs = _enable_ipv6(lab)

    def v6_backends(port: int) -> tuple[Backend, ...]:
        return tuple(
            Backend(
                ref=Ref(kind="Service", namespace=NS, name=f"backend-v{i + 1}"),
                weight=w,
                endpoints=(Endpoint(address=a, port=port),),
            )
            for i, (a, w) in enumerate(zip(addrs, (1, 1, 0), strict=True))
        )

    cfg = NodeConfig(
        l4=(
            L4Listener(
                ref=gw_ref("tcp6"),
                gateway=gw_ref(""),
                protocol="TCP",
                address=vip6,
                port=V6_PORT_TCP,
                backends=v6_backends(3000),
            ),
            L4Listener(
                ref=gw_ref("udp6"),
                gateway=gw_ref(""),
                protocol="UDP",
                address=vip6,
                port=V6_PORT_UDP,
                backends=v6_backends(8080),
            ),
            L4Listener(  # nothing listens on the backend's port: ICMPv6 port unreachable
                ref=gw_ref("dead6"),
                gateway=gw_ref(""),
                protocol="UDP",
                address=vip6,
                port=V6_PORT_DEAD,
                backends=v6_backends(8099)[:1],
            ),
        )
    )
    path = tmp_path / "v6.json"
    path.write_text(cfg.model_dump_json())
    agent = Agent(lab, pin_dir_for("v6"), "tc", path)
    try:
        assert agent.ready["skipped"] == []
        tcp = run_json(lab.client, clients.TCP_SAMPLE, vip6, V6_PORT_TCP, 60)
        udp = run_json(lab.client, clients.UDP_SAMPLE, vip6, V6_PORT_UDP, 60)
        for got in (tcp["pods"], udp["pods"]):
            by = {deployment(p): n for p, n in got.items()}
            assert sum(by.values()) == 60 and set(by) == {"backend-v1", "backend-v2"}, by
        assert udp["silent"] == 0
        assert gateway_sockets(lab, V6_PORT_TCP, V6_PORT_UDP) == []
        # The backend's ICMPv6 port unreachable reaches the client, translated.
        assert run_json(lab.client, clients.UDP_ONE, vip6, V6_PORT_DEAD) == {"result": "refused"}
        c = agent.ask("counters")
        assert {x["port"]: x["new_flows"] for x in c["listeners"]} == {
            V6_PORT_TCP: 60,
            V6_PORT_UDP: 60,
            V6_PORT_DEAD: 1,
        }
    finally:
        agent.exit()
