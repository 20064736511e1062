"""The namespace lab: reachability, isolation, teardown and stale-lab sweeping.

Everything here runs in namespaces the tests create; nothing is sent
anywhere else, and every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from lab import netns
from lab.netns import RUN_DIR, Lab
from lab.topology import BACKEND_SEGMENT, CLIENT_SEGMENT, GATEWAY_POOL, LAB_NET, new_prefix

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]

# Answers one line per connection: "<name> <peer address> <what it got>".
ECHO_SERVER = r"""
import socket, sys
name, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
s.listen()
print("ready", flush=True)
while True:
    c, peer = s.accept()
    with c:
        c.sendall(f"{name} {peer[0]} ".encode() + c.recv(1024))
"""

ECHO_CLIENT = r"""
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as c:
    c.sendall(b"hello")
    c.shutdown(socket.SHUT_WR)
    print(c.recv(1024).decode())
"""


def prefixed(prefix: str) -> list[str]:
    return [n for n in netns.netns_names() if n.startswith(prefix)]


def read_line(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output within {timeout}s"
    return proc.stdout.readline().strip()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def start_echo(host: netns.Host, addr: IPv4Address | str = "0.0.0.0", port: int = 8080) -> None:
    server = host.run(
        [sys.executable, "-I", "-c", ECHO_SERVER, host.name, str(addr), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert read_line(server) == "ready"


def echo(host: netns.Host, addr: IPv4Address, port: int = 8080) -> str:
    argv = [sys.executable, "-I", "-c", ECHO_CLIENT, str(addr), str(port)]
    return host.check_output(argv).strip()


def unused_prefix() -> str:
    while True:
        prefix = new_prefix()
        if not prefixed(prefix) and not (RUN_DIR / f"{prefix[:-1]}.json").exists():
            return prefix


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=5)
    return proc.pid


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(backends=2) as lab:
        yield lab


# --- reachability ---------------------------------------------------------


def test_client_pings_gateway(lab: Lab) -> None:
    assert lab.gateway.address == CLIENT_SEGMENT.router
    assert lab.client.ping(lab.gateway.address)
    assert lab.client.ping(lab.gateway.backend_address)


def test_client_pings_backends_through_gateway(lab: Lab) -> None:
    for backend in lab.backends:
        assert backend.address in BACKEND_SEGMENT.network
        assert lab.client.ping(backend.address)
        assert backend.ping(lab.client.address)


def test_tcp_exchange_with_backends(lab: Lab) -> None:
    for backend in lab.backends:
        start_echo(backend)
    for backend in lab.backends:
        # Plain routing: the backend sees the client's own address.
        assert echo(lab.client, backend.address) == f"{backend.name} {lab.client.address} hello"


def test_gateway_addresses(lab: Lab) -> None:
    a, b = lab.gateway.add_address(), lab.gateway.add_address()
    assert a != b and a in GATEWAY_POOL and b in GATEWAY_POOL
    assert {a, b} <= set(lab.gateway.vips)
    assert lab.client.ping(a) and lab.client.ping(b)
    # A proxy on the gateway node can bind a Gateway address.
    start_echo(lab.gateway, a, 8081)
    assert echo(lab.client, a, 8081) == f"gw {lab.client.address} hello"
    lab.gateway.remove_address(b)
    assert not lab.client.ping(b, timeout=0.3)
    assert lab.gateway.add_address() == b  # freed addresses are reused


def test_add_host_at_runtime(lab: Lab) -> None:
    host = lab.add_host("extra")
    assert host is lab.hosts["extra"] and host in lab.backends
    assert host.netns == lab.prefix + "extra" and host.netns in netns.netns_names()
    assert host.address in BACKEND_SEGMENT.network
    assert host.address not in [b.address for b in lab.backends if b is not host]
    for link in host.links.values():
        assert link.name.startswith(lab.prefix) and len(link.name) <= 15
        assert link.peer.startswith(lab.prefix) and len(link.peer) <= 15
    assert lab.client.ping(host.address)
    start_echo(host)
    assert echo(lab.client, host.address) == f"extra {lab.client.address} hello"
    assert lab.add_client().ping(host.address)


def test_lab_is_isolated(lab: Lab) -> None:
    for host in (lab.client, lab.gateway):
        assert "default" not in host.ip("route")
        assert host.ip("route", "get", "192.0.2.1", check=False) == ""  # unreachable
    default = lab.backends[0].ip("route", "show", "default")
    assert default.startswith(f"default via {BACKEND_SEGMENT.router} ")
    assert not [link for link in netns.ip_json("link") if link["ifname"].startswith(lab.prefix)]
    for ns in lab.namespaces:
        for link in netns.ip_json("addr", ns=ns):
            if link["ifname"] == "lo":
                assert "UP" in link["flags"]
            for a in link["addr_info"]:
                addr = IPv4Interface(f"{a['local']}/{a['prefixlen']}")
                assert a["family"] == "inet", f"{ns}: {a}"
                assert addr.ip in LAB_NET or addr.ip.is_loopback, f"{ns}: {addr}"


# --- teardown -------------------------------------------------------------


def test_teardown_removes_everything() -> None:
    with Lab(backends=1) as lab:
        prefix = lab.prefix
        record = RUN_DIR / f"{prefix[:-1]}.json"
        assert json.loads(record.read_text())["pid"] == os.getpid()
        assert sorted(prefixed(prefix)) == sorted(lab.namespaces)
        sleeper = lab.backends[0].run(["sleep", "30"])
    assert prefixed(prefix) == []
    assert not record.exists()
    assert sleeper.poll() is not None
    with pytest.raises(netns.LabError):
        lab.client.run(["true"])


def test_stale_and_orphan_labs_are_swept(lab: Lab) -> None:
    # Staged under the registry lock, so no other run's sweep takes it early.
    with netns.registry_lock():
        stale, orphan = unused_prefix(), unused_prefix()
        record = {"prefix": stale, "pid": dead_pid()}
        (RUN_DIR / f"{stale[:-1]}.json").write_text(json.dumps(record))
        for ns in (stale + "client", stale + "b1", orphan + "gw"):
            netns.ip("netns", "add", ns)
        sleep = ["ip", "netns", "exec", stale + "b1", "sleep", "30"]
        squatter = subprocess.Popen(sleep, start_new_session=True)
        deadline = time.monotonic() + 5
        while not netns.netns_pids(stale + "b1"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        states = {info.prefix: info.state for info in netns.labs()}
        assert states[stale] == "stale" and states[orphan] == "orphan"
        assert states[lab.prefix] == "live"
    try:
        with Lab(backends=0):
            assert prefixed(stale) == [] and prefixed(orphan) == []
            assert not (RUN_DIR / f"{stale[:-1]}.json").exists()
            assert squatter.wait(timeout=5) == -signal.SIGKILL
            # The live lab is left alone.
            assert sorted(prefixed(lab.prefix)) == sorted(lab.namespaces)
    finally:
        squatter.kill()
        squatter.wait(timeout=5)


KILLED_RUN = """
import signal, sys, time
from lab.netns import Lab
signal.signal(signal.SIGINT, signal.default_int_handler)
with Lab(backends=1) as lab:
    lab.backends[0].run(["sleep", "60"])
    print(lab.prefix, flush=True)
    time.sleep(60)
