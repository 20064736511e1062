"""The conformance suite as data: cases.json and the manifests, loaded as upstream applies them.

Where: `NODEGATE_CONFORMANCE_DIR` if set (used as given), else
`<repo>/../shared/conformance`.

What upstream's Applier (conformance/utils/kubernetes/apply.go) does to every
manifest before applying it, and so do we (`substitute`):
- a Gateway's spec.gatewayClassName becomes the class under test;
- a GatewayClass's spec.controllerName becomes the controller under test;
- a Gateway whose spec.addresses holds the value PLACEHOLDER_USABLE_ADDRS or
  PLACEHOLDER_UNUSABLE_ADDRS gets spec.addresses rebuilt as: the entries of
  type test/fake-invalid-type (kept verbatim), then the unusable pool, then the
  usable pool (type defaulting to IPAddress). Gateways without a placeholder
  keep their addresses (upstream would rewrite any non-empty list; the only
  such manifest, GatewayOptionalAddressValue, clearly means to keep its entry).

Upstream also expects the GatewayClass under test to exist before anything is
applied (`gateway_class_under_test`), and applies the base manifest plus the
generated certificates (lab.certs) once before all tests; `case_world` builds
that world for one case: class + base + certificates + the case's manifests.

Objects that only a cluster runs (Deployments) stay in the world, so a later
cluster-emulation layer can start backends from them; `is_cluster_only` tells
status-only consumers to leave them out.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.model import ObjectKey
from lab.conformance.status_checks import Address, StatusExpectation

ENV_DIR = "NODEGATE_CONFORMANCE_DIR"
GATEWAY_GROUP = "gateway.networking.k8s.io"
USABLE_PLACEHOLDER = "PLACEHOLDER_USABLE_ADDRS"
UNUSABLE_PLACEHOLDER = "PLACEHOLDER_UNUSABLE_ADDRS"
INVALID_ADDRESS_TYPE = "test/fake-invalid-type"

# (group, kind) of objects a cluster runs but that carry no Gateway API meaning.
CLUSTER_ONLY_KINDS = frozenset({("apps", "Deployment"), ("", "Pod")})


# Identity of an object in a world: the agent's own key (group without version).
Ref = ObjectKey


@dataclass(frozen=True)
class Substitutions:
    """What the suite is configured with: the class/controller under test and the address pools."""

    gateway_class: str = "nodegate"
    controller_name: str = "nodegate.dev/gateway-controller"
    # Usable: inside the pool the agent assigns from (198.18.128.0/24 by default),
    # high in it so automatic assignment (from the bottom) does not collide.
    usable_addresses: tuple[Address, ...] = (Address("IPAddress", "198.18.128.254"),)
    # Unusable: a well-formed IPv4 address outside every configured pool.
    unusable_addresses: tuple[Address, ...] = (Address("IPAddress", "198.19.255.254"),)


@dataclass(frozen=True)
class Phase:
    number: int
    before: str


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    features: tuple[str, ...]
    manifests: tuple[str, ...]
    kind: str
    gateway: str | None
    phases: tuple[Phase, ...]
    status_expectations: tuple[StatusExpectation, ...]
    # Features whose claim makes upstream's test return at once, counted as passed
    # (the "...NotSupported" twins of tests for a feature).
    skipped_when_claimed: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def phase_numbers(self) -> tuple[int, ...]:
        """The phases in order; a case without phases is one phase, numbered 1."""
        return tuple(p.number for p in self.phases) or (1,)

    def expectations_for(self, phase: int) -> tuple[StatusExpectation, ...]:
        """Expectations judged after `phase`'s edits.

        An expectation without a phase belongs to the first phase: in every phased
        case those are the "gateway and routes accepted" preconditions upstream
        checks right after applying the manifests, before its first edit.
        """
        first = self.phase_numbers[0]
        return tuple(
            e
            for e in self.status_expectations
            if (e.phase if e.phase is not None else first) == phase
        )


@dataclass(frozen=True)
class Suite:
    root: Path
    manifests_dir: Path
    base_manifest: str
    cases: tuple[Case, ...]
    source: Mapping[str, Any]

    def features(self) -> frozenset[str]:
        """Every SupportedFeature some case requires."""
        return frozenset(f for c in self.cases for f in c.features)

    def case(self, name: str) -> Case:
        for c in self.cases:
            if c.name == name:
                return c
        raise KeyError(name)

    def manifest_path(self, name: str) -> Path:
        return self.manifests_dir / name


def conformance_dir() -> Path:
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "conformance"


def load_suite(root: Path | None = None) -> Suite:
    root = root if root is not None else conformance_dir()
    data = json.loads((root / "cases.json").read_text(encoding="utf-8"))
    cases = tuple(_case(raw) for raw in data["cases"])
    return Suite(
        root=root,
        manifests_dir=root / str(data.get("manifests_dir") or "manifests/"),
        base_manifest=str(data.get("base_manifest") or "manifests.yaml"),
        cases=cases,
        source=data.get("source") or {},
    )


# How cases.json notes say a test skips itself: "Skipped (returns immediately, counted
# as pass) when the implementation claims TLSRouteModeMixed."
_SKIPPED_WHEN_CLAIMED = re.compile(
    r"Skipped \(returns immediately, counted as pass\) when the implementation claims (\w+)"
)


def _case(raw: Mapping[str, Any]) -> Case:
    return Case(
        name=str(raw["name"]),
        description=str(raw.get("description") or ""),
        features=tuple(str(f) for f in raw.get("features") or ()),
        manifests=tuple(str(m) for m in raw.get("manifests") or ()),
        kind=str(raw.get("kind") or ""),
        gateway=raw.get("gateway"),
        phases=tuple(Phase(int(p["phase"]), str(p["before"])) for p in raw.get("phases") or ()),
        status_expectations=tuple(
            StatusExpectation.from_json(e) for e in raw.get("status_expectations") or ()
        ),
        skipped_when_claimed=tuple(_SKIPPED_WHEN_CLAIMED.findall(str(raw.get("notes") or ""))),
        raw=raw,
    )


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """The documents of a YAML file (empty documents dropped), unmodified."""
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def substitute(obj: Mapping[str, Any], subs: Substitutions) -> dict[str, Any]:
    """A copy of `obj` with upstream's Applier substitutions made (see the module docstring)."""
    out = copy.deepcopy(dict(obj))
    ref = Ref.of(out)
    if (ref.group, ref.kind) == (GATEWAY_GROUP, "Gateway"):
        spec = out.setdefault("spec", {})
        spec["gatewayClassName"] = subs.gateway_class
        addresses = spec.get("addresses") or []
        values = {a.get("value") for a in addresses if isinstance(a, Mapping)}
        if USABLE_PLACEHOLDER in values or UNUSABLE_PLACEHOLDER in values:
            rebuilt = [
                dict(a)
                for a in addresses
                if isinstance(a, Mapping) and a.get("type") == INVALID_ADDRESS_TYPE
            ]
            if UNUSABLE_PLACEHOLDER in values:
                rebuilt += [a.as_dict() for a in subs.unusable_addresses]
            if USABLE_PLACEHOLDER in values:
                rebuilt += [a.as_dict() for a in subs.usable_addresses]
            spec["addresses"] = rebuilt
    elif (ref.group, ref.kind) == (GATEWAY_GROUP, "GatewayClass"):
        out.setdefault("spec", {})["controllerName"] = subs.controller_name
    return out


