"""Translation context: the snapshot, the options, and the indexes every step shares.

Built once per translation; read-only afterwards.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field

from agent.model import (
    EndpointSlice,
    Namespace,
    ReferenceGrant,
    Service,
)
from agent.store import Snapshot

DEFAULT_CONTROLLER = "nodegate.dev/gateway-controller"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class TranslateOptions:
    """What translation needs besides the objects: who we are and what this node can serve."""

    controller_name: str = DEFAULT_CONTROLLER
    node_name: str = ""
    # Addresses this node answers on; used for Gateways that ask for none when no pool is set.
    node_addresses: tuple[str, ...] = ()
    # CIDRs Gateways may take addresses from (static spec.addresses must fall inside; others are
    # assigned from here). Empty: Gateways are served on the node addresses.
    address_pools: tuple[str, ...] = ()
    # The SupportedFeature names this build of nodegate implements end to end.
    features: frozenset[str] = frozenset()

    def pools(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(p, strict=False) for p in self.address_pools)


@dataclass
class Context:
    snapshot: Snapshot
    options: TranslateOptions
    _grants: dict[tuple[str, str, str, str], list[tuple[str, str, str | None]]] = field(
        default_factory=dict
    )
    _slices: dict[tuple[str, str], list[EndpointSlice]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        grants: dict[tuple[str, str, str, str], list[tuple[str, str, str | None]]] = defaultdict(
            list
        )
        for rg in self.snapshot.of_type(ReferenceGrant):
            for f in rg.spec.from_:
                for t in rg.spec.to:
                    grants[(rg.namespace, f.group, f.kind, f.namespace)].append(
                        (t.group, t.kind, t.name or None)
                    )
        self._grants = dict(grants)
        slices: dict[tuple[str, str], list[EndpointSlice]] = defaultdict(list)
        for s in self.snapshot.of_type(EndpointSlice):
            if s.service_name:
                slices[(s.namespace, s.service_name)].append(s)
        self._slices = dict(slices)

    def namespace_labels(self, name: str) -> dict[str, str]:
        """A Namespace's labels; a namespace with no object still has its name label, as "
        "on a cluster."""
        ns = self.snapshot.get_typed(Namespace, "", name)
        labels = dict(ns.metadata.labels) if ns is not None else {}
        labels.setdefault(NAMESPACE_NAME_LABEL, name)
        return labels

    def reference_allowed(
        self,
        from_group: str,
        from_kind: str,
        from_namespace: str,
        to_group: str,
        to_kind: str,
        to_namespace: str,
        to_name: str,
    ) -> bool:
        """ReferenceGrant semantics: same-namespace references are always allowed; a
        cross-namespace one needs a grant in the target namespace naming the source's
        group, kind and namespace and the target's group, kind and (optionally) name."""
        if from_namespace == to_namespace:
            return True
        for group, kind, name in self._grants.get(
            (to_namespace, from_group, from_kind, from_namespace), ()
        ):
            if group == to_group and kind == to_kind and (name is None or name == to_name):
                return True
        return False

    def service(self, namespace: str, name: str) -> Service | None:
        return self.snapshot.get_typed(Service, namespace, name)

    def endpoint_slices(self, namespace: str, service: str) -> list[EndpointSlice]:
        return self._slices.get((namespace, service), [])
