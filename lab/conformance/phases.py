"""The edits upstream makes between the phases of a case, applied to a world of object dicts.

cases.json describes each phase's edit as free text (`phases[].before`). Every
text present in the shipped cases.json has an explicit edit below (EXPLICIT),
written from the upstream Go test it summarises. Texts of a few simple shapes
also go through a small interpreter (`interpret`), so other case sets with the
same layout work where they can:

    apply manifest(s) ...                       -> nothing (the world already holds them)
    delete KIND NAMESPACE/NAME                  -> remove the object
    patch KIND [NAMESPACE/]NAME: spec.PATH = V  -> set one scalar (V quoted or a YAML scalar)

Any other text raises UnknownPhase naming it: the case must fail, never pass
with an edit silently skipped.

An edit returns the objects whose spec it changed: an API server bumps their
metadata.generation, which is what the ObservedGenerationBump cases are about
(upstream asserts "generation should change after an update"), so the runner
checks the bump happened. `wait_seconds` is time upstream lets pass before the
edit (creationTimestamp ordering, which has one-second precision).
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from lab.conformance.cases import GATEWAY_GROUP, INVALID_ADDRESS_TYPE, Case, Ref, Substitutions

INFRA = "gateway-conformance-infra"
World = dict[Ref, dict[str, Any]]


class UnknownPhase(LookupError):
    """No edit is known for a phase text."""

    def __init__(self, text: str) -> None:
        super().__init__(f"no edit known for phase text {text!r}; the case cannot be replayed")
        self.text = text


class PhaseEditError(RuntimeError):
    """A known edit could not be applied to this world (e.g. its object is missing)."""


@dataclass(frozen=True)
class PhaseContext:
    case: Case
    subs: Substitutions


EditFn = Callable[[World, PhaseContext], tuple[Ref, ...]]


@dataclass(frozen=True)
class PhaseEdit:
    text: str
    apply: EditFn
    wait_seconds: float = 0.0


def resolve(text: str) -> PhaseEdit:
    """The edit for a phase text: explicit first, then the interpreter. Raises UnknownPhase."""
    edit = EXPLICIT.get(text)
    return edit if edit is not None else interpret(text)


# --------------------------------------------------------------------------
# building blocks


def _find(world: World, kind: str, namespace: str | None, name: str) -> Ref:
    """The one object of `kind` named `name` (in `namespace`, or anywhere if None)."""
    found = [
        r
        for r in world
        if r.kind == kind and r.name == name and (namespace is None or r.namespace == namespace)
    ]
    if len(found) != 1:
        where = f"{namespace}/{name}" if namespace is not None else name
        raise PhaseEditError(f"expected one {kind} {where} in the world, found {len(found)}")
    return found[0]


def _case_gateway(world: World, ctx: PhaseContext) -> Ref:
    if not ctx.case.gateway:
        raise PhaseEditError(f"case {ctx.case.name} names no gateway for a 'patch Gateway' edit")
    ns, _, name = ctx.case.gateway.rpartition("/")
    return _find(world, "Gateway", ns, name)


_PATH_TOKEN = re.compile(r"([A-Za-z][A-Za-z0-9]*)|\[(\d+)\]")


def _path(path: str) -> list[str | int]:
    tokens: list[str | int] = []
    for part in path.split("."):
        pos = 0
        for m in _PATH_TOKEN.finditer(part):
            if m.start() != pos:
                raise PhaseEditError(f"cannot parse field path {path!r}")
            tokens.append(m.group(1) if m.group(1) else int(m.group(2)))
            pos = m.end()
        if pos != len(part) or not part:
            raise PhaseEditError(f"cannot parse field path {path!r}")
    return tokens


def _set(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set obj[path], path like spec.rules[0].backendRefs[0].name; missing maps are created."""
    tokens = _path(path)
    node: Any = obj
    for tok, nxt in itertools.pairwise(tokens):
        if isinstance(tok, int):
            if not isinstance(node, list) or tok >= len(node):
                raise PhaseEditError(f"{path}: index {tok} does not exist")
            node = node[tok]
        else:
            if not isinstance(node, dict):
                raise PhaseEditError(f"{path}: {tok} is not inside a mapping")
            node = node.setdefault(tok, [] if isinstance(nxt, int) else {})
    last = tokens[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise PhaseEditError(f"{path}: index {last} does not exist")
        node[last] = value
    else:
        if not isinstance(node, dict):
            raise PhaseEditError(f"{path}: {last} is not inside a mapping")
        node[last] = value


def _nothing(world: World, ctx: PhaseContext) -> tuple[Ref, ...]:
    return ()


def _set_field(kind: str, namespace: str | None, name: str, path: str, value: Any) -> EditFn:
    def edit(world: World, ctx: PhaseContext) -> tuple[Ref, ...]:
        ref = _find(world, kind, namespace, name)
        _set(world[ref], path, copy.deepcopy(value))
        return (ref,) if path.startswith("spec") else ()

    return edit


def _delete(kind: str, namespace: str, name: str) -> EditFn:
    def edit(world: World, ctx: PhaseContext) -> tuple[Ref, ...]:
        del world[_find(world, kind, namespace, name)]
        return ()

    return edit


def _create(obj: Mapping[str, Any]) -> EditFn:
    def edit(world: World, ctx: PhaseContext) -> tuple[Ref, ...]:
        ref = Ref.of(obj)
        if ref in world:
            raise PhaseEditError(f"{ref} already exists; the edit creates it")
        world[ref] = copy.deepcopy(dict(obj))
        return ()

    return edit


# --------------------------------------------------------------------------
# explicit edits, one per phase text in the shipped cases.json


def _btls_ca_copy_create(world: World, ctx: PhaseContext) -> tuple[Ref, ...]:
    """backendtlspolicy.go: a ConfigMap holding the ca.crt of tls-checks-ca-certificate."""
    source = world[_find(world, "ConfigMap", INFRA, "tls-checks-ca-certificate")]
    return _create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "tls-checks-ca-certificate-reconcile-test", "namespace": INFRA},
            "data": {"ca.crt": source["data"]["ca.crt"]},
        }
    )(world, ctx)


