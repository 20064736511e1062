"""ReferenceGrant, BackendTLSPolicy and XBackendTrafficPolicy."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from agent.model.base import K8sModel, K8sObject
from agent.model.gateway import EXPERIMENTAL_GROUP, GATEWAY_GROUP, ObjectReference, SectionName
from agent.model.routes import check_duration


class ReferenceGrantFrom(K8sModel):
    group: str
    kind: str
    namespace: str


class ReferenceGrantTo(K8sModel):
    group: str
    kind: str
    name: str | None = None


class ReferenceGrantSpec(K8sModel):
    from_: list[ReferenceGrantFrom] = Field(alias="from", min_length=1, max_length=16)
    to: list[ReferenceGrantTo] = Field(min_length=1, max_length=16)


class ReferenceGrant(K8sObject):
    GROUP: ClassVar[str] = GATEWAY_GROUP
    KINDS: ClassVar[tuple[str, ...]] = ("ReferenceGrant",)
    spec: ReferenceGrantSpec


class PolicyTargetReference(K8sModel):
    group: str
    kind: str
    name: str
    section_name: SectionName | None = None


class SubjectAltName(K8sModel):
    type: Literal["Hostname", "URI"]
    hostname: str | None = None
    uri: str | None = None


class BackendTLSPolicyValidation(K8sModel):
    ca_certificate_refs: list[ObjectReference] = Field(default_factory=list, max_length=8)
    well_known_ca_certificates: str | None = None
    hostname: str
    subject_alt_names: list[SubjectAltName] = Field(default_factory=list, max_length=5)


class BackendTLSPolicySpec(K8sModel):
    target_refs: list[PolicyTargetReference] = Field(min_length=1, max_length=16)
    validation: BackendTLSPolicyValidation
    options: dict[str, str] = Field(default_factory=dict)


class BackendTLSPolicy(K8sObject):
    GROUP: ClassVar[str] = GATEWAY_GROUP
    KINDS: ClassVar[tuple[str, ...]] = ("BackendTLSPolicy",)
    spec: BackendTLSPolicySpec


class RetryBudget(K8sModel):
    percent: int = Field(default=20, ge=0, le=100)
    interval: str = "10s"

    _valid = field_validator("interval")(check_duration)


class MinRetryRate(K8sModel):
    count: int | None = Field(default=None, ge=0)
    interval: str | None = None


class RetryConstraint(K8sModel):
    budget: RetryBudget = Field(default_factory=RetryBudget)
    min_retry_rate: MinRetryRate = Field(
        default_factory=lambda: MinRetryRate(count=10, interval="1s")
    )


class LocalPolicyTargetReference(K8sModel):
    group: str
    kind: str
    name: str


class XBackendTrafficPolicySpec(K8sModel):
    target_refs: list[LocalPolicyTargetReference] = Field(min_length=1, max_length=16)
    retry_constraint: RetryConstraint | None = None


class XBackendTrafficPolicy(K8sObject):
    GROUP: ClassVar[str] = EXPERIMENTAL_GROUP
    KINDS: ClassVar[tuple[str, ...]] = ("XBackendTrafficPolicy",)
    spec: XBackendTrafficPolicySpec
