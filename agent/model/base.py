"""Shared pieces of every Kubernetes object model: metadata, keys, label selectors.

Invariants:
- Models are frozen and ignore unknown fields, so a newer CRD or an extra field
  never breaks loading; a field with the wrong type or a value the CRD's
  schema forbids fails validation with the field's path in the message.
- Field names are snake_case in Python and camelCase on the wire (aliases).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class K8sModel(BaseModel):
    """Base of every model: frozen, camelCase on the wire, unknown fields ignored."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        populate_by_name=True,
        alias_generator=to_camel,
        str_strip_whitespace=False,
    )


class ObjectKey(NamedTuple):
    """Identity of an object: API group (no version), kind, namespace ('' if "
    "cluster-scoped), name."""

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectKey:
        api_version = str(obj.get("apiVersion") or "")
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        meta = obj.get("metadata") or {}
        return cls(
            group,
            str(obj.get("kind") or ""),
            str(meta.get("namespace") or ""),
            str(meta.get("name") or ""),
        )

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind}.{self.group or 'core'} {where}"


class ObjectMeta(K8sModel):
    name: str
    namespace: str = ""
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    creation_timestamp: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class K8sObject(K8sModel):
    """A top-level object. Subclasses set GROUP and KINDS (and a typed `spec`)."""

    GROUP: ClassVar[str] = ""
    KINDS: ClassVar[tuple[str, ...]] = ()

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta

    @property
    def key(self) -> ObjectKey:
        group = self.api_version.rpartition("/")[0] if "/" in self.api_version else ""
        return ObjectKey(group, self.kind, self.metadata.namespace, self.metadata.name)

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def generation(self) -> int:
        return self.metadata.generation


class LabelSelectorRequirement(K8sModel):
    key: str
    operator: str
    values: list[str] = Field(default_factory=list)


class LabelSelector(K8sModel):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Kubernetes label-selector semantics (an empty selector matches everything)."""
        for k, v in self.match_labels.items():
            if labels.get(k) != v:
                return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "In":
                if not present or labels[req.key] not in req.values:
                    return False
            elif req.operator == "NotIn":
                if present and labels[req.key] in req.values:
                    return False
            elif req.operator == "Exists":
                if not present:
                    return False
            elif req.operator == "DoesNotExist":
                if present:
                    return False
            else:  # an unknown operator selects nothing, as the API server would reject it
                return False
        return True
