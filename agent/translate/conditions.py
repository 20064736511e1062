"""Condition types and reasons, spelled exactly as the Gateway API spec spells them.

A Condition here has no lastTransitionTime: translation is pure and
timeless. Whoever writes status (the status writer, `nodegate status`) keeps
the previous time when type, status and reason are unchanged, and stamps
the current time otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ConditionType(StrEnum):
    ACCEPTED = "Accepted"
    PROGRAMMED = "Programmed"
    RESOLVED_REFS = "ResolvedRefs"
    CONFLICTED = "Conflicted"
    SUPPORTED_VERSION = "SupportedVersion"
    INSECURE_FRONTEND_VALIDATION_MODE = "InsecureFrontendValidationMode"
    PARTIALLY_INVALID = "PartiallyInvalid"


class Reason(StrEnum):
    # Shared
    ACCEPTED = "Accepted"
    PROGRAMMED = "Programmed"
    RESOLVED_REFS = "ResolvedRefs"
    INVALID = "Invalid"
    PENDING = "Pending"
    UNSUPPORTED_VALUE = "UnsupportedValue"
    # GatewayClass
    INVALID_PARAMETERS = "InvalidParameters"
    SUPPORTED_VERSION = "SupportedVersion"
    # Gateway
    LISTENERS_NOT_VALID = "ListenersNotValid"
    UNSUPPORTED_ADDRESS = "UnsupportedAddress"
    ADDRESS_NOT_USABLE = "AddressNotUsable"
    ADDRESS_NOT_ASSIGNED = "AddressNotAssigned"
    INVALID_CLIENT_CERTIFICATE_REF = "InvalidClientCertificateRef"
    CONFIGURATION_CHANGED = "ConfigurationChanged"
    # ListenerSet
    NOT_ALLOWED = "NotAllowed"
    PARENT_NOT_ACCEPTED = "ParentNotAccepted"
    # Listener
    NO_CONFLICTS = "NoConflicts"
    HOSTNAME_CONFLICT = "HostnameConflict"
    PROTOCOL_CONFLICT = "ProtocolConflict"
    UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"
    INVALID_CERTIFICATE_REF = "InvalidCertificateRef"
    INVALID_ROUTE_KINDS = "InvalidRouteKinds"
    REF_NOT_PERMITTED = "RefNotPermitted"
    NO_VALID_CA_CERTIFICATE = "NoValidCACertificate"
    INVALID_CA_CERTIFICATE_REF = "InvalidCACertificateRef"
    INVALID_CA_CERTIFICATE_KIND = "InvalidCACertificateKind"
    # Route parents
    NOT_ALLOWED_BY_LISTENERS = "NotAllowedByListeners"
    NO_MATCHING_LISTENER_HOSTNAME = "NoMatchingListenerHostname"
    NO_MATCHING_PARENT = "NoMatchingParent"
    INVALID_KIND = "InvalidKind"
    BACKEND_NOT_FOUND = "BackendNotFound"
    # Policies
    CONFLICTED = "Conflicted"
    TARGET_NOT_FOUND = "TargetNotFound"


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    status: bool
    reason: Reason
    message: str = ""

    def to_k8s(self, generation: int) -> dict[str, Any]:
        return {
            "type": str(self.type),
            "status": "True" if self.status else "False",
            "reason": str(self.reason),
            "message": self.message or str(self.reason),
            "observedGeneration": generation,
        }


RESOLVED = Condition(
    ConditionType.RESOLVED_REFS, True, Reason.RESOLVED_REFS, "all references resolved"
)


def conditions_to_k8s(conditions: list[Condition], generation: int) -> list[dict[str, Any]]:
    """Conditions in wire form, one per type (the first given wins), in the order given."""
    seen: set[ConditionType] = set()
    out = []
    for c in conditions:
        if c.type not in seen:
            seen.add(c.type)
            out.append(c.to_k8s(generation))
    return out
