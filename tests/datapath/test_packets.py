"""Packet tables through BPF_PROG_TEST_RUN: each row an input frame, the
expected verdict and the expected output frame, run through both ng_xdp
and ng_tc. The programs are loaded once; the maps hold a few listeners
written by the real TableWriter; fib lookups answer from the lab's gateway
namespace, with permanent neighbours so MACs are known.
"""

from __future__ import annotations

import ctypes
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from agent.nodeconfig import Backend, Endpoint, L4Listener, NodeConfig, Ref
from bpf import testrun
from bpf.bpffs import ensure_pin_dir
from bpf.compile import Compiled, compile_datapath
from bpf.maps import Map, PerCpuMap
from bpf.options import Options
from bpf.services import plan_services
from bpf.tables import TableWriter, be16, be32
from lab.netns import Lab
from tests.datapath import packets as P
from tests.datapath.conftest import in_netns, pin_dir_for

pytestmark = pytest.mark.kernel

VIP = "198.18.1.200"
GW_C = "198.18.0.1"  # the gateway node on the client segment
GW_B = "198.19.0.1"  # ... on the backend segment: the full-NAT source
CLIENT = "198.18.0.50"
B1, B2 = "198.19.0.50", "198.19.0.51"
VIP6, GW_C6, GW_B6 = "fd00:18:1::200", "fd00:18::1", "fd00:19::1"
CLIENT6, B1_6 = "fd00:18::50", "fd00:19::50"
CLIENT_MAC = "02:00:00:00:00:50"
B1_MAC, B2_MAC = "02:00:00:00:01:50", "02:00:00:00:01:51"
SNAT = (61000, 61999)
OPTS = dict(
    snat_ports=SNAT,
    udp_timeout=1.0,
    tcp_timeout=30.0,
    tcp_fin_timeout=1.0,
    max_services=12,
    max_backends=16,
    maglev_size=251,
    ct_size=4096,
)


def ref(name: str) -> Ref:
    return Ref(kind="Gateway", namespace="t", name="gw", section=name)


def svc(name: str, weight: int = 1, *eps: tuple[str, int], invalid: str = "") -> Backend:
    return Backend(
        ref=Ref(kind="Service", namespace="t", name=name),
        weight=weight,
        endpoints=tuple(Endpoint(address=a, port=p) for a, p in eps),
        invalid=invalid,
    )


def listener(name: str, proto: str, addr: str, port: int, *backends: Backend) -> L4Listener:
    return L4Listener(
        ref=ref(name), gateway=ref(""), protocol=proto, address=addr, port=port, backends=backends
    )  # type: ignore[arg-type]


CONFIG = NodeConfig(
    l4=(
        listener("tcp", "TCP", VIP, 9300, svc("b1", 1, (B1, 3000))),
        listener("udp", "UDP", VIP, 5300, svc("b1", 1, (B1, 8080))),
        listener("reject", "TCP", VIP, 9301, svc("gone", 1, invalid="BackendNotFound")),
        listener("rejectu", "UDP", VIP, 5301, svc("gone", 1, invalid="BackendNotFound")),
        listener("any", "TCP", "0.0.0.0", 7000, svc("b2", 1, (B2, 3000))),
        listener("none", "TCP", VIP, 9302),
        listener("tcp6", "TCP", VIP6, 9300, svc("b1", 1, (B1_6, 3000))),
        listener("udp6", "UDP", VIP6, 5300, svc("b1", 1, (B1_6, 8080))),
        listener("reject6", "TCP", VIP6, 9301, svc("gone", 1, invalid="BackendNotFound")),
    )
)


@dataclass
class Env:
    lab: Lab
    compiled: Compiled
    maps: dict[str, Map]
    c_if: int
    b_if: int
    c_mac: str  # the gateway's MAC on each segment
    b_mac: str


def _link(lab: Lab, name: str) -> tuple[int, str]:
    import json

    info = json.loads(lab.gateway.ip("-j", "link", "show", name))[0]
    return int(info["ifindex"]), str(info["address"])


