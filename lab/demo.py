"""`make demo` (`python -m lab.demo`): nodegate on examples/quickstart, in network namespaces.

What it does, in order: brings up the lab (a client host, the gateway node,
backend hosts: lab.netns), applies examples/quickstart through the cluster
emulation (echo backends in their own hosts, EndpointSlices: lab.cluster),
starts `nodegate run` on the gateway node, waits for the Gateway's address,
sends a few requests through every listener from the client host and prints
which backend answered and through which datapath (HTTP: the userspace proxy;
TCP/UDP: the kernel), shows `nodegate status` for the folder, and removes it
all. A listener whose route kind is not in the GatewayClass's
supportedFeatures is not served by this build: the demo says so instead of
sending traffic to it.

KEEP=1 leaves everything running (the process exits without tearing the lab
down) and prints how to send your own traffic and how to remove the lab
(`python -m lab.netns cleanup`, which removes labs whose owner has exited).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from lab.cluster import Cluster
from lab.conformance.client import NetnsPool
from lab.conformance.runner import ADDRESS_POOL, StatusFile
from lab.conformance.wire import http_request, tcp_conversation, udp_exchange
from lab.echo.podname import backend_of
from lab.netns import Lab

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"
GATEWAY = ("quickstart", "demo")
WAIT = 60.0

# Which datapath serves a listener protocol, and the route kind (= SupportedFeature) it needs.
DATAPATH = {
    "HTTP": ("proxy", "HTTPRoute"),
    "TCP": ("kernel", "TCPRoute"),
    "UDP": ("kernel", "UDPRoute"),
}


def say(text: str = "") -> None:
    print(text, flush=True)


def load_quickstart() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(QUICKSTART.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def wait_for(what: str, fn: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


class Demo:
    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.lab = Lab(backends=0)
        self.state = Path(tempfile.mkdtemp(prefix="nodegate-demo-"))
        self.config = self.state / "config"
        self.status = StatusFile(self.state / "status.yaml")
        self.agent: subprocess.Popen[Any] | None = None
        self.pool: NetnsPool | None = None

    def agent_argv(self, command: str) -> list[str]:
        argv = [sys.executable, "-m", "agent.cli", command, "--config", str(self.config)]
        argv += ["--address-pool", ADDRESS_POOL]
        # The node's own addresses, given: discovery would also see the Gateway addresses
        # `nodegate run` added, and `nodegate status` would then assign others.
        for addr in (self.lab.gateway.address, self.lab.gateway.backend_address):
            argv += ["--node-address", str(addr)]
        if command == "run":
            argv += ["--gateway-interface", self.lab.gateway.client_link.name]
            argv += ["--status-file", str(self.status.path)]
            argv += os.environ.get("NODEGATE_AGENT_ARGS", "").split()
        return argv

    def run(self) -> None:
        say("nodegate demo: examples/quickstart in network namespaces on this machine")
        self.lab.start()
        say(f"  lab {self.lab.prefix}: client {self.lab.client.address}, gateway node "
            f"{self.lab.gateway.address}")  # fmt: skip
        cluster = Cluster(self.lab, self.config, self.state / "cluster")
        cluster.apply(load_quickstart())
        pods = sorted(cluster.pods.values(), key=lambda p: p.name)
        say(f"  backends: {', '.join(f'{p.name} ({p.address})' for p in pods)}")
        for where, why in cluster.unavailable.items():
            say(f"  not running: {where}: {why}")
        log = (self.state / "agent.log").open("ab")
        self.agent = self.lab.gateway.run(
            self.agent_argv("run"), stdout=log, stderr=subprocess.STDOUT
        )
        address = wait_for("the Gateway's address", self.gateway_address)
        features = self.supported_features()
        say(f"  nodegate run: Gateway {GATEWAY[0]}/{GATEWAY[1]} is at {address}")
        say(f"  this build serves: {', '.join(sorted(features)) or 'no route kind end to end yet'}")
        say()
        self.pool = NetnsPool(self.lab.client.netns, workers=2)
        for listener in self.listeners():
            self.show_listener(listener, address, features)
        say()
        self.show_status()
        if self.keep:
            self.print_keep(address)

    # -- status --------------------------------------------------------------

    def gateway_address(self) -> str | None:
        doc = self.status.docs().get(("Gateway", *GATEWAY)) or {}
        for a in (doc.get("status") or {}).get("addresses") or ():
            return str(a.get("value"))
        if self.agent is not None and self.agent.poll() is not None:
            raise RuntimeError(f"nodegate run exited; its log is in {self.state / 'agent.log'}")
        return None

    def supported_features(self) -> set[str]:
        doc = self.status.docs().get(("GatewayClass", "", "nodegate")) or {}
        return {
            str(f.get("name") if isinstance(f, Mapping) else f)
            for f in (doc.get("status") or {}).get("supportedFeatures") or ()
        }

    def listeners(self) -> list[Mapping[str, Any]]:
        for d in load_quickstart():
            meta = d["metadata"]
            if d["kind"] == "Gateway" and (meta["namespace"], meta["name"]) == GATEWAY:
                return list(d["spec"]["listeners"])
        raise RuntimeError(f"examples/quickstart has no Gateway {GATEWAY[0]}/{GATEWAY[1]}")

    # -- traffic -------------------------------------------------------------

    def show_listener(self, listener: Mapping[str, Any], address: str, features: set[str]) -> None:
        protocol, port = str(listener["protocol"]), int(listener["port"])
        path, kind = DATAPATH[protocol]
        say(f"{protocol} listener {listener['name']} ({address}:{port}, {kind} -> {path}):")
        if kind not in features:
            where = "L7 proxy" if path == "proxy" else "eBPF L4 datapath"
            say(f"  not served by this build yet: {kind} is not in the GatewayClass's "
                f"supportedFeatures (the {where} is not wired into `nodegate run`)")  # fmt: skip
            return
        if protocol == "HTTP":
            tries = [
                ("/", {}),
                ("/", {}),
                ("/", {}),
                ("/", {}),
                ("/canary", {}),
                ("/", {"env": "canary"}),
            ]
            for target, headers in tries:
                self.http(address, port, target, headers)
        elif protocol == "TCP":
            for _ in range(3):
                self.once(f"connect :{port}", lambda: self.tcp(address, port))
        else:
            for _ in range(3):
                self.once(f"datagram :{port}", lambda: self.udp(address, port))

    def once(self, label: str, fn: Callable[[], str]) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                say(f"  {label:<28} -> {fn()}")
                return
            except (OSError, ValueError) as e:
                if time.monotonic() > deadline:
                    say(f"  {label:<28} -> failed: {e}")
                    return
                time.sleep(0.5)

    def http(self, address: str, port: int, target: str, headers: Mapping[str, str]) -> None:
        assert self.pool is not None
        pool = self.pool
        sent = [("Host", "demo.example"), *headers.items(), ("Connection", "close")]

        def go() -> str:
            r = pool.call(http_request, address, port, "GET", target, sent, 5.0, None)
            if r.status != 200:
                return f"HTTP {r.status}"
            body = json.loads(r.body)
            return f"{backend_of(body['pod'])} ({body['pod']}) via proxy"

        label = "GET " + target + "".join(f" [{k}: {v}]" for k, v in headers.items())
        self.once(label, go)

    def tcp(self, address: str, port: int) -> str:
        assert self.pool is not None
        answers = self.pool.call(tcp_conversation, address, port, 5.0, None)
        pod = json.loads(answers["TEST"])["pod"]
        return f"{backend_of(pod)} ({pod}) via kernel"

    def udp(self, address: str, port: int) -> str:
        assert self.pool is not None
        reply = self.pool.call(udp_exchange, address, port, b"hello", 2.0, 1024)
        pod = json.loads(reply)["pod"]
        return f"{backend_of(pod)} ({pod}) via kernel"

    # -- nodegate status -----------------------------------------------------

    def show_status(self) -> None:
        argv = self.agent_argv("status")
        say("$ nodegate status --config <quickstart folder>   (summary)")
        try:
            out = self.lab.gateway.check_output(argv, timeout=60, stderr=subprocess.DEVNULL)
        except subprocess.CalledProcessError as e:
            out = e.output or ""  # exit 1: some input unreadable, the rest still printed
        for doc in yaml.safe_load_all(out):
            if not doc:
                continue
            say("  " + summarize(doc))

    def print_keep(self, address: str) -> None:
        ns = self.lab.client.netns
        say()
        say("KEEP=1: the lab stays up. Send your own traffic from the client host:")
        say(f"  ip netns exec {ns} curl -s http://{address}/")
        say(f"  ip netns exec {ns} curl -s -H 'env: canary' http://{address}/")
        tcp = f"exec 3<>/dev/tcp/{address}/9000; head -1 <&3; echo TEST >&3; head -1 <&3"
        udp = f"exec 3<>/dev/udp/{address}/5353; echo hi >&3; timeout 2 head -c 300 <&3; echo"
        say(f"  ip netns exec {ns} bash -c '{tcp}'")
        say(f"  ip netns exec {ns} bash -c '{udp}'")
        say(f"Configuration: {self.config} (edit it; nodegate follows)")
        say(f"Agent log: {self.state}/agent.log")
        say("Remove it all: python -m lab.netns cleanup")

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        self.lab.close()


def summarize(doc: Mapping[str, Any]) -> str:
    """One line per object: its conditions, and per listener attached routes."""
    meta = doc.get("metadata") or {}
    name = (
        f"{meta.get('namespace')}/{meta.get('name')}" if meta.get("namespace") else meta.get("name")
    )
    status = doc.get("status") or {}

    def conds(holder: Mapping[str, Any]) -> str:
        return " ".join(f"{c['type']}={c['status']}" for c in holder.get("conditions") or ())

    parts = [conds(status)] if status.get("conditions") else []
    for a in status.get("addresses") or ():
        parts.append(f"address {a.get('value')}")
    for lst in status.get("listeners") or ():
        parts.append(f"[{lst.get('name')}: {lst.get('attachedRoutes', 0)} route(s), {conds(lst)}]")
    for p in status.get("parents") or ():
        ref = p.get("parentRef") or {}
        parts.append(f"parent {ref.get('name')}/{ref.get('sectionName', '')}: {conds(p)}")
    return f"{doc.get('kind')} {name}: {'; '.join(parts)}"


def main() -> int:
    if os.geteuid() != 0:
        say("make demo needs root (it creates network namespaces)")
        return 2
    keep = os.environ.get("KEEP", "") not in ("", "0")
    demo = Demo(keep)
    try:
        demo.run()
    except (RuntimeError, OSError) as e:
        say(f"demo failed: {e}")
        demo.close()
        return 1
    except BaseException:
        demo.close()
        raise
    if keep:
        # Leave without the lab's exit teardown: its processes and namespaces stay up.
        sys.stdout.flush()
        os._exit(0)
    demo.close()
    say("\nCleaned up. `make demo KEEP=1` keeps it running for your own traffic.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
