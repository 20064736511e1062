"""Judges `status_expectations` of the conformance cases against objects that carry status.

Input is plain dicts shaped like `kubectl get -o yaml` output ({apiVersion,
kind, metadata{name, namespace, generation, annotations...}, spec, status}), so
the same checker can judge a real API server later. Each check reproduces the
upstream helper named in shared/conformance/README.md ("cases.json format");
the docstring of each `_check_*` function quotes the rule it enforces.

Equivalences with upstream, and where we are deliberately stricter:
- Upstream polls ("eventually"): every 100 ms (1 s for "no accepted parents")
  until a check holds or its timeout passes. Our status comes from a pure,
  deterministic translation, so one evaluation after a phase's edits is the
  equivalent: a poll would see the same status every time. The "seen empty on
  two polls" rule of route-no-accepted-parents collapses to "empty" for the
  same reason.
- Missing fields read as Go's zero values (generation 0, attachedRoutes 0,
  observedGeneration 0), as upstream's typed clients see them.
- Fields the Gateway API CRDs default are defaulted before comparison, as the
  API server would have done when the status was written: parentRef
  group=gateway.networking.k8s.io and kind=Gateway, status address
  type=IPAddress, supportedKinds group=gateway.networking.k8s.io.
- route-parents-match requires every parent's conditions to carry the route's
  metadata.generation (cases.json notes ask for it; upstream checks it only
  from the second poll on). policy-ancestor-condition requires it of every
  ancestor (upstream stops at the first matching ancestor) and requires our
  controllerName (upstream does not compare it).
- `generated-resources-carry-infrastructure-metadata` needs the ServiceAccount/
  Pod/Service objects an implementation generates; a status test has none, so
  it is reported UNSUPPORTED, which never counts as passed.
- `namespaces-ready` judges Gateways only: Pod readiness is out of scope for
  the status test (no Pods exist in it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar

GATEWAY_GROUP = "gateway.networking.k8s.io"
SKIP_READINESS_ANNOTATION = "gateway-api/skip-this-for-readiness"
ROUTE_KINDS = frozenset({"HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute"})

Obj = Mapping[str, Any]
T = TypeVar("T")


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    # The check cannot be judged from status alone. Never counts as passed.
    UNSUPPORTED = "unsupported"


class Address(NamedTuple):
    """A Gateway address as in spec.addresses / status.addresses."""

    type: str
    value: str

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value}


@dataclass(frozen=True)
class ExpectedCondition:
    """A condition to find. status None = any status, reason None = any reason."""

    type: str
    status: str | None = None
    reason: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ExpectedCondition:
        return cls(str(raw["type"]), _opt_str(raw.get("status")), _opt_str(raw.get("reason")))

    def __str__(self) -> str:
        return f"{self.type}={self.status or '*'}/{self.reason or '*'}"


@dataclass(frozen=True)
class ExpectedListener:
    name: str
    supported_kinds: tuple[tuple[str, str], ...]  # (group, kind)
    attached_routes: int
    conditions: tuple[ExpectedCondition, ...]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ExpectedListener:
        kinds = tuple(
            (str(k.get("group") or GATEWAY_GROUP), str(k["kind"]))
            for k in raw.get("supported_kinds") or ()
        )
        conds = tuple(ExpectedCondition.from_json(c) for c in raw.get("conditions") or ())
        return cls(str(raw["name"]), kinds, int(raw.get("attached_routes") or 0), conds)


@dataclass(frozen=True)
class StatusExpectation:
    """One `status_expectations` entry of cases.json."""

    check: str
    kind: str
    namespace: str = ""
    name: str = ""
    parent: str | None = None
    parent_kind: str | None = None
    ancestor: str | None = None
    listener: str | None = None
    condition: ExpectedCondition | None = None
    conditions: tuple[ExpectedCondition, ...] = ()
    listeners: tuple[ExpectedListener, ...] = ()
    count: int | None = None
    namespaces: tuple[str, ...] = ()
    phase: int | None = None
    notes: str | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StatusExpectation:
        condition = None
        if raw.get("type") is not None:
            condition = ExpectedCondition.from_json(raw)
        return cls(
            check=str(raw["check"]),
            kind=str(raw.get("kind") or ""),
            namespace=str(raw.get("namespace") or ""),
            name=str(raw.get("name") or ""),
            parent=_opt_str(raw.get("parent")),
            parent_kind=_opt_str(raw.get("parent_kind")),
            ancestor=_opt_str(raw.get("ancestor")),
            listener=_opt_str(raw.get("listener")),
            condition=condition,
            conditions=tuple(ExpectedCondition.from_json(c) for c in raw.get("conditions") or ()),
            listeners=tuple(ExpectedListener.from_json(x) for x in raw.get("listeners") or ()),
            count=None if raw.get("count") is None else int(raw["count"]),
            namespaces=tuple(str(n) for n in raw.get("namespaces") or ()),
            phase=None if raw.get("phase") is None else int(raw["phase"]),
            notes=_opt_str(raw.get("notes")),
        )

    @property
    def subject(self) -> str:
        if self.check == "namespaces-ready":
            return f"Namespaces {', '.join(self.namespaces)}"
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"

    def describe(self) -> str:
        extra = []
        if self.parent:
            extra.append(f"parent {self.parent_kind or ''} {self.parent}".replace("  ", " "))
        if self.ancestor:
            extra.append(f"ancestor {self.ancestor}")
        if self.listener:
            extra.append(f"listener {self.listener}")
        if self.condition:
            extra.append(str(self.condition))
        if self.conditions:
            extra.append("[" + ", ".join(str(c) for c in self.conditions) + "]")
        if self.count is not None:
            extra.append(f"count {self.count}")
        return f"{self.check} {self.subject}" + (f" ({'; '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class CheckContext:
    """What a check needs besides the objects: who we are and the addresses the suite configured."""

    controller_name: str
    usable_addresses: tuple[Address, ...] = ()
    unusable_addresses: tuple[Address, ...] = ()
    # Values of spec addresses of the type upstream uses to provoke UnsupportedAddress.
    invalid_address_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    expectation: StatusExpectation
    verdict: Verdict
    message: str

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    def __str__(self) -> str:
        phase = f"[phase {self.expectation.phase}] " if self.expectation.phase is not None else ""
        return f"{self.verdict.upper()}: {phase}{self.expectation.describe()}: {self.message}"


class World:
    """Objects (with their status) by (kind, namespace, name).

    The API group is not needed to tell the kinds of the suite apart.
    """

    def __init__(self, objects: Iterable[Obj]) -> None:
        self._by_key: dict[tuple[str, str, str], Obj] = {}
        for obj in objects:
            meta = obj.get("metadata") or {}
            key = (
                str(obj.get("kind") or ""),
                str(meta.get("namespace") or ""),
                str(meta.get("name") or ""),
            )
            self._by_key[key] = obj

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self._by_key.get((kind, namespace or "", name))

    def of_kind(self, kind: str, namespace: str | None = None) -> list[Obj]:
        return [
            o
            for (k, ns, _), o in sorted(self._by_key.items(), key=lambda item: item[0])
            if k == kind and (namespace is None or ns == namespace)
        ]

    def __len__(self) -> int:
        return len(self._by_key)


class _Failed(Exception):
    """Raised inside a check to end it with a FAIL and a message."""


CheckFn = Callable[[StatusExpectation, World, CheckContext], str]


def evaluate(expectation: StatusExpectation, world: World, ctx: CheckContext) -> CheckResult:
    """Judge one expectation. Unknown check types FAIL (never pass silently)."""
    if expectation.check in UNSUPPORTED_CHECKS:
        return CheckResult(expectation, Verdict.UNSUPPORTED, UNSUPPORTED_CHECKS[expectation.check])
    fn = CHECKS.get(expectation.check)
    if fn is None:
        return CheckResult(
            expectation,
            Verdict.FAIL,
            f"unknown check type {expectation.check!r}; nothing judged it",
        )
    try:
        return CheckResult(expectation, Verdict.PASS, fn(expectation, world, ctx))
    except _Failed as e:
        return CheckResult(expectation, Verdict.FAIL, str(e))


def evaluate_all(
    expectations: Iterable[StatusExpectation], world: World, ctx: CheckContext
) -> list[CheckResult]:
    return [evaluate(e, world, ctx) for e in expectations]


# --------------------------------------------------------------------------
# reading status the way upstream's typed clients see it


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _status(obj: Obj) -> Mapping[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _generation(obj: Obj) -> int:
    return _int((obj.get("metadata") or {}).get("generation"))


def _conditions(holder: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in _list(holder.get("conditions")) if isinstance(c, Mapping)]


def _parent_group(ref: Mapping[str, Any]) -> str:
    # CRD: ParentReference.group "+kubebuilder:default=gateway.networking.k8s.io"
    group = ref.get("group")
    return GATEWAY_GROUP if group is None else str(group)


def _parent_kind(ref: Mapping[str, Any]) -> str:
    # CRD: ParentReference.kind "+kubebuilder:default=Gateway"
    kind = ref.get("kind")
    return "Gateway" if kind is None else str(kind)


def _address_type(address: Mapping[str, Any]) -> str:
    # CRD: GatewayStatusAddress.type "+kubebuilder:default=IPAddress"
    t = address.get("type")
    return "IPAddress" if t is None else str(t)


def _fmt_conditions(conds: Sequence[Mapping[str, Any]]) -> str:
    if not conds:
        return "no conditions"
    return ", ".join(
        f"{c.get('type')}={c.get('status')}/{c.get('reason')} "
        f"(gen {_int(c.get('observedGeneration'))})"
        for c in conds
    )


def _fmt_ref(ref: Mapping[str, Any]) -> str:
    ns = ref.get("namespace")
    where = f"{ns}/{ref.get('name')}" if ns is not None else f"(no namespace)/{ref.get('name')}"
    extra = "".join(f" {k}={ref[k]}" for k in ("sectionName", "port") if ref.get(k) is not None)
    return (
        f"{ref.get('group', '(default group)')}/{ref.get('kind', '(default kind)')} {where}{extra}"
    )


def _fmt_parents(parents: Sequence[Mapping[str, Any]], ref_key: str = "parentRef") -> str:
    if not parents:
        return "status has no entries"
    return "; ".join(
        f"[{_fmt_ref(p.get(ref_key) or {})} controller={p.get('controllerName')}: "
        f"{_fmt_conditions(_conditions(p))}]"
        for p in parents
    )


def _split(namespaced: str) -> tuple[str, str]:
    ns, _, name = namespaced.rpartition("/")
    return ns, name


# --------------------------------------------------------------------------
# upstream's matching primitives


def _find_condition(conds: Sequence[Mapping[str, Any]], expected: ExpectedCondition) -> bool:
    """findConditionInList: "If an empty reason is passed, any Reason will match.
    If an empty status is passed, any Status will match." """
    for c in conds:
        if c.get("type") != expected.type:
            continue
        if expected.status is not None and c.get("status") != expected.status:
            continue
        if expected.reason is not None and c.get("reason") != expected.reason:
            continue
        return True
    return False