@pytest.fixture(scope="module")
def env(lab: Lab, pin_root: None) -> Iterator[Env]:
    opt = Options(pin_dir=pin_dir_for("packets"), **OPTS)  # type: ignore[arg-type]
    ensure_pin_dir(opt.pin_dir)
    compiled = compile_datapath(opt.cflags())
    maps: dict[str, Map] = {
        n: (PerCpuMap(h) if h.percpu else Map(h)) for n, h in compiled.maps.items()
    }
    gw = lab.gateway
    c_name, b_name = gw.client_link.name, gw.backend_link.name
    for addr, lladdr, dev in (
        (CLIENT, CLIENT_MAC, c_name),
        (B1, B1_MAC, b_name),
        (B2, B2_MAC, b_name),
    ):
        gw.ip("neigh", "replace", addr, "lladdr", lladdr, "dev", dev, "nud", "permanent")
    gw.ip("addr", "add", f"{VIP}/32", "dev", c_name)
    # IPv6, which the lab leaves off: on the gateway node only (frames are made up here).
    v6 = ["net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0"]
    v6 += [f"net.ipv6.conf.{n}.disable_ipv6=0" for n in (c_name, b_name)]
    gw.check_output(["sysctl", "-q", "-w", *v6, "net.ipv6.conf.all.forwarding=1"])
    for addr, dev in ((f"{GW_C6}/64", c_name), (f"{GW_B6}/64", b_name), (f"{VIP6}/128", c_name)):
        gw.ip("addr", "replace", addr, "dev", dev, "nodad")
    for addr, lladdr, dev in ((CLIENT6, CLIENT_MAC, c_name), (B1_6, B1_MAC, b_name)):
        gw.ip("-6", "neigh", "replace", addr, "lladdr", lladdr, "dev", dev, "nud", "permanent")
    writer = TableWriter(maps, opt)
    plan = plan_services(
        CONFIG.l4,
        lambda a: GW_B6 if ":" in a else GW_B,
        opt.maglev_size,
        opt.max_backends,
        opt.max_services,
    )
    writer.apply(plan, 1)
    c_if, c_mac = _link(lab, c_name)
    b_if, b_mac = _link(lab, b_name)
    try:
        yield Env(lab, compiled, maps, c_if, b_if, c_mac, b_mac)
    finally:
        compiled.close()
        gw.ip("addr", "del", f"{VIP}/32", "dev", c_name, check=False)


def run(env: Env, hook: str, frame: bytes, ifindex: int) -> tuple[str, bytes]:
    with in_netns(env.lab.gateway.netns):
        if hook == "xdp":
            rc, out = testrun.run_xdp(env.compiled.progs["ng_xdp"], frame, ifindex)
            names = {
                testrun.XDP_DROP: "drop",
                testrun.XDP_PASS: "pass",
                testrun.XDP_TX: "tx",
                testrun.XDP_REDIRECT: "redirect",
            }
        else:
            rc, out = testrun.run_tc(env.compiled.progs["ng_tc"], frame, ifindex)
            names = {
                testrun.TC_ACT_OK: "pass",
                testrun.TC_ACT_SHOT: "drop",
                testrun.TC_ACT_REDIRECT: "redirect",
            }
    return names.get(rc, f"rc={rc}"), out


def c2g(dst: str, dport: int, sport: int = 40000, **kw: object) -> bytes:
    """A TCP frame from the client to the gateway (its client-side MAC filled in later)."""
    return P.tcp4(CLIENT_MAC, "02:ff:ff:ff:ff:ff", CLIENT, dst, sport, dport, **kw)


# --- frames that are not ours, or malformed ----------------------------------

V = "02:ff:ff:ff:ff:ff"  # the gateway's MAC does not matter on the way in


def _ip_frame(payload: bytes) -> bytes:
    return P.eth(V, CLIENT_MAC, P.ETH_IP, payload)


def _tcp_seg(dport: int = 9300, **kw: object) -> bytes:
    return P.tcp(CLIENT, VIP, 40000, dport, **kw)  # type: ignore[arg-type]


