"""Cluster emulation for standalone mode: Deployments become processes, Services get EndpointSlices.

What a Kubernetes cluster shows nodegate, built from the manifests of a world
(the objects `kubectl apply` would create) inside a lab.netns.Lab:

- every object is written to nodegate's config folder, one file per object,
  replaced atomically (write + rename), so the agent's file source sees
  creations, edits and deletions as an API server would report them;
- every Deployment replica is one process in its own backend host (netns):
  the echo-basic image runs `python -m lab.echo` with the environment the
  container spec gives (downward API POD_NAME / NAMESPACE, plain values,
  Secret and ConfigMap volumes written to files and the paths rewritten),
  pod name `<deployment>-<hash>-<hash>`; the CoreDNS image runs our `whoami`
  responder (lab.conformance.coredns) for the zones of its Corefile;
- once a pod listens on its container ports it is Ready, and every Service
  with a selector gets the EndpointSlice the EndpointSlice controller would
  write: label kubernetes.io/service-name, addressType IPv4, ports named
  after the Service ports with the resolved targetPort, one ready endpoint per
  matching pod. Selector-less Services keep whatever EndpointSlices the
  manifests hold (they are written as given); headless Services with a
  selector get slices like any other.

Invariants: a pod is started at most once per apply; `remove` stops exactly
the pods an apply started and deletes exactly the files it wrote (restoring
an object it had replaced); a Deployment that cannot be emulated is recorded
in `unavailable` with the reason, never silently dropped. Backend hosts are
reused once free (the lab cannot delete a namespace mid-run).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.sources.files import write_atomically
from lab.echo.podname import pod_names
from lab.netns import Host, Lab, LabError

ECHO_IMAGE = "registry.k8s.io/gateway-api/echo-basic"
COREDNS_IMAGE = "registry.k8s.io/coredns/coredns"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "nodegate-lab.cluster"
READY_TIMEOUT = 15.0  # seconds for a pod to listen on its ports


class ClusterError(RuntimeError):
    """The emulation could not do what a cluster would have done."""


def _ref(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    api = str(obj.get("apiVersion") or "")
    group = api.rpartition("/")[0] if "/" in api else ""
    meta = obj.get("metadata") or {}
    return (group, str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta["name"]))


Ref = tuple[str, str, str, str]


# --------------------------------------------------------------------------
# the config folder


class ConfigFolder:
    """nodegate's --config folder: one YAML file per object, replaced atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._text: dict[Ref, str] = {}

    def path(self, ref: Ref) -> Path:
        group, kind, ns, name = ref
        slug = "_".join(p for p in (kind, group, ns, name) if p)
        return self.root / f"{re.sub(r'[^A-Za-z0-9_.-]', '-', slug)}.yaml"

    def write(self, obj: Mapping[str, Any]) -> bool:
        """Write (or replace) an object; whether the file changed."""
        ref = _ref(obj)
        text = yaml.safe_dump(dict(obj), sort_keys=False)
        with self._lock:
            if self._text.get(ref) == text:
                return False
            write_atomically(self.path(ref), text)
            self._text[ref] = text
            return True

    def delete(self, ref: Ref) -> None:
        with self._lock:
            self._text.pop(ref, None)
            self.path(ref).unlink(missing_ok=True)

    def objects(self) -> dict[Ref, dict[str, Any]]:
        with self._lock:
            return {ref: yaml.safe_load(text) for ref, text in self._text.items()}

    def __contains__(self, ref: object) -> bool:
        return ref in self._text


# --------------------------------------------------------------------------
# pure parts: pods from Deployments, EndpointSlices from Services


@dataclass
class Pod:
    name: str
    namespace: str
    deployment: str
    labels: dict[str, str]
    container: dict[str, Any]
    volumes: list[dict[str, Any]]
    host: Host | None = None
    address: str = ""
    log_path: Path | None = None
    proc: subprocess.Popen[Any] | None = None

    @property
    def ports(self) -> list[tuple[int, str, str]]:
        """(containerPort, protocol, name) the container declares."""
        return [
            (int(p["containerPort"]), str(p.get("protocol") or "TCP"), str(p.get("name") or ""))
            for p in self.container.get("ports") or ()
            if p.get("containerPort")
        ]


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A Service selector (a label map) matches when every pair is among the pod's labels.
    An empty or missing selector selects nothing (such Services get no managed slices)."""
    if not selector:
        return False
    return all(labels.get(k) == str(v) for k, v in selector.items())


def target_port(port: Mapping[str, Any], pod: Pod) -> int | None:
    """A Service port's targetPort for one pod: a number, a container port name, or
    (when absent) the Service port itself."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    for number, _, name in pod.ports:
        if name == target:
            return number
    return None