def _conditions_match(
    expected: Sequence[ExpectedCondition], actual: Sequence[Mapping[str, Any]]
) -> list[str]:
    """conditionsMatch: at least as many conditions as expected, each expected one found.

    Returns the misses (empty: matched).
    """
    misses = [str(e) for e in expected if not _find_condition(actual, e)]
    if len(actual) < len(expected) and not misses:
        misses.append(f"expected at least {len(expected)} conditions, found {len(actual)}")
    return misses


def _stale(obj: Obj, conds: Sequence[Mapping[str, Any]]) -> list[str]:
    """ConditionsHaveLatestObservedGeneration: each condition's observedGeneration == generation."""
    gen = _generation(obj)
    return [
        f"{c.get('type')} (generation {_int(c.get('observedGeneration'))})"
        for c in conds
        if _int(c.get("observedGeneration")) != gen
    ]


def _require_latest(obj: Obj, conds: Sequence[Mapping[str, Any]], what: str) -> None:
    stale = _stale(obj, conds)
    if stale:
        raise _Failed(
            f"{what} conditions not at the latest generation {_generation(obj)}: "
            f"stale {', '.join(stale)}"
        )


def _need(value: T | None, exp: StatusExpectation, field: str) -> T:
    if value is None:
        raise _Failed(f"malformed expectation: {exp.check} needs {field}")
    return value


