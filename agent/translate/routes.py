"""Route attachment: which listeners each route's parentRefs reach, and the route's status.

For each parentRef (Gateway API "ParentReference"):
- the parent must be a Gateway of ours, or a ListenerSet attached to one; other
  parents belong to other controllers and get no status entry from us;
- a Gateway parentRef reaches the Gateway's own listeners only; a ListenerSet
  parentRef reaches that set's listeners (GEP-1713);
- sectionName and port narrow the listeners ("NoMatchingParent" when nothing is left);
- the listener must allow the route's kind and namespace ("NotAllowedByListeners");
- for kinds with hostnames, route and listener hostnames must intersect
  ("NoMatchingListenerHostname").
A route attached to at least one listener is Accepted there; each such listener
counts it in attachedRoutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.model import GATEWAY_GROUP, GRPCRoute, HTTPRoute, Route, TCPRoute, TLSRoute, UDPRoute
from agent.model.routes import ParentReference
from agent.nodeconfig import Backend
from agent.translate.backends import BackendProblem, resolve_backend
from agent.translate.conditions import RESOLVED, Condition, ConditionType, Reason, conditions_to_k8s
from agent.translate.context import Context
from agent.translate.hostnames import route_hostnames
from agent.translate.http import BackendDecorator, CompiledRoute, compile_http_route
from agent.translate.listeners import GatewayState, ListenerSetState, ListenerState, created_order

ROUTE_TYPES: tuple[type[Route], ...] = (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, UDPRoute)
LISTENER_SET_KINDS = {
    (GATEWAY_GROUP, "ListenerSet"),
    ("gateway.networking.x-k8s.io", "XListenerSet"),
}


@dataclass
class Attachment:
    """A route attached to one listener, with the hostnames it serves there."""

    route: Route
    listener: ListenerState
    hostnames: list[str]


@dataclass
class RouteResult:
    route: Route
    backends: list[Backend] = field(default_factory=list)
    compiled: CompiledRoute | None = None
    attachments: list[Attachment] = field(default_factory=list)
    parents: list[dict[str, Any]] = field(default_factory=list)
    gateways: set[tuple[str, str]] = field(default_factory=set)  # Gateways it is attached through


def evaluate_routes(
    ctx: Context, gateways: dict[tuple[str, str], GatewayState], decorate: BackendDecorator
) -> list[RouteResult]:
    """Every route with at least one parent of ours, oldest first."""
    sets = {
        (ls.obj.namespace, ls.obj.name, ls.obj.kind): ls
        for gw in gateways.values()
        for ls in gw.listener_sets
    }
    routes: list[Route] = [r for cls in ROUTE_TYPES for r in ctx.snapshot.of_type(cls)]
    results = []
    for route in sorted(routes, key=created_order):
        result = _evaluate_route(ctx, route, gateways, sets, decorate)
        if result.parents:
            results.append(result)
    return results


def _resolve(
    ctx: Context, route: Route, decorate: BackendDecorator, result: RouteResult
) -> BackendProblem | None:
    """Resolve the route's backendRefs once; returns the first problem (for ResolvedRefs)."""
    if isinstance(route, HTTPRoute):
        result.compiled = compile_http_route(ctx, route, decorate)
        result.backends = result.compiled.backends_used
        return result.compiled.problems[0] if result.compiled.problems else None
    problems: list[BackendProblem] = []
    for rule in route.spec.rules:
        for ref in rule.backend_refs:
            backend, problem = resolve_backend(ctx, ref, ref.weight, route.kind, route.namespace)
            if problem is not None:
                problems.append(problem)
            else:
                backend = decorate(backend)
            result.backends.append(backend)
    return problems[0] if problems else None