def endpoint_slices(service: Mapping[str, Any], pods: Iterable[Pod]) -> list[dict[str, Any]]:
    """The EndpointSlices the EndpointSlice controller writes for a Service with a selector
    (empty for a selector-less one: whoever manages its endpoints writes them).

    One slice per distinct set of resolved target ports, as the controller groups
    endpoints; endpoints are the matching pods with an address, ready."""
    spec = service.get("spec") or {}
    meta = service.get("metadata") or {}
    selector = spec.get("selector")
    if not selector:
        return []
    ns, name = str(meta.get("namespace") or "default"), str(meta["name"])
    groups: dict[tuple[tuple[str, int, str], ...], list[Pod]] = {}
    for pod in pods:
        if pod.namespace != ns or not pod.address or not selects(selector, pod.labels):
            continue
        resolved = []
        for p in spec.get("ports") or ():
            number = target_port(p, pod)
            if number is not None:
                resolved.append((str(p.get("name") or ""), number, str(p.get("protocol") or "TCP")))
        groups.setdefault(tuple(resolved), []).append(pod)
    if not groups:
        groups[()] = []
    out = []
    for i, (ports, members) in enumerate(sorted(groups.items())):
        slice_ports = []
        for pname, number, proto in ports:
            entry: dict[str, Any] = {"name": pname, "port": number, "protocol": proto}
            slice_ports.append(entry)
        for p in spec.get("ports") or ():
            if p.get("appProtocol"):
                for entry in slice_ports:
                    if entry["name"] == str(p.get("name") or ""):
                        entry["appProtocol"] = p["appProtocol"]
        out.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-{i:05d}" if len(groups) > 1 else f"{name}-lab",
                    "namespace": ns,
                    "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY},
                },
                "addressType": "IPv4",
                "ports": slice_ports,
                "endpoints": [
                    {
                        "addresses": [pod.address],
                        "conditions": {"ready": True, "serving": True, "terminating": False},
                        "targetRef": {"kind": "Pod", "namespace": ns, "name": pod.name},
                    }
                    for pod in sorted(members, key=lambda p: p.name)
                ],
            }
        )
    return out


def pods_of(deployment: Mapping[str, Any]) -> list[Pod]:
    """The pods a Deployment asks for (one container each, as in every suite manifest)."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    template = spec.get("template") or {}
    pod_spec = template.get("spec") or {}
    containers = pod_spec.get("containers") or []
    if len(containers) != 1:
        raise ClusterError(
            f"Deployment {meta.get('name')}: want one container, has {len(containers)}"
        )
    replicas = int(spec.get("replicas", 1))
    name, ns = str(meta["name"]), str(meta.get("namespace") or "default")
    labels = {
        str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()
    }
    return [
        Pod(p, ns, name, labels, dict(containers[0]), list(pod_spec.get("volumes") or ()))
        for p in pod_names(name, replicas)
    ]


def image_kind(container: Mapping[str, Any]) -> str:
    image = str(container.get("image") or "").rpartition(":")[0] or str(container.get("image"))
    if image == ECHO_IMAGE:
        return "echo"
    if image == COREDNS_IMAGE:
        return "coredns"
    return "unknown"


def _volume_files(
    pod: Pod, objects: Mapping[Ref, Mapping[str, Any]]
) -> dict[str, dict[str, bytes]]:
    """mountPath -> {relative file path: content} for the pod's Secret and ConfigMap volumes."""
    by_name = {str(v.get("name")): v for v in pod.volumes}
    out: dict[str, dict[str, bytes]] = {}
    for mount in pod.container.get("volumeMounts") or ():
        vol = by_name.get(str(mount.get("name")))
        if vol is None:
            raise ClusterError(f"pod {pod.name}: volumeMount {mount.get('name')} has no volume")
        if "secret" in vol:
            src = vol["secret"]
            ref = ("", "Secret", pod.namespace, str(src.get("secretName")))
            obj = objects.get(ref)
            data = {k: base64.b64decode(v) for k, v in ((obj or {}).get("data") or {}).items()}
            data.update(
                {k: str(v).encode() for k, v in ((obj or {}).get("stringData") or {}).items()}
            )
        elif "configMap" in vol:
            src = vol["configMap"]
            ref = ("", "ConfigMap", pod.namespace, str(src.get("name")))
            obj = objects.get(ref)
            data = {k: str(v).encode() for k, v in ((obj or {}).get("data") or {}).items()}
        else:
            raise ClusterError(
                f"pod {pod.name}: volume {vol.get('name')} is neither Secret nor ConfigMap"
            )
        if obj is None:
            # The kubelet would keep the pod ContainerCreating: it never becomes Ready.
            raise ClusterError(f"pod {pod.name}: {ref[1]} {ref[2]}/{ref[3]} does not exist")
        items = src.get("items")
        files = {str(i["path"]): data[str(i["key"])] for i in items} if items else dict(data)
        out[str(mount["mountPath"])] = files
    return out


