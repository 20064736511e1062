"""Gateways, their ListenerSets and listeners: validity, conflicts, addresses.

Rules (Gateway API v1.6, Gateway.spec.listeners and GEP-1713):
- "each listener in a set MUST have a unique combination of Port, Protocol, and,
  if supported by the protocol, Hostname". Listeners that are not distinct are
  Conflicted; "the implementation MUST NOT pick one conflicting Listener as the
  winner" within one Gateway. Across a Gateway and its ListenerSets, the
  Gateway's own listeners come first, then ListenerSets by creation time and
  then namespace/name; a later listener that conflicts with an earlier one is
  the one Conflicted. Across Gateways that share an address (several Gateways
  on the node addresses), older Gateways come first in the same way.
- "If an implementation ... sees HTTP, HTTPS, or TLS protocols with the same
  `port` as one with TCP Protocol ... all the Listeners that share a port with
  the TCP Listener are not distinct". nodegate serves, per TCP port, either
  plain HTTP, or TLS with termination (HTTPS, TLS Terminate), or TLS
  passthrough (both, told apart by SNI, when TLSRouteModeMixed is supported),
  or raw TCP; any other mix on one port is a ProtocolConflict. UDP ports are a
  separate space.
- A listener that is not Accepted supports no route kinds and attaches no routes.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

from agent.model import GATEWAY_GROUP, Gateway, GatewayClass, Listener, ListenerSet
from agent.model.base import K8sObject
from agent.nodeconfig import Certificate, ClientValidation, Ref
from agent.translate.certs import RefProblem, resolve_ca_ref, resolve_certificate_ref
from agent.translate.conditions import Condition, ConditionType, Reason
from agent.translate.context import Context

# Route kinds each listener protocol can carry in nodegate.
PROTOCOL_KINDS: dict[str, tuple[str, ...]] = {
    "HTTP": ("HTTPRoute",),
    "HTTPS": ("HTTPRoute",),
    "TLS": ("TLSRoute",),
    "TCP": ("TCPRoute",),
    "UDP": ("UDPRoute",),
}

# Route kinds a listener protocol carries only where the build implements them.
FEATURE_KINDS: dict[str, tuple[str, ...]] = {"GRPCRoute": ("HTTP", "HTTPS")}
TLS_TERMINATE_FEATURE = "TLSRouteModeTerminate"
TLS_MIXED_FEATURE = "TLSRouteModeMixed"


def created_order(obj: K8sObject) -> tuple[str, str, str]:
    """The spec's tie-break order: oldest first, then namespace/name."""
    return (obj.metadata.creation_timestamp or "", obj.namespace, obj.name)


@dataclass
class ListenerState:
    owner: Gateway | ListenerSet
    owner_ref: Ref
    gateway: Gateway
    spec: Listener
    addresses: tuple[str, ...] = ()
    accepted: Condition | None = None  # a reason not to accept, if any
    resolved: Condition | None = None  # a reason refs are not resolved, if any
    conflicted: Reason | None = None
    conflict_message: str = ""
    supported_kinds: list[tuple[str, str]] = field(default_factory=list)
    certificates: list[Certificate] = field(default_factory=list)
    client_validation: ClientValidation | None = None
    attached: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def protocol(self) -> str:
        return self.spec.protocol

    @property
    def is_accepted(self) -> bool:
        return self.accepted is None and self.conflicted is None

    @property
    def is_valid(self) -> bool:
        return self.is_accepted and self.resolved is None

    @property
    def tls_mode(self) -> str:
        return self.spec.tls.mode if self.spec.tls is not None else "Terminate"

    def port_class(self, mixed_tls: bool) -> str:
        """Listeners on one port must share this to be compatible (see module doc). With
        mixed TLS (TLSRouteModeMixed), terminating and passthrough listeners share a port,
        told apart by SNI."""
        if self.protocol in ("HTTPS", "TLS"):
            if mixed_tls:
                return "tls"
            return (
                "tls-terminate"
                if self.protocol == "HTTPS" or self.tls_mode == "Terminate"
                else "tls-passthrough"
            )
        return self.protocol

    def port_space(self) -> str:
        return "udp" if self.protocol == "UDP" else "tcp"

    def hostname_distinct(self) -> bool:
        return self.protocol in ("HTTP", "HTTPS", "TLS")


@dataclass
class ListenerSetState:
    obj: ListenerSet
    ref: Ref
    gateway: Gateway | None
    not_allowed: Condition | None = None
    listeners: list[ListenerState] = field(default_factory=list)

    @property
    def attached(self) -> bool:
        return self.not_allowed is None and any(item.is_valid for item in self.listeners)