def _object(exp: StatusExpectation, world: World) -> Obj:
    obj = world.get(exp.kind, exp.namespace, exp.name)
    if obj is None:
        raise _Failed(f"{exp.subject} does not exist")
    return obj


def _parents(obj: Obj) -> list[Mapping[str, Any]]:
    return [p for p in _list(_status(obj).get("parents")) if isinstance(p, Mapping)]


def _ancestors(obj: Obj) -> list[Mapping[str, Any]]:
    return [p for p in _list(_status(obj).get("ancestors")) if isinstance(p, Mapping)]


def _listeners(obj: Obj) -> list[Mapping[str, Any]]:
    return [x for x in _list(_status(obj).get("listeners")) if isinstance(x, Mapping)]


def _all_parent_conditions_latest(
    obj: Obj, parents: Sequence[Mapping[str, Any]], what: str
) -> None:
    for p in parents:
        stale = _stale(obj, _conditions(p))
        if stale:
            raise _Failed(
                f"{what} {_fmt_ref(p.get('parentRef') or p.get('ancestorRef') or {})} "
                "has conditions not at the "
                f"latest generation {_generation(obj)}: stale {', '.join(stale)}"
            )


# --------------------------------------------------------------------------
# the checks


def _check_route_parents_match(exp: StatusExpectation, world: World, ctx: CheckContext) -> str:
    """RouteMustHaveParents / parentsForRouteMatch: some status.parents entry has
    controllerName == ours, parentRef group and kind equal (after CRD defaulting),
    name equal, namespace equal -- or omitted when the route is in the parent's
    namespace ("if namespaceRequired || aParent.ParentRef.Namespace != nil") --
    and conditionsMatch. sectionName and port are not compared; extra parents are tolerated."""
    obj = _object(exp, world)
    parent_ns, parent_name = _split(_need(exp.parent, exp, "parent"))
    condition = _need(exp.condition, exp, "type/status/reason")
    parent_kind = exp.parent_kind or "Gateway"
    namespace_required = exp.namespace != parent_ns
    parents = _parents(obj)
    _all_parent_conditions_latest(obj, parents, "parent")
    for p in parents:
        ref = p.get("parentRef") or {}
        if p.get("controllerName") != ctx.controller_name:
            continue
        if _parent_group(ref) != GATEWAY_GROUP or _parent_kind(ref) != parent_kind:
            continue
        if ref.get("name") != parent_name:
            continue
        if ref.get("namespace") != parent_ns and (
            namespace_required or ref.get("namespace") is not None
        ):
            continue
        if _conditions_match([condition], _conditions(p)):
            continue
        return f"parent {_fmt_ref(ref)} matched"
    raise _Failed(
        f"no status.parents entry with controllerName {ctx.controller_name}, parentRef "
        f"{GATEWAY_GROUP}/{parent_kind} {exp.parent}"
        f"{'' if namespace_required else ' (namespace may be omitted)'} and condition {condition}; "
        f"parents: {_fmt_parents(parents)}"
    )