def container_env(pod: Pod, mounts: Mapping[str, Path]) -> dict[str, str]:
    """The container's environment: downward API fields resolved, mount paths rewritten
    to where the emulation wrote the volume's files."""
    env: dict[str, str] = {}
    for e in pod.container.get("env") or ():
        name = str(e["name"])
        if "value" in e:
            value = str(e["value"])
            for mount_path, local in sorted(mounts.items(), key=lambda m: -len(m[0])):
                if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                    value = str(local) + value[len(mount_path.rstrip("/")) :]
                    break
            env[name] = value
            continue
        field_path = (((e.get("valueFrom") or {}).get("fieldRef")) or {}).get("fieldPath")
        values = {
            "metadata.name": pod.name,
            "metadata.namespace": pod.namespace,
            "status.podIP": pod.address,
        }
        if field_path not in values:
            raise ClusterError(
                f"pod {pod.name}: env {name}: unsupported valueFrom {e.get('valueFrom')}"
            )
        env[name] = values[str(field_path)]
    return env


# --------------------------------------------------------------------------
# the cluster


@dataclass
class Applied:
    """What one apply added, so that remove() can take exactly that away."""

    written: list[Ref] = field(default_factory=list)
    replaced: dict[Ref, dict[str, Any]] = field(default_factory=dict)
    pods: list[Pod] = field(default_factory=list)
    deployments: list[Ref] = field(default_factory=list)