@dataclass
class GatewayState:
    obj: Gateway
    ref: Ref
    listeners: list[ListenerState] = field(default_factory=list)
    listener_sets: list[ListenerSetState] = field(default_factory=list)
    not_accepted: Condition | None = (
        None  # a Gateway-level reason not to accept (params, addresses)
    )
    not_programmed: Condition | None = None
    addresses: tuple[str, ...] = ()
    client_certificate: Certificate | None = None
    client_certificate_problem: RefProblem | None = None
    insecure_frontend: bool = False

    @property
    def accepted(self) -> bool:
        return self.not_accepted is None and any(item.is_valid for item in self.listeners)

    def all_listeners(self) -> list[ListenerState]:
        out = list(self.listeners)
        for ls in self.listener_sets:
            if ls.not_allowed is None:
                out.extend(ls.listeners)
        return out


def accepted_classes(ctx: Context) -> dict[str, GatewayClass]:
    """GatewayClasses nodegate controls, by name."""
    return {
        gc.name: gc
        for gc in ctx.snapshot.of_type(GatewayClass)
        if gc.spec.controller_name == ctx.options.controller_name
    }


def evaluate_gateways(
    ctx: Context, classes: dict[str, GatewayClass], class_ok: dict[str, bool]
) -> dict[tuple[str, str], GatewayState]:
    """Every Gateway of an accepted class of ours, with listeners validated and conflicts marked."""
    gateways = sorted(
        (gw for gw in ctx.snapshot.of_type(Gateway) if gw.spec.gateway_class_name in classes),
        key=created_order,
    )
    states: dict[tuple[str, str], GatewayState] = {}
    assigned = _assign_addresses(ctx, gateways)
    for gw in gateways:
        state = GatewayState(obj=gw, ref=Ref(kind="Gateway", namespace=gw.namespace, name=gw.name))
        if not class_ok.get(gw.spec.gateway_class_name, False):
            state.not_accepted = Condition(
                ConditionType.ACCEPTED,
                False,
                Reason.INVALID_PARAMETERS,
                f"GatewayClass {gw.spec.gateway_class_name} is not accepted",
            )
        elif (
            gw.spec.infrastructure is not None and gw.spec.infrastructure.parameters_ref is not None
        ):
            p = gw.spec.infrastructure.parameters_ref
            state.not_accepted = Condition(
                ConditionType.ACCEPTED,
                False,
                Reason.INVALID_PARAMETERS,
                f"infrastructure.parametersRef {p.group}/{p.kind} {p.name}: nodegate takes "
                "no parameters",
            )
        addr = assigned[(gw.namespace, gw.name)]
        if state.not_accepted is None and addr.unsupported is not None:
            state.not_accepted = addr.unsupported
        state.not_programmed = addr.not_usable
        state.addresses = addr.addresses
        _backend_client_certificate(ctx, state)
        for listener in _unique_listeners(gw.spec.listeners):
            state.listeners.append(_evaluate_listener(ctx, state, gw, state.ref, listener))
        states[(gw.namespace, gw.name)] = state
    _attach_listener_sets(ctx, states)
    _mark_conflicts(states, TLS_MIXED_FEATURE in ctx.options.features)
    return states


def _unique_listeners(listeners: list[Listener]) -> list[Listener]:
    """Listener names are unique per Gateway (a CRD rule); a repeated name keeps its first entry."""
    seen: set[str] = set()
    out = []
    for item in listeners:
        if item.name not in seen:
            seen.add(item.name)
            out.append(item)
    return out


def _backend_client_certificate(ctx: Context, state: GatewayState) -> None:
    tls = state.obj.spec.tls
    if tls is None:
        return
    if tls.backend is not None and tls.backend.client_certificate_ref is not None:
        got = resolve_certificate_ref(
            ctx, tls.backend.client_certificate_ref, GATEWAY_GROUP, "Gateway", state.obj.namespace
        )
        if isinstance(got, RefProblem):
            reason = (
                Reason.REF_NOT_PERMITTED
                if got.reason == Reason.REF_NOT_PERMITTED
                else Reason.INVALID_CLIENT_CERTIFICATE_REF
            )
            state.client_certificate_problem = RefProblem(reason, got.message)
        else:
            state.client_certificate = got
    if tls.frontend is not None:
        modes = [tls.frontend.default.validation] + [
            p.tls.validation for p in tls.frontend.per_port
        ]
        state.insecure_frontend = any(
            v is not None and v.mode == "AllowInsecureFallback" for v in modes
        )