def _btls_ca_copy_empty(world: World, ctx: PhaseContext) -> tuple[Ref, ...]:
    target = world[_find(world, "ConfigMap", INFRA, "tls-checks-ca-certificate-reconcile-test")]
    target.setdefault("data", {})["ca.crt"] = ""
    return ()


def _btls_ca_copy_restore(world: World, ctx: PhaseContext) -> tuple[Ref, ...]:
    source = world[_find(world, "ConfigMap", INFRA, "tls-checks-ca-certificate")]
    target = world[_find(world, "ConfigMap", INFRA, "tls-checks-ca-certificate-reconcile-test")]
    target.setdefault("data", {})["ca.crt"] = source["data"]["ca.crt"]
    return ()


def _gateway_append_alternate_listener(world: World, ctx: PhaseContext) -> tuple[Ref, ...]:
    """gateway-observed-generation-bump.go: append Listener{Name: "alternate", Hostname:
    "foo.com", Port: 80, Protocol: HTTP, AllowedRoutes: Namespaces From All}."""
    ref = _case_gateway(world, ctx)
    listeners = world[ref].setdefault("spec", {}).setdefault("listeners", [])
    listeners.append(
        {
            "name": "alternate",
            "hostname": "foo.com",
            "port": 80,
            "protocol": "HTTP",
            "allowedRoutes": {"namespaces": {"from": "All"}},
        }
    )
    return (ref,)


