"""Table-driven tests of the pure translation: objects in, statuses and NodeConfig out."""

from __future__ import annotations

import base64
import datetime as dt
import functools
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.model import ObjectKey
from agent.store import Store
from agent.translate import TranslateOptions, TranslateResult, translate

GW = "gateway.networking.k8s.io"
POOL = ("198.18.128.0/24",)


@functools.cache
def keypair(name: str = "example.com") -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return base64.b64encode(cert_pem).decode(), base64.b64encode(key_pem).decode()


BASE = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ng, generation: 1}
spec: {controllerName: nodegate.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other, generation: 1}
spec: {controllerName: example.com/other}
---
apiVersion: v1
kind: Namespace
metadata: {name: infra, labels: {team: infra}}
---
apiVersion: v1
kind: Namespace
metadata: {name: apps, labels: {team: apps, expose: "yes"}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: infra}
spec: {ports: [{name: http, port: 8080, targetPort: 3000}, {name: h2, port: 8081, appProtocol: kubernetes.io/h2c}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: infra, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 3000, protocol: TCP}, {name: h2, port: 3001, protocol: TCP}]
endpoints:
- {addresses: [198.19.0.2], conditions: {ready: true}}
- {addresses: [198.19.0.3], conditions: {ready: false}}
- {addresses: [198.19.0.4]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: apps}
spec: {ports: [{name: tcp, port: 5432}]}
"""


def secret(name: str, namespace: str) -> str:
    crt, key = keypair()
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {namespace}}}
type: kubernetes.io/tls
data: {{tls.crt: {crt}, tls.key: {key}}}
"""


def gateway(name: str, listeners: str, ns: str = "infra", extra: str = "", cls: str = "ng") -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {ns}, generation: 3}}
spec:
  gatewayClassName: {cls}
  listeners: {listeners}
{extra}
"""


def http_route(
    name: str, parent: str, ns: str = "infra", hostnames: str = "[]", rules: str = "", ts: str = ""
) -> str:
    rules = rules or "[{backendRefs: [{name: web, port: 8080}]}]"
    stamp = f", creationTimestamp: '{ts}'" if ts else ""
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {ns}, generation: 2{stamp}}}
spec:
  parentRefs: [{parent}]
  hostnames: {hostnames}
  rules: {rules}
"""


def ca_config_map(name: str, namespace: str) -> str:
    pem = base64.b64decode(keypair()[0]).decode().replace("\n", "\\n")
    return f'apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {namespace}}}\ndata: {{ca.crt: "{pem}"}}'


HTTP80 = "[{name: http, port: 80, protocol: HTTP}]"


def run(*docs: str, options: TranslateOptions | None = None) -> tuple[TranslateResult, Store]:
    store = Store()
    for text in (BASE, *docs):
        for obj in yaml.safe_load_all(text):
            if obj:
                obj.setdefault("metadata", {}).setdefault("generation", 1)
                store.apply(obj)
    return translate(store.snapshot(), options or TranslateOptions(address_pools=POOL)), store


def status_of(result: TranslateResult, kind: str, ns: str, name: str) -> dict[str, Any]:
    group = {"Namespace": "", "Service": ""}.get(kind, GW)
    return result.statuses[ObjectKey(group, kind, ns, name)]


def cond(conditions: list[dict[str, Any]], type_: str) -> tuple[str, str]:
    c = next(c for c in conditions if c["type"] == type_)
    return c["status"], c["reason"]


def get(status: dict[str, Any], path: str) -> Any:
    """Walk `listeners.<name>`, `parents.<index>`, `ancestors.<index>`, `conditions.<Type>`."""
    parts = path.split(".")
    node: Any = status
    i = 0
    while i < len(parts):
        p = parts[i]
        if p == "conditions" and i + 1 < len(parts):
            return cond(node["conditions"], parts[i + 1])
        if p == "listeners":
            node = next(x for x in node["listeners"] if x["name"] == parts[i + 1])
            i += 2
            continue
        if p in ("parents", "ancestors"):
            node = node[p][int(parts[i + 1])]
            i += 2
            continue
        node = node[p]
        i += 1
    return node


T, F = "True", "False"