def _evaluate_listener(
    ctx: Context,
    gw_state: GatewayState,
    owner: Gateway | ListenerSet,
    owner_ref: Ref,
    spec: Listener,
) -> ListenerState:
    gw = gw_state.obj
    state = ListenerState(
        owner=owner,
        owner_ref=owner_ref.model_copy(update={"section": spec.name}),
        gateway=gw,
        spec=spec,
        addresses=gw_state.addresses,
    )
    kinds = PROTOCOL_KINDS.get(spec.protocol)
    if kinds is not None:
        kinds = kinds + tuple(
            kind
            for kind, protocols in FEATURE_KINDS.items()
            if spec.protocol in protocols and kind in ctx.options.features
        )
    if kinds is None:
        state.accepted = Condition(
            ConditionType.ACCEPTED,
            False,
            Reason.UNSUPPORTED_PROTOCOL,
            f"protocol {spec.protocol!r} is not supported "
            f"(nodegate serves {', '.join(PROTOCOL_KINDS)})",
        )
        return state
    problem = _shape_problem(ctx, spec)
    if problem is not None:
        state.accepted = Condition(ConditionType.ACCEPTED, False, Reason.UNSUPPORTED_VALUE, problem)
        return state

    # allowedRoutes.kinds: invalid kinds are left out; ResolvedRefs=False InvalidRouteKinds.
    if spec.allowed_routes.kinds:
        wanted = [(k.group, k.kind) for k in spec.allowed_routes.kinds]
        state.supported_kinds = [gk for gk in wanted if gk[0] == GATEWAY_GROUP and gk[1] in kinds]
        invalid = [f"{g}/{k}" for g, k in wanted if (g, k) not in state.supported_kinds]
        if invalid:
            state.resolved = Condition(
                ConditionType.RESOLVED_REFS,
                False,
                Reason.INVALID_ROUTE_KINDS,
                f"route kinds not supported on a {spec.protocol} listener: {', '.join(invalid)}",
            )
    else:
        state.supported_kinds = [(GATEWAY_GROUP, k) for k in kinds]

    if spec.tls is not None and spec.tls.mode == "Terminate" and spec.protocol in ("HTTPS", "TLS"):
        for ref in spec.tls.certificate_refs:
            got = resolve_certificate_ref(ctx, ref, GATEWAY_GROUP, owner.kind, owner.namespace)
            if isinstance(got, RefProblem):
                if state.resolved is None:
                    state.resolved = Condition(
                        ConditionType.RESOLVED_REFS, False, got.reason, got.message
                    )
            else:
                state.certificates.append(got)
        if spec.protocol == "HTTPS":
            _frontend_validation(ctx, gw, spec, state)
    return state


def _shape_problem(ctx: Context, spec: Listener) -> str | None:
    """Listener fields that make no sense for its protocol (the CRD's CEL rules), or a TLS mode
    nodegate does not serve. None when the shape is fine."""
    proto, tls = spec.protocol, spec.tls
    if proto in ("HTTP", "TCP", "UDP") and tls is not None:
        return f"tls must not be set on a {proto} listener"
    if proto in ("TCP", "UDP") and spec.hostname:
        return f"hostname must not be set on a {proto} listener"
    if proto == "HTTPS":
        if tls is None or not tls.certificate_refs:
            return "an HTTPS listener needs tls.certificateRefs"
        if tls.mode != "Terminate":
            return "an HTTPS listener terminates TLS: tls.mode must be Terminate"
    if proto == "TLS":
        if tls is None:
            return "a TLS listener needs tls (mode Passthrough, or Terminate with certificateRefs)"
        if tls.mode == "Terminate":
            if TLS_TERMINATE_FEATURE not in ctx.options.features:
                return "TLS listeners with mode Terminate are not supported by this nodegate build"
            if not tls.certificate_refs:
                return "a TLS listener with mode Terminate needs tls.certificateRefs"
    return None