UNTOUCHED = [
    # description, frame, verdict
    ("ARP", P.eth("ff:ff:ff:ff:ff:ff", CLIENT_MAC, P.ETH_ARP, bytes(28)), "pass"),
    ("ICMP to the VIP", _ip_frame(P.ipv4(CLIENT, VIP, P.ICMP, bytes(16))), "pass"),
    ("TCP to the VIP, another port", _ip_frame(P.ipv4(CLIENT, VIP, P.TCP, _tcp_seg(22))), "pass"),
    (
        "TCP to another address, listener port",
        _ip_frame(P.ipv4(CLIENT, "198.19.0.99", P.TCP, P.tcp(CLIENT, "198.19.0.99", 40000, 9300))),
        "pass",
    ),
    (
        "UDP to the VIP, TCP listener's port",
        _ip_frame(P.ipv4(CLIENT, VIP, P.UDP, P.udp(CLIENT, VIP, 40000, 9300, b"x"))),
        "pass",
    ),
    (
        "IP options",
        _ip_frame(P.ipv4(CLIENT, VIP, P.TCP, _tcp_seg(), options=b"\x01\x01\x01\x00")),
        "pass",
    ),
    ("first fragment (MF)", _ip_frame(P.ipv4(CLIENT, VIP, P.TCP, _tcp_seg(), frag=0x2000)), "pass"),
    ("later fragment", _ip_frame(P.ipv4(CLIENT, VIP, P.TCP, _tcp_seg()[:16], frag=0x0003)), "pass"),
    (
        "wildcard port to a forwarded address",
        _ip_frame(P.ipv4(CLIENT, "198.19.0.99", P.TCP, P.tcp(CLIENT, "198.19.0.99", 40000, 7000))),
        "pass",
    ),
    ("TTL 1 to the listener", _ip_frame(P.ipv4(CLIENT, VIP, P.TCP, _tcp_seg(), ttl=1)), "pass"),
    # malformed: never forwarded
    (
        "truncated IPv4 header",
        P.eth(V, CLIENT_MAC, P.ETH_IP, P.ipv4(CLIENT, VIP, P.TCP, b"")[:12]),
        "drop",
    ),
    ("IPv4 ihl < 5", _ip_frame(bytes([0x44]) + P.ipv4(CLIENT, VIP, P.TCP, _tcp_seg())[1:]), "drop"),
    (
        "IPv4 total length beyond the frame",
        _ip_frame(P.ipv4(CLIENT, VIP, P.TCP, _tcp_seg(), tot_len=1400)),
        "drop",
    ),
    (
        "IPv4 total length below the header",
        _ip_frame(P.ipv4(CLIENT, VIP, P.TCP, _tcp_seg(), tot_len=12)),
        "drop",
    ),
    ("TCP header cut short", _ip_frame(P.ipv4(CLIENT, VIP, P.TCP, _tcp_seg()[:12])), "drop"),
    (
        "TCP data offset < 5",
        _ip_frame(P.ipv4(CLIENT, VIP, P.TCP, _tcp_seg()[:12] + bytes([0x30]) + _tcp_seg()[13:])),
        "drop",
    ),
    (
        "TCP data offset past the packet",
        _ip_frame(P.ipv4(CLIENT, VIP, P.TCP, _tcp_seg()[:12] + bytes([0xF0]) + _tcp_seg()[13:])),
        "drop",
    ),
    (
        "UDP length past the packet",
        _ip_frame(
            P.ipv4(
                CLIENT,
                VIP,
                P.UDP,
                P.udp(CLIENT, VIP, 40000, 5300, b"abc")[:4] + struct.pack("!H", 99) + bytes(5),
            )
        ),
        "drop",
    ),
    (
        "UDP length below its header",
        _ip_frame(
            P.ipv4(
                CLIENT,
                VIP,
                P.UDP,
                P.udp(CLIENT, VIP, 40000, 5300, b"abc")[:4] + struct.pack("!H", 4) + bytes(5),
            )
        ),
        "drop",
    ),
    (
        "bad IPv4 checksum to a listener",
        _ip_frame(P.ipv4(CLIENT, VIP, P.TCP, _tcp_seg(), bad_csum=True)),
        "drop",
    ),
]


def _ip6_frame(payload: bytes) -> bytes:
    return P.eth(V, CLIENT_MAC, P.ETH_IPV6, payload)


def _tcp6_seg(dport: int = 9300) -> bytes:
    return P.tcp(CLIENT6, VIP6, 40000, dport)


UNTOUCHED += [
    ("ICMPv6 to the VIP", _ip6_frame(P.ipv6(CLIENT6, VIP6, 58, bytes(16))), "pass"),
    (
        "IPv6 extension header before TCP",
        _ip6_frame(P.ipv6(CLIENT6, VIP6, 0, bytes([6, 0]) + bytes(6) + _tcp6_seg())),
        "pass",
    ),
    (
        "TCP to another IPv6 address",
        _ip6_frame(
            P.ipv6(CLIENT6, "fd00:19::99", P.TCP, P.tcp(CLIENT6, "fd00:19::99", 40000, 9300))
        ),
        "pass",
    ),
    (
        "TCP to the IPv6 VIP, another port",
        _ip6_frame(P.ipv6(CLIENT6, VIP6, P.TCP, _tcp6_seg(22))),
        "pass",
    ),
    (
        "IPv6 payload length beyond the frame",
        _ip6_frame(P.ipv6(CLIENT6, VIP6, P.TCP, _tcp6_seg(), plen=900)),
        "drop",
    ),
    (
        "IPv6 ethertype, version 4",
        _ip6_frame(bytes([0x45]) + P.ipv6(CLIENT6, VIP6, P.TCP, _tcp6_seg())[1:]),
        "drop",
    ),
    (
        "IPv6 TCP header cut short",
        _ip6_frame(P.ipv6(CLIENT6, VIP6, P.TCP, _tcp6_seg()[:10])),
        "drop",
    ),
]


# BPF_PROG_TEST_RUN refuses a tc run on an IPv4 frame too short for the
# IPv4 header (the kernel wants to pull it); XDP takes it.
XDP_ONLY = {"truncated IPv4 header"}
CASES = [
    pytest.param(hook, desc, frame, verdict, id=f"{desc}-{hook}")
    for desc, frame, verdict in UNTOUCHED
    for hook in ("xdp", "tc")
    if hook == "xdp" or desc not in XDP_ONLY
]


