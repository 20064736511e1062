"""Table-driven tests of lab.conformance.status_checks: hand-made status in, verdict out.

Every rule appears at least once passing and once failing. Expectations are
written exactly as cases.json writes them, so parsing is exercised too.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab.conformance.status_checks import (
    GATEWAY_GROUP,
    Address,
    CheckContext,
    StatusExpectation,
    Verdict,
    World,
    evaluate,
)

GEN = 3
NS = "gateway-conformance-infra"
OTHER_NS = "gateway-conformance-web-backend"
OURS = "nodegate.dev/gateway-controller"
THEIRS = "example.com/other-controller"
CTX = CheckContext(
    controller_name=OURS,
    usable_addresses=(Address("IPAddress", "198.18.128.254"),),
    unusable_addresses=(Address("IPAddress", "198.19.255.254"),),
    invalid_address_values=("fake address teehee!",),
)

# --------------------------------------------------------------------------
# builders


def cond(
    type_: str, status: str = "True", reason: str | None = None, gen: int = GEN
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason if reason is not None else type_,
        "message": "",
        "observedGeneration": gen,
    }


def obj(
    kind: str,
    name: str,
    ns: str = NS,
    *,
    gen: int = GEN,
    status: dict[str, Any] | None = None,
    spec: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "generation": gen}
    if ns:
        meta["namespace"] = ns
    if annotations:
        meta["annotations"] = annotations
    o: dict[str, Any] = {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": kind,
        "metadata": meta,
        "spec": spec or {},
    }
    if status is not None:
        o["status"] = status
    return o


_OMIT = object()


def parent(
    name: str = "same-namespace",
    ns: Any = NS,
    conds: list[dict[str, Any]] | None = None,
    *,
    controller: str = OURS,
    group: Any = GATEWAY_GROUP,
    kind: Any = "Gateway",
    section: str | None = None,
    port: int | None = None,
) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name}
    for key, value in (("group", group), ("kind", kind), ("namespace", ns)):
        if value is not _OMIT:
            ref[key] = value
    if section is not None:
        ref["sectionName"] = section
    if port is not None:
        ref["port"] = port
    return {
        "parentRef": ref,
        "controllerName": controller,
        "conditions": conds if conds is not None else [cond("Accepted"), cond("ResolvedRefs")],
    }


def ancestor(
    name: str = "same-namespace",
    ns: Any = NS,
    conds: list[dict[str, Any]] | None = None,
    *,
    controller: str = OURS,
) -> dict[str, Any]:
    p = parent(name, ns, conds, controller=controller)
    return {
        "ancestorRef": p["parentRef"],
        "controllerName": controller,
        "conditions": p["conditions"],
    }


def route(
    *parents: dict[str, Any], ns: str = NS, gen: int = GEN, kind: str = "HTTPRoute"
) -> dict[str, Any]:
    return obj(kind, "r", ns, gen=gen, status={"parents": list(parents)})


def listener(
    name: str,
    attached: int = 0,
    conds: list[dict[str, Any]] | None = None,
    kinds: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "attachedRoutes": attached,
        "supportedKinds": kinds
        if kinds is not None
        else [{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}],
        "conditions": conds
        if conds is not None
        else [cond("Accepted"), cond("ResolvedRefs"), cond("Programmed")],
    }


def gateway(
    name: str = "gw",
    ns: str = NS,
    *,
    conds: list[dict[str, Any]] | None = None,
    listeners: list[dict[str, Any]] | None = None,
    addresses: list[dict[str, Any]] | None = None,
    gen: int = GEN,
    spec: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": conds if conds is not None else [cond("Accepted"), cond("Programmed")],
        "listeners": listeners if listeners is not None else [],
        "addresses": addresses
        if addresses is not None
        else [{"type": "IPAddress", "value": "198.18.128.1"}],
    }
    status.update(extra or {})
    return obj("Gateway", name, ns, gen=gen, status=status, spec=spec, annotations=annotations)


def exp(check: str, **fields: Any) -> dict[str, Any]:
    return {"check": check, **fields}


ROUTE_ACCEPTED = {
    "kind": "HTTPRoute",
    "namespace": NS,
    "name": "r",
    "type": "Accepted",
    "status": "True",
    "reason": "Accepted",
}
ALL_TRUE = [
    {"type": "ResolvedRefs", "status": "True", "reason": None},
    {"type": "Accepted", "status": "True", "reason": None},
    {"type": "Programmed", "status": "True", "reason": None},
]
HTTP_KIND = [{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}]


def xl(
    name: str,
    attached: int = 0,
    kinds: list[dict[str, str]] | None = None,
    conds: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An expected listener as cases.json writes one."""
    return {
        "name": name,
        "supported_kinds": HTTP_KIND if kinds is None else kinds,
        "attached_routes": attached,
        "conditions": conds
        if conds is not None
        else [{"type": "Accepted", "status": "True", "reason": None}],
    }