def _check_route_parent_condition(exp: StatusExpectation, world: World, ctx: CheckContext) -> str:
    """HTTPRouteMustHaveCondition (and TLS/TCP/UDP twins): every parent's conditions at
    the latest generation; some parent with "parent.ParentRef.Name == gwNN.Name &&
    (parent.ParentRef.Namespace == nil || *parent.ParentRef.Namespace == gwNN.Namespace)"
    has the condition. Group, kind and controllerName are not compared."""
    obj = _object(exp, world)
    parent_ns, parent_name = _split(_need(exp.parent, exp, "parent"))
    condition = _need(exp.condition, exp, "type/status/reason")
    parents = _parents(obj)
    _all_parent_conditions_latest(obj, parents, "parent")
    for p in parents:
        ref = p.get("parentRef") or {}
        if ref.get("name") != parent_name:
            continue
        if ref.get("namespace") is not None and ref.get("namespace") != parent_ns:
            continue
        if _find_condition(_conditions(p), condition):
            return f"parent {_fmt_ref(ref)} has {condition}"
    raise _Failed(
        f"no parent {exp.parent} with condition {condition}; parents: {_fmt_parents(parents)}"
    )


def _check_route_no_accepted_parents(
    exp: StatusExpectation, world: World, ctx: CheckContext
) -> str:
    """*RouteMustHaveNoAcceptedParents: status.parents empty, or exactly one parent
    whose conditions are at the latest generation and include Accepted=False (any reason)."""
    obj = _object(exp, world)
    parents = _parents(obj)
    if not parents:
        return "no parents"
    if len(parents) > 1:
        raise _Failed(
            "expected no parents or exactly one not-accepted parent, "
            f"found {len(parents)}: {_fmt_parents(parents)}"
        )
    _all_parent_conditions_latest(obj, parents, "parent")
    misses = _conditions_match([ExpectedCondition("Accepted", "False")], _conditions(parents[0]))
    if misses:
        raise _Failed(f"the only parent lacks Accepted=False: {_fmt_parents(parents)}")
    return "one parent, not accepted"