# (id, documents, [(kind, namespace/name, path, expected)])
STATUS_CASES: list[tuple[str, list[str], list[tuple[str, str, str, Any]]]] = [
    (
        "class of ours accepted, others left alone",
        [],
        [
            ("GatewayClass", "/ng", "conditions.Accepted", (T, "Accepted")),
            ("GatewayClass", "/ng", "conditions.SupportedVersion", (T, "SupportedVersion")),
            ("GatewayClass", "/ng", "supportedFeatures", []),
        ],
    ),
    (
        "gateway with one HTTP listener",
        [gateway("g", HTTP80)],
        [
            ("Gateway", "infra/g", "conditions.Accepted", (T, "Accepted")),
            ("Gateway", "infra/g", "conditions.Programmed", (T, "Programmed")),
            ("Gateway", "infra/g", "listeners.http.conditions.Accepted", (T, "Accepted")),
            ("Gateway", "infra/g", "listeners.http.conditions.Conflicted", (F, "NoConflicts")),
            ("Gateway", "infra/g", "listeners.http.conditions.ResolvedRefs", (T, "ResolvedRefs")),
            (
                "Gateway",
                "infra/g",
                "listeners.http.supportedKinds",
                [{"group": GW, "kind": "HTTPRoute"}],
            ),
            ("Gateway", "infra/g", "listeners.http.attachedRoutes", 0),
            ("Gateway", "infra/g", "attachedListenerSets", 0),
        ],
    ),
    (
        "only an unsupported protocol",
        [gateway("g", "[{name: x, port: 80, protocol: FTP}]")],
        [
            ("Gateway", "infra/g", "conditions.Accepted", (F, "ListenersNotValid")),
            ("Gateway", "infra/g", "conditions.Programmed", (F, "Invalid")),
            ("Gateway", "infra/g", "listeners.x.conditions.Accepted", (F, "UnsupportedProtocol")),
            ("Gateway", "infra/g", "listeners.x.supportedKinds", []),
        ],
    ),
    (
        "valid and unsupported listeners: accepted with ListenersNotValid",
        [
            gateway(
                "g", "[{name: http, port: 80, protocol: HTTP}, {name: x, port: 81, protocol: FTP}]"
            )
        ],
        [
            ("Gateway", "infra/g", "conditions.Accepted", (T, "ListenersNotValid")),
            ("Gateway", "infra/g", "listeners.http.conditions.Accepted", (T, "Accepted")),
        ],
    ),
    (
        "same port, protocol and hostname: both conflicted, no winner",
        [
            gateway(
                "g",
                "[{name: a, port: 80, protocol: HTTP, hostname: a.com}, {name: b, port: 80, protocol: HTTP, hostname: a.com}]",
            )
        ],
        [
            ("Gateway", "infra/g", "listeners.a.conditions.Conflicted", (T, "HostnameConflict")),
            ("Gateway", "infra/g", "listeners.b.conditions.Conflicted", (T, "HostnameConflict")),
            ("Gateway", "infra/g", "listeners.a.conditions.Accepted", (F, "HostnameConflict")),
            ("Gateway", "infra/g", "conditions.Accepted", (F, "ListenersNotValid")),
        ],
    ),
    (
        "same port, different hostnames: distinct",
        [
            gateway(
                "g",
                "[{name: a, port: 80, protocol: HTTP, hostname: a.com}, {name: b, port: 80, protocol: HTTP}]",
            )
        ],
        [
            ("Gateway", "infra/g", "listeners.a.conditions.Conflicted", (F, "NoConflicts")),
            ("Gateway", "infra/g", "listeners.b.conditions.Conflicted", (F, "NoConflicts")),
        ],
    ),
    (
        "TCP and HTTP on one port: protocol conflict for all",
        [gateway("g", "[{name: a, port: 80, protocol: HTTP}, {name: t, port: 80, protocol: TCP}]")],
        [
            ("Gateway", "infra/g", "listeners.a.conditions.Conflicted", (T, "ProtocolConflict")),
            ("Gateway", "infra/g", "listeners.t.conditions.Conflicted", (T, "ProtocolConflict")),
        ],
    ),
    (
        "UDP and HTTP on one port number: different port spaces",
        [gateway("g", "[{name: a, port: 80, protocol: HTTP}, {name: u, port: 80, protocol: UDP}]")],
        [
            ("Gateway", "infra/g", "listeners.u.conditions.Conflicted", (F, "NoConflicts")),
            (
                "Gateway",
                "infra/g",
                "listeners.u.supportedKinds",
                [{"group": GW, "kind": "UDPRoute"}],
            ),
        ],
    ),
    (
        "allowedRoutes kinds: invalid kinds reported, valid ones kept",
        [
            gateway(
                "g",
                "[{name: a, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: HTTPRoute}, {kind: FooRoute}]}}]",
            )
        ],
        [
            ("Gateway", "infra/g", "listeners.a.conditions.ResolvedRefs", (F, "InvalidRouteKinds")),
            (
                "Gateway",
                "infra/g",
                "listeners.a.supportedKinds",
                [{"group": GW, "kind": "HTTPRoute"}],
            ),
        ],
    ),
    (
        "HTTPS with a Secret that does not exist",
        [
            gateway(
                "g",
                "[{name: s, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: nope}]}}]",
            )
        ],
        [
            (
                "Gateway",
                "infra/g",
                "listeners.s.conditions.ResolvedRefs",
                (F, "InvalidCertificateRef"),
            ),
            ("Gateway", "infra/g", "listeners.s.conditions.Programmed", (F, "Invalid")),
            ("Gateway", "infra/g", "listeners.s.conditions.Accepted", (T, "Accepted")),
        ],
    ),
    (
        "HTTPS with a Secret in the same namespace",
        [
            secret("cert", "infra"),
            gateway(
                "g",
                "[{name: s, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]}}]",
            ),
        ],
        [("Gateway", "infra/g", "listeners.s.conditions.ResolvedRefs", (T, "ResolvedRefs"))],
    ),
    (
        "HTTPS with a cross-namespace Secret and no grant",
        [
            secret("cert", "apps"),
            gateway(
                "g",
                "[{name: s, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert, namespace: apps}]}}]",
            ),
        ],
        [("Gateway", "infra/g", "listeners.s.conditions.ResolvedRefs", (F, "RefNotPermitted"))],
    ),
    (
        "HTTPS with a cross-namespace Secret and a grant",
        [
            secret("cert", "apps"),
            gateway(
                "g",
                "[{name: s, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert, namespace: apps}]}}]",
            ),
            """
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: rg, namespace: apps}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]
  to: [{group: "", kind: Secret}]
""",
        ],
        [("Gateway", "infra/g", "listeners.s.conditions.ResolvedRefs", (T, "ResolvedRefs"))],
    ),
    (
        "a malformed Secret",
        [
            gateway(
                "g",
                "[{name: s, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: bad}]}}]",
            ),
            "apiVersion: v1\nkind: Secret\nmetadata: {name: bad, namespace: infra}\ndata: {tls.crt: SGVsbG8K, tls.key: SGVsbG8K}",
        ],
        [
            (
                "Gateway",
                "infra/g",
                "listeners.s.conditions.ResolvedRefs",
                (F, "InvalidCertificateRef"),
            )
        ],
    ),
    (
        "a route attaches",
        [gateway("g", HTTP80), http_route("r", "{name: g}")],
        [
            ("HTTPRoute", "infra/r", "parents.0.conditions.Accepted", (T, "Accepted")),
            ("HTTPRoute", "infra/r", "parents.0.conditions.ResolvedRefs", (T, "ResolvedRefs")),
            ("HTTPRoute", "infra/r", "parents.0.controllerName", "nodegate.dev/gateway-controller"),
            (
                "HTTPRoute",
                "infra/r",
                "parents.0.parentRef",
                {"group": GW, "kind": "Gateway", "name": "g"},
            ),
            ("Gateway", "infra/g", "listeners.http.attachedRoutes", 1),
        ],
    ),
    (
        "sectionName that no listener has",
        [gateway("g", HTTP80), http_route("r", "{name: g, sectionName: nope}")],
        [("HTTPRoute", "infra/r", "parents.0.conditions.Accepted", (F, "NoMatchingParent"))],
    ),
    (
        "port that no listener has",
        [gateway("g", HTTP80), http_route("r", "{name: g, port: 8080}")],
        [
            ("HTTPRoute", "infra/r", "parents.0.conditions.Accepted", (F, "NoMatchingParent")),
            ("Gateway", "infra/g", "listeners.http.attachedRoutes", 0),
        ],
    ),
    (
        "route from another namespace, listener allows Same",
        [gateway("g", HTTP80), http_route("r", "{name: g, namespace: infra}", ns="apps")],
        [("HTTPRoute", "apps/r", "parents.0.conditions.Accepted", (F, "NotAllowedByListeners"))],
    ),
    (
        "route from a namespace the selector picks",
        [
            gateway(
                "g",
                "[{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {expose: 'yes'}}}}}]",
            ),
            http_route(
                "r",
                "{name: g, namespace: infra}",
                ns="apps",
                rules="[{backendRefs: [{name: db, port: 5432}]}]",
            ),
        ],
        [("HTTPRoute", "apps/r", "parents.0.conditions.Accepted", (T, "Accepted"))],
    ),
    (
        "an HTTPRoute on a TCP-only Gateway",
        [gateway("g", "[{name: t, port: 9000, protocol: TCP}]"), http_route("r", "{name: g}")],
        [("HTTPRoute", "infra/r", "parents.0.conditions.Accepted", (F, "NotAllowedByListeners"))],
    ),
    (
        "hostnames that do not intersect",
        [
            gateway("g", "[{name: http, port: 80, protocol: HTTP, hostname: '*.example.com'}]"),
            http_route("r", "{name: g}", hostnames="[foo.example.net]"),
        ],
        [
            (
                "HTTPRoute",
                "infra/r",
                "parents.0.conditions.Accepted",
                (F, "NoMatchingListenerHostname"),
            ),
            ("Gateway", "infra/g", "listeners.http.attachedRoutes", 0),
        ],
    ),
    (
        "backendRef to a Service that does not exist",
        [
            gateway("g", HTTP80),
            http_route("r", "{name: g}", rules="[{backendRefs: [{name: nope, port: 80}]}]"),
        ],
        [
            ("HTTPRoute", "infra/r", "parents.0.conditions.Accepted", (T, "Accepted")),
            ("HTTPRoute", "infra/r", "parents.0.conditions.ResolvedRefs", (F, "BackendNotFound")),
        ],
    ),
    (
        "cross-namespace backendRef to a missing Service, no grant: the grant is checked first",
        [
            gateway("g", HTTP80),
            http_route(
                "r", "{name: g}", rules="[{backendRefs: [{name: nope, namespace: apps, port: 80}]}]"
            ),
        ],
        [("HTTPRoute", "infra/r", "parents.0.conditions.ResolvedRefs", (F, "RefNotPermitted"))],
    ),
    (
        "backendRef of an unknown kind",
        [
            gateway("g", HTTP80),
            http_route(
                "r",
                "{name: g}",
                rules="[{backendRefs: [{group: example.com, kind: Thing, name: x}]}]",
            ),
        ],
        [("HTTPRoute", "infra/r", "parents.0.conditions.ResolvedRefs", (F, "InvalidKind"))],
    ),
    (
        "backendRef to a port the Service lacks",
        [
            gateway("g", HTTP80),
            http_route("r", "{name: g}", rules="[{backendRefs: [{name: web, port: 9999}]}]"),
        ],
        [("HTTPRoute", "infra/r", "parents.0.conditions.ResolvedRefs", (F, "BackendNotFound"))],
    ),
    (
        "backendRef with an appProtocol the proxy does not speak",
        [
            gateway("g", HTTP80),
            http_route("r", "{name: g}", rules="[{backendRefs: [{name: web, port: 8081}]}]"),
        ],
        [("HTTPRoute", "infra/r", "parents.0.conditions.ResolvedRefs", (F, "UnsupportedProtocol"))],
    ),
    (
        "observedGeneration follows metadata.generation",
        [gateway("g", HTTP80), http_route("r", "{name: g}")],
        [
            ("Gateway", "infra/g", "conditions.0.observedGeneration", 3),
            ("HTTPRoute", "infra/r", "parents.0.conditions.0.observedGeneration", 2),
        ],
    ),
    (
        "ListenerSets are not allowed by default",
        [
            gateway("g", HTTP80),
            """
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: ls, namespace: infra}
spec:
  parentRef: {name: g}
  listeners: [{name: extra, port: 8080, protocol: HTTP}]
""",
        ],
        [
            ("ListenerSet", "infra/ls", "conditions.Accepted", (F, "NotAllowed")),
            ("ListenerSet", "infra/ls", "conditions.Programmed", (F, "NotAllowed")),
            ("Gateway", "infra/g", "attachedListenerSets", 0),
        ],
    ),
    (
        "an allowed ListenerSet: attached; a listener conflicting with the Gateway loses",
        [
            gateway("g", HTTP80, extra="  allowedListeners: {namespaces: {from: Same}}"),
            """
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: ls, namespace: infra}
spec:
  parentRef: {name: g}
  listeners: [{name: extra, port: 8080, protocol: HTTP}, {name: clash, port: 80, protocol: TCP}]
""",
            http_route("r", "{kind: ListenerSet, name: ls, sectionName: extra}"),
        ],
        [
            ("ListenerSet", "infra/ls", "conditions.Accepted", (T, "ListenersNotValid")),
            ("ListenerSet", "infra/ls", "listeners.extra.conditions.Accepted", (T, "Accepted")),
            ("ListenerSet", "infra/ls", "listeners.extra.attachedRoutes", 1),
            (
                "ListenerSet",
                "infra/ls",
                "listeners.clash.conditions.Conflicted",
                (T, "ProtocolConflict"),
            ),
            ("Gateway", "infra/g", "listeners.http.conditions.Conflicted", (F, "NoConflicts")),
            ("Gateway", "infra/g", "attachedListenerSets", 1),
            ("HTTPRoute", "infra/r", "parents.0.conditions.Accepted", (T, "Accepted")),
        ],
    ),
    (
        "a Gateway parentRef does not reach ListenerSet listeners",
        [
            gateway("g", HTTP80, extra="  allowedListeners: {namespaces: {from: Same}}"),
            """
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: ls, namespace: infra}
spec:
  parentRef: {name: g}
  listeners: [{name: extra, port: 8080, protocol: HTTP}]
""",
            http_route("r", "{name: g, sectionName: extra}"),
        ],
        [("HTTPRoute", "infra/r", "parents.0.conditions.Accepted", (F, "NoMatchingParent"))],
    ),
    (
        "static addresses: unsupported type, then outside the pools",
        [
            gateway(
                "bad-type", HTTP80, extra="  addresses: [{type: Hostname, value: gw.example.com}]"
            ),
            gateway("outside", HTTP80, extra="  addresses: [{value: 203.0.113.9}]"),
            gateway("inside", HTTP80, extra="  addresses: [{value: 198.18.128.77}]"),
        ],
        [
            ("Gateway", "infra/bad-type", "conditions.Accepted", (F, "UnsupportedAddress")),
            ("Gateway", "infra/outside", "conditions.Accepted", (T, "Accepted")),
            ("Gateway", "infra/outside", "conditions.Programmed", (F, "AddressNotUsable")),
            ("Gateway", "infra/outside", "addresses", []),
            (
                "Gateway",
                "infra/inside",
                "addresses",
                [{"type": "IPAddress", "value": "198.18.128.77"}],
            ),
        ],
    ),
    (
        "a Gateway of another class gets nothing from us",
        [gateway("g", HTTP80, cls="other"), http_route("r", "{name: g}")],
        [],
    ),
    (
        "BackendTLSPolicy: the older of two on one Service wins",
        [
            gateway("g", HTTP80),
            http_route("r", "{name: g}"),
            ca_config_map("ca", "infra"),
            """
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: p1, namespace: infra, creationTimestamp: '2026-01-01T00:00:00Z'}
spec:
  targetRefs: [{group: "", kind: Service, name: web}]
  validation: {caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}], hostname: web.example.com}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: p0, namespace: infra, creationTimestamp: '2026-01-02T00:00:00Z'}
spec:
  targetRefs: [{group: "", kind: Service, name: web}]
  validation: {caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}], hostname: other.example.com}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: p2, namespace: infra}
spec:
  targetRefs: [{group: "", kind: Service, name: db}]
  validation: {caCertificateRefs: [{group: "", kind: Secret, name: missing}], hostname: db.example.com}
""",
        ],
        [
            ("BackendTLSPolicy", "infra/p1", "ancestors.0.conditions.Accepted", (T, "Accepted")),
            ("BackendTLSPolicy", "infra/p1", "ancestors.0.ancestorRef.name", "g"),
            ("BackendTLSPolicy", "infra/p0", "ancestors.0.conditions.Accepted", (F, "Conflicted")),
        ],
    ),
]


