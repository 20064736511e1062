"""backendRefs resolved to endpoints, or to the reason the spec says they must fail.

Order of checks (the spec's, and the issue's: the grant is checked before
existence, so a cross-namespace reference to a missing Service without a
ReferenceGrant is RefNotPermitted, revealing nothing about the other namespace):
kind -> ReferenceGrant -> Service exists -> port exists -> appProtocol supported.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from agent.model import GATEWAY_GROUP, Service
from agent.model.routes import BackendObjectReference
from agent.nodeconfig import Backend, Endpoint, Ref
from agent.translate.conditions import Reason
from agent.translate.context import Context

# appProtocols each route kind's datapath speaks to backends ("" = none given).
HTTP_APP_PROTOCOLS = frozenset(
    {"", "http", "kubernetes.io/http", "kubernetes.io/ws", "kubernetes.io/wss", "https"}
)


@dataclass(frozen=True)
class BackendProblem:
    reason: Reason
    message: str


def resolve_backend(
    ctx: Context,
    ref: BackendObjectReference,
    weight: int,
    route_kind: str,
    route_namespace: str,
    app_protocols: frozenset[str] | None = None,
) -> tuple[Backend, BackendProblem | None]:
    """The Backend for a backendRef (invalid, with its weight, when it cannot be used)."""
    namespace = ref.namespace or route_namespace
    backend_ref = Ref(
        kind=ref.kind, namespace=namespace, name=ref.name, section=str(ref.port or "")
    )

    def fail(reason: Reason, message: str) -> tuple[Backend, BackendProblem]:
        return Backend(
            ref=backend_ref, port=ref.port or 0, weight=weight, invalid=message
        ), BackendProblem(reason, message)

    where = f"{ref.kind} {namespace}/{ref.name}"
    if ref.group != "" or ref.kind != "Service":
        return fail(
            Reason.INVALID_KIND,
            f"backendRef kind {ref.group or 'core'}/{ref.kind} is not supported (core Service is)",
        )
    if not ctx.reference_allowed(
        GATEWAY_GROUP, route_kind, route_namespace, "", "Service", namespace, ref.name
    ):
        return fail(
            Reason.REF_NOT_PERMITTED,
            f"{where} is in another namespace and no ReferenceGrant allows it",
        )
    svc = ctx.service(namespace, ref.name)
    if svc is None:
        return fail(Reason.BACKEND_NOT_FOUND, f"{where} does not exist")
    if ref.port is None:
        return fail(Reason.BACKEND_NOT_FOUND, f"backendRef to {where} needs a port")
    if svc.spec.type == "ExternalName":
        return fail(
            Reason.BACKEND_NOT_FOUND,
            f"{where} is an ExternalName Service, which nodegate does not resolve",
        )
    port = next((p for p in svc.spec.ports if p.port == ref.port), None)
    if port is None:
        return fail(Reason.BACKEND_NOT_FOUND, f"{where} has no port {ref.port}")
    app_protocol = port.app_protocol or ""
    if "/" not in app_protocol:
        app_protocol = app_protocol.lower()  # IANA service names are case-insensitive
    if app_protocols is not None and app_protocol not in app_protocols:
        return fail(
            Reason.UNSUPPORTED_PROTOCOL,
            f"{where} port {ref.port} has appProtocol {app_protocol}, which nodegate does "
            "not speak to backends",
        )
    return (
        Backend(
            ref=backend_ref,
            port=ref.port,
            weight=weight,
            endpoints=_endpoints(ctx, svc, port.name, port.protocol),
            app_protocol=app_protocol,
        ),
        None,
    )


def _endpoints(ctx: Context, svc: Service, port_name: str, protocol: str) -> tuple[Endpoint, ...]:
    """Ready endpoints of the Service port, from its EndpointSlices (ports matched by name,
    as the EndpointSlice controller names them after the Service port)."""
    found: set[tuple[str, int, str]] = set()
    for eps in ctx.endpoint_slices(svc.namespace, svc.name):
        if eps.address_type not in ("IPv4", "IPv6"):
            continue
        slice_port = next(
            (p for p in eps.ports if (p.name or "") == port_name and p.protocol == protocol), None
        )
        if slice_port is None or slice_port.port is None:
            continue
        for ep in eps.endpoints:
            if not ep.is_ready:
                continue
            for address in ep.addresses:
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    continue
                found.add((address, slice_port.port, ep.zone or ""))
    return tuple(
        Endpoint(address=a, port=p, zone=z)
        for a, p, z in sorted(
            found,
            key=lambda t: (ipaddress.ip_address(t[0]).version, ipaddress.ip_address(t[0]), t[1]),
        )
    )