def _check_gateway_zero_routes(exp: StatusExpectation, world: World, ctx: CheckContext) -> str:
    """GatewayMustHaveZeroRoutes: Gateway conditions at the latest generation; "1. No
    listeners in status" or "2. One listener in status with 0 attached routes"."""
    obj = _object(exp, world)
    _require_latest(obj, _conditions(_status(obj)), exp.kind)
    listeners = _listeners(obj)
    if not listeners:
        return "no listeners in status"
    if len(listeners) == 1 and _int(listeners[0].get("attachedRoutes")) == 0:
        return "one listener with 0 attached routes"
    summary = ", ".join(
        f"{x.get('name')}: attachedRoutes {_int(x.get('attachedRoutes'))}" for x in listeners
    )
    raise _Failed(
        f"expected no listeners or exactly one with attachedRoutes 0, status has {summary}"
    )


def _listeners_match(
    expected: Sequence[ExpectedListener], actual: Sequence[Mapping[str, Any]]
) -> list[str]:
    """gatewayListenersMatch / listenerSetListenersMatch."""
    problems: list[str] = []
    if len(expected) != len(actual):
        names = [x.get("name") for x in actual]
        return [f"expected {len(expected)} listener status entries, found {len(actual)} {names}"]
    for e in expected:
        a = next((x for x in actual if x.get("name") == e.name), None)
        if a is None:
            problems.append(f"listener {e.name}: no status entry")
            continue
        actual_kinds = [
            (GATEWAY_GROUP if k.get("group") is None else str(k.get("group")), str(k.get("kind")))
            for k in _list(a.get("supportedKinds"))
            if isinstance(k, Mapping)
        ]
        if not e.supported_kinds and actual_kinds:
            problems.append(
                f"listener {e.name}: expected EMPTY supportedKinds, found {actual_kinds}"
            )
        missing = [f"{g}/{k}" for g, k in e.supported_kinds if (g, k) not in actual_kinds]
        if missing:
            problems.append(f"listener {e.name}: supportedKinds {actual_kinds} lacks {missing}")
        if _int(a.get("attachedRoutes")) != e.attached_routes:
            problems.append(
                f"listener {e.name}: attachedRoutes {_int(a.get('attachedRoutes'))}, "
                f"expected {e.attached_routes}"
            )
        misses = _conditions_match(e.conditions, _conditions(a))
        if misses:
            problems.append(
                f"listener {e.name}: missing {misses}; has {_fmt_conditions(_conditions(a))}"
            )
    return problems


