"""Cluster emulation: EndpointSlices as the EndpointSlice controller writes them, pods as
Deployments ask for them, and (in a real lab) processes started, reachable and removed."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.cluster import (
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    Cluster,
    ClusterError,
    Pod,
    container_env,
    endpoint_slices,
    pods_of,
    selects,
)
from lab.conformance import coredns
from lab.conformance.client import NetnsPool
from lab.conformance.wire import dns_query, http_request, tcp_conversation, udp_exchange
from lab.echo.podname import backend_of
from lab.netns import Lab


def _pod(name: str, ns: str, labels: dict[str, str], address: str, ports: Any = ()) -> Pod:
    return Pod(name, ns, backend_of(name), labels, {"ports": list(ports)}, [], address=address)


def _service(
    name: str, ns: str, selector: Any, ports: list[dict[str, Any]], **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": selector, "ports": ports, **spec},
    }


PODS = [
    _pod("web-6d8f7c9b5b-x7k2p", "ns1", {"app": "web", "tier": "a"}, "198.19.0.2"),
    _pod("web-6d8f7c9b5b-q2w3e", "ns1", {"app": "web"}, "198.19.0.3"),
    _pod("web-5b7d9f8c6b-zzzzz", "ns2", {"app": "web"}, "198.19.0.4"),
    _pod("other-5b7d9f8c6b-aaaaa", "ns1", {"app": "other"}, "198.19.0.5"),
    _pod("web-6d8f7c9b5b-nnnnn", "ns1", {"app": "web"}, ""),  # not started: no address
]


def test_slice_has_upstream_shape_and_matching_ready_pods() -> None:
    svc = _service(
        "web",
        "ns1",
        {"app": "web"},
        [
            {"name": "http", "port": 8080, "targetPort": 3000, "protocol": "TCP"},
            {"name": "h2c", "port": 8081, "targetPort": 3001, "appProtocol": "kubernetes.io/h2c"},
        ],
    )
    [s] = endpoint_slices(svc, PODS)
    assert s["apiVersion"] == "discovery.k8s.io/v1" and s["kind"] == "EndpointSlice"
    assert s["addressType"] == "IPv4"
    assert s["metadata"]["namespace"] == "ns1"
    assert s["metadata"]["labels"][SERVICE_NAME_LABEL] == "web"
    assert s["metadata"]["labels"][MANAGED_BY_LABEL]
    assert s["ports"] == [
        {"name": "http", "port": 3000, "protocol": "TCP"},
        {"name": "h2c", "port": 3001, "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"},
    ]
    addresses = [e["addresses"] for e in s["endpoints"]]
    assert addresses == [
        ["198.19.0.3"],
        ["198.19.0.2"],
    ]  # by pod name; ns2/other/unstarted left out
    assert all(e["conditions"]["ready"] is True for e in s["endpoints"])
    assert {e["targetRef"]["name"] for e in s["endpoints"]} == {
        "web-6d8f7c9b5b-x7k2p",
        "web-6d8f7c9b5b-q2w3e",
    }


def test_unnamed_port_targetport_defaults_and_udp() -> None:
    svc = _service("dns", "ns1", {"tier": "a"}, [{"port": 53, "protocol": "UDP"}])
    [s] = endpoint_slices(svc, PODS)
    assert s["ports"] == [{"name": "", "port": 53, "protocol": "UDP"}]
    assert [e["addresses"] for e in s["endpoints"]] == [["198.19.0.2"]]


def test_named_target_port_resolves_per_pod() -> None:
    pods = [
        _pod(
            "a-bbbbbbbbbb-ccccc",
            "ns",
            {"app": "a"},
            "198.19.0.7",
            [{"containerPort": 9000, "name": "web"}],
        ),
        _pod(
            "a-bbbbbbbbbb-ddddd",
            "ns",
            {"app": "a"},
            "198.19.0.8",
            [{"containerPort": 9001, "name": "web"}],
        ),
    ]
    svc = _service("a", "ns", {"app": "a"}, [{"name": "p", "port": 80, "targetPort": "web"}])
    slices = endpoint_slices(svc, pods)
    assert sorted((s["ports"][0]["port"], s["endpoints"][0]["addresses"][0]) for s in slices) == [
        (9000, "198.19.0.7"),
        (9001, "198.19.0.8"),
    ]


def test_headless_with_selector_gets_a_slice_selectorless_gets_none() -> None:
    headless = _service(
        "h",
        "ns1",
        {"app": "web"},
        [{"name": "p", "port": 8080, "targetPort": 3000}],
        clusterIP="None",
    )
    assert len(endpoint_slices(headless, PODS)[0]["endpoints"]) == 2
    manual = _service("m", "ns1", None, [{"name": "p", "port": 8080, "targetPort": 3000}])
    assert endpoint_slices(manual, PODS) == []


def test_no_matching_pod_gives_an_empty_slice() -> None:
    svc = _service("x", "ns1", {"app": "nobody"}, [{"name": "p", "port": 1}])
    [s] = endpoint_slices(svc, PODS)
    assert s["endpoints"] == []


def test_selector_semantics() -> None:
    assert selects({"app": "web"}, {"app": "web", "x": "y"})
    assert not selects({"app": "web", "x": "z"}, {"app": "web", "x": "y"})
    assert not selects({}, {"app": "web"})
    assert not selects(None, {"app": "web"})


def _deployment(
    name: str, ns: str, replicas: int, env: list[dict[str, Any]], **pod_spec: Any
) -> dict[str, Any]:
    container = {"name": name, "image": "registry.k8s.io/gateway-api/echo-basic:v1.5.1", "env": env}
    container.update(pod_spec.pop("container", {}))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container], **pod_spec},
            },
        },
    }


DOWNWARD: list[dict[str, Any]] = [
    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
]


def test_pods_are_named_like_deployment_pods() -> None:
    pods = pods_of(_deployment("infra-backend-v1", "ns", 3, DOWNWARD))
    assert len({p.name for p in pods}) == 3
    assert {backend_of(p.name) for p in pods} == {"infra-backend-v1"}
    assert len({p.name.split("-")[-2] for p in pods}) == 1, "one ReplicaSet hash"
    assert all(p.labels == {"app": "infra-backend-v1"} and p.namespace == "ns" for p in pods)


def test_env_resolves_downward_api_and_rewrites_mount_paths(tmp_path: Path) -> None:
    env = [
        *DOWNWARD,
        {"name": "TLS_SERVER_CERT", "value": "/etc/secret-volume/crt"},
        {"name": "X", "value": "1"},
    ]
    [pod] = pods_of(_deployment("b", "ns", 1, env))
    out = container_env(pod, {"/etc/secret-volume": tmp_path})
    assert out == {
        "POD_NAME": pod.name,
        "NAMESPACE": "ns",
        "TLS_SERVER_CERT": f"{tmp_path}/crt",
        "X": "1",
    }
    bad = pods_of(_deployment("c", "ns", 1, [{"name": "Y", "valueFrom": {"secretKeyRef": {}}}]))[0]
    with pytest.raises(ClusterError, match="unsupported valueFrom"):
        container_env(bad, {})


def test_coredns_whoami_answer() -> None:
    zones, port = coredns.whoami_zones(
        ".:53 {\n forward . 8.8.8.8\n}\nfoo.bar.com:53 {\n  whoami\n}\n"
    )
    assert (zones, port) == (["foo.bar.com."], 53)
    q = (
        struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
        + b"\x03foo\x03bar\x03com\x00"
        + struct.pack("!HH", 1, 1)
    )
    reply = coredns.answer(q, zones, ("198.18.0.2", 40000))
    assert reply is not None
    ident, flags, qd, an, _ns, ar = struct.unpack("!HHHHHH", reply[:12])
    assert (ident, flags & 0x800F, qd, an, ar) == (0x1234, 0x8000, 1, 0, 2)
    assert bytes([198, 18, 0, 2]) in reply
    other = q.replace(b"\x03foo", b"\x03baz")
    refused = coredns.answer(other, zones, ("198.18.0.2", 1))
    assert refused is not None and refused[3] & 0x0F == 2, "outside the whoami zone: SERVFAIL"


# --------------------------------------------------------------------------
# in a real lab


def _world(tls_secret: dict[str, Any]) -> list[dict[str, Any]]:
    http = _deployment("web-backend", "cl-web", 2, DOWNWARD)
    tls_env = [
        *DOWNWARD,
        {"name": "SERVICE_NAME", "value": "tcp-echo"},
        {"name": "TCP_ECHO_SERVER", "value": "true"},
        {"name": "TLS_SERVER_CERT", "value": "/etc/secret-volume/crt"},
        {"name": "TLS_SERVER_PRIV_KEY", "value": "/etc/secret-volume/key"},
    ]
    tcp = _deployment(
        "tcp-echo",
        "cl-web",
        1,
        tls_env,
        container={"volumeMounts": [{"name": "secret-volume", "mountPath": "/etc/secret-volume"}]},
        volumes=[
            {
                "name": "secret-volume",
                "secret": {
                    "secretName": "cert",
                    "items": [{"key": "tls.crt", "path": "crt"}, {"key": "tls.key", "path": "key"}],
                },
            }
        ],
    )
    udp_env = [
        *DOWNWARD,
        {"name": "SERVICE_NAME", "value": "udp-echo"},
        {"name": "UDP_ECHO_SERVER", "value": "1"},
    ]
    udp = _deployment("udp-echo", "cl-web", 1, udp_env)
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cl-web"}},
        tls_secret,
        http,
        _service(
            "web-backend",
            "cl-web",
            {"app": "web-backend"},
            [{"name": "http", "port": 8080, "targetPort": 3000}],
        ),
        tcp,
        _service(
            "tcp-echo",
            "cl-web",
            {"app": "tcp-echo"},
            [{"name": "tls", "port": 8443, "targetPort": 8443}],
        ),
        udp,
        _service(
            "udp-echo",
            "cl-web",
            {"app": "udp-echo"},
            [{"name": "udp", "port": 8080, "protocol": "UDP", "targetPort": 8080}],
        ),
        _deployment("strange", "cl-web", 1, DOWNWARD, container={"image": "example.com/other:1"}),
    ]


def _slices(folder: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in folder.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        if doc["kind"] == "EndpointSlice":
            out[doc["metadata"]["labels"][SERVICE_NAME_LABEL]] = doc
    return out


@pytest.mark.kernel
def test_cluster_starts_pods_writes_slices_and_removes_them(tmp_path: Path) -> None:
    from lab import certs

    generated = certs.generated_objects()
    src = next(
        o for o in generated if o["metadata"]["name"] == "tls-passthrough-checks-certificate"
    )
    secret = {**src, "metadata": {"name": "cert", "namespace": "cl-web"}}
    with Lab(backends=0) as lab:
        cluster = Cluster(lab, tmp_path / "config", tmp_path / "state")
        applied = cluster.apply(_world(secret))
        assert "cl-web/strange" in cluster.unavailable
        assert sorted(backend_of(p) for p in cluster.pods) == [
            "tcp-echo",
            "udp-echo",
            "web-backend",
            "web-backend",
        ]
        assert len({p.host.netns for p in cluster.pods.values() if p.host}) == 4, "one host per pod"
        slices = _slices(tmp_path / "config")
        assert set(slices) == {"web-backend", "tcp-echo", "udp-echo"}
        web_ips = sorted(e["addresses"][0] for e in slices["web-backend"]["endpoints"])
        assert web_ips == sorted(
            p.address for p in cluster.pods.values() if p.deployment == "web-backend"
        )

        pool = NetnsPool(lab.client.netns, workers=2)
        try:
            for ep in slices["web-backend"]["endpoints"]:
                r = pool.call(
                    http_request,
                    ep["addresses"][0],
                    3000,
                    "GET",
                    "/x?y=1",
                    [("Host", "h")],
                    5.0,
                    None,
                )
                body = json.loads(r.body)
                assert (body["path"], body["namespace"], body["pod"]) == (
                    "/x?y=1",
                    "cl-web",
                    ep["targetRef"]["name"],
                )
            from lab.conformance.wire import TLSOptions

            tcp_ip = slices["tcp-echo"]["endpoints"][0]["addresses"][0]
            opts = TLSOptions(
                sni="abc.example.com",
                trust_pem=certs.ca_pem(
                    next(
                        o for o in generated if o["metadata"]["name"] == "tls-checks-ca-certificate"
                    )
                ),
            )
            answers = pool.call(tcp_conversation, tcp_ip, 8443, 5.0, opts)
            test = json.loads(answers["TEST"])
            assert (answers["IS_TLS"], test["service"], test["tls"]["serverName"]) == (
                "true",
                "tcp-echo",
                "abc.example.com",
            )
            udp_ip = slices["udp-echo"]["endpoints"][0]["addresses"][0]
            reply = json.loads(pool.call(udp_exchange, udp_ip, 8080, b"hi", 2.0, 1024))
            assert (reply["request"], reply["service"], reply["namespace"]) == (
                "hi",
                "udp-echo",
                "cl-web",
            )
        finally:
            pool.close()

        procs = [p.proc for p in cluster.pods.values()]
        cluster.remove(applied)
        assert cluster.pods == {}
        assert all(p is not None and p.poll() is not None for p in procs), "pods stopped"
        assert list((tmp_path / "config").glob("*.yaml")) == [], "every file it wrote is gone"
        again = cluster.apply(_world(secret)[:4])
        assert len(lab.backends) == 4, "free backend hosts are reused"
        cluster.remove(again)


@pytest.mark.kernel
def test_coredns_pod_answers_dns(tmp_path: Path) -> None:
    corefile = "foo.bar.com:53 {\n  whoami\n}\n"
    dep = _deployment(
        "coredns", "cl-dns", 1, [], volumes=[{"name": "conf", "configMap": {"name": "coredns"}}]
    )
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container.update(
        image="registry.k8s.io/coredns/coredns:v1.12.2", args=["-conf", "/root/Corefile"]
    )
    container["volumeMounts"] = [{"name": "conf", "mountPath": "/root"}]
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "coredns", "namespace": "cl-dns"},
        "data": {"Corefile": corefile},
    }
    with Lab(backends=0) as lab:
        cluster = Cluster(lab, tmp_path / "config", tmp_path / "state")
        cluster.apply(
            [
                cm,
                dep,
                _service(
                    "coredns",
                    "cl-dns",
                    {"app": "coredns"},
                    [{"name": "dns", "port": 53, "protocol": "UDP"}],
                ),
            ]
        )
        assert cluster.unavailable == {}
        [pod] = cluster.pods.values()
        pool = NetnsPool(lab.client.netns, workers=1)
        try:
            reply = pool.call(dns_query, pod.address, 53, "foo.bar.com.", 1, 2.0)
        finally:
            pool.close()
        assert reply[3] & 0x0F == 0 and bytes(lab.client.address.packed) in reply


def test_secret_volume_base64_is_decoded(tmp_path: Path) -> None:
    from lab.cluster import _volume_files

    dep = _deployment(
        "v",
        "ns",
        1,
        DOWNWARD,
        container={"volumeMounts": [{"name": "s", "mountPath": "/etc/s"}]},
        volumes=[
            {
                "name": "s",
                "secret": {"secretName": "k", "items": [{"key": "tls.crt", "path": "crt"}]},
            }
        ],
    )
    [pod] = pods_of(dep)
    secret = {"data": {"tls.crt": base64.b64encode(b"PEM").decode()}}
    assert _volume_files(pod, {("", "Secret", "ns", "k"): secret}) == {"/etc/s": {"crt": b"PEM"}}
    with pytest.raises(ClusterError, match="does not exist"):
        _volume_files(pod, {})


@pytest.mark.kernel
def test_demo_runs_the_quickstart_and_cleans_up() -> None:
    """`make demo`: every listener is either shown answering from its backends or named as
    not served by this build; nodegate status is summarised; the lab is gone afterwards."""
    import os
    import re
    import subprocess
    import sys

    from lab import netns

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "lab.demo"],
        cwd=repo,
        env={**os.environ, "KEEP": ""},
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    sections = {m.group(1): m.start() for m in re.finditer(r"^(HTTP|TCP|UDP) listener", out, re.M)}
    assert set(sections) == {"HTTP", "TCP", "UDP"}, out
    for proto, path, backends in (
        ("HTTP", "proxy", ("echo-v1", "echo-v2")),
        ("TCP", "kernel", ("tcp-echo",)),
        ("UDP", "kernel", ("udp-echo",)),
    ):
        start = sections[proto]
        ends = [i for i in (*sections.values(), out.find("\n\n", start)) if i > start]
        body = out[start : min(ends)]
        if "not served by this build yet" in body:
            continue
        answered = re.findall(r"-> (\S+) \(\S+\) via (\w+)", body)
        assert answered and {b for b, _ in answered} <= set(backends), body
        assert {p for _, p in answered} == {path}, body
    assert "HTTPRoute quickstart/web: parent demo/http: Accepted=True" in out
    assert "Cleaned up." in out
    prefix = re.search(r"lab (ng[0-9a-f]{4}-)", out)
    assert prefix is not None
    assert not [n for n in netns.netns_names() if n.startswith(prefix.group(1))]