P, F, U = Verdict.PASS, Verdict.FAIL, Verdict.UNSUPPORTED

# (id, expectation, objects, verdict, fragment the message must contain)
CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]], Verdict, str]] = [
    # ---- route-parents-match
    (
        "parents-match",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="Gateway",
            **ROUTE_ACCEPTED,
        ),
        [route(parent())],
        P,
        "matched",
    ),
    (
        "parents-match namespace omitted, same namespace",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="Gateway",
            **ROUTE_ACCEPTED,
        ),
        [route(parent(ns=_OMIT))],
        P,
        "",
    ),
    (
        "parents-match namespace omitted, route elsewhere",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="Gateway",
            **{**ROUTE_ACCEPTED, "namespace": OTHER_NS},
        ),
        [route(parent(ns=_OMIT), ns=OTHER_NS)],
        F,
        "no status.parents entry",
    ),
    (
        "parents-match namespace present, route elsewhere",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="Gateway",
            **{**ROUTE_ACCEPTED, "namespace": OTHER_NS},
        ),
        [route(parent(), ns=OTHER_NS)],
        P,
        "",
    ),
    (
        "parents-match wrong namespace",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="Gateway",
            **ROUTE_ACCEPTED,
        ),
        [route(parent(ns=OTHER_NS))],
        F,
        "",
    ),
    (
        "parents-match extra parents tolerated",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="Gateway",
            **ROUTE_ACCEPTED,
        ),
        [route(parent("other-gw"), parent(controller=THEIRS), parent())],
        P,
        "",
    ),
    (
        "parents-match sectionName and port not compared",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="Gateway",
            **ROUTE_ACCEPTED,
        ),
        [route(parent(section="no-such-listener", port=1234))],
        P,
        "",
    ),
    (
        "parents-match other controller only",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="Gateway",
            **ROUTE_ACCEPTED,
        ),
        [route(parent(controller=THEIRS))],
        F,
        OURS,
    ),
    (
        "parents-match wrong reason",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="Gateway",
            **ROUTE_ACCEPTED,
        ),
        [route(parent(conds=[cond("Accepted", reason="Pending")]))],
        F,
        "Accepted=True/Accepted",
    ),
    (
        "parents-match reason null = any",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="Gateway",
            **{**ROUTE_ACCEPTED, "reason": None},
        ),
        [route(parent(conds=[cond("Accepted", reason="Whatever")]))],
        P,
        "",
    ),
    (
        "parents-match group and kind defaulted like the CRD",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="Gateway",
            **ROUTE_ACCEPTED,
        ),
        [route(parent(group=_OMIT, kind=_OMIT))],
        P,
        "",
    ),
    (
        "parents-match core group is not the gateway group",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="Gateway",
            **ROUTE_ACCEPTED,
        ),
        [route(parent(group=""))],
        F,
        "",
    ),
    (
        "parents-match ListenerSet parent needs kind ListenerSet",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="ListenerSet",
            **ROUTE_ACCEPTED,
        ),
        [route(parent())],
        F,
        "ListenerSet",
    ),
    (
        "parents-match ListenerSet parent",
        exp("route-parents-match", parent=f"{NS}/ls", parent_kind="ListenerSet", **ROUTE_ACCEPTED),
        [route(parent("ls", kind="ListenerSet"))],
        P,
        "",
    ),
    (
        "parents-match stale generation on any parent",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="Gateway",
            **ROUTE_ACCEPTED,
        ),
        [route(parent(), parent("other-gw", conds=[cond("Accepted", gen=GEN - 1)]))],
        F,
        "latest generation 3",
    ),
    (
        "parents-match route missing",
        exp(
            "route-parents-match",
            parent=f"{NS}/same-namespace",
            parent_kind="Gateway",
            **ROUTE_ACCEPTED,
        ),
        [],
        F,
        "does not exist",
    ),
    (
        "parents-match malformed expectation",
        exp("route-parents-match", **ROUTE_ACCEPTED),
        [route(parent())],
        F,
        "malformed",
    ),
    # ---- route-parent-condition
    (
        "parent-condition",
        exp(
            "route-parent-condition",
            kind="HTTPRoute",
            namespace=NS,
            name="r",
            parent=f"{NS}/same-namespace",
            type="ResolvedRefs",
            status="True",
            reason="ResolvedRefs",
        ),
        [route(parent())],
        P,
        "",
    ),
    (
        "parent-condition wrong status",
        exp(
            "route-parent-condition",
            kind="HTTPRoute",
            namespace=NS,
            name="r",
            parent=f"{NS}/same-namespace",
            type="ResolvedRefs",
            status="False",
            reason="RefNotPermitted",
        ),
        [route(parent())],
        F,
        "ResolvedRefs=False/RefNotPermitted",
    ),
    (
        "parent-condition namespace omitted matches",
        exp(
            "route-parent-condition",
            kind="TCPRoute",
            namespace=NS,
            name="r",
            parent=f"{NS}/same-namespace",
            type="Accepted",
            status="True",
            reason="Accepted",
        ),
        [route(parent(ns=_OMIT), kind="TCPRoute")],
        P,
        "",
    ),
    (
        "parent-condition other namespace does not match",
        exp(
            "route-parent-condition",
            kind="HTTPRoute",
            namespace=NS,
            name="r",
            parent=f"{NS}/same-namespace",
            type="Accepted",
            status="True",
            reason="Accepted",
        ),
        [route(parent(ns=OTHER_NS))],
        F,
        "",
    ),
    (
        "parent-condition controllerName not compared",
        exp(
            "route-parent-condition",
            kind="HTTPRoute",
            namespace=NS,
            name="r",
            parent=f"{NS}/same-namespace",
            type="Accepted",
            status="True",
            reason="Accepted",
        ),
        [route(parent(controller=THEIRS))],
        P,
        "",
    ),
    (
        "parent-condition stale",
        exp(
            "route-parent-condition",
            kind="HTTPRoute",
            namespace=NS,
            name="r",
            parent=f"{NS}/same-namespace",
            type="Accepted",
            status="True",
            reason="Accepted",
        ),
        [route(parent(conds=[cond("Accepted", gen=1)]))],
        F,
        "stale Accepted (generation 1)",
    ),
    # ---- route-no-accepted-parents
    (
        "no-accepted-parents empty",
        exp("route-no-accepted-parents", kind="HTTPRoute", namespace=NS, name="r"),
        [route()],
        P,
        "no parents",
    ),
    (
        "no-accepted-parents one rejected",
        exp("route-no-accepted-parents", kind="HTTPRoute", namespace=NS, name="r"),
        [route(parent(conds=[cond("Accepted", "False", "NotAllowedByListeners")]))],
        P,
        "",
    ),
    (
        "no-accepted-parents one accepted",
        exp("route-no-accepted-parents", kind="HTTPRoute", namespace=NS, name="r"),
        [route(parent())],
        F,
        "Accepted=False",
    ),
    (
        "no-accepted-parents two rejected parents",
        exp("route-no-accepted-parents", kind="HTTPRoute", namespace=NS, name="r"),
        [
            route(
                parent(conds=[cond("Accepted", "False", "X")]),
                parent("b", conds=[cond("Accepted", "False", "X")]),
            )
        ],
        F,
        "found 2",
    ),
    (
        "no-accepted-parents stale",
        exp("route-no-accepted-parents", kind="TLSRoute", namespace=NS, name="r"),
        [route(parent(conds=[cond("Accepted", "False", "X", gen=2)]), kind="TLSRoute")],
        F,
        "latest generation",
    ),
    # ---- gateway-zero-routes
    (
        "zero-routes no listeners",
        exp("gateway-zero-routes", kind="Gateway", namespace=NS, name="gw"),
        [gateway()],
        P,
        "",
    ),
    (
        "zero-routes one empty listener",
        exp("gateway-zero-routes", kind="Gateway", namespace=NS, name="gw"),
        [gateway(listeners=[listener("http")])],
        P,
        "",
    ),
    (
        "zero-routes one route",
        exp("gateway-zero-routes", kind="Gateway", namespace=NS, name="gw"),
        [gateway(listeners=[listener("http", 1)])],
        F,
        "attachedRoutes 1",
    ),
    (
        "zero-routes two empty listeners",
        exp("gateway-zero-routes", kind="Gateway", namespace=NS, name="gw"),
        [gateway(listeners=[listener("a"), listener("b")])],
        F,
        "exactly one",
    ),
    (
        "zero-routes stale gateway",
        exp("gateway-zero-routes", kind="Gateway", namespace=NS, name="gw"),
        [gateway(conds=[cond("Accepted", gen=1)])],
        F,
        "stale",
    ),
    # ---- gateway-status-listeners
    (
        "status-listeners match",
        exp(
            "gateway-status-listeners",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listeners=[xl("http", 2)],
        ),
        [gateway(listeners=[listener("http", 2)])],
        P,
        "",
    ),
    (
        "status-listeners length differs",
        exp(
            "gateway-status-listeners",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listeners=[xl("http")],
        ),
        [gateway(listeners=[listener("http"), listener("extra")])],
        F,
        "expected 1 listener status entries, found 2",
    ),
    (
        "status-listeners attachedRoutes exact",
        exp(
            "gateway-status-listeners",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listeners=[xl("http", 2)],
        ),
        [gateway(listeners=[listener("http", 3)])],
        F,
        "attachedRoutes 3, expected 2",
    ),
    (
        "status-listeners missing condition",
        exp(
            "gateway-status-listeners",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listeners=[
                xl(
                    "http",
                    conds=[
                        {"type": "Accepted", "status": "False", "reason": "UnsupportedProtocol"}
                    ],
                )
            ],
        ),
        [gateway(listeners=[listener("http", conds=[cond("Accepted")])])],
        F,
        "Accepted=False/UnsupportedProtocol",
    ),
    (
        "status-listeners reason null = any",
        exp(
            "gateway-status-listeners",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listeners=[xl("http", conds=[{"type": "Accepted", "status": "True", "reason": None}])],
        ),
        [gateway(listeners=[listener("http", conds=[cond("Accepted", reason="SomethingElse")])])],
        P,
        "",
    ),
    (
        "status-listeners supportedKinds superset",
        exp(
            "gateway-status-listeners",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listeners=[xl("http")],
        ),
        [
            gateway(
                listeners=[
                    listener(
                        "http",
                        kinds=[
                            {"group": GATEWAY_GROUP, "kind": "GRPCRoute"},
                            {"kind": "HTTPRoute"},
                        ],
                    )
                ]
            )
        ],
        P,
        "",
    ),
    (
        "status-listeners supportedKinds lacks expected",
        exp(
            "gateway-status-listeners",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listeners=[xl("http")],
        ),
        [
            gateway(
                listeners=[listener("http", kinds=[{"group": GATEWAY_GROUP, "kind": "GRPCRoute"}])]
            )
        ],
        F,
        "lacks",
    ),
    (
        "status-listeners EMPTY expected needs empty actual",
        exp(
            "gateway-status-listeners",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listeners=[xl("tls", kinds=[])],
        ),
        [
            gateway(
                listeners=[listener("tls", kinds=[{"group": GATEWAY_GROUP, "kind": "TLSRoute"}])]
            )
        ],
        F,
        "EMPTY",
    ),
    (
        "status-listeners EMPTY expected, empty actual",
        exp(
            "gateway-status-listeners",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listeners=[xl("tls", kinds=[])],
        ),
        [gateway(listeners=[listener("tls", kinds=[])])],
        P,
        "",
    ),
    (
        "status-listeners listener renamed",
        exp(
            "gateway-status-listeners",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listeners=[xl("http")],
        ),
        [gateway(listeners=[listener("https")])],
        F,
        "no status entry",
    ),
    (
        "status-listeners stale gateway",
        exp(
            "gateway-status-listeners",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listeners=[xl("http")],
        ),
        [gateway(listeners=[listener("http")], conds=[cond("Accepted", gen=GEN + 1)])],
        F,
        "stale",
    ),
    (
        "listenerset-status-listeners match",
        exp(
            "listenerset-status-listeners",
            kind="ListenerSet",
            namespace=NS,
            name="ls",
            listeners=[xl("l1", 1)],
        ),
        [
            obj(
                "ListenerSet",
                "ls",
                status={"conditions": [cond("Accepted")], "listeners": [listener("l1", 1)]},
            )
        ],
        P,
        "",
    ),
    (
        "listenerset-status-listeners attachedRoutes",
        exp(
            "listenerset-status-listeners",
            kind="ListenerSet",
            namespace=NS,
            name="ls",
            listeners=[xl("l1", 1)],
        ),
        [
            obj(
                "ListenerSet",
                "ls",
                status={"conditions": [cond("Accepted")], "listeners": [listener("l1")]},
            )
        ],
        F,
        "attachedRoutes 0, expected 1",
    ),
    # ---- all-listeners-condition
    (
        "all-listeners",
        exp(
            "all-listeners-condition", kind="Gateway", namespace=NS, name="gw", conditions=ALL_TRUE
        ),
        [gateway(listeners=[listener("a"), listener("b")])],
        P,
        "2 listeners",
    ),
    (
        "all-listeners one lacks Programmed",
        exp(
            "all-listeners-condition", kind="Gateway", namespace=NS, name="gw", conditions=ALL_TRUE
        ),
        [
            gateway(
                listeners=[
                    listener("a"),
                    listener(
                        "b",
                        conds=[
                            cond("Accepted"),
                            cond("ResolvedRefs"),
                            cond("Programmed", "False", "Invalid"),
                        ],
                    ),
                ]
            )
        ],
        F,
        "listener b lacks ['Programmed=True/*']",
    ),
    (
        "all-listeners no listeners passes as upstream",
        exp(
            "all-listeners-condition", kind="Gateway", namespace=NS, name="gw", conditions=ALL_TRUE
        ),
        [gateway()],
        P,
        "0 listeners",
    ),
    (
        "all-listeners ListenerSet stale",
        exp(
            "all-listeners-condition",
            kind="ListenerSet",
            namespace=NS,
            name="ls",
            conditions=ALL_TRUE,
        ),
        [
            obj(
                "ListenerSet",
                "ls",
                status={"conditions": [cond("Accepted", gen=1)], "listeners": [listener("l1")]},
            )
        ],
        F,
        "stale",
    ),
    # ---- gateway-listener-conditions / listenerset-listener-conditions
    (
        "named-listener",
        exp(
            "gateway-listener-conditions",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listener="https",
            conditions=[
                {"type": "ResolvedRefs", "status": "False", "reason": "InvalidCACertificateRef"}
            ],
        ),
        [
            gateway(
                listeners=[
                    listener("http"),
                    listener(
                        "https", conds=[cond("ResolvedRefs", "False", "InvalidCACertificateRef")]
                    ),
                ]
            )
        ],
        P,
        "",
    ),
    (
        "named-listener wrong reason",
        exp(
            "gateway-listener-conditions",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listener="https",
            conditions=[
                {"type": "ResolvedRefs", "status": "False", "reason": "InvalidCACertificateRef"}
            ],
        ),
        [
            gateway(
                listeners=[
                    listener(
                        "https", conds=[cond("ResolvedRefs", "False", "InvalidCertificateRef")]
                    )
                ]
            )
        ],
        F,
        "InvalidCertificateRef",
    ),
    (
        "named-listener missing",
        exp(
            "gateway-listener-conditions",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listener="https",
            conditions=ALL_TRUE,
        ),
        [gateway(listeners=[listener("http")])],
        F,
        "not in status",
    ),
    (
        "listenerset named-listener",
        exp(
            "listenerset-listener-conditions",
            kind="ListenerSet",
            namespace=NS,
            name="ls",
            listener="l1",
            conditions=ALL_TRUE,
        ),
        [
            obj(
                "ListenerSet",
                "ls",
                status={"conditions": [cond("Accepted")], "listeners": [listener("l1")]},
            )
        ],
        P,
        "",
    ),
    (
        "listenerset named-listener stale ListenerSet",
        exp(
            "listenerset-listener-conditions",
            kind="ListenerSet",
            namespace=NS,
            name="ls",
            listener="l1",
            conditions=ALL_TRUE,
        ),
        [
            obj(
                "ListenerSet",
                "ls",
                gen=GEN + 1,
                status={"conditions": [cond("Accepted")], "listeners": [listener("l1")]},
            )
        ],
        F,
        "latest generation 4",
    ),
    # ---- gateway-condition / listenerset-condition
    (
        "gateway-condition",
        exp(
            "gateway-condition",
            kind="Gateway",
            namespace=NS,
            name="gw",
            type="Accepted",
            status="True",
            reason="Accepted",
        ),
        [gateway()],
        P,
        "",
    ),
    (
        "gateway-condition wrong reason",
        exp(
            "gateway-condition",
            kind="Gateway",
            namespace=NS,
            name="gw",
            type="Accepted",
            status="False",
            reason="ListenersNotValid",
        ),
        [gateway(conds=[cond("Accepted", "False", "UnsupportedAddress")])],
        F,
        "Accepted=False/ListenersNotValid",
    ),
    (
        "gateway-condition reason null = any",
        exp(
            "gateway-condition",
            kind="Gateway",
            namespace=NS,
            name="gw",
            type="Accepted",
            status="False",
            reason=None,
        ),
        [gateway(conds=[cond("Accepted", "False", "UnsupportedAddress")])],
        P,
        "",
    ),
    (
        "gateway-condition missing",
        exp(
            "gateway-condition",
            kind="Gateway",
            namespace=NS,
            name="gw",
            type="Programmed",
            status="True",
            reason="Programmed",
        ),
        [gateway(conds=[cond("Accepted")])],
        F,
        "no condition Programmed",
    ),
    (
        "gateway-condition generation mismatch",
        exp(
            "gateway-condition",
            kind="Gateway",
            namespace=NS,
            name="gw",
            type="Accepted",
            status="True",
            reason="Accepted",
        ),
        [gateway(gen=GEN + 1)],
        F,
        "not at the latest generation 4",
    ),
    (
        "gateway-condition gateway missing",
        exp(
            "gateway-condition",
            kind="Gateway",
            namespace=NS,
            name="nope",
            type="Accepted",
            status="True",
        ),
        [gateway()],
        F,
        "does not exist",
    ),
    (
        "listenerset-condition",
        exp(
            "listenerset-condition",
            kind="ListenerSet",
            namespace=NS,
            name="ls",
            type="Accepted",
            status="False",
            reason="NotAllowed",
        ),
        [
            obj(
                "ListenerSet",
                "ls",
                status={"conditions": [cond("Accepted", "False", "NotAllowed")]},
            )
        ],
        P,
        "",
    ),
    (
        "listenerset-condition wrong status",
        exp(
            "listenerset-condition",
            kind="ListenerSet",
            namespace=NS,
            name="ls",
            type="Programmed",
            status="False",
            reason="NotAllowed",
        ),
        [obj("ListenerSet", "ls", status={"conditions": [cond("Programmed")]})],
        F,
        "",
    ),
    # ---- gateway-attached-listenersets
    (
        "attached-listenersets",
        exp("gateway-attached-listenersets", kind="Gateway", namespace=NS, name="gw", count=1),
        [gateway(extra={"attachedListenerSets": 1})],
        P,
        "",
    ),
    (
        "attached-listenersets absent = 0",
        exp("gateway-attached-listenersets", kind="Gateway", namespace=NS, name="gw", count=0),
        [gateway()],
        P,
        "",
    ),
    (
        "attached-listenersets mismatch",
        exp("gateway-attached-listenersets", kind="Gateway", namespace=NS, name="gw", count=2),
        [gateway(extra={"attachedListenerSets": 1})],
        F,
        "is 1, expected 2",
    ),
    # ---- policy-ancestor-condition
    (
        "ancestor-condition",
        exp(
            "policy-ancestor-condition",
            kind="BackendTLSPolicy",
            namespace=NS,
            name="p",
            ancestor=f"{NS}/same-namespace",
            type="Accepted",
            status="False",
            reason="Conflicted",
        ),
        [
            obj(
                "BackendTLSPolicy",
                "p",
                status={"ancestors": [ancestor(conds=[cond("Accepted", "False", "Conflicted")])]},
            )
        ],
        P,
        "",
    ),
    (
        "ancestor-condition namespace omitted",
        exp(
            "policy-ancestor-condition",
            kind="BackendTLSPolicy",
            namespace=NS,
            name="p",
            ancestor=f"{NS}/same-namespace",
            type="Accepted",
            status="True",
            reason="Accepted",
        ),
        [obj("BackendTLSPolicy", "p", status={"ancestors": [ancestor(ns=_OMIT)]})],
        P,
        "",
    ),
    (
        "ancestor-condition other gateway",
        exp(
            "policy-ancestor-condition",
            kind="BackendTLSPolicy",
            namespace=NS,
            name="p",
            ancestor=f"{NS}/same-namespace",
            type="Accepted",
            status="True",
            reason="Accepted",
        ),
        [
            obj(
                "BackendTLSPolicy",
                "p",
                status={"ancestors": [ancestor("other"), ancestor(ns=OTHER_NS)]},
            )
        ],
        F,
        "no ancestor",
    ),
    (
        "ancestor-condition other controller",
        exp(
            "policy-ancestor-condition",
            kind="BackendTLSPolicy",
            namespace=NS,
            name="p",
            ancestor=f"{NS}/same-namespace",
            type="Accepted",
            status="True",
            reason="Accepted",
        ),
        [obj("BackendTLSPolicy", "p", status={"ancestors": [ancestor(controller=THEIRS)]})],
        F,
        OURS,
    ),
    (
        "ancestor-condition stale",
        exp(
            "policy-ancestor-condition",
            kind="BackendTLSPolicy",
            namespace=NS,
            name="p",
            ancestor=f"{NS}/same-namespace",
            type="Accepted",
            status="True",
            reason="Accepted",
        ),
        [obj("BackendTLSPolicy", "p", gen=2, status={"ancestors": [ancestor()]})],
        F,
        "latest generation 2",
    ),
    # ---- latest-observed-generation
    (
        "latest-gen gateway",
        exp("latest-observed-generation", kind="Gateway", namespace=NS, name="gw"),
        [gateway()],
        P,
        "2 conditions at generation 3",
    ),
    (
        "latest-gen gateway stale",
        exp("latest-observed-generation", kind="Gateway", namespace=NS, name="gw"),
        [gateway(gen=GEN + 1)],
        F,
        "stale Accepted (generation 3), Programmed (generation 3)",
    ),
    (
        "latest-gen route parents",
        exp("latest-observed-generation", kind="HTTPRoute", namespace=NS, name="r"),
        [route(parent(), parent("b", conds=[cond("Accepted", gen=2)]))],
        F,
        "stale",
    ),
    (
        "latest-gen policy ancestors",
        exp("latest-observed-generation", kind="BackendTLSPolicy", namespace=NS, name="p"),
        [obj("BackendTLSPolicy", "p", status={"ancestors": [ancestor()]})],
        P,
        "",
    ),
    (
        "latest-gen policy ancestors stale",
        exp("latest-observed-generation", kind="BackendTLSPolicy", namespace=NS, name="p"),
        [obj("BackendTLSPolicy", "p", gen=4, status={"ancestors": [ancestor()]})],
        F,
        "stale",
    ),
    (
        "latest-gen gatewayclass",
        exp("latest-observed-generation", kind="GatewayClass", namespace="", name="gc"),
        [obj("GatewayClass", "gc", ns="", status={"conditions": [cond("Accepted")]})],
        P,
        "",
    ),
    (
        "latest-gen no conditions passes as upstream",
        exp("latest-observed-generation", kind="GatewayClass", namespace="", name="gc"),
        [obj("GatewayClass", "gc", ns="")],
        P,
        "0 conditions",
    ),
    (
        "latest-gen object missing",
        exp("latest-observed-generation", kind="GatewayClass", namespace="", name="gc"),
        [],
        F,
        "does not exist",
    ),
    # ---- gateway-has-address
    (
        "has-address",
        exp("gateway-has-address", kind="Gateway", namespace=NS, name="gw"),
        [gateway()],
        P,
        "198.18.128.1",
    ),
    (
        "has-address type defaulted",
        exp("gateway-has-address", kind="Gateway", namespace=NS, name="gw"),
        [gateway(addresses=[{"value": "10.0.0.1"}])],
        P,
        "IPAddress 10.0.0.1",
    ),
    (
        "has-address none",
        exp("gateway-has-address", kind="Gateway", namespace=NS, name="gw"),
        [gateway(addresses=[])],
        F,
        "no entry",
    ),
    (
        "has-address stale",
        exp("gateway-has-address", kind="Gateway", namespace=NS, name="gw"),
        [gateway(gen=9)],
        F,
        "stale",
    ),
    # ---- gateway-status-addresses
    (
        "status-addresses",
        exp("gateway-status-addresses", kind="Gateway", namespace=NS, name="gw"),
        [
            gateway(
                spec={"addresses": [{"type": "IPAddress", "value": "198.18.128.254"}]},
                addresses=[{"type": "IPAddress", "value": "198.18.128.254"}],
            )
        ],
        P,
        "",
    ),
    (
        "status-addresses still has the unusable",
        exp("gateway-status-addresses", kind="Gateway", namespace=NS, name="gw"),
        [
            gateway(
                spec={"addresses": [{"value": "198.18.128.254"}]},
                addresses=[{"value": "198.18.128.254"}, {"value": "198.19.255.254"}],
            )
        ],
        F,
        "unusable address 198.19.255.254",
    ),
    (
        "status-addresses has the invalid",
        exp("gateway-status-addresses", kind="Gateway", namespace=NS, name="gw"),
        [
            gateway(
                spec={"addresses": [{"value": "198.18.128.254"}]},
                addresses=[
                    {"value": "198.18.128.254"},
                    {"type": "test/fake-invalid-type", "value": "fake address teehee!"},
                ],
            )
        ],
        F,
        "invalid address",
    ),
    (
        "status-addresses lacks the usable",
        exp("gateway-status-addresses", kind="Gateway", namespace=NS, name="gw"),
        [
            gateway(
                spec={"addresses": [{"value": "198.18.128.254"}]},
                addresses=[{"value": "198.18.128.1"}],
            )
        ],
        F,
        "lacks the usable",
    ),
    (
        "status-addresses usable with another type",
        exp("gateway-status-addresses", kind="Gateway", namespace=NS, name="gw"),
        [
            gateway(
                spec={"addresses": [{"value": "198.18.128.254"}]},
                addresses=[{"type": "Hostname", "value": "198.18.128.254"}],
            )
        ],
        F,
        "has type Hostname",
    ),
    (
        "status-addresses spec still has two",
        exp("gateway-status-addresses", kind="Gateway", namespace=NS, name="gw"),
        [
            gateway(
                spec={"addresses": [{"value": "198.18.128.254"}, {"value": "198.19.255.254"}]},
                addresses=[{"value": "198.18.128.254"}],
            )
        ],
        F,
        "1 address left in spec",
    ),
    # ---- gatewayclass-accepted-any / gatewayclass-accepted
    (
        "gatewayclass-accepted-any False counts",
        exp("gatewayclass-accepted-any", kind="GatewayClass", namespace="", name="gc"),
        [
            obj(
                "GatewayClass",
                "gc",
                ns="",
                status={"conditions": [cond("Accepted", "False", "InvalidParameters")]},
            )
        ],
        P,
        "",
    ),
    (
        "gatewayclass-accepted-any missing",
        exp("gatewayclass-accepted-any", kind="GatewayClass", namespace="", name="gc"),
        [obj("GatewayClass", "gc", ns="", status={"conditions": []})],
        F,
        "no condition Accepted",
    ),
    (
        "gatewayclass-accepted-any stale",
        exp("gatewayclass-accepted-any", kind="GatewayClass", namespace="", name="gc"),
        [obj("GatewayClass", "gc", ns="", gen=GEN + 1, status={"conditions": [cond("Accepted")]})],
        F,
        "stale",
    ),
    (
        "gatewayclass-accepted True",
        exp("gatewayclass-accepted", kind="GatewayClass", namespace="", name="gc"),
        [obj("GatewayClass", "gc", ns="", status={"conditions": [cond("Accepted")]})],
        P,
        "",
    ),
    (
        "gatewayclass-accepted False",
        exp("gatewayclass-accepted", kind="GatewayClass", namespace="", name="gc"),
        [
            obj(
                "GatewayClass",
                "gc",
                ns="",
                status={"conditions": [cond("Accepted", "False", "Unsupported")]},
            )
        ],
        F,
        "Accepted=True",
    ),
    # ---- namespaces-ready
    (
        "namespaces-ready",
        exp("namespaces-ready", kind="Namespace", namespaces=[NS]),
        [
            gateway("a"),
            gateway(
                "b", conds=[cond("Accepted", reason="Other"), cond("Programmed", reason="Other")]
            ),
            gateway("c", OTHER_NS, conds=[]),
        ],
        P,
        "Pod readiness is out of scope",
    ),
    (
        "namespaces-ready one not programmed",
        exp("namespaces-ready", kind="Namespace", namespaces=[NS, OTHER_NS]),
        [
            gateway("a"),
            gateway(
                "c",
                OTHER_NS,
                conds=[cond("Accepted"), cond("Programmed", "False", "AddressNotUsable")],
            ),
        ],
        F,
        f"Gateway {OTHER_NS}/c: not Programmed=True",
    ),
    (
        "namespaces-ready skip annotation",
        exp("namespaces-ready", kind="Namespace", namespaces=[NS]),
        [
            gateway("a"),
            gateway(
                "broken", conds=[], annotations={"gateway-api/skip-this-for-readiness": "true"}
            ),
        ],
        P,
        "1 Gateways",
    ),
    (
        "namespaces-ready stale",
        exp("namespaces-ready", kind="Namespace", namespaces=[NS]),
        [gateway("a", gen=GEN + 1)],
        F,
        "not at generation 4",
    ),
    (
        "namespaces-ready no status",
        exp("namespaces-ready", kind="Namespace", namespaces=[NS]),
        [obj("Gateway", "a")],
        F,
        "not Accepted=True",
    ),
    # ---- not judged
    (
        "infrastructure metadata is unsupported",
        exp(
            "generated-resources-carry-infrastructure-metadata",
            kind="Gateway",
            namespace=NS,
            name="gw",
        ),
        [gateway()],
        U,
        "not checkable by a status test",
    ),
    (
        "unknown check fails",
        exp("gateway-is-fast", kind="Gateway", namespace=NS, name="gw"),
        [gateway()],
        F,
        "unknown check type",
    ),
]


