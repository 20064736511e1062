"""What this build of nodegate claims, as Gateway API SupportedFeature names.

A feature is claimed only while its datapath is attached and only when the
shared conformance cases that need it pass in the lab (`make conformance`);
the GatewayClass lists exactly the union of what the attached datapaths
claim, so a node without a datapath claims nothing for it. Add a name here
in the same commit that shows its cases passing; remove it the moment one fails.

Not claimed yet, with the reason:
- GRPCRoute, HTTPRouteBackendProtocolH2C, GatewayHTTPSListenerDetectMisdirectedRequests:
  the proxy speaks HTTP/1.1 only.
- TLSRoute (and its modes): no TLS passthrough datapath yet.
- GatewayHTTPListenerIsolation: no shared case exercises it here yet.
- GatewayInfrastructurePropagation: one DaemonSet serves every Gateway; nothing is generated
  per Gateway to carry spec.infrastructure.
"""

from __future__ import annotations

from collections.abc import Iterable

# What translation alone decides, served by whichever datapath carries the traffic:
# Gateways, ReferenceGrant, static and assigned addresses.
_CORE = frozenset({"Gateway", "ReferenceGrant", "GatewayStaticAddresses", "GatewayAddressEmpty"})

CLAIMS: dict[str, frozenset[str]] = {
    "l7": _CORE
    | frozenset(
        {
            "HTTPRoute",
            "ListenerSet",
            "GatewayPort8080",
            "HTTPRouteParentRefPort",
            "HTTPRouteDestinationPortMatching",
            "HTTPRouteQueryParamMatching",
            "HTTPRouteMethodMatching",
            "HTTPRouteResponseHeaderModification",
            "HTTPRouteBackendRequestHeaderModification",
            "HTTPRoutePortRedirect",
            "HTTPRouteSchemeRedirect",
            "HTTPRoutePathRedirect",
            "HTTPRoute303RedirectStatusCode",
            "HTTPRoute307RedirectStatusCode",
            "HTTPRoute308RedirectStatusCode",
            "HTTPRouteHostRewrite",
            "HTTPRoutePathRewrite",
            "HTTPRouteRequestMirror",
            "HTTPRouteRequestMultipleMirrors",
            "HTTPRouteRequestPercentageMirror",
            "HTTPRouteRequestTimeout",
            "HTTPRouteBackendTimeout",
            "HTTPRouteNamedRouteRule",
            "HTTPRouteCORS",
            "HTTPRouteBackendProtocolWebSocket",
            "HTTPRouteRetry",
            "BackendTLSPolicy",
            "BackendTLSPolicySANValidation",
            "GatewayBackendClientCertificate",
            "GatewayFrontendClientCertificateValidation",
            "GatewayFrontendClientCertificateValidationInsecureFallback",
        }
    ),
    "l4": _CORE | frozenset({"TCPRoute", "UDPRoute"}),
}


def claimed(datapaths: Iterable[str]) -> frozenset[str]:
    """The features a set of attached datapaths (by name) lets nodegate claim."""
    out: frozenset[str] = frozenset()
    for name in datapaths:
        out |= CLAIMS.get(name, frozenset())
    return out