@pytest.mark.parametrize(
    ("docs", "checks"), [(c[1], c[2]) for c in STATUS_CASES], ids=[c[0] for c in STATUS_CASES]
)
def test_status(docs: list[str], checks: list[tuple[str, str, str, Any]]) -> None:
    result, _ = run(*docs)
    for kind, where, path, expected in checks:
        ns, name = where.split("/")
        status = status_of(result, kind, ns, name)
        if path.startswith("conditions.") and path.split(".")[1].isdigit():
            got = status["conditions"][int(path.split(".")[1])][path.split(".")[2]]
        elif ".conditions." in path and path.rsplit(".", 2)[-2].isdigit():
            head, idx, field = path.rsplit(".", 2)
            got = get(status, head)[int(idx)][field]
        else:
            got = get(status, path)
        assert got == expected, f"{kind} {where} {path}: got {got!r}, want {expected!r}"


def test_objects_of_other_controllers_get_no_status() -> None:
    result, _ = run(gateway("g", HTTP80, cls="other"), http_route("r", "{name: g}"))
    kinds = {(k.kind, k.name) for k in result.statuses}
    assert ("GatewayClass", "other") not in kinds
    assert ("Gateway", "g") not in kinds
    assert ("HTTPRoute", "r") not in kinds


def test_translation_is_deterministic() -> None:
    docs = [
        gateway("g", HTTP80),
        gateway("h", "[{name: t, port: 9000, protocol: TCP}]"),
        http_route("r", "{name: g}"),
    ]
    a, _ = run(*docs)
    b, _ = run(*reversed(docs))
    assert a.node_config == b.node_config
    assert a.node_config.digest == b.node_config.digest
    assert a.statuses == b.statuses