"""


def start_run() -> tuple[subprocess.Popen[str], str, list[int]]:
    argv = [sys.executable, "-c", KILLED_RUN]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)
    prefix = read_line(proc)
    assert prefix and prefixed(prefix)
    pids = netns.netns_pids(prefix + "b1")
    assert pids
    return proc, prefix, pids


def test_killed_run_is_swept_by_the_next() -> None:
    proc, prefix, pids = start_run()
    with netns.registry_lock():
        try:
            assert prefix not in netns.sweep(locked=True)  # live: left alone
            assert prefixed(prefix)
            infos = {info.prefix: info for info in netns.labs()}
            assert infos[prefix].state == "live" and infos[prefix].pid == proc.pid
        finally:
            proc.kill()
            proc.wait(timeout=5)
        assert prefixed(prefix)  # SIGKILL left it behind
        assert {i.prefix: i.state for i in netns.labs()}[prefix] == "stale"
    with Lab(backends=0):
        assert prefixed(prefix) == []
    assert all(wait_dead(pid) for pid in pids)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_tears_down(sig: signal.Signals) -> None:
    proc, prefix, pids = start_run()
    try:
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == -sig
    finally:
        proc.kill()
        proc.wait(timeout=5)
    assert prefixed(prefix) == []
    assert all(wait_dead(pid) for pid in pids)


def test_cli_list_and_cleanup(lab: Lab) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "lab.netns", *args]
        return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=20)

    with netns.registry_lock():  # `list` takes no lock; other runs' sweeps wait
        stale = unused_prefix()
        netns.ip("netns", "add", stale + "gw")
        listed = cli("list")
    assert listed.returncode == 0
    assert f"{lab.prefix}\tlive\tpid={os.getpid()}\t" in listed.stdout
    assert f"{stale}\torphan\tpid=-\t{stale}gw\n" in listed.stdout
    cleaned = cli("cleanup")
    # Another run starting now may sweep the orphan first; either way it goes.
    assert cleaned.returncode == 0 and lab.prefix not in cleaned.stdout
    assert prefixed(stale) == [] and sorted(prefixed(lab.prefix)) == sorted(lab.namespaces)
    assert cli("bogus").returncode == 2
