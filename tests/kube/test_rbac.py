"""deploy/daemonset.yaml's RBAC: enough for everything the agent does, and nothing more."""

from __future__ import annotations

import base64
import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.kube.support import (
    Api,
    Cluster,
    condition,
    gateway,
    http,
    service,
    slice_,
    status_of,
    wait_for,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "daemonset.yaml"
G = "gateway.networking.k8s.io"
X = "gateway.networking.x-k8s.io"
GATEWAY_KINDS = [
    "gatewayclasses",
    "gateways",
    "listenersets",
    "httproutes",
    "grpcroutes",
    "tlsroutes",
    "tcproutes",
    "udproutes",
    "referencegrants",
    "backendtlspolicies",
]
WITH_STATUS = [k for k in GATEWAY_KINDS if k != "referencegrants"]

# Every (apiGroup, resource) -> verbs the design needs; deploy/README.md explains each line.
EXPECTED_CLUSTER_RULES = {
    **{(G, k): {"get", "list", "watch"} for k in GATEWAY_KINDS},
    **{(X, k): {"get", "list", "watch"} for k in ("xlistenersets", "xbackendtrafficpolicies")},
    **{(G, f"{k}/status"): {"update"} for k in WITH_STATUS},
    **{(X, f"{k}/status"): {"update"} for k in ("xlistenersets", "xbackendtrafficpolicies")},
    ("", "namespaces"): {"list", "watch"},
    ("", "services"): {"list", "watch"},
    ("discovery.k8s.io", "endpointslices"): {"list", "watch"},
    ("", "secrets"): {"get"},
    ("", "configmaps"): {"get"},
}
EXPECTED_NAMESPACE_RULES = {
    ("coordination.k8s.io", "leases"): {"get", "list", "create", "update", "delete"}
}


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(DEPLOY.read_text()) if d]


def rules_of(kind: str) -> dict[tuple[str, str], set[str]]:
    role = next(d for d in documents() if d["kind"] == kind)
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert not rule.get("resourceNames") and not rule.get("nonResourceURLs")
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert "*" not in (group, resource, *rule["verbs"]), rule
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def test_the_rbac_is_exactly_what_the_design_needs() -> None:
    assert rules_of("ClusterRole") == EXPECTED_CLUSTER_RULES
    assert rules_of("Role") == EXPECTED_NAMESPACE_RULES
    role = next(d for d in documents() if d["kind"] == "Role")
    assert role["metadata"]["namespace"] == "nodegate"


def can(
    api: Api, verb: str, group: str, resource: str, namespace: str = "", name: str = ""
) -> bool:
    res, _, sub = resource.partition("/")
    attrs = {
        "verb": verb,
        "group": group,
        "resource": res,
        "subresource": sub,
        "namespace": namespace,
        "name": name,
    }
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attrs},
    }
    return bool(
        api.req("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)[
            "status"
        ].get("allowed")
    )


def certificate() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rbac.example.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("rbac.example.com")]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, key_pem


def test_the_agent_does_its_job_with_the_service_account(cluster: Cluster) -> None:
    api = cluster.api
    for doc in documents():
        api.create(doc)
    sa = Api(api.url, api.ca, cluster.server.sa_token)
    assert sa.get("/apis/authentication.k8s.io/v1")  # the token works

    ns = cluster.namespace(f"{cluster.name}-rbac")
    cert, key = certificate()
    b64 = base64.b64encode
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": "cert", "namespace": ns},
            "data": {"tls.crt": b64(cert.encode()).decode(), "tls.key": b64(key.encode()).decode()},
        }
    )
    api.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "ca", "namespace": ns},
            "data": {"ca.crt": cert},
        }
    )
    api.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "unreferenced", "namespace": ns},
            "data": {"x": "eA=="},
        }
    )
    https = {
        "name": "https",
        "port": 8443,
        "protocol": "HTTPS",
        "hostname": "rbac.example.com",
        "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert"}]},
    }
    gw = api.create(gateway(ns, "nodegate", http(), https))
    api.create(service(ns))
    api.create(slice_(ns))
    r = api.create(
        {
            "apiVersion": f"{G}/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": ns},
            "spec": {
                "parentRefs": [{"name": "g"}],
                "rules": [{"backendRefs": [{"name": "svc", "port": 80}]}],
            },
        }
    )
    policy = api.create(
        {
            "apiVersion": f"{G}/v1",
            "kind": "BackendTLSPolicy",
            "metadata": {"name": "p", "namespace": ns},
            "spec": {
                "targetRefs": [{"group": "", "kind": "Service", "name": "svc"}],
                "validation": {
                    "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}],
                    "hostname": "rbac.example.com",
                },
            },
        }
    )
    agent = cluster.agent(
        "node-a",
        "198.18.0.1",
        kubeconfig=cluster.server.sa_kubeconfig(cluster.tmp / "sa.kubeconfig"),
        namespace="nodegate",
        extra=("--controller-name", "nodegate.dev/gateway-controller"),
    )

    def gateway_ok() -> bool:
        st = status_of(api, gw)
        return (
            bool(st.get("listeners"))
            and all(
                condition(listener, "ResolvedRefs")["status"] == "True"
                for listener in st["listeners"]
            )
            and condition(st, "Programmed")["status"] == "True"
        )

    wait_for(gateway_ok, "the Gateway programmed with its certificate Secret read")
    wait_for(
        lambda: (
            condition(
                status_of(
                    api,
                    {
                        "apiVersion": f"{G}/v1",
                        "kind": "GatewayClass",
                        "metadata": {"name": "nodegate"},
                    },
                ),
                "Accepted",
            )["status"]
            == "True"
        ),
        "GatewayClass accepted",
    )
    wait_for(lambda: status_of(api, r).get("parents"), "HTTPRoute status")

    def policy_ok() -> bool:
        ancestors = status_of(api, policy).get("ancestors") or []
        return bool(ancestors) and condition(ancestors[0], "ResolvedRefs")["status"] == "True"

    wait_for(policy_ok, "BackendTLSPolicy accepted with its CA ConfigMap read")
    leases = sa.get("/apis/coordination.k8s.io/v1/namespaces/nodegate/leases")["items"]
    assert {lease["metadata"]["name"] for lease in leases} == {
        "nodegate-status-writer",
        "nodegate-node-node-a",
    }
    log = agent.log()
    assert not re.search(r"\b403: ", log) and "forbidden" not in log.lower(), log[-4000:]

    allowed = [
        ("get", "", "secrets", ns),
        ("get", "", "configmaps", ns),
        ("list", G, "gateways", ""),
        ("watch", "discovery.k8s.io", "endpointslices", ""),
        ("update", G, "gateways/status", ns),
        ("update", G, "httproutes/status", ns),
        ("create", "coordination.k8s.io", "leases", "nodegate"),
    ]
    denied = [
        ("list", "", "secrets", ""),
        ("watch", "", "secrets", ns),
        ("list", "", "configmaps", ns),
        ("update", "", "secrets", ns),
        ("update", G, "gateways", ns),
        ("patch", G, "gateways/status", ns),
        ("delete", G, "httproutes", ns),
        ("create", G, "gateways", ns),
        ("create", "coordination.k8s.io", "leases", "default"),
        ("update", "coordination.k8s.io", "leases", "kube-system"),
        ("get", "", "pods", ns),
        ("list", "", "nodes", ""),
        ("create", "", "events", ns),
        ("update", "", "services", ns),
    ]
    assert [a for a in allowed if not can(sa, *a)] == []
    assert [d for d in denied if can(sa, *d)] == []