# --- NodeConfig -----------------------------------------------------------------------------


def tcp_route(name: str, parent: str, backend: str, ts: str) -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{name: {name}, namespace: apps, creationTimestamp: '{ts}'}}
spec:
  parentRefs: [{parent}]
  rules: [{{backendRefs: [{{name: {backend}, port: 5432, weight: 3}}]}}]
"""


def test_l4_listener_is_carried_by_the_oldest_route() -> None:
    result, _ = run(
        gateway(
            "t", "[{name: t, port: 5432, protocol: TCP, allowedRoutes: {namespaces: {from: All}}}]"
        ),
        tcp_route("newer", "{name: t, namespace: infra}", "db", "2026-01-02T00:00:00Z"),
        tcp_route("older", "{name: t, namespace: infra}", "missing", "2026-01-01T00:00:00Z"),
    )
    (l4,) = result.node_config.l4
    assert l4.protocol == "TCP" and l4.port == 5432
    assert l4.route is not None and l4.route.name == "older"
    (backend,) = l4.backends
    assert backend.invalid and backend.weight == 3 and backend.endpoints == ()
    gw = status_of(result, "Gateway", "infra", "t")
    assert get(gw, "listeners.t.attachedRoutes") == 2
    newer = status_of(result, "TCPRoute", "apps", "newer")
    assert get(newer, "parents.0.conditions.Accepted") == (T, "Accepted")


def test_http_endpoints_are_the_ready_ones_of_the_named_port() -> None:
    result, _ = run(gateway("g", HTTP80), http_route("r", "{name: g}"))
    (port,) = result.node_config.http
    assert (port.port, port.tls) == (80, False)
    (listener,) = port.listeners
    (vhost,) = listener.virtual_hosts
    (rule,) = vhost.rules
    (backend,) = rule.backends
    assert [(e.address, e.port) for e in backend.endpoints] == [
        ("198.19.0.2", 3000),
        ("198.19.0.4", 3000),
    ]


def test_http_match_precedence_across_routes() -> None:
    older = http_route(
        "older",
        "{name: g}",
        ts="2026-01-01T00:00:00Z",
        rules="[{matches: [{path: {type: PathPrefix, value: /}}, {path: {type: PathPrefix, value: /api}, headers: [{name: x, value: y}]}]}]",
    )
    newer = http_route(
        "newer",
        "{name: g}",
        ts="2026-01-02T00:00:00Z",
        rules="[{matches: [{path: {type: Exact, value: /api}}, {path: {type: PathPrefix, value: /api/v1}}, "
        "{path: {type: PathPrefix, value: /api}, method: GET}, {path: {type: PathPrefix, value: /}}]}]",
    )
    result, _ = run(gateway("g", HTTP80), newer, older)
    (vhost,) = result.node_config.http[0].listeners[0].virtual_hosts
    order = [
        (
            e.match.path_type,
            e.match.path,
            e.match.method,
            len(e.match.headers),
            vhost.rules[e.rule].ref.name,
        )
        for e in vhost.entries
    ]
    assert order == [
        ("Exact", "/api", None, 0, "newer"),
        ("PathPrefix", "/api/v1", None, 0, "newer"),
        ("PathPrefix", "/api", "GET", 0, "newer"),
        ("PathPrefix", "/api", None, 1, "older"),
        ("PathPrefix", "/", None, 0, "older"),  # the tie goes to the older route
        ("PathPrefix", "/", None, 0, "newer"),
    ]


def test_virtual_hosts_most_specific_first() -> None:
    result, _ = run(
        gateway("g", HTTP80),
        http_route("a", "{name: g}", hostnames="['*.example.com']"),
        http_route("b", "{name: g}", hostnames="[foo.example.com]"),
        http_route("c", "{name: g}"),
        http_route("d", "{name: g}", hostnames="['*.foo.example.com']"),
    )
    hosts = [v.hostname for v in result.node_config.http[0].listeners[0].virtual_hosts]
    assert hosts == ["foo.example.com", "*.foo.example.com", "*.example.com", ""]


def test_listener_hostname_narrows_route_hostnames() -> None:
    result, _ = run(
        gateway("g", "[{name: http, port: 80, protocol: HTTP, hostname: '*.example.com'}]"),
        http_route("r", "{name: g}", hostnames="['*.com', bar.example.com, other.net]"),
    )
    hosts = [v.hostname for v in result.node_config.http[0].listeners[0].virtual_hosts]
    assert hosts == ["bar.example.com", "*.example.com"]


def test_invalid_backends_keep_their_weight_share() -> None:
    result, _ = run(
        gateway("g", HTTP80),
        http_route(
            "r",
            "{name: g}",
            rules="[{backendRefs: [{name: web, port: 8080, weight: 3}, {name: nope, port: 1, weight: 1}]}]",
        ),
    )
    rule = result.node_config.http[0].listeners[0].virtual_hosts[0].rules[0]
    assert [(b.ref.name, b.weight, bool(b.invalid)) for b in rule.backends] == [
        ("web", 3, False),
        ("nope", 1, True),
    ]


def test_https_listener_carries_its_certificate() -> None:
    result, _ = run(
        secret("cert", "infra"),
        gateway(
            "g", "[{name: s, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]}}]"
        ),
    )
    (port,) = result.node_config.http
    assert port.tls and port.port == 443
    (cert,) = port.listeners[0].certificates
    assert "BEGIN CERTIFICATE" in cert.cert_pem and cert.hostnames == ("example.com",)


def test_gateways_get_distinct_pool_addresses_that_do_not_move() -> None:
    a, _ = run(gateway("g1", HTTP80), gateway("g2", HTTP80))
    b, _ = run(gateway("g1", HTTP80), gateway("g2", HTTP80), gateway("g3", HTTP80))
    addr = {
        k.name: v["addresses"][0]["value"] for k, v in a.statuses.items() if k.kind == "Gateway"
    }
    addr_b = {
        k.name: v["addresses"][0]["value"] for k, v in b.statuses.items() if k.kind == "Gateway"
    }
    assert addr["g1"] != addr["g2"]
    assert {k: addr_b[k] for k in addr} == addr
    assert len(set(addr_b.values())) == 3


def test_node_addresses_when_no_pool() -> None:
    result, _ = run(gateway("g", HTTP80), options=TranslateOptions(node_addresses=("198.18.0.1",)))
    assert status_of(result, "Gateway", "infra", "g")["addresses"] == [
        {"type": "IPAddress", "value": "198.18.0.1"}
    ]
    assert result.node_config.http[0].address == "198.18.0.1"