def _frontend_validation(ctx: Context, gw: Gateway, spec: Listener, state: ListenerState) -> None:
    """Gateway spec.tls.frontend: client certificate validation for this listener's port."""
    frontend = gw.spec.tls.frontend if gw.spec.tls is not None else None
    if frontend is None:
        return
    validation = frontend.default.validation
    for per_port in frontend.per_port:
        if per_port.port == spec.port:
            validation = per_port.tls.validation
    if validation is None or not validation.ca_certificate_refs:
        return
    bundles: list[str] = []
    for ref in validation.ca_certificate_refs:
        got = resolve_ca_ref(
            ctx, ref, GATEWAY_GROUP, "Gateway", gw.namespace, Reason.INVALID_CA_CERTIFICATE_KIND
        )
        if isinstance(got, RefProblem):
            if state.resolved is None:
                state.resolved = Condition(
                    ConditionType.RESOLVED_REFS, False, got.reason, got.message
                )
        else:
            bundles.append(got)
    if not bundles:
        state.accepted = Condition(
            ConditionType.ACCEPTED,
            False,
            Reason.NO_VALID_CA_CERTIFICATE,
            "none of the client-validation caCertificateRefs is usable",
        )
        return
    state.client_validation = ClientValidation(ca_pems=tuple(bundles), mode=validation.mode)


def _attach_listener_sets(ctx: Context, gateways: dict[tuple[str, str], GatewayState]) -> None:
    """GEP-1713: a ListenerSet joins its parent Gateway when the Gateway's allowedListeners
    admits its namespace."""
    sets = sorted(ctx.snapshot.of_type(ListenerSet), key=created_order)
    for ls in sets:
        parent = ls.spec.parent_ref
        if parent.group != GATEWAY_GROUP or parent.kind != "Gateway":
            continue
        gw_state = gateways.get((parent.namespace or ls.namespace, parent.name))
        if gw_state is None:
            continue  # not a Gateway of ours: its controller writes this status
        ref = Ref(kind=ls.kind, namespace=ls.namespace, name=ls.name)
        state = ListenerSetState(obj=ls, ref=ref, gateway=gw_state.obj)
        allowed = gw_state.obj.spec.allowed_listeners.namespaces
        if allowed.from_ == "None":
            permitted = False
        elif allowed.from_ == "Same":
            permitted = ls.namespace == gw_state.obj.namespace
        elif allowed.from_ == "All":
            permitted = True
        else:
            permitted = allowed.selector is not None and allowed.selector.matches(
                ctx.namespace_labels(ls.namespace)
            )
        if not permitted:
            state.not_allowed = Condition(
                ConditionType.ACCEPTED,
                False,
                Reason.NOT_ALLOWED,
                f"Gateway {gw_state.obj.namespace}/{gw_state.obj.name} does not allow "
                f"ListenerSets from namespace {ls.namespace}",
            )
        elif not gw_state.accepted:
            state.not_allowed = Condition(
                ConditionType.ACCEPTED,
                False,
                Reason.PARENT_NOT_ACCEPTED,
                f"Gateway {gw_state.obj.namespace}/{gw_state.obj.name} is not accepted",
            )
        else:
            for listener in _unique_listeners(ls.spec.listeners):
                state.listeners.append(_evaluate_listener(ctx, gw_state, ls, ref, listener))
        gw_state.listener_sets.append(state)


def _mark_conflicts(gateways: dict[tuple[str, str], GatewayState], mixed_tls: bool) -> None:
    """Mark indistinct listeners Conflicted (rules in the module doc)."""
    placed: list[ListenerState] = []
    for gw_state in gateways.values():  # already in creation order
        sources = [gw_state.listeners] + [
            ls.listeners for ls in gw_state.listener_sets if ls.not_allowed is None
        ]
        for source in sources:
            candidates = [item for item in source if item.accepted is None]
            # First what came earlier (the Gateway, older ListenerSets, older Gateways) wins ...
            for item in candidates:
                for earlier in placed:
                    reason = _conflict(item, earlier, mixed_tls)
                    if reason is not None:
                        item.conflicted = reason
                        item.conflict_message = (
                            f"conflicts with {earlier.owner_ref} on port {earlier.spec.port}, "
                            "which came first"
                        )
                        break
            # ... then, within one source, no listener wins: all indistinct ones are Conflicted.
            remaining = [item for item in candidates if item.conflicted is None]
            for i, a in enumerate(remaining):
                for b in remaining[i + 1 :]:
                    reason = _conflict(a, b, mixed_tls)
                    if reason is not None:
                        for item, other in ((a, b), (b, a)):
                            if item.conflicted is None:
                                item.conflicted = reason
                                item.conflict_message = f"conflicts with listener {other.name}"
            placed.extend(item for item in candidates if item.conflicted is None)


