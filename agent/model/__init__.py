"""Typed models of every object the agent reads (Gateway API kinds and the core kinds they use)."""

from agent.model.base import K8sObject, LabelSelector, ObjectKey, ObjectMeta
from agent.model.core import ConfigMap, EndpointSlice, Namespace, Secret, Service
from agent.model.gateway import (
    EXPERIMENTAL_GROUP,
    GATEWAY_GROUP,
    Gateway,
    GatewayClass,
    Listener,
    ListenerSet,
)
from agent.model.policy import BackendTLSPolicy, ReferenceGrant, XBackendTrafficPolicy
from agent.model.registry import InvalidObject, parse
from agent.model.routes import GRPCRoute, HTTPRoute, Route, TCPRoute, TLSRoute, UDPRoute

__all__ = [
    "EXPERIMENTAL_GROUP",
    "GATEWAY_GROUP",
    "BackendTLSPolicy",
    "ConfigMap",
    "EndpointSlice",
    "GRPCRoute",
    "Gateway",
    "GatewayClass",
    "HTTPRoute",
    "InvalidObject",
    "K8sObject",
    "LabelSelector",
    "Listener",
    "ListenerSet",
    "Namespace",
    "ObjectKey",
    "ObjectMeta",
    "ReferenceGrant",
    "Route",
    "Secret",
    "Service",
    "TCPRoute",
    "TLSRoute",
    "UDPRoute",
    "XBackendTrafficPolicy",
    "parse",
]