def _remove_addresses(keep: Callable[[Mapping[str, Any], PhaseContext], bool]) -> EditFn:
    """gateway-static-addresses.go: Spec.Addresses = filterAddr(..., address) and a merge patch."""

    def edit(world: World, ctx: PhaseContext) -> tuple[Ref, ...]:
        ref = _case_gateway(world, ctx)
        spec = world[ref].setdefault("spec", {})
        before = list(spec.get("addresses") or [])
        after = [a for a in before if keep(a, ctx)]
        if len(after) == len(before):
            raise PhaseEditError(f"{ref}: no address to remove in {before}")
        spec["addresses"] = after
        return (ref,)

    return edit


def _not_invalid(address: Mapping[str, Any], ctx: PhaseContext) -> bool:
    return address.get("type") != INVALID_ADDRESS_TYPE


def _not_unusable(address: Mapping[str, Any], ctx: PhaseContext) -> bool:
    return address.get("value") not in {a.value for a in ctx.subs.unusable_addresses}


def _l4_route(kind: str, name: str, gateway: str, backend: str, port: int) -> dict[str, Any]:
    """tcproute/udproute-multiple-routes-attachment.go: the route created in phase 2."""
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": INFRA},
        "spec": {
            "parentRefs": [{"name": gateway, "sectionName": kind.removesuffix("Route").lower()}],
            "rules": [{"backendRefs": [{"name": backend, "port": port}]}],
        },
    }


EXPLICIT: dict[str, PhaseEdit] = {
    e.text: e
    for e in (
        PhaseEdit("apply manifests", _nothing),
        PhaseEdit(
            "patch BackendTLSPolicy observed-generation-bump: "
            "spec.validation.hostname = foo.example.com",
            _set_field(
                "BackendTLSPolicy",
                INFRA,
                "observed-generation-bump",
                "spec.validation.hostname",
                "foo.example.com",
            ),
        ),
        PhaseEdit(
            "patch BackendTLSPolicy reconcile-test: validation.caCertificateRefs = "
            "[ConfigMap tls-checks-ca-certificate-reconcile-test] (does not exist yet)",
            _set_field(
                "BackendTLSPolicy",
                INFRA,
                "reconcile-test",
                "spec.validation.caCertificateRefs",
                [
                    {
                        "group": "",
                        "kind": "ConfigMap",
                        "name": "tls-checks-ca-certificate-reconcile-test",
                    }
                ],
            ),
        ),
        PhaseEdit(
            "create ConfigMap gateway-conformance-infra/tls-checks-ca-certificate-reconcile-test "
            "with ca.crt copied from tls-checks-ca-certificate",
            _btls_ca_copy_create,
        ),
        PhaseEdit(
            'patch that ConfigMap: ca.crt = "" (empty)',
            _btls_ca_copy_empty,
        ),
        PhaseEdit(
            "patch that ConfigMap: ca.crt = original CA data "
            "(afterwards the policy is restored to its original caCertificateRefs)",
            # The restore of the policy happens after this phase's checks: nothing to replay.
            _btls_ca_copy_restore,
        ),
        PhaseEdit(
            "patch Gateway: append listener {name: alternate, hostname: foo.com, port: 80, "
            "protocol: HTTP, allowedRoutes from All}",
            _gateway_append_alternate_listener,
        ),
        PhaseEdit(
            "apply manifest; spec.addresses = [invalid (type test/fake-invalid-type), "
            "unusable pool address(es), usable pool address(es)]",
            _nothing,  # cases.substitute already built exactly these addresses
        ),
        PhaseEdit("patch: remove the invalid address", _remove_addresses(_not_invalid)),
        PhaseEdit("patch: remove the unusable address", _remove_addresses(_not_unusable)),
        PhaseEdit(
            "apply manifest (GatewayClass gatewayclass-observed-generation-bump; the suite sets "
            "spec.controllerName to the implementation controller name)",
            _nothing,
        ),
        PhaseEdit(
            'patch GatewayClass spec.description = "new"',
            _set_field(
                "GatewayClass",
                "",
                "gatewayclass-observed-generation-bump",
                "spec.description",
                "new",
            ),
        ),
        PhaseEdit(
            "patch HTTPRoute gateway-conformance-infra/observed-generation-bump: "
            "spec.rules[0].backendRefs[0].name = infra-backend-v2 (generation must change)",
            _set_field(
                "HTTPRoute",
                INFRA,
                "observed-generation-bump",
                "spec.rules[0].backendRefs[0].name",
                "infra-backend-v2",
            ),
        ),
        PhaseEdit(
            "delete ReferenceGrant gateway-conformance-web-backend/reference-grant",
            _delete("ReferenceGrant", "gateway-conformance-web-backend", "reference-grant"),
        ),
        PhaseEdit(
            "delete ReferenceGrant gateway-conformance-web-backend/tcp-reference-grant",
            _delete("ReferenceGrant", "gateway-conformance-web-backend", "tcp-reference-grant"),
        ),
        PhaseEdit(
            "apply manifests (TCPRoute tcproute-attach-older -> tcp-attach-backend-1:3000)",
            _nothing,
        ),
        PhaseEdit(
            "wait 1s, then create TCPRoute gateway-conformance-infra/tcproute-attach-newer: "
            "parentRefs "
            "[{name: tcp-multi-route-attach-gateway, sectionName: tcp}], rules [{backendRefs: "
            "[{name: tcp-attach-backend-2, port: 3000}]}]",
            _create(
                _l4_route(
                    "TCPRoute",
                    "tcproute-attach-newer",
                    "tcp-multi-route-attach-gateway",
                    "tcp-attach-backend-2",
                    3000,
                )
            ),
            wait_seconds=1.0,
        ),
        PhaseEdit(
            "apply manifests (UDPRoute udproute-attach-older -> udp-attach-backend-1:8080)",
            _nothing,
        ),
        PhaseEdit(
            "wait 1s, then create UDPRoute gateway-conformance-infra/udproute-attach-newer: "
            "parentRefs "
            "[{name: udp-multi-route-attach-gateway, sectionName: udp}], rules [{backendRefs: "
            "[{name: udp-attach-backend-2, port: 8080}]}]",
            _create(
                _l4_route(
                    "UDPRoute",
                    "udproute-attach-newer",
                    "udp-multi-route-attach-gateway",
                    "udp-attach-backend-2",
                    8080,
                )
            ),
            wait_seconds=1.0,
        ),
    )
}


