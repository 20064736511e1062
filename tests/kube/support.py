"""Helpers of the cluster-mode tests: API requests, the test server, agents as processes.

Imported as tests.kube.support everywhere (conftest included), so that there is one copy of
each class.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / ".." / "shared" / "gateway-api" / "crds"
# Installed by the session except this one: the CRD-installed-later test adds it.
LATE_CRD = "gateway.networking.k8s.io_udproutes.yaml"
G = "gateway.networking.k8s.io/v1"


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body[:500]}")
        self.status = status


@dataclass
class Api:
    """Plain HTTPS requests to the test server with one bearer token."""

    url: str
    ca: str
    token: str

    def __post_init__(self) -> None:
        self._ctx = ssl.create_default_context(cafile=self.ca)

    def req(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, context=self._ctx, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, e.read().decode(errors="replace")) from None
        return json.loads(raw or b"{}")

    def get(self, path: str) -> dict[str, Any]:
        return self.req("GET", path)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.req("POST", collection_path(obj), obj)

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.req("PUT", object_path(obj), obj)

    def delete(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.req("DELETE", object_path(obj))

    def read(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.get(object_path(obj))

    def install_crd(self, path: Path) -> None:
        crd = yaml.safe_load(path.read_text())
        try:
            self.req("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        except ApiError as e:
            if e.status != 409:
                raise
        name = crd["metadata"]["name"]
        wait_for(
            lambda: any(
                c["type"] == "Established" and c["status"] == "True"
                for c in self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                .get("status", {})
                .get("conditions", [])
            ),
            f"CRD {name} established",
        )


_PLURALS = {
    "Namespace": "namespaces",
    "Service": "services",
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "ServiceAccount": "serviceaccounts",
    "EndpointSlice": "endpointslices",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "DaemonSet": "daemonsets",
    "Deployment": "deployments",
    "Lease": "leases",
}
_CLUSTER = {"Namespace", "ClusterRole", "ClusterRoleBinding", "GatewayClass"}


def _plural(kind: str) -> str:
    if kind in _PLURALS:
        return _PLURALS[kind]
    lower = kind.lower()
    if lower.endswith("policy"):
        return lower[:-1] + "ies"
    return lower + ("es" if lower.endswith("s") else "s")


def collection_path(obj: dict[str, Any]) -> str:
    api = obj["apiVersion"]
    base = f"/apis/{api}" if "/" in api else f"/api/{api}"
    ns = (obj.get("metadata") or {}).get("namespace")
    if obj["kind"] not in _CLUSTER:
        base += f"/namespaces/{ns or 'default'}"
    return f"{base}/{_plural(obj['kind'])}"


def object_path(obj: dict[str, Any]) -> str:
    return f"{collection_path(obj)}/{obj['metadata']['name']}"


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`
    (a bound against hanging, generous on a loaded machine, not a latency assertion)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (ApiError, KeyError, StopIteration, IndexError, TypeError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@dataclass
class Server:
    dir: Path
    kubeconfig: Path
    admin: Api
    sa_token: str
    env: dict[str, str]

    def sa_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig that authenticates as the nodegate ServiceAccount."""
        cfg = yaml.safe_load(self.kubeconfig.read_text())
        for user in cfg["users"]:
            user["user"] = {"token": self.sa_token}
        path.write_text(yaml.safe_dump(cfg))
        return path

    def stop_apiserver(self) -> list[str]:
        """Stop kube-apiserver (etcd keeps running); returns its command line for start."""
        pid = int((self.dir / "kube-apiserver.pid").read_text())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        # A crash, as far as clients can tell (a graceful stop drains watches for a minute).
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), "apiserver exit", 30)
        return [a.decode() for a in argv]

    def start_apiserver(self, argv: list[str]) -> None:
        with open(self.dir / "kube-apiserver.log", "ab") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        (self.dir / "kube-apiserver.pid").write_text(str(proc.pid))
        wait_for(self._ready, "apiserver ready after restart", 90)

    def etcd(self, call: str, body: dict[str, Any]) -> dict[str, Any]:
        """etcd's v3 JSON gateway (e.g. kv/range, kv/compaction)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.env['NODEGATE_ETCD_PORT']}/v3/{call}",
            data=json.dumps(body).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read())

    def _ready(self) -> bool:
        try:
            self.admin.get("/readyz")
        except ValueError:  # "ok" is not JSON: ready
            return True
        except (ApiError, OSError):
            return False
        return True


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


# --- agents ---------------------------------------------------------------------------


class Agent:
    """A `nodegate run` process in cluster mode, its stderr collected by a thread."""

    def __init__(self, argv: list[str], metrics_address: str = "") -> None:
        self.metrics_address = metrics_address
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        self.lines: list[str] = []
        self._lock = threading.Lock()
        assert self.proc.stderr is not None
        stream = self.proc.stderr

        def pump() -> None:
            for line in stream:
                with self._lock:
                    self.lines.append(line)

        self._thread = threading.Thread(target=pump, daemon=True)
        self._thread.start()

    def metrics(self) -> str:
        """The agent's /metrics page (its --metrics-address)."""
        with urllib.request.urlopen(f"http://{self.metrics_address}/metrics", timeout=10) as r:
            return str(r.read().decode())

    def log(self) -> str:
        with self._lock:
            return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