def _conflict(a: ListenerState, b: ListenerState, mixed_tls: bool) -> Reason | None:
    if a.spec.port != b.spec.port or a.port_space() != b.port_space():
        return None
    if a.gateway is not b.gateway and not set(a.addresses) & set(b.addresses):
        return None
    if a.port_class(mixed_tls) != b.port_class(mixed_tls):
        return Reason.PROTOCOL_CONFLICT
    if not a.hostname_distinct():
        return Reason.PROTOCOL_CONFLICT  # TCP/UDP: nothing but the port tells them apart
    if (a.spec.hostname or "") == (b.spec.hostname or ""):
        return Reason.HOSTNAME_CONFLICT
    return None


# --- addresses ---------------------------------------------------------------------------


@dataclass
class _Addresses:
    addresses: tuple[str, ...] = ()
    unsupported: Condition | None = None
    not_usable: Condition | None = None


def _assign_addresses(ctx: Context, gateways: list[Gateway]) -> dict[tuple[str, str], _Addresses]:
    """Addresses for each Gateway, deterministic from the snapshot.

    spec.addresses of type IPAddress with a value must be usable (inside an address
    pool or one of the node's addresses) and not taken by an older Gateway; one with an
    empty value, or a Gateway that asks for none, gets an address from the pools (or,
    with no pools, the node's addresses). Pool picks start at a slot hashed from the
    Gateway's namespace/name, so one Gateway coming or going moves no other.
    """
    pools = ctx.options.pools()
    node = tuple(ctx.options.node_addresses)
    out: dict[tuple[str, str], _Addresses] = {}
    taken: dict[str, tuple[str, str]] = {}
    want_pool: list[Gateway] = []
    for gw in gateways:
        result = _Addresses()
        out[(gw.namespace, gw.name)] = result
        static: list[str] = []
        needs_pool = not gw.spec.addresses
        for a in gw.spec.addresses:
            if a.type != "IPAddress":
                result.unsupported = Condition(
                    ConditionType.ACCEPTED,
                    False,
                    Reason.UNSUPPORTED_ADDRESS,
                    f"address type {a.type!r} is not supported (IPAddress is)",
                )
                continue
            if not a.value:
                needs_pool = True
                continue
            try:
                ip = ipaddress.ip_address(a.value)
            except ValueError:
                result.unsupported = Condition(
                    ConditionType.ACCEPTED,
                    False,
                    Reason.UNSUPPORTED_ADDRESS,
                    f"{a.value!r} is not an IP address",
                )
                continue
            owner = taken.get(str(ip))
            if not (any(ip in p for p in pools) or str(ip) in node):
                result.not_usable = Condition(
                    ConditionType.PROGRAMMED,
                    False,
                    Reason.ADDRESS_NOT_USABLE,
                    f"{ip} is neither in an address pool "
                    f"({', '.join(map(str, pools)) or 'none'}) nor a node address",
                )
            elif owner is not None and owner != (gw.namespace, gw.name):
                result.not_usable = Condition(
                    ConditionType.PROGRAMMED,
                    False,
                    Reason.ADDRESS_NOT_USABLE,
                    f"{ip} is already used by Gateway {owner[0]}/{owner[1]}",
                )
            else:
                taken[str(ip)] = (gw.namespace, gw.name)
                static.append(str(ip))
        result.addresses = tuple(static)
        if needs_pool:
            want_pool.append(gw)
    for gw in want_pool:
        result = out[(gw.namespace, gw.name)]
        if not pools:
            result.addresses = result.addresses + tuple(
                a for a in node if a not in result.addresses
            )
            continue
        picked = _pick_from_pools(pools, f"{gw.namespace}/{gw.name}", set(taken) | set(node))
        if picked is None:
            result.not_usable = Condition(
                ConditionType.PROGRAMMED,
                False,
                Reason.ADDRESS_NOT_ASSIGNED,
                "the address pools are exhausted",
            )
            continue
        taken[picked] = (gw.namespace, gw.name)
        result.addresses = (*result.addresses, picked)
    for result in out.values():
        if not result.addresses and result.not_usable is None and result.unsupported is None:
            result.not_usable = Condition(
                ConditionType.PROGRAMMED,
                False,
                Reason.ADDRESS_NOT_ASSIGNED,
                "no address to serve on: configure an address pool "
                "or run where node addresses are known",
            )
    return out


def _pick_from_pools(
    pools: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], name: str, taken: set[str]
) -> str | None:
    for pool in pools:
        first, size = int(pool.network_address), pool.num_addresses
        if pool.version == 4 and pool.prefixlen < 31:
            first, size = first + 1, size - 2  # skip the network and broadcast addresses
        if size <= 0:
            continue
        start = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % size
        for i in range(min(size, 65536)):
            candidate = str(ipaddress.ip_address(first + (start + i) % size))
            if candidate not in taken:
                return candidate
    return None