def _check_status_listeners(exp: StatusExpectation, world: World, ctx: CheckContext) -> str:
    """GatewayStatusMustHaveListeners / ListenerSetStatusMustHaveListeners: object conditions
    at the latest generation; listener count equal; per listener (by name) attachedRoutes
    exact, conditions present (reason null = any), supportedKinds a superset of the
    expected ones, and "Expected list of SupportedKinds was empty" => actual empty."""
    obj = _object(exp, world)
    _require_latest(obj, _conditions(_status(obj)), exp.kind)
    problems = _listeners_match(exp.listeners, _listeners(obj))
    if problems:
        raise _Failed("; ".join(problems))
    return f"{len(exp.listeners)} listeners match"


def _check_all_listeners_condition(exp: StatusExpectation, world: World, ctx: CheckContext) -> str:
    """GatewayListenersMustHaveConditions / ListenerSetListenersMustHaveConditions (no names):
    every listener in status has every condition. The ListenerSet twin also requires the
    ListenerSet's conditions at the latest generation. As upstream, an empty listener
    list passes."""
    obj = _object(exp, world)
    if exp.kind == "ListenerSet":
        _require_latest(obj, _conditions(_status(obj)), exp.kind)
    problems = []
    listeners = _listeners(obj)
    for x in listeners:
        misses = [str(c) for c in exp.conditions if not _find_condition(_conditions(x), c)]
        if misses:
            problems.append(
                f"listener {x.get('name')} lacks {misses}; has {_fmt_conditions(_conditions(x))}"
            )
    if problems:
        raise _Failed("; ".join(problems))
    return f"{len(listeners)} listeners have all conditions"


def _check_named_listener_conditions(
    exp: StatusExpectation, world: World, ctx: CheckContext
) -> str:
    """GatewayListenerMustHaveConditions / ListenerSetListenersMustHaveConditions (named):
    the named listener is in status and has every condition (ListenerSet: its conditions
    at the latest generation too)."""
    obj = _object(exp, world)
    if exp.kind == "ListenerSet":
        _require_latest(obj, _conditions(_status(obj)), exp.kind)
    listeners = _listeners(obj)
    x = next((x for x in listeners if x.get("name") == exp.listener), None)
    if x is None:
        raise _Failed(
            f"listener {exp.listener} not in status (have {[y.get('name') for y in listeners]})"
        )
    misses = [str(c) for c in exp.conditions if not _find_condition(_conditions(x), c)]
    if misses:
        raise _Failed(
            f"listener {exp.listener} lacks {misses}; has {_fmt_conditions(_conditions(x))}"
        )
    return f"listener {exp.listener} has all conditions"


def _check_object_condition(exp: StatusExpectation, world: World, ctx: CheckContext) -> str:
    """GatewayMustHaveCondition / ListenerSetMustHaveCondition: conditions at the latest
    generation and the condition present (reason null = any)."""
    obj = _object(exp, world)
    condition = _need(exp.condition, exp, "type/status/reason")
    conds = _conditions(_status(obj))
    _require_latest(obj, conds, exp.kind)
    if not _find_condition(conds, condition):
        raise _Failed(f"no condition {condition}; has {_fmt_conditions(conds)}")
    return f"has {condition}"


def _check_attached_listenersets(exp: StatusExpectation, world: World, ctx: CheckContext) -> str:
    """GatewayMustHaveAttachedListeners: conditions at the latest generation and
    "ptr.Deref(gw.Status.AttachedListenerSets, 0) == expectedCount"."""
    obj = _object(exp, world)
    count = _need(exp.count, exp, "count")
    _require_latest(obj, _conditions(_status(obj)), exp.kind)
    got = _int(_status(obj).get("attachedListenerSets"))
    if got != count:
        raise _Failed(f"status.attachedListenerSets is {got}, expected {count}")
    return f"attachedListenerSets {got}"