def _evaluate_route(
    ctx: Context,
    route: Route,
    gateways: dict[tuple[str, str], GatewayState],
    sets: dict[tuple[str, str, str], ListenerSetState],
    decorate: BackendDecorator,
) -> RouteResult:
    result = RouteResult(route=route)
    problem: BackendProblem | None = None
    resolved = False
    for pref in route.spec.parent_refs:
        parent_ns = pref.namespace or route.namespace
        listeners: list[ListenerState]
        gw_state: GatewayState | None
        if pref.group == GATEWAY_GROUP and pref.kind == "Gateway":
            gw_state = gateways.get((parent_ns, pref.name))
            if gw_state is None:
                continue
            # Attachment depends on the listeners, not on their being valid (attachedRoutes
            # "MUST count successfully attached Routes" on listeners of any condition);
            # only a Gateway rejected as a whole has none.
            listeners = gw_state.listeners if gw_state.not_accepted is None else []
            parent_desc = f"Gateway {parent_ns}/{pref.name}"
        elif (pref.group, pref.kind) in LISTENER_SET_KINDS:
            ls_state = sets.get((parent_ns, pref.name, pref.kind))
            if ls_state is None:
                continue
            gw_state = (
                gateways.get((ls_state.gateway.namespace, ls_state.gateway.name))
                if ls_state.gateway
                else None
            )
            listeners = ls_state.listeners if ls_state.not_allowed is None else []
            parent_desc = f"{pref.kind} {parent_ns}/{pref.name}"
        else:
            continue
        if not resolved:
            problem = _resolve(ctx, route, decorate, result)
            resolved = True
        accepted = _attach(ctx, route, pref, listeners, parent_desc, result)
        if accepted.status and gw_state is not None:
            result.gateways.add((gw_state.obj.namespace, gw_state.obj.name))
        conditions = [accepted]
        if problem is None:
            conditions.append(RESOLVED)
        else:
            conditions.append(
                Condition(ConditionType.RESOLVED_REFS, False, problem.reason, problem.message)
            )
        result.parents.append(
            {
                "parentRef": _parent_ref_k8s(pref),
                "controllerName": ctx.options.controller_name,
                "conditions": conditions_to_k8s(conditions, route.generation),
            }
        )
    return result


def _attach(
    ctx: Context,
    route: Route,
    pref: ParentReference,
    listeners: list[ListenerState],
    parent_desc: str,
    result: RouteResult,
) -> Condition:
    """Attach the route to the listeners one parentRef reaches; the Accepted condition for it."""
    if not listeners:
        return Condition(
            ConditionType.ACCEPTED,
            False,
            Reason.NO_MATCHING_PARENT,
            f"{parent_desc} has no accepted listeners",
        )
    candidates = [
        item
        for item in listeners
        if (pref.section_name is None or item.name == pref.section_name)
        and (pref.port is None or item.spec.port == pref.port)
    ]
    if not candidates:
        what = " and ".join(
            x
            for x in (
                f"sectionName {pref.section_name}" if pref.section_name else "",
                f"port {pref.port}" if pref.port else "",
            )
            if x
        )
        return Condition(
            ConditionType.ACCEPTED,
            False,
            Reason.NO_MATCHING_PARENT,
            f"{parent_desc} has no listener with {what}",
        )
    allowed = [item for item in candidates if item.is_accepted and _allows(ctx, item, route)]
    if not allowed:
        return Condition(
            ConditionType.ACCEPTED,
            False,
            Reason.NOT_ALLOWED_BY_LISTENERS,
            f"no listener of {parent_desc} allows {route.kind} from namespace {route.namespace}",
        )
    unsupported = result.compiled.unsupported if result.compiled is not None else []
    attached = 0
    for item in allowed:
        hostnames = route_hostnames(item.spec.hostname, list(getattr(route.spec, "hostnames", [])))
        if hostnames is None:
            continue
        attached += 1
        item.attached += 1
        if not unsupported:
            result.attachments.append(Attachment(route=route, listener=item, hostnames=hostnames))
    if not attached:
        return Condition(
            ConditionType.ACCEPTED,
            False,
            Reason.NO_MATCHING_LISTENER_HOSTNAME,
            f"no hostname of the route intersects a listener hostname of {parent_desc}",
        )
    if unsupported:
        return Condition(
            ConditionType.ACCEPTED, False, Reason.UNSUPPORTED_VALUE, "; ".join(unsupported)
        )
    return Condition(
        ConditionType.ACCEPTED,
        True,
        Reason.ACCEPTED,
        f"attached to {attached} listener(s) of {parent_desc}",
    )


def _allows(ctx: Context, listener: ListenerState, route: Route) -> bool:
    """allowedRoutes: the route's kind is supported and its namespace selected."""
    if (GATEWAY_GROUP, route.kind) not in listener.supported_kinds:
        return False
    ns = listener.spec.allowed_routes.namespaces
    owner_ns = listener.owner.namespace
    if ns.from_ == "All":
        return True
    if ns.from_ == "Same":
        return route.namespace == owner_ns
    return ns.selector is not None and ns.selector.matches(ctx.namespace_labels(route.namespace))


def _parent_ref_k8s(pref: ParentReference) -> dict[str, Any]:
    out: dict[str, Any] = {"group": pref.group, "kind": pref.kind, "name": pref.name}
    if pref.namespace is not None:
        out["namespace"] = pref.namespace
    if pref.section_name is not None:
        out["sectionName"] = pref.section_name
    if pref.port is not None:
        out["port"] = pref.port
    return out