# --------------------------------------------------------------------------
# the interpreter for simple shapes

_NAME = r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?"
_APPLY = re.compile(r"^apply manifests?\b")
_DELETE = re.compile(rf"^delete (?P<kind>[A-Z][A-Za-z]+) (?P<ns>{_NAME})/(?P<name>{_NAME})$")
_PATCH = re.compile(
    rf"^patch (?P<kind>[A-Z][A-Za-z]+) (?:(?P<ns>{_NAME})/)?(?P<name>{_NAME}): "
    r"(?P<path>spec(?:\.[A-Za-z][A-Za-z0-9]*|\[\d+\])+) = "
    r"(?P<value>\"[^\"]*\"|[^\s\"]+)(?: \([^)]*\))?$"
)


def interpret(text: str) -> PhaseEdit:
    """An edit for a text of one of the simple shapes (module docstring), else UnknownPhase."""
    if _APPLY.match(text):
        return PhaseEdit(text, _nothing)
    m = _DELETE.match(text)
    if m:
        return PhaseEdit(text, _delete(m["kind"], m["ns"], m["name"]))
    m = _PATCH.match(text)
    if m:
        raw = m["value"]
        value: Any = raw[1:-1] if raw.startswith('"') else yaml.safe_load(raw)
        return PhaseEdit(text, _set_field(m["kind"], m["ns"], m["name"], m["path"], value))
    raise UnknownPhase(text)