def _check_policy_ancestor_condition(
    exp: StatusExpectation, world: World, ctx: CheckContext
) -> str:
    """BackendTLSPolicyMustHaveCondition: a status.ancestors entry whose ancestorRef name
    equals the Gateway's and namespace is nil or equal, with our controllerName, has the
    condition; every ancestor's conditions at the latest generation."""
    obj = _object(exp, world)
    anc_ns, anc_name = _split(_need(exp.ancestor, exp, "ancestor"))
    condition = _need(exp.condition, exp, "type/status/reason")
    ancestors = _ancestors(obj)
    _all_parent_conditions_latest(obj, ancestors, "ancestor")
    for a in ancestors:
        ref = a.get("ancestorRef") or {}
        if ref.get("name") != anc_name:
            continue
        if ref.get("namespace") is not None and ref.get("namespace") != anc_ns:
            continue
        if a.get("controllerName") != ctx.controller_name:
            continue
        if _find_condition(_conditions(a), condition):
            return f"ancestor {_fmt_ref(ref)} has {condition}"
    raise _Failed(
        f"no ancestor {exp.ancestor} (controllerName {ctx.controller_name}) "
        f"with condition {condition}; "
        f"ancestors: {_fmt_parents(ancestors, 'ancestorRef')}"
    )


def _check_latest_observed_generation(
    exp: StatusExpectation, world: World, ctx: CheckContext
) -> str:
    """*MustHaveLatestConditions: every condition's observedGeneration == metadata.generation.
    Gateway/GatewayClass/ListenerSet: status.conditions; routes: every parent's conditions;
    BackendTLSPolicy: every ancestor's conditions. (As upstream, no conditions at all passes.)"""
    obj = _object(exp, world)
    if exp.kind in ROUTE_KINDS:
        _all_parent_conditions_latest(obj, _parents(obj), "parent")
        n = sum(len(_conditions(p)) for p in _parents(obj))
    elif exp.kind == "BackendTLSPolicy":
        _all_parent_conditions_latest(obj, _ancestors(obj), "ancestor")
        n = sum(len(_conditions(p)) for p in _ancestors(obj))
    else:
        conds = _conditions(_status(obj))
        _require_latest(obj, conds, exp.kind)
        n = len(conds)
    return f"{n} conditions at generation {_generation(obj)}"


def _check_gateway_has_address(exp: StatusExpectation, world: World, ctx: CheckContext) -> str:
    """WaitForGatewayAddress: Gateway conditions at the latest generation and some
    status.addresses entry with a type ("if address.Type != nil"). The CRD defaults the
    type to IPAddress and requires a non-empty value, so an API server would only ever
    show entries with both; we require both."""
    obj = _object(exp, world)
    _require_latest(obj, _conditions(_status(obj)), exp.kind)
    addresses = [a for a in _list(_status(obj).get("addresses")) if isinstance(a, Mapping)]
    for a in addresses:
        if a.get("value"):
            return f"address {_address_type(a)} {a.get('value')}"
    raise _Failed(f"status.addresses has no entry with a value: {addresses}")


def _check_gateway_status_addresses(exp: StatusExpectation, world: World, ctx: CheckContext) -> str:
    """GatewayStaticAddresses, last step: "require.Len(currentGW.Spec.Addresses, 1)";
    status.addresses values contain the usable address and neither the unusable nor the
    invalid one; an entry with the usable value has the usable address's type."""
    obj = _object(exp, world)
    if not ctx.usable_addresses:
        raise _Failed("no usable address configured for the suite")
    usable = ctx.usable_addresses[0]
    spec_addresses = _list((obj.get("spec") or {}).get("addresses"))
    problems = []
    if len(spec_addresses) != 1:
        problems.append(f"expected 1 address left in spec, found {len(spec_addresses)}")
    status_addresses = [a for a in _list(_status(obj).get("addresses")) if isinstance(a, Mapping)]
    values = [str(a.get("value")) for a in status_addresses]
    for bad in (*(a.value for a in ctx.unusable_addresses), *ctx.invalid_address_values):
        if bad in values:
            problems.append(
                f"status.addresses contains the "
                f"{'invalid' if bad in ctx.invalid_address_values else 'unusable'} address {bad}"
            )
    if usable.value not in values:
        problems.append(f"status.addresses lacks the usable address {usable.value}")
    for a in status_addresses:
        if a.get("value") == usable.value and _address_type(a) != usable.type:
            problems.append(
                f"usable address {usable.value} has type {_address_type(a)}, expected {usable.type}"
            )
    if problems:
        raise _Failed("; ".join(problems) + f" (status.addresses: {status_addresses})")
    return f"status.addresses has only the usable {usable.type} {usable.value} of those configured"


