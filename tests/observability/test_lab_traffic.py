"""The metrics endpoint of a real `nodegate run` while the lab carries traffic: the counters
match what was sent, exactly.

The lab (lab.netns): a client host, the gateway node running `nodegate run` (both datapaths,
its endpoint on 127.0.0.1:9108 of the gateway's own namespace) and echo backends started by
the cluster emulation (lab.cluster). Each test reads the counters, sends a known amount of
traffic from the client host and reads them again: the differences are compared with what
the client sent and received. Source ports are chosen by the test, never reused, so every
connection and every UDP socket is a new flow.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.cluster import Cluster
from lab.conformance.client import NetnsPool
from lab.conformance.runner import ADDRESS_POOL, StatusFile
from lab.conformance.wire import http_request, tcp_send_once
from lab.netns import Lab
from tests.observability.support import Sample, parse, sample, total

pytestmark = pytest.mark.kernel

WAIT = 90.0  # bcc compiles the programs on start
METRICS = "127.0.0.1:9108"  # in the gateway node's namespace: no other agent there
ETH_IP_UDP = 14 + 20 + 8  # the L4 byte counters count whole frames

ECHO_ENV = [
    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
]


def deployment(name: str, env: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "obs", "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": "registry.k8s.io/gateway-api/echo-basic:v1.5.1",
                            "env": ECHO_ENV + env,
                        }
                    ]
                },
            },
        },
    }


def service(name: str, protocol: str, port: int, target: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "obs"},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "p", "protocol": protocol, "port": port, "targetPort": target}],
        },
    }


WORLD = [
    *yaml.safe_load_all(
        """
