"""BackendTLSPolicy and XBackendTrafficPolicy: what they do to backends, and their status.

GEP-713 (policy attachment): when several policies of one kind target the same
thing, "the oldest Policy based on creation timestamp" wins, then the first by
"{namespace}/{name}"; the others are Accepted=False with reason Conflicted. A
BackendTLSPolicy with a sectionName targets one Service port and is not in
conflict with one that targets the whole Service: the port-specific one applies
to its port, the other to the remaining ports.

A policy's status lists, as ancestors, the Gateways through which a route uses
the targeted Service (one entry each, with our controllerName).

A BackendTLSPolicy without a usable CA makes its backends invalid: requests to
them fail (500) rather than go out without the TLS the policy asks for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.model import BackendTLSPolicy, XBackendTrafficPolicy
from agent.model.routes import parse_duration
from agent.nodeconfig import Backend, BackendTLS, Ref, RetryBudget
from agent.translate.certs import RefProblem, resolve_ca_ref
from agent.translate.conditions import RESOLVED, Condition, ConditionType, Reason, conditions_to_k8s
from agent.translate.context import Context
from agent.translate.listeners import created_order

MAX_ANCESTORS = 16  # PolicyStatus.ancestors maxItems


@dataclass
class _TLSPolicyState:
    policy: BackendTLSPolicy
    conditions: list[Condition] = field(default_factory=list)
    tls: BackendTLS | None = None
    invalid: str = ""
    targets: set[tuple[str, str]] = field(default_factory=set)  # Services it applies to (ns, name)


@dataclass
class _TrafficPolicyState:
    policy: XBackendTrafficPolicy
    conditions: list[Condition] = field(default_factory=list)
    budget: RetryBudget | None = None
    targets: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class Policies:
    tls: dict[tuple[str, str, str], _TLSPolicyState] = field(
        default_factory=dict
    )  # (ns, svc, section)
    tls_states: list[_TLSPolicyState] = field(default_factory=list)
    traffic: dict[tuple[str, str], _TrafficPolicyState] = field(default_factory=dict)  # (ns, svc)
    traffic_states: list[_TrafficPolicyState] = field(default_factory=list)

    def decorate(self, ctx: Context, backend: Backend) -> Backend:
        """A resolved Service backend with the TLS and retry budget its policies give it."""
        ns, name = backend.ref.namespace, backend.ref.name
        svc = ctx.service(ns, name)
        port_name = (
            next((p.name for p in svc.spec.ports if p.port == backend.port), "") if svc else ""
        )
        update: dict[str, Any] = {}
        state = self.tls.get((ns, name, port_name)) if port_name else None
        state = state or self.tls.get((ns, name, ""))
        if state is not None:
            if state.tls is not None:
                update["tls"] = state.tls
            else:
                update["invalid"] = state.invalid
                update["endpoints"] = ()
        traffic = self.traffic.get((ns, name))
        if traffic is not None and traffic.budget is not None:
            update["retry_budget"] = traffic.budget
        return backend.model_copy(update=update) if update else backend


def evaluate_policies(ctx: Context) -> Policies:
    out = Policies()
    for policy in sorted(ctx.snapshot.of_type(BackendTLSPolicy), key=created_order):
        state = _TLSPolicyState(policy=policy)
        out.tls_states.append(state)
        _validate_tls_policy(ctx, state)
        claimed: list[tuple[str, str, str]] = []
        for t in policy.spec.target_refs:
            if t.group != "" or t.kind != "Service":
                continue
            key = (policy.namespace, t.name, t.section_name or "")
            holder = out.tls.get(key)
            if holder is not None and holder is not state:
                state.conditions.insert(
                    0,
                    Condition(
                        ConditionType.ACCEPTED,
                        False,
                        Reason.CONFLICTED,
                        f"BackendTLSPolicy {holder.policy.namespace}/{holder.policy.name} "
                        "targets the same "
                        "Service"
                        f"{' port ' + t.section_name if t.section_name else ''} and takes "
                        "precedence",
                    ),
                )
                claimed = []
                break
            claimed.append(key)
        for key in claimed:
            out.tls[key] = state
            state.targets.add((key[0], key[1]))
    for tpolicy in sorted(ctx.snapshot.of_type(XBackendTrafficPolicy), key=created_order):
        tstate = _TrafficPolicyState(policy=tpolicy)
        out.traffic_states.append(tstate)
        rc = tpolicy.spec.retry_constraint
        if rc is not None:
            tstate.budget = RetryBudget(
                percent=rc.budget.percent,
                interval=parse_duration(rc.budget.interval),
                min_retries=rc.min_retry_rate.count or 0,
                min_interval=parse_duration(rc.min_retry_rate.interval)
                if rc.min_retry_rate.interval
                else 1.0,
            )
        for target in tpolicy.spec.target_refs:
            if target.group != "" or target.kind != "Service":
                continue
            key2 = (tpolicy.namespace, target.name)  # targetRefs are local: same namespace
            holder2 = out.traffic.get(key2)
            if holder2 is not None:
                tstate.conditions.append(
                    Condition(
                        ConditionType.ACCEPTED,
                        False,
                        Reason.CONFLICTED,
                        "XBackendTrafficPolicy "
                        f"{holder2.policy.namespace}/{holder2.policy.name} "
                        "targets the same Service and takes precedence",
                    )
                )
                continue
            out.traffic[key2] = tstate
            tstate.targets.add(key2)
    return out


def _validate_tls_policy(ctx: Context, state: _TLSPolicyState) -> None:
    policy = state.policy
    v = policy.spec.validation
    bundles: list[str] = []
    problem: RefProblem | None = None
    for ref in v.ca_certificate_refs:
        got = resolve_ca_ref(
            ctx,
            ref,
            "gateway.networking.k8s.io",
            "BackendTLSPolicy",
            policy.namespace,
            Reason.INVALID_KIND,
        )
        if isinstance(got, RefProblem):
            problem = problem or got
        else:
            bundles.append(got)
    system = v.well_known_ca_certificates == "System"
    if v.well_known_ca_certificates not in (None, "System"):
        state.conditions.append(
            Condition(
                ConditionType.ACCEPTED,
                False,
                Reason.INVALID,
                f"wellKnownCACertificates {v.well_known_ca_certificates!r} is not supported "
                "(System is)",
            )
        )
        state.invalid = "BackendTLSPolicy has no usable CA certificates"
        return
    if problem is not None:
        state.conditions.append(
            Condition(ConditionType.RESOLVED_REFS, False, problem.reason, problem.message)
        )
    if not bundles and not system:
        state.conditions.insert(
            0,
            Condition(
                ConditionType.ACCEPTED,
                False,
                Reason.NO_VALID_CA_CERTIFICATE,
                "no usable CA certificate",
            ),
        )
        state.invalid = (
            f"BackendTLSPolicy {policy.namespace}/{policy.name} has no usable CA certificate"
        )
        return
    state.tls = BackendTLS(
        policy=Ref(kind="BackendTLSPolicy", namespace=policy.namespace, name=policy.name),
        hostname=v.hostname,
        ca_pems=tuple(bundles),
        system_cas=system,
        subject_alt_names=tuple(
            (san.type, (san.hostname if san.type == "Hostname" else san.uri) or "")
            for san in v.subject_alt_names
        ),
    )


def policy_statuses(
    ctx: Context, policies: Policies, used: dict[tuple[str, str], set[tuple[str, str]]]
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Status for each policy, keyed (kind, namespace, name). `used` maps a Service
    (ns, name) to the Gateways (ns, name) that route to it."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    all_states: Iterable[_TLSPolicyState | _TrafficPolicyState] = [
        *policies.tls_states,
        *policies.traffic_states,
    ]
    for state in all_states:
        p = state.policy
        gateways: set[tuple[str, str]] = set()
        for t in p.spec.target_refs:
            if t.group == "" and t.kind == "Service":
                gateways |= used.get((p.namespace, t.name), set())
        if not gateways:
            continue
        conditions = list(state.conditions)
        conditions.append(
            Condition(ConditionType.ACCEPTED, True, Reason.ACCEPTED, "policy accepted")
        )
        conditions.append(RESOLVED)
        wire = conditions_to_k8s(conditions, p.generation)
        ancestors = [
            {
                "ancestorRef": {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "namespace": ns,
                    "name": name,
                },
                "controllerName": ctx.options.controller_name,
                "conditions": wire,
            }
            for ns, name in sorted(gateways)[:MAX_ANCESTORS]
        ]
        out[(p.kind, p.namespace, p.name)] = {"ancestors": ancestors}
    return out
