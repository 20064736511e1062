"""GatewayClass, Gateway and ListenerSet, as the v1.6 CRDs define them.

Defaults are the CRDs' defaults, applied here because in standalone mode no API
server applies them. Schema rules that the API server enforces (types, enums,
ranges, name patterns) fail validation; rules the spec turns into status
conditions (unsupported protocols, bad references) are left to translation.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from agent.model.base import K8sModel, K8sObject, LabelSelector

GATEWAY_GROUP = "gateway.networking.k8s.io"
EXPERIMENTAL_GROUP = "gateway.networking.x-k8s.io"

Port = Annotated[int, Field(ge=1, le=65535)]
SectionName = Annotated[
    str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
]
Hostname = Annotated[
    str,
    Field(
        pattern=r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        max_length=253,
    ),
]


class ParametersReference(K8sModel):
    group: str
    kind: str
    name: str
    namespace: str | None = None


class GatewayClassSpec(K8sModel):
    controller_name: str
    parameters_ref: ParametersReference | None = None
    description: str | None = None


class GatewayClass(K8sObject):
    GROUP: ClassVar[str] = GATEWAY_GROUP
    KINDS: ClassVar[tuple[str, ...]] = ("GatewayClass",)
    spec: GatewayClassSpec


class SecretObjectReference(K8sModel):
    """A reference to a Secret (or another kind the implementation may support)."""

    group: str = ""
    kind: str = "Secret"
    name: str
    namespace: str | None = None


class ObjectReference(K8sModel):
    """A typed reference with no defaults (caCertificateRefs)."""

    group: str = ""
    kind: str
    name: str
    namespace: str | None = None


class RouteNamespaces(K8sModel):
    from_: Literal["All", "Selector", "Same"] = Field(default="Same", alias="from")
    selector: LabelSelector | None = None


class RouteGroupKind(K8sModel):
    group: str = GATEWAY_GROUP
    kind: str


class AllowedRoutes(K8sModel):
    namespaces: RouteNamespaces = Field(default_factory=RouteNamespaces)
    kinds: list[RouteGroupKind] = Field(default_factory=list)


class ListenerTLSConfig(K8sModel):
    mode: Literal["Terminate", "Passthrough"] = "Terminate"
    certificate_refs: list[SecretObjectReference] = Field(default_factory=list, max_length=64)
    options: dict[str, str] = Field(default_factory=dict)


class Listener(K8sModel):
    """A Gateway listener, or a ListenerSet's ListenerEntry (same shape)."""

    name: SectionName
    hostname: Hostname | None = None
    port: Port
    protocol: str
    tls: ListenerTLSConfig | None = None
    allowed_routes: AllowedRoutes = Field(default_factory=AllowedRoutes)


class GatewayAddress(K8sModel):
    type: str = "IPAddress"
    value: str = ""


class InfrastructureParametersReference(K8sModel):
    group: str
    kind: str
    name: str


class GatewayInfrastructure(K8sModel):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    parameters_ref: InfrastructureParametersReference | None = None


class ListenerNamespaces(K8sModel):
    from_: Literal["All", "Selector", "Same", "None"] = Field(default="None", alias="from")
    selector: LabelSelector | None = None


class AllowedListeners(K8sModel):
    namespaces: ListenerNamespaces = Field(default_factory=ListenerNamespaces)


class FrontendTLSValidation(K8sModel):
    ca_certificate_refs: list[ObjectReference] = Field(default_factory=list)
    mode: Literal["AllowValidOnly", "AllowInsecureFallback"] = "AllowValidOnly"


class TLSConfig(K8sModel):
    validation: FrontendTLSValidation | None = None


class TLSPortConfig(K8sModel):
    port: Port
    tls: TLSConfig = Field(default_factory=TLSConfig)


class FrontendTLSConfig(K8sModel):
    default: TLSConfig = Field(default_factory=TLSConfig)
    per_port: list[TLSPortConfig] = Field(default_factory=list)


class GatewayBackendTLS(K8sModel):
    client_certificate_ref: SecretObjectReference | None = None


class GatewayTLSConfig(K8sModel):
    backend: GatewayBackendTLS | None = None
    frontend: FrontendTLSConfig | None = None


class GatewaySpec(K8sModel):
    gateway_class_name: str
    listeners: list[Listener] = Field(default_factory=list, max_length=64)
    addresses: list[GatewayAddress] = Field(default_factory=list, max_length=16)
    infrastructure: GatewayInfrastructure | None = None
    allowed_listeners: AllowedListeners = Field(default_factory=AllowedListeners)
    tls: GatewayTLSConfig | None = None


class Gateway(K8sObject):
    GROUP: ClassVar[str] = GATEWAY_GROUP
    KINDS: ClassVar[tuple[str, ...]] = ("Gateway",)
    spec: GatewaySpec


class ParentGatewayReference(K8sModel):
    group: str = GATEWAY_GROUP
    kind: str = "Gateway"
    name: str
    namespace: str | None = None


class ListenerSetSpec(K8sModel):
    parent_ref: ParentGatewayReference
    listeners: list[Listener] = Field(default_factory=list, max_length=64)


class ListenerSet(K8sObject):
    """gateway.networking.k8s.io/v1 ListenerSet, and the older XListenerSet of the x-k8s group."""

    GROUP: ClassVar[str] = GATEWAY_GROUP
    KINDS: ClassVar[tuple[str, ...]] = ("ListenerSet", "XListenerSet")
    spec: ListenerSetSpec