def _check_gatewayclass_accepted(status: str | None) -> CheckFn:
    def check(exp: StatusExpectation, world: World, ctx: CheckContext) -> str:
        """gwcMustBeAccepted: conditions at the latest generation and an Accepted condition
        (any reason; any status for GWCMustHaveAcceptedConditionAny)."""
        obj = _object(exp, world)
        conds = _conditions(_status(obj))
        _require_latest(obj, conds, exp.kind)
        expected = ExpectedCondition("Accepted", status)
        if not _find_condition(conds, expected):
            raise _Failed(f"no condition {expected}; has {_fmt_conditions(conds)}")
        return f"has {expected}"

    return check


def _check_namespaces_ready(exp: StatusExpectation, world: World, ctx: CheckContext) -> str:
    """NamespacesMustBeReady, Gateways only: every Gateway in the namespaces, except those
    annotated gateway-api/skip-this-for-readiness: "true", has its conditions at the latest
    generation and Accepted=True and Programmed=True (any reason). Pods are out of scope
    for the status test."""
    problems = []
    judged = 0
    for ns in exp.namespaces:
        for gw in world.of_kind("Gateway", ns):
            meta = gw.get("metadata") or {}
            if (meta.get("annotations") or {}).get(SKIP_READINESS_ANNOTATION) == "true":
                continue
            judged += 1
            conds = _conditions(_status(gw))
            where = f"Gateway {ns}/{meta.get('name')}"
            stale = _stale(gw, conds)
            if stale:
                problems.append(
                    f"{where}: conditions not at generation {_generation(gw)}: "
                    f"stale {', '.join(stale)}"
                )
                continue
            for cond in (
                ExpectedCondition("Accepted", "True"),
                ExpectedCondition("Programmed", "True"),
            ):
                if not _find_condition(conds, cond):
                    problems.append(f"{where}: not {cond.type}=True ({_fmt_conditions(conds)})")
    if problems:
        raise _Failed("; ".join(problems))
    return (
        f"{judged} Gateways Accepted and Programmed "
        "(Pod readiness is out of scope for the status test)"
    )


CHECKS: dict[str, CheckFn] = {
    "route-parents-match": _check_route_parents_match,
    "route-parent-condition": _check_route_parent_condition,
    "route-no-accepted-parents": _check_route_no_accepted_parents,
    "gateway-zero-routes": _check_gateway_zero_routes,
    "gateway-status-listeners": _check_status_listeners,
    "listenerset-status-listeners": _check_status_listeners,
    "all-listeners-condition": _check_all_listeners_condition,
    "gateway-listener-conditions": _check_named_listener_conditions,
    "listenerset-listener-conditions": _check_named_listener_conditions,
    "gateway-condition": _check_object_condition,
    "listenerset-condition": _check_object_condition,
    "gateway-attached-listenersets": _check_attached_listenersets,
    "policy-ancestor-condition": _check_policy_ancestor_condition,
    "latest-observed-generation": _check_latest_observed_generation,
    "gateway-has-address": _check_gateway_has_address,
    "gateway-status-addresses": _check_gateway_status_addresses,
    "gatewayclass-accepted-any": _check_gatewayclass_accepted(None),
    # Not in cases.json: the suite's setup step GWCMustHaveAcceptedConditionTrue.
    "gatewayclass-accepted": _check_gatewayclass_accepted("True"),
    "namespaces-ready": _check_namespaces_ready,
}

UNSUPPORTED_CHECKS: dict[str, str] = {
    "generated-resources-carry-infrastructure-metadata": (
        "not checkable by a status test: it inspects the ServiceAccounts, Pods and Services an "
        "implementation generates for the Gateway (labels/annotations from spec.infrastructure)"
    ),
}


def known_checks() -> Iterator[str]:
    yield from CHECKS
    yield from UNSUPPORTED_CHECKS
