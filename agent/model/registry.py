"""Which model reads which (API group, kind), and parsing a wire object into it.

Every version a group serves maps to the same class: the fields nodegate reads
kept their shape across versions (v1alpha2 -> v1 of the L4 routes, XListenerSet
-> ListenerSet).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from agent.model.base import K8sObject, ObjectKey
from agent.model.core import ConfigMap, EndpointSlice, Namespace, Secret, Service
from agent.model.gateway import (
    EXPERIMENTAL_GROUP,
    GATEWAY_GROUP,
    Gateway,
    GatewayClass,
    ListenerSet,
)
from agent.model.policy import BackendTLSPolicy, ReferenceGrant, XBackendTrafficPolicy
from agent.model.routes import GRPCRoute, HTTPRoute, TCPRoute, TLSRoute, UDPRoute

MODELS: dict[tuple[str, str], type[K8sObject]] = {
    (GATEWAY_GROUP, "GatewayClass"): GatewayClass,
    (GATEWAY_GROUP, "Gateway"): Gateway,
    (GATEWAY_GROUP, "ListenerSet"): ListenerSet,
    (EXPERIMENTAL_GROUP, "XListenerSet"): ListenerSet,
    (GATEWAY_GROUP, "HTTPRoute"): HTTPRoute,
    (GATEWAY_GROUP, "GRPCRoute"): GRPCRoute,
    (GATEWAY_GROUP, "TLSRoute"): TLSRoute,
    (GATEWAY_GROUP, "TCPRoute"): TCPRoute,
    (GATEWAY_GROUP, "UDPRoute"): UDPRoute,
    (GATEWAY_GROUP, "ReferenceGrant"): ReferenceGrant,
    (GATEWAY_GROUP, "BackendTLSPolicy"): BackendTLSPolicy,
    (EXPERIMENTAL_GROUP, "XBackendTrafficPolicy"): XBackendTrafficPolicy,
    ("", "Namespace"): Namespace,
    ("", "Service"): Service,
    ("", "Secret"): Secret,
    ("", "ConfigMap"): ConfigMap,
    ("discovery.k8s.io", "EndpointSlice"): EndpointSlice,
}

CLUSTER_SCOPED = frozenset({(GATEWAY_GROUP, "GatewayClass"), ("", "Namespace")})


class InvalidObject(ValueError):
    """An object the agent cannot read: the message names the object and the field."""

    def __init__(self, key: ObjectKey, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def is_known(obj: Mapping[str, Any]) -> bool:
    key = ObjectKey.of(obj)
    return (key.group, key.kind) in MODELS


def parse(obj: Mapping[str, Any]) -> K8sObject:
    """Parse a wire object (a dict as in YAML) into its model. Raises InvalidObject."""
    key = ObjectKey.of(obj)
    model = MODELS.get((key.group, key.kind))
    if model is None:
        raise InvalidObject(key, f"nodegate does not read kind {key.kind!r} of group {key.group!r}")
    if not key.name:
        raise InvalidObject(key, "metadata.name is required")
    cluster_scoped = (key.group, key.kind) in CLUSTER_SCOPED
    if not cluster_scoped and not key.namespace:
        raise InvalidObject(key, "metadata.namespace is required for a namespaced kind")
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        raise InvalidObject(key, _describe(e)) from None


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "(object)"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