@pytest.mark.parametrize(
    ("expectation", "objects", "verdict", "fragment"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_check(
    expectation: dict[str, Any], objects: list[dict[str, Any]], verdict: Verdict, fragment: str
) -> None:
    result = evaluate(StatusExpectation.from_json(expectation), World(objects), CTX)
    assert result.verdict is verdict, str(result)
    assert fragment in result.message, str(result)


def test_every_rule_has_a_passing_and_a_failing_row() -> None:
    verdicts: dict[str, set[Verdict]] = {}
    for _, expectation, _, verdict, _ in CASES:
        verdicts.setdefault(expectation["check"], set()).add(verdict)
    judged = {check for check, v in verdicts.items() if v & {P, F}}
    one_sided = sorted(
        check
        for check in judged
        if verdicts[check] & {P, F} != {P, F} and check != "gateway-is-fast"
    )
    assert not one_sided, f"rules tested only one way: {one_sided}"


def test_unsupported_never_counts_as_passed() -> None:
    result = evaluate(
        StatusExpectation.from_json(
            exp(
                "generated-resources-carry-infrastructure-metadata",
                kind="Gateway",
                namespace=NS,
                name="gw",
            )
        ),
        World([gateway()]),
        CTX,
    )
    assert not result.passed
    assert str(result).startswith("UNSUPPORTED")


def test_expectation_parsing_keeps_null_reason_as_any() -> None:
    e = StatusExpectation.from_json(
        exp(
            "all-listeners-condition",
            kind="Gateway",
            namespace=NS,
            name="gw",
            conditions=ALL_TRUE,
            phase=2,
        )
    )
    assert e.phase == 2
    assert [str(c) for c in e.conditions] == [
        "ResolvedRefs=True/*",
        "Accepted=True/*",
        "Programmed=True/*",
    ]
    listeners = StatusExpectation.from_json(
        exp(
            "gateway-status-listeners",
            kind="Gateway",
            namespace=NS,
            name="gw",
            listeners=[xl("tls", kinds=[])],
        )
    ).listeners
    assert listeners[0].supported_kinds == ()


def test_failure_message_shows_what_status_had() -> None:
    result = evaluate(
        StatusExpectation.from_json(
            exp(
                "route-parents-match",
                parent=f"{NS}/same-namespace",
                parent_kind="Gateway",
                **ROUTE_ACCEPTED,
            )
        ),
        World([route(parent(conds=[cond("Accepted", "False", "NotAllowedByListeners")]))]),
        CTX,
    )
    assert result.verdict is F
    assert "Accepted=False/NotAllowedByListeners (gen 3)" in result.message
    assert f"controller={OURS}" in result.message
