"""HTTPRoute, GRPCRoute, TLSRoute, TCPRoute and UDPRoute (v1, and v1alpha2 of the L4 kinds).

The same classes read every served version: the fields nodegate uses did not
change shape between v1alpha2 and v1. Filter types nodegate does not implement
still load; translation reports them (status), it never fails to parse them.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from agent.model.base import K8sModel, K8sObject
from agent.model.gateway import GATEWAY_GROUP, Hostname, Port, SectionName

# Gateway API Duration: "^([0-9]{1,5}(h|m|s|ms)){1,4}$" (GEP-2257).
_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_DURATION_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}

HeaderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$", max_length=256)]


def parse_duration(value: str) -> float:
    """Seconds in a GEP-2257 duration ("1h30m", "500ms"). Raises ValueError on bad input."""
    if not _DURATION.match(value):
        raise ValueError(f"invalid duration {value!r}: want e.g. 10s, 500ms, 1h30m")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


def check_duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


class ParentReference(K8sModel):
    group: str = GATEWAY_GROUP
    kind: str = "Gateway"
    namespace: str | None = None
    name: str
    section_name: SectionName | None = None
    port: Port | None = None


class BackendObjectReference(K8sModel):
    group: str = ""
    kind: str = "Service"
    name: str
    namespace: str | None = None
    port: Port | None = None


class HTTPHeader(K8sModel):
    name: HeaderName
    value: str


class HeaderModifier(K8sModel):
    set: list[HTTPHeader] = Field(default_factory=list, max_length=16)
    add: list[HTTPHeader] = Field(default_factory=list, max_length=16)
    remove: list[str] = Field(default_factory=list, max_length=16)


class HTTPPathModifier(K8sModel):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: str | None = None
    replace_prefix_match: str | None = None


class HTTPRequestRedirect(K8sModel):
    scheme: Literal["http", "https"] | None = None
    hostname: str | None = None
    path: HTTPPathModifier | None = None
    port: Port | None = None
    status_code: Literal[301, 302, 303, 307, 308] = 302


class HTTPURLRewrite(K8sModel):
    hostname: str | None = None
    path: HTTPPathModifier | None = None


class Fraction(K8sModel):
    numerator: int = Field(ge=0)
    denominator: int = Field(default=100, ge=1)


class HTTPRequestMirror(K8sModel):
    backend_ref: BackendObjectReference
    percent: int | None = Field(default=None, ge=0, le=100)
    fraction: Fraction | None = None


class HTTPCORSFilter(K8sModel):
    allow_origins: list[str] = Field(default_factory=list)
    allow_credentials: bool | None = None
    allow_methods: list[str] = Field(default_factory=list)
    allow_headers: list[str] = Field(default_factory=list)
    expose_headers: list[str] = Field(default_factory=list)
    max_age: int = 5


class LocalObjectReference(K8sModel):
    group: str
    kind: str
    name: str


class HTTPRouteFilter(K8sModel):
    type: str
    request_header_modifier: HeaderModifier | None = None
    response_header_modifier: HeaderModifier | None = None
    request_mirror: HTTPRequestMirror | None = None
    request_redirect: HTTPRequestRedirect | None = None
    url_rewrite: HTTPURLRewrite | None = None
    cors: HTTPCORSFilter | None = None
    extension_ref: LocalObjectReference | None = None


class HTTPBackendRef(BackendObjectReference):
    weight: int = Field(default=1, ge=0, le=1_000_000)
    filters: list[HTTPRouteFilter] = Field(default_factory=list)


class HTTPPathMatch(K8sModel):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: str = "/"


class HTTPHeaderMatch(K8sModel):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: str


class HTTPQueryParamMatch(K8sModel):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: str
    value: str


HTTPMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]


class HTTPRouteMatch(K8sModel):
    path: HTTPPathMatch = Field(default_factory=HTTPPathMatch)
    headers: list[HTTPHeaderMatch] = Field(default_factory=list, max_length=16)
    query_params: list[HTTPQueryParamMatch] = Field(default_factory=list, max_length=16)
    method: HTTPMethod | None = None


class HTTPRouteTimeouts(K8sModel):
    request: str | None = None
    backend_request: str | None = None

    _valid = field_validator("request", "backend_request")(check_duration)


class HTTPRouteRetry(K8sModel):
    codes: list[int] = Field(default_factory=list)
    attempts: int | None = Field(default=None, ge=0)
    backoff: str | None = None

    _valid = field_validator("backoff")(check_duration)


class HTTPRouteRule(K8sModel):
    name: SectionName | None = None
    matches: list[HTTPRouteMatch] = Field(default_factory=lambda: [HTTPRouteMatch()], max_length=64)
    filters: list[HTTPRouteFilter] = Field(default_factory=list, max_length=16)
    backend_refs: list[HTTPBackendRef] = Field(default_factory=list, max_length=16)
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None


class HTTPRouteSpec(K8sModel):
    parent_refs: list[ParentReference] = Field(default_factory=list, max_length=32)
    hostnames: list[Hostname] = Field(default_factory=list, max_length=16)
    rules: list[HTTPRouteRule] = Field(default_factory=lambda: [HTTPRouteRule()], max_length=16)


class HTTPRoute(K8sObject):
    GROUP: ClassVar[str] = GATEWAY_GROUP
    KINDS: ClassVar[tuple[str, ...]] = ("HTTPRoute",)
    spec: HTTPRouteSpec


class GRPCMethodMatch(K8sModel):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    service: str | None = None
    method: str | None = None


class GRPCHeaderMatch(K8sModel):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: str
    value: str


class GRPCRouteMatch(K8sModel):
    method: GRPCMethodMatch | None = None
    headers: list[GRPCHeaderMatch] = Field(default_factory=list)


class GRPCRouteFilter(K8sModel):
    type: str
    request_header_modifier: HeaderModifier | None = None
    response_header_modifier: HeaderModifier | None = None
    request_mirror: HTTPRequestMirror | None = None
    extension_ref: LocalObjectReference | None = None


class GRPCBackendRef(BackendObjectReference):
    weight: int = Field(default=1, ge=0, le=1_000_000)
    filters: list[GRPCRouteFilter] = Field(default_factory=list)


class GRPCRouteRule(K8sModel):
    name: SectionName | None = None
    matches: list[GRPCRouteMatch] = Field(default_factory=list)
    filters: list[GRPCRouteFilter] = Field(default_factory=list)
    backend_refs: list[GRPCBackendRef] = Field(default_factory=list)


class GRPCRouteSpec(K8sModel):
    parent_refs: list[ParentReference] = Field(default_factory=list, max_length=32)
    hostnames: list[Hostname] = Field(default_factory=list)
    rules: list[GRPCRouteRule] = Field(default_factory=list)


class GRPCRoute(K8sObject):
    GROUP: ClassVar[str] = GATEWAY_GROUP
    KINDS: ClassVar[tuple[str, ...]] = ("GRPCRoute",)
    spec: GRPCRouteSpec


class L4BackendRef(BackendObjectReference):
    weight: int = Field(default=1, ge=0, le=1_000_000)


class L4RouteRule(K8sModel):
    name: SectionName | None = None
    backend_refs: list[L4BackendRef] = Field(default_factory=list, max_length=16)


class TLSRouteSpec(K8sModel):
    parent_refs: list[ParentReference] = Field(default_factory=list, max_length=32)
    hostnames: list[Hostname] = Field(default_factory=list)
    rules: list[L4RouteRule] = Field(default_factory=list)


class TLSRoute(K8sObject):
    GROUP: ClassVar[str] = GATEWAY_GROUP
    KINDS: ClassVar[tuple[str, ...]] = ("TLSRoute",)
    spec: TLSRouteSpec


class L4RouteSpec(K8sModel):
    parent_refs: list[ParentReference] = Field(default_factory=list, max_length=32)
    rules: list[L4RouteRule] = Field(default_factory=list)


class TCPRoute(K8sObject):
    GROUP: ClassVar[str] = GATEWAY_GROUP
    KINDS: ClassVar[tuple[str, ...]] = ("TCPRoute",)
    spec: L4RouteSpec


class UDPRoute(K8sObject):
    GROUP: ClassVar[str] = GATEWAY_GROUP
    KINDS: ClassVar[tuple[str, ...]] = ("UDPRoute",)
    spec: L4RouteSpec


Route = HTTPRoute | GRPCRoute | TLSRoute | TCPRoute | UDPRoute