@pytest.mark.parametrize(("hook", "desc", "frame", "verdict"), CASES)
def test_not_ours_passes_untouched_and_malformed_drops(
    env: Env, hook: str, desc: str, frame: bytes, verdict: str
) -> None:
    got, out = run(env, hook, frame, env.c_if)
    assert got == verdict, desc
    if verdict == "pass":
        assert out == frame, f"{desc}: a passed frame must be unchanged"


# --- NAT both ways ------------------------------------------------------------


def _expect_fwd_tcp(
    env: Env, sport_client: int, snat_port: int, dst: str, dport: int, **kw: object
) -> bytes:
    return P.eth(
        B1_MAC if dst == B1 else B2_MAC,
        env.b_mac,
        P.ETH_IP,
        P.ipv4(GW_B, dst, P.TCP, P.tcp(GW_B, dst, snat_port, dport, **kw), ttl=63),
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("hook", ["xdp", "tc"])
def test_tcp_flow_is_natted_both_ways(env: Env, hook: str) -> None:
    cport = 41000 if hook == "xdp" else 42000
    syn = P.tcp4(CLIENT_MAC, env.c_mac, CLIENT, VIP, cport, 9300, flags=P.SYN, seq=7)
    verdict, out = run(env, hook, syn, env.c_if)
    assert verdict == "redirect"
    f = P.fields(out)
    snat = int(f["sport"])  # type: ignore[call-overload]
    assert SNAT[0] <= snat <= SNAT[1]
    assert out == _expect_fwd_tcp(env, cport, snat, B1, 3000, flags=P.SYN, seq=7)

    # The backend's SYN-ACK to the node comes back as from the VIP:listener port.
    synack = P.tcp4(B1_MAC, env.b_mac, B1, GW_B, 3000, snat, flags=P.SYN | P.ACK, seq=99, ack=8)
    verdict, out = run(env, hook, synack, env.b_if)
    assert verdict == "redirect"
    assert out == P.tcp4(
        env.c_mac, CLIENT_MAC, VIP, CLIENT, 9300, cport, flags=P.SYN | P.ACK, seq=99, ack=8, ttl=63
    )

    # Data on the flow keeps the same backend and port, payload intact.
    data = P.tcp4(
        CLIENT_MAC,
        env.c_mac,
        CLIENT,
        VIP,
        cport,
        9300,
        flags=P.ACK | P.PSH,
        seq=8,
        ack=100,
        payload=b"PING\n",
    )
    verdict, out = run(env, hook, data, env.c_if)
    assert verdict == "redirect"
    assert out == _expect_fwd_tcp(
        env, cport, snat, B1, 3000, flags=P.ACK | P.PSH, seq=8, ack=100, payload=b"PING\n"
    )


@pytest.mark.parametrize("hook", ["xdp", "tc"])
@pytest.mark.parametrize("checksum", [True, False], ids=["udp-csum", "udp-csum-0"])
def test_udp_reply_comes_from_the_listener_address(env: Env, hook: str, checksum: bool) -> None:
    cport = 43000 + (hook == "tc") * 10 + checksum
    dgram = P.udp4(
        CLIENT_MAC,
        env.c_mac,
        CLIENT,
        VIP,
        cport,
        5300,
        b"gateway-api-conformance-udp-echo",
        checksum=checksum,
    )
    verdict, out = run(env, hook, dgram, env.c_if)
    assert verdict == "redirect"
    snat = int(P.fields(out)["sport"])  # type: ignore[call-overload]
    want = P.eth(
        B1_MAC,
        env.b_mac,
        P.ETH_IP,
        P.ipv4(
            GW_B,
            B1,
            P.UDP,
            P.udp(GW_B, B1, snat, 8080, b"gateway-api-conformance-udp-echo", checksum=checksum),
            ttl=63,
        ),
    )
    assert out == want
    reply = P.udp4(B1_MAC, env.b_mac, B1, GW_B, 8080, snat, b"{}", checksum=checksum)
    verdict, out = run(env, hook, reply, env.b_if)
    assert verdict == "redirect"
    assert out == P.udp4(
        env.c_mac, CLIENT_MAC, VIP, CLIENT, 5300, cport, b"{}", checksum=checksum, ttl=63
    )


# --- ICMP errors about a flow (RFC 5508) --------------------------------------

UNREACH, TIME_EXCEEDED = 3, 11


@pytest.mark.parametrize("hook", ["xdp", "tc"])
@pytest.mark.parametrize("checksum", [True, False], ids=["udp-csum", "udp-csum-0"])
def test_port_unreachable_from_the_backend_reaches_the_client(
    env: Env, hook: str, checksum: bool
) -> None:
    """The backend's "port unreachable" for a datagram it got from the node goes to the
    client as from the VIP, quoting the datagram exactly as the client sent it."""
    cport = 45000 + (hook == "tc") * 10 + checksum
    payload = b"is anybody there"
    dgram = P.udp4(CLIENT_MAC, env.c_mac, CLIENT, VIP, cport, 5300, payload, checksum=checksum)
    verdict, natted = run(env, hook, dgram, env.c_if)
    assert verdict == "redirect"
    # The backend's kernel quotes the whole datagram it got (it is short).
    err = P.eth(
        env.b_mac, B1_MAC, P.ETH_IP, P.ipv4(B1, GW_B, P.ICMP, P.icmp(UNREACH, 3, natted[14:]))
    )
    verdict, out = run(env, hook, err, env.b_if)
    assert verdict == "redirect"
    sent = P.ipv4(CLIENT, VIP, P.UDP, P.udp(CLIENT, VIP, cport, 5300, payload, checksum), ttl=63)
    assert out == P.eth(
        CLIENT_MAC,
        env.c_mac,
        P.ETH_IP,
        P.ipv4(VIP, CLIENT, P.ICMP, P.icmp(UNREACH, 3, sent), ttl=63),
    )


@pytest.mark.parametrize("hook", ["xdp", "tc"])
def test_fragmentation_needed_on_the_backend_side_reaches_the_client(env: Env, hook: str) -> None:
    """Path MTU discovery through the gateway: a router between the node and the backend
    says the node's segment is too big; the client hears it about its own segment."""
    cport = 46000 + (hook == "tc")
    router = "198.19.0.99"  # any sender: only the quoted packet names the flow
    syn = P.tcp4(CLIENT_MAC, env.c_mac, CLIENT, VIP, cport, 9300, flags=P.SYN, seq=7)
    verdict, natted = run(env, hook, syn, env.c_if)
    assert verdict == "redirect"
    mtu = bytes(2) + (1400).to_bytes(2, "big")
    quoted = natted[14 : 14 + 28]  # the minimum an error quotes: IP header + 8 bytes
    err = P.eth(
        env.b_mac,
        B1_MAC,
        P.ETH_IP,
        P.ipv4(router, GW_B, P.ICMP, P.icmp(UNREACH, 4, quoted, rest=mtu), ttl=60),
    )
    verdict, out = run(env, hook, err, env.b_if)
    assert verdict == "redirect"
    sent = P.ipv4(CLIENT, VIP, P.TCP, P.tcp(CLIENT, VIP, cport, 9300, flags=P.SYN, seq=7), ttl=63)
    want_icmp = P.icmp(UNREACH, 4, sent[:28], rest=mtu)
    assert out == P.eth(
        CLIENT_MAC, env.c_mac, P.ETH_IP, P.ipv4(VIP, CLIENT, P.ICMP, want_icmp, ttl=59)
    )


@pytest.mark.parametrize("hook", ["xdp", "tc"])
def test_an_error_from_the_client_side_reaches_the_backend(env: Env, hook: str) -> None:
    """Symmetric: the client's "port unreachable" for a reply goes to the backend, as
    from the node's full-NAT address, quoting the reply as the backend sent it."""
    cport = 47000 + (hook == "tc")
    dgram = P.udp4(CLIENT_MAC, env.c_mac, CLIENT, VIP, cport, 5300, b"q")
    verdict, natted = run(env, hook, dgram, env.c_if)
    snat = int(P.fields(natted)["sport"])  # type: ignore[call-overload]
    reply = P.udp4(B1_MAC, env.b_mac, B1, GW_B, 8080, snat, b"answer")
    verdict, unnatted = run(env, hook, reply, env.b_if)
    assert verdict == "redirect"
    err = P.eth(
        env.c_mac,
        CLIENT_MAC,
        P.ETH_IP,
        P.ipv4(CLIENT, VIP, P.ICMP, P.icmp(UNREACH, 3, unnatted[14:])),
    )
    verdict, out = run(env, hook, err, env.c_if)
    assert verdict == "redirect"
    # Quoted as the backend sent it, but for the hop through the node (TTL 63).
    sent = P.ipv4(B1, GW_B, P.UDP, P.udp(B1, GW_B, 8080, snat, b"answer"), ttl=63)
    assert out == P.eth(
        B1_MAC,
        env.b_mac,
        P.ETH_IP,
        P.ipv4(GW_B, B1, P.ICMP, P.icmp(UNREACH, 3, sent), ttl=63),
    )


@pytest.mark.parametrize("hook", ["xdp", "tc"])
@pytest.mark.parametrize(
    "desc,kind,quoted_dport",
    [
        ("an error about no flow of ours", UNREACH, 9999),
        ("an echo request, not an error", 8, 8080),
    ],
)
def test_icmp_that_is_not_about_a_flow_passes(
    env: Env, hook: str, desc: str, kind: int, quoted_dport: int
) -> None:
    quoted = P.ipv4(GW_B, B1, P.UDP, P.udp(GW_B, B1, 61999, quoted_dport, b"x"))
    frame = P.eth(env.b_mac, B1_MAC, P.ETH_IP, P.ipv4(B1, GW_B, P.ICMP, P.icmp(kind, 3, quoted)))
    verdict, out = run(env, hook, frame, env.b_if)
    assert (verdict, out) == ("pass", frame), desc


UNREACH6, TOO_BIG6 = 1, 2


@pytest.mark.parametrize("hook", ["xdp", "tc"])
def test_ipv6_port_unreachable_from_the_backend_reaches_the_client(env: Env, hook: str) -> None:
    cport = 45100 + (hook == "tc")
    payload = b"is anybody there"
    dgram = P.udp6(CLIENT_MAC, env.c_mac, CLIENT6, VIP6, cport, 5300, payload)
    verdict, natted = run(env, hook, dgram, env.c_if)
    assert verdict == "redirect"
    msg = P.icmp6(B1_6, GW_B6, UNREACH6, 4, natted[14:])
    err = P.eth(env.b_mac, B1_MAC, P.ETH_IPV6, P.ipv6(B1_6, GW_B6, P.ICMP6, msg))
    verdict, out = run(env, hook, err, env.b_if)
    assert verdict == "redirect"
    sent = P.ipv6(CLIENT6, VIP6, P.UDP, P.udp(CLIENT6, VIP6, cport, 5300, payload), hop=63)
    want = P.icmp6(VIP6, CLIENT6, UNREACH6, 4, sent)
    assert out == P.eth(
        CLIENT_MAC, env.c_mac, P.ETH_IPV6, P.ipv6(VIP6, CLIENT6, P.ICMP6, want, hop=63)
    )


@pytest.mark.parametrize("hook", ["xdp", "tc"])
def test_ipv6_packet_too_big_on_the_backend_side_reaches_the_client(env: Env, hook: str) -> None:
    """IPv6 path MTU discovery through the gateway (no router fragments IPv6)."""
    cport = 46100 + (hook == "tc")
    router = "fd00:19::99"
    syn = P.tcp6(CLIENT_MAC, env.c_mac, CLIENT6, VIP6, cport, 9300, flags=P.SYN, seq=7)
    verdict, natted = run(env, hook, syn, env.c_if)
    assert verdict == "redirect"
    mtu = (1280).to_bytes(4, "big")
    msg = P.icmp6(router, GW_B6, TOO_BIG6, 0, natted[14 : 14 + 48], rest=mtu)
    err = P.eth(env.b_mac, B1_MAC, P.ETH_IPV6, P.ipv6(router, GW_B6, P.ICMP6, msg, hop=60))
    verdict, out = run(env, hook, err, env.b_if)
    assert verdict == "redirect"
    sent = P.ipv6(
        CLIENT6, VIP6, P.TCP, P.tcp(CLIENT6, VIP6, cport, 9300, flags=P.SYN, seq=7), hop=63
    )
    want = P.icmp6(VIP6, CLIENT6, TOO_BIG6, 0, sent[:48], rest=mtu)
    assert out == P.eth(
        CLIENT_MAC, env.c_mac, P.ETH_IPV6, P.ipv6(VIP6, CLIENT6, P.ICMP6, want, hop=59)
    )


@pytest.mark.parametrize("hook", ["xdp", "tc"])
def test_ipv6_neighbour_discovery_and_unknown_errors_pass(env: Env, hook: str) -> None:
    quoted = P.ipv6(GW_B6, B1_6, P.UDP, P.udp(GW_B6, B1_6, 61999, 9999, b"x"))
    unknown = P.icmp6(B1_6, GW_B6, UNREACH6, 4, quoted)
    solicit = P.icmp6(B1_6, "ff02::1:ff00:1", 135, 0, bytes(4) + bytes(16))
    for msg, dst in ((unknown, GW_B6), (solicit, "ff02::1:ff00:1")):
        frame = P.eth(env.b_mac, B1_MAC, P.ETH_IPV6, P.ipv6(B1_6, dst, P.ICMP6, msg, hop=255))
        assert run(env, hook, frame, env.b_if) == ("pass", frame)


@pytest.mark.parametrize("hook", ["xdp", "tc"])
def test_wildcard_listener_takes_local_addresses(env: Env, hook: str) -> None:
    cport = 44000 + (hook == "tc")
    syn = P.tcp4(CLIENT_MAC, env.c_mac, CLIENT, GW_C, cport, 7000)
    verdict, out = run(env, hook, syn, env.c_if)
    assert verdict == "redirect"
    f = P.fields(out)
    assert (f["src"], f["dst"], f["dport"]) == (GW_B, B2, 3000)


def test_frames_longer_than_an_mtu_go_to_tc(env: Env) -> None:
    """Generic XDP sees GRO packets; XDP passes them untouched for tc, which
    forwards GSO packets (segmented on the way out). A test run's skb is not
    GSO, so there the kernel's MTU check refuses it: never forwarded whole."""
    big = P.tcp4(CLIENT_MAC, env.c_mac, CLIENT, VIP, 44100, 9300, flags=P.ACK, payload=bytes(3000))
    verdict, out = run(env, "xdp", big, env.c_if)
    assert (verdict, out) == ("pass", big)
    assert run(env, "tc", big, env.c_if)[0] == "drop"


# --- rejecting: invalid backends and listeners without one --------------------


def _rst_for(env: Env, cport: int, port: int, seq: int, payload: int = 0) -> bytes:
    seg = P.tcp(
        VIP, CLIENT, port, cport, flags=P.RST | P.ACK, seq=0, ack=seq + 1 + payload, window=0
    )
    return P.eth(CLIENT_MAC, env.c_mac, P.ETH_IP, P.ipv4(VIP, CLIENT, P.TCP, seg, ident=0, ttl=64))


@pytest.mark.parametrize("hook", ["xdp", "tc"])
@pytest.mark.parametrize("port", [9301, 9302], ids=["invalid-backend", "no-backend"])
def test_syn_to_a_rejected_share_gets_a_reset(env: Env, hook: str, port: int) -> None:
    syn = P.tcp4(
        CLIENT_MAC, env.c_mac, CLIENT, VIP, 45000, port, flags=P.SYN, seq=555, payload=b"abc"
    )
    verdict, out = run(env, hook, syn, env.c_if)
    assert verdict == ("tx" if hook == "xdp" else "redirect")
    assert out == _rst_for(env, 45000, port, 555, payload=3)


@pytest.mark.parametrize("hook", ["xdp", "tc"])
def test_udp_to_a_rejected_share_is_dropped(env: Env, hook: str) -> None:
    dgram = P.udp4(CLIENT_MAC, env.c_mac, CLIENT, VIP, 46000, 5301, b"x")
    assert run(env, hook, dgram, env.c_if)[0] == "drop"


@pytest.mark.parametrize("hook", ["xdp", "tc"])
def test_non_syn_to_a_rejected_share_is_dropped(env: Env, hook: str) -> None:
    ack = P.tcp4(CLIENT_MAC, env.c_mac, CLIENT, VIP, 47000, 9301, flags=P.ACK)
    assert run(env, hook, ack, env.c_if)[0] == "drop"


# --- conntrack ----------------------------------------------------------------


def _ct(
    env: Env, src: str, dst: str, sport: int, dport: int, proto: int
) -> ctypes.Structure | None:
    ct = env.maps["ng_ct"]
    k = ct.Key()
    k.saddr, k.daddr, k.sport, k.dport, k.proto = (
        be32(src),
        be32(dst),
        be16(sport),
        be16(dport),
        proto,
    )
    return ct.get(k)  # type: ignore[no-any-return]


def test_udp_flow_expires_when_idle(env: Env) -> None:
    dgram = P.udp4(CLIENT_MAC, env.c_mac, CLIENT, VIP, 48000, 5300, b"x")
    assert run(env, "tc", dgram, env.c_if)[0] == "redirect"
    first = _ct(env, CLIENT, VIP, 48000, 5300, P.UDP)
    assert first is not None
    stats = env.maps["ng_stats"]
    assert isinstance(stats, PerCpuMap)
    time.sleep(1.2)  # udp_timeout is 1 s here
    assert run(env, "tc", dgram, env.c_if)[0] == "redirect"
    second = _ct(env, CLIENT, VIP, 48000, 5300, P.UDP)
    assert second is not None and second.last_seen > first.last_seen  # type: ignore[attr-defined]


def test_fin_ends_a_tcp_flow_sooner(env: Env) -> None:
    syn = P.tcp4(CLIENT_MAC, env.c_mac, CLIENT, VIP, 49000, 9300, flags=P.SYN)
    assert run(env, "tc", syn, env.c_if)[0] == "redirect"
    entry = _ct(env, CLIENT, VIP, 49000, 9300, P.TCP)
    assert entry is not None and entry.flags == 0  # type: ignore[attr-defined]
    fin = P.tcp4(CLIENT_MAC, env.c_mac, CLIENT, VIP, 49000, 9300, flags=P.FIN | P.ACK)
    assert run(env, "tc", fin, env.c_if)[0] == "redirect"
    entry = _ct(env, CLIENT, VIP, 49000, 9300, P.TCP)
    assert entry is not None and entry.flags == 2  # NG_CT_CLOSING, no NG_CT_RESET
    reply = _ct(
        env,
        B1,
        GW_B,
        3000,
        entry.sport and int.from_bytes(int(entry.sport).to_bytes(2, "little"), "big"),
        P.TCP,
    )  # type: ignore[attr-defined]
    assert reply is not None and reply.flags & 2  # type: ignore[attr-defined]


def test_rst_frees_the_nat_port_at_once(env: Env) -> None:
    syn = P.tcp4(CLIENT_MAC, env.c_mac, CLIENT, VIP, 49100, 9300, flags=P.SYN)
    verdict, out = run(env, "tc", syn, env.c_if)
    assert verdict == "redirect"
    snat = int(P.fields(out)["sport"])  # type: ignore[call-overload]
    rst = P.tcp4(CLIENT_MAC, env.c_mac, CLIENT, VIP, 49100, 9300, flags=P.RST)
    assert run(env, "tc", rst, env.c_if)[0] == "redirect"
    for key in ((CLIENT, VIP, 49100, 9300), (B1, GW_B, 3000, snat)):
        entry = _ct(env, *key, P.TCP)
        assert entry is not None and entry.flags & 6 == 6  # NG_CT_CLOSING | NG_CT_RESET


def test_malformed_frames_are_counted(env: Env) -> None:
    stats = env.maps["ng_stats"]
    assert isinstance(stats, PerCpuMap)
    slot = ctypes.c_uint32(OPTS["max_services"])  # type: ignore[arg-type]

    def malformed() -> int:
        return sum(int(v.drops[0]) for v in stats.get_all(slot))

    before = malformed()
    frame = _ip_frame(P.ipv4(CLIENT, VIP, P.TCP, _tcp_seg()[:12]))
    for hook in ("xdp", "tc"):
        assert run(env, hook, frame, env.c_if)[0] == "drop"
    assert malformed() == before + 2


# --- IPv6 -----------------------------------------------------------------------


@pytest.mark.parametrize("hook", ["xdp", "tc"])
def test_ipv6_tcp_flow_is_natted_both_ways(env: Env, hook: str) -> None:
    cport = 51000 + (hook == "tc")
    syn = P.tcp6(CLIENT_MAC, env.c_mac, CLIENT6, VIP6, cport, 9300, flags=P.SYN, seq=7)
    verdict, out = run(env, hook, syn, env.c_if)
    assert verdict == "redirect"
    snat = int(P.fields6(out)["sport"])  # type: ignore[call-overload]
    assert SNAT[0] <= snat <= SNAT[1]
    assert out == P.tcp6(env.b_mac, B1_MAC, GW_B6, B1_6, snat, 3000, hop=63, flags=P.SYN, seq=7)
    synack = P.tcp6(B1_MAC, env.b_mac, B1_6, GW_B6, 3000, snat, flags=P.SYN | P.ACK, seq=99, ack=8)
    verdict, out = run(env, hook, synack, env.b_if)
    assert verdict == "redirect"
    assert out == P.tcp6(
        env.c_mac,
        CLIENT_MAC,
        VIP6,
        CLIENT6,
        9300,
        cport,
        hop=63,
        flags=P.SYN | P.ACK,
        seq=99,
        ack=8,
    )


@pytest.mark.parametrize("hook", ["xdp", "tc"])
def test_ipv6_udp_reply_comes_from_the_listener_address(env: Env, hook: str) -> None:
    cport = 52000 + (hook == "tc")
    dgram = P.udp6(
        CLIENT_MAC, env.c_mac, CLIENT6, VIP6, cport, 5300, b"gateway-api-conformance-udp-echo"
    )
    verdict, out = run(env, hook, dgram, env.c_if)
    assert verdict == "redirect"
    snat = int(P.fields6(out)["sport"])  # type: ignore[call-overload]
    assert out == P.udp6(
        env.b_mac, B1_MAC, GW_B6, B1_6, snat, 8080, b"gateway-api-conformance-udp-echo", hop=63
    )
    reply = P.udp6(B1_MAC, env.b_mac, B1_6, GW_B6, 8080, snat, b"{}")
    verdict, out = run(env, hook, reply, env.b_if)
    assert verdict == "redirect"
    assert out == P.udp6(env.c_mac, CLIENT_MAC, VIP6, CLIENT6, 5300, cport, b"{}", hop=63)


@pytest.mark.parametrize("hook", ["xdp", "tc"])
def test_ipv6_syn_to_an_invalid_share_gets_a_reset(env: Env, hook: str) -> None:
    syn = P.tcp6(
        CLIENT_MAC, env.c_mac, CLIENT6, VIP6, 53000, 9301, flags=P.SYN, seq=555, payload=b"ab"
    )
    verdict, out = run(env, hook, syn, env.c_if)
    assert verdict == ("tx" if hook == "xdp" else "redirect")
    seg = P.tcp(VIP6, CLIENT6, 9301, 53000, flags=P.RST | P.ACK, seq=0, ack=555 + 1 + 2, window=0)
    assert out == P.eth(
        CLIENT_MAC, env.c_mac, P.ETH_IPV6, P.ipv6(VIP6, CLIENT6, P.TCP, seg, hop=64)
    )