apiVersion: v1
kind: Namespace
metadata: {name: obs}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodegate}
spec: {controllerName: nodegate.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: obs}
spec:
  gatewayClassName: nodegate
  listeners:
    - {name: http, protocol: HTTP, port: 80}
    - {name: tcp, protocol: TCP, port: 9000, allowedRoutes: {kinds: [{kind: TCPRoute}]}}
    - {name: udp, protocol: UDP, port: 5353, allowedRoutes: {kinds: [{kind: UDPRoute}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: obs}
spec:
  parentRefs: [{name: edge, sectionName: http}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /ok}}]
      backendRefs: [{name: echo, port: 8080}]
    - matches: [{path: {type: PathPrefix, value: /broken}}]
      backendRefs: [{name: missing, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: tcp, namespace: obs}
spec:
  parentRefs: [{name: edge, sectionName: tcp}]
  rules: [{backendRefs: [{name: tcp-echo, port: 3000}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: UDPRoute
metadata: {name: udp, namespace: obs}
spec:
  parentRefs: [{name: edge, sectionName: udp}]
  rules: [{backendRefs: [{name: udp-echo, port: 8080}]}]
"""
    ),
    service("echo", "TCP", 8080, 3000),
    deployment("echo", []),
    service("tcp-echo", "TCP", 3000, 3000),
    deployment("tcp-echo", [{"name": "TCP_ECHO_SERVER", "value": "true"}]),
    service("udp-echo", "UDP", 8080, 8080),
    deployment("udp-echo", [{"name": "UDP_ECHO_SERVER", "value": "true"}]),
]

TCP = {"gateway": "obs/edge", "listener": "tcp", "route": "obs/tcp", "protocol": "TCP"}
UDP = {"gateway": "obs/edge", "listener": "udp", "route": "obs/udp", "protocol": "UDP"}


def wait_for(what: str, fn: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fn()
        except OSError as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} ({last!r})")
        time.sleep(0.2)


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@dataclass
class Served:
    lab: Lab
    address: str  # the Gateway's
    client: NetnsPool
    node: NetnsPool  # threads in the gateway node's namespace
    log: Path

    def get(self, path: str) -> tuple[int, str]:
        return self.node.call(fetch, f"http://{METRICS}{path}")

    def scrape(self) -> dict[Sample, float]:
        code, body = self.get("/metrics")
        assert code == 200, body
        return parse(body)

    def client_tcp_segments(self) -> int:
        """Segments the client's TCP sent (retransmissions included), from its namespace."""
        lines = [
            line.split()
            for line in self.lab.client.check_output(["cat", "/proc/net/snmp"]).splitlines()
            if line.startswith("Tcp:")
        ]
        tcp = dict(zip(lines[0][1:], (int(v) for v in lines[1][1:]), strict=True))
        return tcp["OutSegs"] + tcp["RetransSegs"]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    state = Path(tempfile.mkdtemp(prefix="nodegate-obs-"))
    with Lab(backends=0) as lab:
        Cluster(lab, state / "config", state / "cluster").apply(WORLD)
        status = StatusFile(state / "status.yaml")
        argv = [
            sys.executable,
            "-m",
            "agent.cli",
            "run",
            "--config",
            str(state / "config"),
            "--address-pool",
            ADDRESS_POOL,
            "--node-address",
            str(lab.gateway.address),
            "--node-address",
            str(lab.gateway.backend_address),
            "--gateway-interface",
            lab.gateway.client_link.name,
            "--status-file",
            str(status.path),
            "--metrics-address",
            METRICS,
            "--l7-workers",
            "1",
            "--l4-ct-sample-interval",
            "0.2",
            "--log-format",
            "json",
            "--access-log",
        ]
        log = state / "agent.log"
        with log.open("ab") as out:
            agent = lab.gateway.run(argv, stdout=out, stderr=out)
        client = NetnsPool(lab.client.netns, workers=4)
        node = NetnsPool(lab.gateway.netns, workers=1)

        def gateway_address() -> str | None:
            assert agent.poll() is None, f"nodegate run exited:\n{log.read_text()[-4000:]}"
            doc = status.docs().get(("Gateway", "obs", "edge")) or {}
            for a in (doc.get("status") or {}).get("addresses") or ():
                return str(a.get("value"))
            return None

        try:
            address = wait_for("the Gateway's address", gateway_address)
            s = Served(lab, address, client, node, log)
            wait_for("/readyz", lambda: s.get("/readyz")[0] == 200)
            # The backends answer through both datapaths before any test counts.
            wait_for(
                "TCP through the gateway", lambda: client.call(tcp_send_once, address, 9000, 2.0)
            )
            wait_for("UDP through the gateway", lambda: client.call(udp_from, address, 0, b"hi"))
            wait_for(
                "HTTP through the gateway", lambda: client.call(http_get, address, "/ok") == 200
            )
            yield s
        finally:
            client.close()
            node.close()
            agent.terminate()
            agent.wait(timeout=30)


def udp_from(address: str, sport: int, *payloads: bytes) -> list[int]:
    """Each payload from one socket bound to `sport`, each reply awaited; the reply sizes."""
    sizes = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5.0)
        s.bind(("", sport))
        s.connect((address, 5353))
        for p in payloads:
            s.send(p)
            sizes.append(len(s.recv(65536)))
    return sizes


def tcp_ping_from(address: str, sport: int) -> None:
    """A connection from `sport`: welcome, PING/PONG, close."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(5.0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("", sport))
        s.connect((address, 9000))
        f = s.makefile("rb")
        assert f.readline() == b"Gateway API Test TCP Server\n"
        s.sendall(b"PING\n")
        assert f.readline() == b"PONG\n"
        f.close()


def delta(
    before: dict[Sample, float], after: dict[Sample, float], name: str, **labels: str
) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def test_udp_packets_bytes_and_flows_are_counted_exactly(served: Served) -> None:
    before = served.scrape()
    sent: list[bytes] = []
    replies: list[int] = []
    one = [b"x" * n for n in range(1, 11)]  # ten datagrams on one flow
    replies += served.client.call(udp_from, served.address, 20001, *one)
    sent += one
    for i in range(5):  # five more flows of one datagram each
        payload = b"y" * (100 + i)
        replies += served.client.call(udp_from, served.address, 20002 + i, payload)
        sent.append(payload)
    after = served.scrape()
    assert delta(before, after, "nodegate_l4_flows_total", **UDP) == 6
    assert delta(before, after, "nodegate_l4_packets_total", **UDP, direction="forward") == 15
    assert delta(before, after, "nodegate_l4_packets_total", **UDP, direction="reply") == 15
    assert delta(before, after, "nodegate_l4_bytes_total", **UDP, direction="forward") == sum(
        ETH_IP_UDP + len(p) for p in sent
    )
    assert delta(before, after, "nodegate_l4_bytes_total", **UDP, direction="reply") == sum(
        ETH_IP_UDP + n for n in replies
    )
    assert delta(before, after, "nodegate_l4_drops_total", **UDP) == 0
    # Nothing else moved: the TCP listener saw none of it.
    assert delta(before, after, "nodegate_l4_packets_total", **TCP) == 0


def test_tcp_flows_and_packets_match_the_clients_connections_and_segments(
    served: Served,
) -> None:
    before = served.scrape()
    segments = served.client_tcp_segments()
    for i in range(5):
        served.client.call(tcp_ping_from, served.address, 21001 + i)
    after = served.scrape()
    assert delta(before, after, "nodegate_l4_flows_total", **TCP) == 5
    assert delta(before, after, "nodegate_l4_flows_total", **UDP) == 0

    # The closing handshakes finish after close() returns: wait until the client's last
    # segment has been counted, then compare.
    def settled() -> tuple[float, int] | None:
        now = served.scrape()
        fwd = delta(before, now, "nodegate_l4_packets_total", **TCP, direction="forward")
        sent = served.client_tcp_segments() - segments
        return (fwd, sent) if fwd == sent else None

    with contextlib.suppress(AssertionError):  # the assertion below says what differs
        wait_for("every client segment counted", settled, timeout=20)
    now = served.scrape()
    fwd = delta(before, now, "nodegate_l4_packets_total", **TCP, direction="forward")
    assert fwd == served.client_tcp_segments() - segments
    # At least SYN, ACK, PING, FIN and the last ACK of each connection.
    assert fwd >= 5 * 5
    assert delta(before, now, "nodegate_l4_packets_total", **TCP, direction="reply") >= 5 * 4
    assert delta(before, now, "nodegate_l4_drops_total", **TCP) == 0


def test_conntrack_and_generations_are_reported(served: Served) -> None:
    # A background walk samples conntrack (every 0.2 s here): wait for one taken after
    # the traffic above, i.e. younger than the time since this test began.
    began = time.monotonic()
    wait_for(
        "a conntrack sample taken after the traffic",
        lambda: (
            (
                time.monotonic() - began
                > served.scrape()[sample("nodegate_l4_conntrack_sample_age_seconds")]
            )
            or None
        ),
        timeout=10,
    )
    got = served.scrape()
    assert got[sample("nodegate_l4_conntrack_capacity_entries")] == 131072
    # The UDP flows above live for 30 s; each is two entries (forward and reply).
    assert got[sample("nodegate_l4_conntrack_flows")] >= 6
    assert (
        got[sample("nodegate_l4_conntrack_entries")] >= got[sample("nodegate_l4_conntrack_flows")]
    )
    generation = got[sample("nodegate_config_generation")]
    assert generation >= 1
    for d in ("addresses", "l4", "l7"):
        assert got[sample("nodegate_config_applied_generation", datapath=d)] == generation
    # Each listener's Maglev table was written by a generation the agent applied.
    for listener in (TCP, UDP):
        assert 1 <= got[sample("nodegate_l4_maglev_generation", **listener)] <= generation
    assert got[sample("nodegate_scrape_errors_total", datapath="l4")] == 0
    events = [
        json.loads(line) for line in served.log.read_text().splitlines() if line.startswith("{")
    ]
    assert any(e["msg"].startswith("metrics, /healthz and /readyz on") for e in events)


HTTP = {"gateway": "obs/edge", "listener": "http"}


def http_get(address: str, target: str) -> int:
    headers = [("Host", "obs.example"), ("Connection", "close")]
    return http_request(address, 80, "GET", target, headers, 5.0).status


def test_http_requests_are_counted_by_route_backend_and_status_class(served: Served) -> None:
    before = served.scrape()
    targets = ["/ok"] * 7 + ["/broken"] * 3 + ["/nowhere"] * 4
    codes = [served.client.call(http_get, served.address, t) for t in targets]
    assert codes == [200] * 7 + [500] * 3 + [404] * 4
    after = served.scrape()

    def d(name: str, **labels: str) -> float:
        return delta(before, after, name, **labels)

    web = {**HTTP, "route": "obs/web"}
    assert d("nodegate_http_requests_total", **HTTP) == 14
    assert d("nodegate_http_requests_total", **web, backend="obs/echo", code_class="2xx") == 7
    assert d("nodegate_http_requests_total", **web, code_class="5xx") == 3
    assert d("nodegate_http_requests_total", **HTTP, route="", code_class="4xx") == 4
    assert d("nodegate_http_requests_total", **HTTP, code_class="4xx") == 4
    assert d("nodegate_http_request_duration_seconds_count", **HTTP) == 14
    assert d("nodegate_http_request_duration_seconds_count", **web) == 10
    echo = {"route": "obs/web", "backend": "obs/echo"}
    assert d("nodegate_http_upstream_duration_seconds_count", **echo) == 7
    assert d("nodegate_http_upstream_connect_errors_total") == 0
    assert d("nodegate_l4_packets_total") == 0  # HTTP never touches the eBPF listeners
    assert after[sample("nodegate_scrape_errors_total", datapath="l7")] == 0


def test_the_access_log_names_the_route_and_backend_of_each_request(served: Served) -> None:
    target = "/ok/access-log-check"
    assert served.client.call(http_get, served.address, target) == 200

    def logged() -> dict[str, Any] | None:
        for line in served.log.read_text().splitlines():
            if target in line:
                return dict(json.loads(line))
        return None

    entry = wait_for("the access log line", logged, timeout=20)
    assert entry["path"] == target and entry["status"] == 200
    assert (entry["gateway"], entry["listener"]) == ("obs/edge", "http")
    assert (entry["route"], entry["backend"]) == ("obs/web", "obs/echo")
    # The metrics never carry the path.
    assert "access-log-check" not in served.get("/metrics")[1]