@dataclass
class Cluster:
    """One test's view: its own Lease namespace, controller name and GatewayClass."""

    server: Server
    tmp: Path
    name: str
    agents: list[Agent] = field(default_factory=list)

    @property
    def api(self) -> Api:
        return self.server.admin

    @property
    def controller(self) -> str:
        return f"nodegate.dev/{self.name}"

    @property
    def lease_namespace(self) -> str:
        return f"{self.name}-leases"

    def agent(
        self,
        node: str,
        address: str,
        kubeconfig: Path | None = None,
        namespace: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> Agent:
        with socket.socket() as s:  # a free port for this agent's /metrics
            s.bind(("127.0.0.1", 0))
            metrics_address = f"127.0.0.1:{s.getsockname()[1]}"
        argv = [
            sys.executable,
            "-m",
            "agent.cli",
            "run",
            "--kubeconfig",
            str(kubeconfig or self.server.kubeconfig),
            "--node-name",
            node,
            "--node-address",
            address,
            "--controller-name",
            self.controller,
            "--namespace",
            namespace or self.lease_namespace,
            "--lease-duration",
            "3",
            "--status-interval",
            "0.3",
            "--rediscover-interval",
            "1",
            "--reference-interval",
            "1",
            "--interval",
            "0.1",
            "--debounce",
            "0.1",
            # Translate only: these agents must not attach datapaths to the host's interfaces.
            "--datapaths",
            "none",
            "--metrics-address",
            metrics_address,
            *extra,
        ]
        a = Agent(argv, metrics_address)
        self.agents.append(a)
        return a

    def gateway_class(self) -> dict[str, Any]:
        return {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": self.name},
            "spec": {"controllerName": self.controller},
        }

    def namespace(self, name: str) -> str:
        self.api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return name


# --- objects --------------------------------------------------------------------------


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == kind)


def status_of(api: Api, obj: dict[str, Any]) -> dict[str, Any]:
    return api.read(obj).get("status") or {}


def gateway(ns: str, cls: str, *listeners: dict[str, Any], name: str = "g") -> dict[str, Any]:
    return {
        "apiVersion": G,
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"gatewayClassName": cls, "listeners": list(listeners)},
    }


def http(name: str = "http", port: int = 8080) -> dict[str, Any]:
    return {"name": name, "port": port, "protocol": "HTTP"}


def route(
    ns: str, kind: str = "HTTPRoute", version: str = "v1", parent: str = "g"
) -> dict[str, Any]:
    return {
        "apiVersion": f"gateway.networking.k8s.io/{version}",
        "kind": kind,
        "metadata": {"name": "r", "namespace": ns},
        "spec": {
            "parentRefs": [{"name": parent}],
            "rules": [{"backendRefs": [{"name": "svc", "port": 80}]}],
        },
    }


def service(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc", "namespace": ns},
        "spec": {
            "ports": [
                {"name": "tcp", "port": 80, "protocol": "TCP"},
                {"name": "udp", "port": 80, "protocol": "UDP"},
            ]
        },
    }


def slice_(ns: str) -> dict[str, Any]:
    """An EndpointSlice as a 1.20 server serves it (v1beta1, topology)."""
    return {
        "apiVersion": "discovery.k8s.io/v1beta1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "svc-1",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": "svc"},
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": ["10.1.0.1"],
                "conditions": {"ready": True},
                "topology": {"kubernetes.io/hostname": "node-a"},
            }
        ],
        "ports": [
            {"name": "tcp", "port": 8080, "protocol": "TCP"},
            {"name": "udp", "port": 8080, "protocol": "UDP"},
        ],
    }
