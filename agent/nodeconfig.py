"""NodeConfig: the one contract between the agent and both datapaths.

Translation produces it; the L4 (bpf/) and L7 (l7/) datapaths consume it and
import nothing else from the agent. It is frozen and self-contained: every
reference is already resolved (Services to endpoint addresses, Secrets to PEM),
every list is in the order the datapath must honour (listeners by hostname
specificity, route entries by the Gateway API's match precedence), and every
piece remembers the Gateway API object it came from (`Ref`), for metrics
and logs.

Invariants:
- Same input snapshot -> the same NodeConfig, field for field (`digest`).
- A Backend with `invalid` set stands for a backendRef the spec says must fail:
  its weight's share of requests gets HTTP 500, of TCP connections a reset,
  of UDP datagrams a drop. It has no endpoints.
- Weights are the backendRefs' weights; a weight of 0 receives nothing new.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Ref(Frozen):
    """The Gateway API object something came from."""

    kind: str
    namespace: str
    name: str
    section: str = ""  # listener name, rule name or index, as fits

    def __str__(self) -> str:
        tail = f"/{self.section}" if self.section else ""
        return f"{self.kind} {self.namespace}/{self.name}{tail}"


class Endpoint(Frozen):
    address: str
    port: int
    zone: str = ""


class Certificate(Frozen):
    """A PEM certificate chain and its PEM private key."""

    cert_pem: str
    key_pem: str
    hostnames: tuple[str, ...] = ()  # DNS names the certificate covers (SAN), for SNI choice


class BackendTLS(Frozen):
    """TLS from the gateway to a backend (BackendTLSPolicy)."""

    policy: Ref
    hostname: str  # SNI, and the name checked unless subject_alt_names is set
    ca_pems: tuple[str, ...] = ()
    system_cas: bool = False
    subject_alt_names: tuple[tuple[Literal["Hostname", "URI"], str], ...] = ()


class RetryBudget(Frozen):
    """XBackendTrafficPolicy retryConstraint on the backend's Service."""

    percent: int
    interval: float
    min_retries: int
    min_interval: float


class HeaderModifier(Frozen):
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


class PathModifier(Frozen):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    value: str


class Redirect(Frozen):
    scheme: str | None = None
    hostname: str | None = None
    path: PathModifier | None = None
    port: int | None = None
    status_code: int = 302


class URLRewrite(Frozen):
    hostname: str | None = None
    path: PathModifier | None = None


class CORS(Frozen):
    allow_origins: tuple[str, ...] = ()
    allow_credentials: bool = False
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int = 5


class Mirror(Frozen):
    backend: Backend
    numerator: int = 100  # the share of requests mirrored: numerator / denominator
    denominator: int = 100


class Filters(Frozen):
    """The filters of a rule or of a backendRef, in the order the spec applies them."""

    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None
    redirect: Redirect | None = None
    rewrite: URLRewrite | None = None
    mirrors: tuple[Mirror, ...] = ()
    cors: CORS | None = None


class Backend(Frozen):
    """One backendRef, resolved. `endpoints` are the ready endpoints of the Service port."""

    ref: Ref
    port: int = 0
    weight: int = 1
    endpoints: tuple[Endpoint, ...] = ()
    invalid: str = ""  # why the spec says this backendRef must fail ("" = valid)
    app_protocol: str = (
        ""  # the Service port's appProtocol (kubernetes.io/h2c, kubernetes.io/ws, ...)
    )
    tls: BackendTLS | None = None
    retry_budget: RetryBudget | None = None
    filters: Filters | None = None


class HTTPMatch(Frozen):
    path_type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    path: str = "/"
    headers: tuple[tuple[Literal["Exact", "RegularExpression"], str, str], ...] = ()
    query_params: tuple[tuple[Literal["Exact", "RegularExpression"], str, str], ...] = ()
    method: str | None = None


class Retry(Frozen):
    attempts: int
    codes: tuple[int, ...] = ()
    backoff: float | None = None


class HTTPRule(Frozen):
    """What a matching request gets: filters, then one of the weighted backends."""

    ref: Ref  # the HTTPRoute, section = rule name or index
    filters: Filters = Filters()
    backends: tuple[Backend, ...] = ()
    request_timeout: float | None = None
    backend_timeout: float | None = None
    retry: Retry | None = None


class HTTPEntry(Frozen):
    """One match of one rule; entries are kept in the spec's precedence order."""

    match: HTTPMatch
    rule: int  # index into VirtualHost.rules


class VirtualHost(Frozen):
    """The routes of one listener for one hostname (exact, "*.suffix" or "" for any)."""

    hostname: str
    rules: tuple[HTTPRule, ...]
    entries: tuple[HTTPEntry, ...]


class ClientValidation(Frozen):
    """Frontend mTLS: CAs to verify client certificates against."""

    ca_pems: tuple[str, ...]
    mode: Literal["AllowValidOnly", "AllowInsecureFallback"] = "AllowValidOnly"


class HTTPListener(Frozen):
    """A Gateway (or ListenerSet) listener of protocol HTTP or HTTPS."""

    ref: Ref  # the Gateway or ListenerSet, section = listener name
    gateway: Ref
    hostname: str  # "" matches any host
    certificates: tuple[Certificate, ...] = ()
    client_validation: ClientValidation | None = None
    # Gateway spec.tls.backend.clientCertificateRef: presented to backends that use TLS.
    backend_client_certificate: Certificate | None = None
    virtual_hosts: tuple[VirtualHost, ...] = ()  # most specific hostname first


class HTTPPort(Frozen):
    """One socket the L7 engine serves: an address and port, plain or TLS."""

    address: str
    port: int
    tls: bool
    listeners: tuple[HTTPListener, ...]  # most specific hostname first


class L4Listener(Frozen):
    """A TCP or UDP listener with the one route that carries its traffic."""

    ref: Ref  # the Gateway or ListenerSet, section = listener name
    gateway: Ref
    protocol: Literal["TCP", "UDP"]
    address: str
    port: int
    route: Ref | None = None
    backends: tuple[Backend, ...] = ()


class NodeConfig(Frozen):
    node: str = ""
    l4: tuple[L4Listener, ...] = ()
    http: tuple[HTTPPort, ...] = ()

    @property
    def digest(self) -> str:
        """A fingerprint of the whole configuration (same config -> same digest)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


Mirror.model_rebuild()
Filters.model_rebuild()
