"""The core Kubernetes objects the agent reads: Namespace, Service, EndpointSlice, Secret, "
"ConfigMap."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from agent.model.base import K8sModel, K8sObject

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class Namespace(K8sObject):
    GROUP: ClassVar[str] = ""
    KINDS: ClassVar[tuple[str, ...]] = ("Namespace",)


class ServicePort(K8sModel):
    name: str = ""
    protocol: str = "TCP"
    port: int = Field(ge=1, le=65535)
    target_port: int | str | None = None
    app_protocol: str | None = None


class ServiceSpec(K8sModel):
    type: str = "ClusterIP"
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    ports: list[ServicePort] = Field(default_factory=list)
    selector: dict[str, str] = Field(default_factory=dict)
    external_name: str | None = None


class Service(K8sObject):
    GROUP: ClassVar[str] = ""
    KINDS: ClassVar[tuple[str, ...]] = ("Service",)
    spec: ServiceSpec = Field(default_factory=ServiceSpec)


class EndpointConditions(K8sModel):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class Endpoint(K8sModel):
    addresses: list[str] = Field(min_length=1)
    conditions: EndpointConditions = Field(default_factory=EndpointConditions)
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None

    @property
    def is_ready(self) -> bool:
        # EndpointSlice API: "ready ... nil should be interpreted as true".
        return self.conditions.ready is not False


class EndpointPort(K8sModel):
    name: str | None = None
    protocol: str = "TCP"
    port: int | None = None
    app_protocol: str | None = None


class EndpointSlice(K8sObject):
    GROUP: ClassVar[str] = "discovery.k8s.io"
    KINDS: ClassVar[tuple[str, ...]] = ("EndpointSlice",)
    address_type: str
    endpoints: list[Endpoint] = Field(default_factory=list)
    ports: list[EndpointPort] = Field(default_factory=list)

    @property
    def service_name(self) -> str:
        return self.metadata.labels.get(SERVICE_NAME_LABEL, "")


class Secret(K8sObject):
    GROUP: ClassVar[str] = ""
    KINDS: ClassVar[tuple[str, ...]] = ("Secret",)
    type: str = "Opaque"
    data: dict[str, str] = Field(default_factory=dict)  # base64, as on the wire
    string_data: dict[str, str] = Field(default_factory=dict)


class ConfigMap(K8sObject):
    GROUP: ClassVar[str] = ""
    KINDS: ClassVar[tuple[str, ...]] = ("ConfigMap",)
    data: dict[str, str] = Field(default_factory=dict)
