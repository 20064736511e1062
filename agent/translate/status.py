"""Status for GatewayClasses, Gateways and ListenerSets, from the evaluated states.

Gateway conditions (GatewayConditionType / GatewayConditionReason):
- Accepted: True/Accepted when every listener is valid; True/ListenersNotValid
  when some are ("the Gateway contains Conflicted Listeners whether or not they
  accept the Gateway"); False/ListenersNotValid when none is; False with the
  Gateway-level reason (InvalidParameters, UnsupportedAddress) first.
- Programmed: True when accepted and served on an address; else False with the
  address reason (AddressNotUsable, AddressNotAssigned) or Invalid.
- ResolvedRefs: only with spec.tls.backend.clientCertificateRef.
- InsecureFrontendValidationMode: True/ConfigurationChanged when any client
  validation allows the insecure fallback.
Listener conditions: Accepted, Programmed, ResolvedRefs, Conflicted, always all four.
"""

from __future__ import annotations

from typing import Any

from agent.model import GatewayClass
from agent.translate.conditions import RESOLVED, Condition, ConditionType, Reason, conditions_to_k8s
from agent.translate.listeners import GatewayState, ListenerSetState, ListenerState

SUPPORTED_VERSION = "v1.6"


def gateway_class_status(gc: GatewayClass, ok: bool, features: frozenset[str]) -> dict[str, Any]:
    if ok:
        accepted = Condition(
            ConditionType.ACCEPTED, True, Reason.ACCEPTED, "nodegate controls this class"
        )
    else:
        p = gc.spec.parameters_ref
        accepted = Condition(
            ConditionType.ACCEPTED,
            False,
            Reason.INVALID_PARAMETERS,
            f"parametersRef {p.group}/{p.kind} {p.name}: nodegate takes no parameters"
            if p
            else "invalid parameters",
        )
    supported = Condition(
        ConditionType.SUPPORTED_VERSION,
        True,
        Reason.SUPPORTED_VERSION,
        f"nodegate implements Gateway API {SUPPORTED_VERSION}",
    )
    return {
        "conditions": conditions_to_k8s([accepted, supported], gc.generation),
        "supportedFeatures": [{"name": f} for f in sorted(features)],
    }


def listener_status(item: ListenerState, generation: int) -> dict[str, Any]:
    conditions: list[Condition] = []
    if item.accepted is not None:
        conditions.append(item.accepted)
        conditions.append(
            Condition(ConditionType.PROGRAMMED, False, Reason.INVALID, item.accepted.message)
        )
    elif item.conflicted is not None:
        conditions.append(
            Condition(ConditionType.ACCEPTED, False, item.conflicted, item.conflict_message)
        )
        conditions.append(
            Condition(ConditionType.PROGRAMMED, False, item.conflicted, item.conflict_message)
        )
    else:
        conditions.append(
            Condition(ConditionType.ACCEPTED, True, Reason.ACCEPTED, "listener accepted")
        )
        if item.resolved is not None:
            conditions.append(
                Condition(ConditionType.PROGRAMMED, False, Reason.INVALID, item.resolved.message)
            )
    if item.conflicted is not None:
        conditions.append(
            Condition(ConditionType.CONFLICTED, True, item.conflicted, item.conflict_message)
        )
    else:
        conditions.append(
            Condition(ConditionType.CONFLICTED, False, Reason.NO_CONFLICTS, "no conflicts")
        )
    conditions.append(item.resolved or RESOLVED)
    conditions.append(
        Condition(ConditionType.PROGRAMMED, True, Reason.PROGRAMMED, "listener programmed")
    )
    return {
        "name": item.name,
        "supportedKinds": (
            [{"group": g, "kind": k} for g, k in item.supported_kinds] if item.is_accepted else []
        ),
        "attachedRoutes": item.attached,
        "conditions": _ordered(conditions_to_k8s(conditions, generation)),
    }


def _ordered(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {"Accepted": 0, "Programmed": 1, "ResolvedRefs": 2, "Conflicted": 3}
    return sorted(conditions, key=lambda c: order.get(c["type"], 9))


def _listeners_accepted(listeners: list[ListenerState], subject: str) -> Condition:
    valid = [item.name for item in listeners if item.is_valid]
    invalid = [item.name for item in listeners if not item.is_valid]
    if not invalid:
        return Condition(ConditionType.ACCEPTED, True, Reason.ACCEPTED, f"{subject} accepted")
    message = f"invalid listeners: {', '.join(invalid)}" + (
        f"; valid: {', '.join(valid)}" if valid else ""
    )
    return Condition(ConditionType.ACCEPTED, bool(valid), Reason.LISTENERS_NOT_VALID, message)


def gateway_status(state: GatewayState) -> dict[str, Any]:
    gw = state.obj
    conditions: list[Condition] = []
    accepted = state.not_accepted or _listeners_accepted(state.listeners, "Gateway")
    conditions.append(accepted)
    if not accepted.status:
        conditions.append(
            Condition(
                ConditionType.PROGRAMMED, False, Reason.INVALID, "the Gateway is not accepted"
            )
        )
    elif state.not_programmed is not None:
        conditions.append(state.not_programmed)
    else:
        conditions.append(
            Condition(
                ConditionType.PROGRAMMED,
                True,
                Reason.PROGRAMMED,
                f"served on {', '.join(state.addresses)}",
            )
        )
    tls = gw.spec.tls
    if (
        tls is not None
        and tls.backend is not None
        and tls.backend.client_certificate_ref is not None
    ):
        if state.client_certificate_problem is not None:
            p = state.client_certificate_problem
            conditions.append(Condition(ConditionType.RESOLVED_REFS, False, p.reason, p.message))
        else:
            conditions.append(RESOLVED)
    if state.insecure_frontend:
        conditions.append(
            Condition(
                ConditionType.INSECURE_FRONTEND_VALIDATION_MODE,
                True,
                Reason.CONFIGURATION_CHANGED,
                "client certificate validation allows connections without a valid "
                "certificate (AllowInsecureFallback)",
            )
        )
    served = accepted.status and state.not_programmed is None
    return {
        "addresses": [{"type": "IPAddress", "value": a} for a in state.addresses] if served else [],
        "conditions": conditions_to_k8s(conditions, gw.generation),
        "listeners": [listener_status(item, gw.generation) for item in state.listeners],
        "attachedListenerSets": sum(1 for ls in state.listener_sets if ls.attached),
    }


def listener_set_status(state: ListenerSetState) -> dict[str, Any]:
    ls = state.obj
    if state.not_allowed is not None:
        reason = state.not_allowed.reason
        conditions = [
            state.not_allowed,
            Condition(ConditionType.PROGRAMMED, False, reason, state.not_allowed.message),
        ]
    else:
        accepted = _listeners_accepted(state.listeners, "ListenerSet")
        conditions = [accepted]
        if accepted.status:
            conditions.append(
                Condition(ConditionType.PROGRAMMED, True, Reason.PROGRAMMED, "listeners programmed")
            )
        else:
            conditions.append(
                Condition(ConditionType.PROGRAMMED, False, accepted.reason, accepted.message)
            )
    return {
        "conditions": conditions_to_k8s(conditions, ls.generation),
        "listeners": [listener_status(item, ls.generation) for item in state.listeners],
    }