class Cluster:
    """Runs the world's workloads in a lab and keeps nodegate's config folder like a cluster's."""

    def __init__(self, lab: Lab, folder: Path, state_dir: Path) -> None:
        self.lab = lab
        self.folder = ConfigFolder(folder)
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.pods: dict[str, Pod] = {}
        # Deployment "ns/name" -> why it runs no pods.
        self.unavailable: dict[str, str] = {}
        self._free_hosts: list[Host] = []
        self._lock = threading.RLock()

    # -- objects ----------------------------------------------------------

    def objects(self) -> dict[Ref, dict[str, Any]]:
        return self.folder.objects()

    def apply(self, objects: Iterable[Mapping[str, Any]]) -> Applied:
        """Create or update objects as `kubectl apply` would, start the pods of new
        Deployments, wait for them to listen, then write the EndpointSlices."""
        applied = Applied()
        with self._lock:
            current = self.folder.objects()
            for obj in objects:
                ref = _ref(obj)
                if ref in current and ref not in applied.replaced and ref not in applied.written:
                    applied.replaced[ref] = current[ref]
                if ref not in current:
                    applied.written.append(ref)
                self.folder.write(obj)
                current[ref] = dict(obj)
                if ref[:2] == ("apps", "Deployment") and ref not in applied.replaced:
                    applied.deployments.append(ref)
        new_pods: list[Pod] = []
        for ref in applied.deployments:
            new_pods += self._start_deployment(ref, current)
        applied.pods = new_pods
        self._wait_ready(new_pods)
        self.sync_endpoints()
        return applied

    def set_object(self, obj: Mapping[str, Any]) -> None:
        """Write one object as is (a phase edit, an EndpointSlice someone manages by hand)."""
        self.folder.write(obj)

    def delete_object(self, ref: Ref) -> None:
        self.folder.delete(ref)

    def remove(self, applied: Applied) -> None:
        """Undo an apply: stop its pods, delete its objects, restore the ones it replaced."""
        for pod in applied.pods:
            self._stop_pod(pod)
        with self._lock:
            for ref in applied.written:
                self.folder.delete(ref)
            for obj in applied.replaced.values():
                self.folder.write(obj)
            for ref in applied.deployments:
                self.unavailable.pop(f"{ref[2]}/{ref[3]}", None)
        self.sync_endpoints()

    def sync_endpoints(self) -> None:
        """Write the managed EndpointSlice of every Service with a selector; delete those
        of Services that are gone."""
        with self._lock:
            current = self.folder.objects()
            pods = list(self.pods.values())
            wanted: dict[Ref, dict[str, Any]] = {}
            for ref, obj in current.items():
                if ref[:2] == ("", "Service"):
                    for s in endpoint_slices(obj, pods):
                        wanted[_ref(s)] = s
            for ref, obj in current.items():
                labels = (obj.get("metadata") or {}).get("labels") or {}
                managed = labels.get(MANAGED_BY_LABEL) == MANAGED_BY
                if (
                    ref[:2] == ("discovery.k8s.io", "EndpointSlice")
                    and managed
                    and ref not in wanted
                ):
                    self.folder.delete(ref)
            for s in wanted.values():
                self.folder.write(s)

    # -- pods -------------------------------------------------------------

    def pods_of_service(self, namespace: str, name: str) -> list[Pod]:
        svc = self.folder.objects().get(("", "Service", namespace, name))
        if svc is None:
            return []
        selector = (svc.get("spec") or {}).get("selector")
        return sorted(
            (
                p
                for p in self.pods.values()
                if p.namespace == namespace and selects(selector, p.labels)
            ),
            key=lambda p: p.name,
        )

    def pods_labelled(self, namespace: str, labels: Mapping[str, str]) -> list[Pod]:
        return sorted(
            (
                p
                for p in self.pods.values()
                if p.namespace == namespace and selects(labels, p.labels)
            ),
            key=lambda p: p.name,
        )

    def _take_host(self) -> Host:
        with self._lock:  # the Lab is not thread-safe: hosts are added one at a time
            if self._free_hosts:
                return self._free_hosts.pop()
            return self.lab.add_host()

    def _start_deployment(self, ref: Ref, objects: Mapping[Ref, Mapping[str, Any]]) -> list[Pod]:
        where = f"{ref[2]}/{ref[3]}"
        deployment = objects[ref]
        try:
            pods = pods_of(deployment)
        except ClusterError as e:
            self.unavailable[where] = str(e)
            return []
        kind = image_kind(pods[0].container) if pods else "echo"
        if kind == "unknown":
            self.unavailable[where] = f"image {pods[0].container.get('image')} is not emulated"
            return []
        env_names = {str(e.get("name")) for e in pods[0].container.get("env") or ()}
        if kind == "echo" and "GRPC_ECHO_SERVER" in env_names:
            self.unavailable[where] = (
                "echo-basic's gRPC mode (GRPC_ECHO_SERVER) is not implemented by lab.echo"
            )
            return []
        started = []
        try:
            for pod in pods:
                self._start_pod(pod, kind, objects)
                started.append(pod)
        except (ClusterError, OSError) as e:
            for pod in started:
                self._stop_pod(pod)
            self.unavailable[where] = str(e)
            return []
        return started

    def _start_pod(self, pod: Pod, kind: str, objects: Mapping[Ref, Mapping[str, Any]]) -> None:
        pod_dir = self.state_dir / "pods" / pod.namespace / pod.name
        pod_dir.mkdir(parents=True, exist_ok=True)
        mounts: dict[str, Path] = {}
        for i, (mount_path, files) in enumerate(sorted(_volume_files(pod, objects).items())):
            local = pod_dir / f"volume-{i}"
            local.mkdir(exist_ok=True)
            for rel, content in files.items():
                (local / rel).parent.mkdir(parents=True, exist_ok=True)
                (local / rel).write_bytes(content)
            mounts[mount_path] = local
        host = self._take_host()
        pod.host, pod.address = host, str(host.address)
        env = container_env(pod, mounts)
        if kind == "echo":
            argv = [sys.executable, "-m", "lab.echo"]
        else:
            conf = _corefile_path(pod, mounts)
            argv = [sys.executable, "-m", "lab.conformance.coredns", "--conf", str(conf)]
        pod.log_path = pod_dir / "log"
        repo = str(Path(__file__).resolve().parents[1])
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": repo,
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        with pod.log_path.open("ab") as log:
            pod.proc = host.run(argv, env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=repo)
        with self._lock:
            self.pods[pod.name] = pod

    def _listen_ports(self, pod: Pod) -> list[tuple[str, int]]:
        """(proto, port) the pod's process should listen on, from its kind and environment."""
        env = {str(e["name"]): str(e.get("value", "")) for e in pod.container.get("env") or ()}
        if image_kind(pod.container) == "coredns":
            return [("udp", 53)]
        if env.get("TCP_ECHO_SERVER"):
            ports = [("tcp", int(env.get("TCP_PORT") or 3000))]
            if env.get("TLS_SERVER_CERT") and env.get("TLS_SERVER_PRIV_KEY"):
                ports.append(("tcp", int(env.get("TLS_PORT") or 8443)))
            return ports
        if env.get("UDP_ECHO_SERVER"):
            return [("udp", int(env.get("UDP_PORT") or 8080))]
        ports = [("tcp", int(env.get("HTTP_PORT") or 3000))]
        if env.get("TLS_SERVER_CERT") and env.get("TLS_SERVER_PRIVKEY"):
            ports.append(("tcp", int(env.get("HTTPS_PORT") or 8443)))
        return ports

    def _wait_ready(self, pods: Sequence[Pod]) -> None:
        """Wait until each pod listens on its ports (its readiness); a pod that dies or does
        not listen in time is stopped and its Deployment marked unavailable."""
        deadline = time.monotonic() + READY_TIMEOUT
        waiting = list(pods)
        while waiting:
            still = []
            for pod in waiting:
                assert pod.host is not None and pod.proc is not None
                if pod.proc.poll() is not None:
                    self._fail_pod(pod, f"exited with status {pod.proc.returncode}")
                    continue
                if not self._listening(pod):
                    still.append(pod)
            waiting = still
            if not waiting:
                return
            if time.monotonic() > deadline:
                for pod in waiting:
                    self._fail_pod(pod, f"not listening after {READY_TIMEOUT:.0f}s")
                return
            time.sleep(0.05)

    def _listening(self, pod: Pod) -> bool:
        assert pod.host is not None
        try:
            out = pod.host.check_output(["ss", "-Hlntu"])
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            return False
        have = set()
        for line in out.splitlines():
            cols = line.split()
            if len(cols) >= 5:
                have.add((cols[0], int(cols[4].rpartition(":")[2])))
        return all(p in have for p in self._listen_ports(pod))

    def _fail_pod(self, pod: Pod, why: str) -> None:
        tail = ""
        if pod.log_path is not None and pod.log_path.exists():
            tail = " | ".join(pod.log_path.read_text(errors="replace").splitlines()[-3:])
        self.unavailable[f"{pod.namespace}/{pod.deployment}"] = f"pod {pod.name} {why}: {tail}"
        self._stop_pod(pod)

    def _stop_pod(self, pod: Pod) -> None:
        with self._lock:
            self.pods.pop(pod.name, None)
        host = pod.host
        if host is None:
            return
        with contextlib.suppress(LabError):
            self.lab.check_open()
            host.stop_processes()
            with self._lock:
                self._free_hosts.append(host)
        pod.host = None


def _corefile_path(pod: Pod, mounts: Mapping[str, Path]) -> Path:
    args = [str(a) for a in pod.container.get("args") or ()]
    conf = args[args.index("-conf") + 1] if "-conf" in args else "Corefile"
    for mount_path, local in mounts.items():
        if conf.startswith(mount_path.rstrip("/") + "/"):
            return local / conf[len(mount_path.rstrip("/")) + 1 :]
    raise ClusterError(f"pod {pod.name}: Corefile {conf} is not in a mounted volume")