def load_manifest(path: Path, subs: Substitutions) -> list[dict[str, Any]]:
    return [substitute(d, subs) for d in read_manifest(path)]


def gateway_class_under_test(subs: Substitutions) -> dict[str, Any]:
    """The GatewayClass upstream expects to exist (--gateway-class) before the suite starts."""
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "GatewayClass",
        "metadata": {"name": subs.gateway_class},
        "spec": {"controllerName": subs.controller_name},
    }


def is_cluster_only(obj: Mapping[str, Any]) -> bool:
    ref = Ref.of(obj)
    return (ref.group, ref.kind) in CLUSTER_ONLY_KINDS


def merge(objects: Iterable[Mapping[str, Any]]) -> dict[Ref, dict[str, Any]]:
    """Objects by identity in first-seen order; a later one replaces an earlier one (an update)."""
    world: dict[Ref, dict[str, Any]] = {}
    for obj in objects:
        world[Ref.of(obj)] = copy.deepcopy(dict(obj))
    return world


def case_world(
    suite: Suite,
    case: Case,
    subs: Substitutions,
    generated: Sequence[Mapping[str, Any]],
) -> dict[Ref, dict[str, Any]]:
    """The objects right after the case's manifests are applied: our GatewayClass, the
    base manifest, the generated Secrets/ConfigMaps, then the case's manifests."""
    objects: list[Mapping[str, Any]] = [gateway_class_under_test(subs)]
    objects += load_manifest(suite.manifest_path(suite.base_manifest), subs)
    objects += generated
    for name in case.manifests:
        objects += load_manifest(suite.manifest_path(name), subs)
    return merge(objects)


def invalid_address_values(world: Mapping[Ref, Mapping[str, Any]]) -> tuple[str, ...]:
    """Values of spec addresses of the type upstream uses to provoke UnsupportedAddress."""
    values: list[str] = []
    for ref, obj in world.items():
        if ref.kind != "Gateway":
            continue
        for a in (obj.get("spec") or {}).get("addresses") or ():
            if isinstance(a, Mapping) and a.get("type") == INVALID_ADDRESS_TYPE:
                values.append(str(a.get("value")))
    return tuple(values)
