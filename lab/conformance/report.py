"""The conformance report: each case's outcome, totals per profile and per feature, text and JSON.

Profiles are upstream's (conformance/utils/suite/profiles.go, v1.6.1, as
features.md section 3 lists them): a case counts in a profile when every
feature it requires is among the profile's core and extended features.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"

_GATEWAY_EXTENDED = (
    "GatewayPort8080",
    "GatewayStaticAddresses",
    "GatewayHTTPListenerIsolation",
    "GatewayHTTPSListenerDetectMisdirectedRequests",
    "GatewayInfrastructurePropagation",
    "GatewayAddressEmpty",
    "GatewayBackendClientCertificate",
    "GatewayFrontendClientCertificateValidation",
    "GatewayFrontendClientCertificateValidationInsecureFallback",
    "ListenerSet",
)

_HTTP_EXTENDED = (
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    "HTTPRouteParentRefPort",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteCORS",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteRetry",
    "HTTPRouteRetryBackendTimeout",
    "HTTPRouteRetryConnectionError",
    "BackendTLSPolicy",
    "BackendTLSPolicySANValidation",
)


@dataclass(frozen=True)
class Profile:
    name: str
    core: frozenset[str]
    extended: frozenset[str]

    def covers(self, features: Iterable[str]) -> bool:
        return set(features) <= self.core | self.extended


PROFILES: tuple[Profile, ...] = (
    Profile(
        "GATEWAY-HTTP",
        frozenset({"Gateway", "ReferenceGrant", "HTTPRoute"}),
        frozenset(_GATEWAY_EXTENDED + _HTTP_EXTENDED),
    ),
    Profile(
        "GATEWAY-TLS",
        frozenset({"Gateway", "ReferenceGrant", "TLSRoute"}),
        frozenset((*_GATEWAY_EXTENDED, "TLSRouteModeTerminate", "TLSRouteModeMixed")),
    ),
    Profile(
        "GATEWAY-GRPC",
        frozenset({"Gateway", "ReferenceGrant", "GRPCRoute"}),
        frozenset(_GATEWAY_EXTENDED),
    ),
    Profile(
        "GATEWAY-TCP",
        frozenset({"Gateway", "ReferenceGrant", "TCPRoute"}),
        frozenset((*_GATEWAY_EXTENDED, "TCPRoute")),
    ),
    Profile(
        "GATEWAY-UDP",
        frozenset({"Gateway", "ReferenceGrant", "UDPRoute"}),
        frozenset((*_GATEWAY_EXTENDED, "UDPRoute")),
    ),
)


@dataclass
class CaseResult:
    name: str
    outcome: str  # passed / failed / skipped
    reason: str = ""  # failed: the first failing expectation; skipped: why
    features: tuple[str, ...] = ()
    seconds: float = 0.0
    provisional: bool = False


@dataclass
class Totals:
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


@dataclass
class Report:
    claimed: tuple[str, ...]
    results: list[CaseResult] = field(default_factory=list)
    source: Mapping[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # harness problems (fail the run)

    @property
    def ok(self) -> bool:
        return not self.problems and all(r.outcome != FAILED for r in self.results)

    def totals(self) -> Totals:
        t = Totals()
        for r in self.results:
            t.add(r.outcome)
        return t

    def by_profile(self) -> dict[str, Totals]:
        out = {p.name: Totals() for p in PROFILES}
        for r in self.results:
            for p in PROFILES:
                if p.covers(r.features):
                    out[p.name].add(r.outcome)
        return out

    def by_feature(self) -> dict[str, Totals]:
        out: dict[str, Totals] = {}
        for r in self.results:
            for f in r.features:
                out.setdefault(f, Totals()).add(r.outcome)
        return dict(sorted(out.items()))

    def as_json(self) -> dict[str, Any]:
        return {
            "source": dict(self.source),
            "claimed_features": list(self.claimed),
            "ok": self.ok,
            "problems": list(self.problems),
            "totals": asdict(self.totals()),
            "profiles": {k: asdict(v) for k, v in self.by_profile().items()},
            "features": {k: asdict(v) for k, v in self.by_feature().items()},
            "cases": [asdict(r) for r in self.results],
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n", encoding="utf-8")

    def lines(self) -> list[str]:
        out = []
        mark = {PASSED: "PASS", FAILED: "FAIL", SKIPPED: "SKIP"}
        for r in self.results:
            line = f"{mark[r.outcome]} {r.name}"
            if r.reason:
                line += f": {r.reason}"
            out.append(line)
        t = self.totals()
        out.append("")
        out.append(f"claimed features: {', '.join(self.claimed) if self.claimed else '(none)'}")
        out.append(f"cases: {t.passed} passed, {t.failed} failed, {t.skipped} skipped")
        out.append("profiles:")
        out += _table(self.by_profile())
        out.append("features:")
        out += _table(self.by_feature())
        for p in self.problems:
            out.append(f"harness problem: {p}")
        return out


def _table(rows: Mapping[str, Totals]) -> list[str]:
    width = max((len(k) for k in rows), default=0)
    return [
        f"  {k:<{width}}  {v.passed:3d} passed {v.failed:3d} failed {v.skipped:3d} skipped"
        for k, v in rows.items()
    ]


def from_json(data: Mapping[str, Any]) -> Report:
    report = Report(tuple(data.get("claimed_features") or ()), source=data.get("source") or {})
    report.problems = list(data.get("problems") or ())
    for c in data.get("cases") or ():
        report.results.append(
            CaseResult(
                name=c["name"],
                outcome=c["outcome"],
                reason=c.get("reason", ""),
                features=tuple(c.get("features") or ()),
                seconds=float(c.get("seconds") or 0),
                provisional=bool(c.get("provisional")),
            )
        )
    return report


def missing_features(required: Sequence[str], claimed: Iterable[str]) -> list[str]:
    have = set(claimed)
    return sorted({f for f in required if f not in have})
