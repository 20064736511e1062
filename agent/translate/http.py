"""HTTPRoute rules compiled to NodeConfig rules, and the spec's match precedence.

Match precedence (HTTPRoute spec, "rules"): "Across all rules specified on
applicable Routes, precedence must be given to the match having:
1. "Exact" path match. 2. "Prefix" path match with largest number of characters.
3. Method match. 4. Largest number of header matches. 5. Largest number of query
param matches. If ties exist across multiple Routes, matching precedence MUST be
determined in order of the following criteria, continuing on ties: The oldest
Route based on creation timestamp. The Route appearing first in alphabetical
order by "{namespace}/{name}". If ties still exist within an HTTPRoute, matching
precedence MUST be granted to the FIRST matching rule (in list order)".
RegularExpression paths rank after prefixes of the same length (implementation-specific).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.model import HTTPRoute
from agent.model.routes import HeaderModifier as SpecHeaderModifier
from agent.model.routes import HTTPPathModifier, HTTPRouteFilter, HTTPRouteRule, parse_duration
from agent.nodeconfig import (
    CORS,
    Backend,
    Filters,
    HeaderModifier,
    HTTPMatch,
    HTTPRule,
    Mirror,
    PathModifier,
    Redirect,
    Ref,
    Retry,
    URLRewrite,
)
from agent.translate.backends import HTTP_APP_PROTOCOLS, BackendProblem, resolve_backend
from agent.translate.conditions import Reason
from agent.translate.context import Context

# Filter types nodegate implements on HTTPRoute rules and backendRefs.
SUPPORTED_FILTERS = frozenset(
    {
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestRedirect",
        "URLRewrite",
        "RequestMirror",
        "CORS",
    }
)

BackendDecorator = Callable[[Backend], Backend]


@dataclass
class CompiledRoute:
    """An HTTPRoute's rules, ready for any listener it attaches to."""

    route: HTTPRoute
    rules: list[HTTPRule] = field(default_factory=list)
    problems: list[BackendProblem] = field(
        default_factory=list
    )  # ResolvedRefs=False, first one reported
    unsupported: list[str] = field(default_factory=list)  # Accepted=False UnsupportedValue
    backends_used: list[Backend] = field(default_factory=list)


def compile_http_route(ctx: Context, route: HTTPRoute, decorate: BackendDecorator) -> CompiledRoute:
    out = CompiledRoute(route=route)
    for index, rule in enumerate(route.spec.rules):
        out.rules.append(_compile_rule(ctx, route, index, rule, decorate, out))
    return out


def _compile_rule(
    ctx: Context,
    route: HTTPRoute,
    index: int,
    rule: HTTPRouteRule,
    decorate: BackendDecorator,
    out: CompiledRoute,
) -> HTTPRule:
    ref = Ref(
        kind="HTTPRoute",
        namespace=route.namespace,
        name=route.name,
        section=rule.name or str(index),
    )
    filters = _filters(ctx, route, rule.filters, decorate, out)
    backends = []
    for b in rule.backend_refs:
        backend, problem = resolve_backend(
            ctx, b, b.weight, "HTTPRoute", route.namespace, HTTP_APP_PROTOCOLS
        )
        if problem is not None:
            out.problems.append(problem)
        else:
            backend = decorate(backend)
        if b.filters:
            backend = backend.model_copy(
                update={"filters": _filters(ctx, route, b.filters, decorate, out)}
            )
        backends.append(backend)
        out.backends_used.append(backend)
    timeouts = rule.timeouts
    retry = None
    if rule.retry is not None and rule.retry.attempts:
        retry = Retry(
            attempts=rule.retry.attempts,
            codes=tuple(rule.retry.codes),
            backoff=parse_duration(rule.retry.backoff) if rule.retry.backoff else None,
        )
    return HTTPRule(
        ref=ref,
        filters=filters,
        backends=tuple(backends),
        request_timeout=_timeout(timeouts.request if timeouts else None),
        backend_timeout=_timeout(timeouts.backend_request if timeouts else None),
        retry=retry,
    )


def _timeout(value: str | None) -> float | None:
    """A zero duration means "no timeout" in the spec."""
    if value is None:
        return None
    seconds = parse_duration(value)
    return seconds or None


def _header_modifier(m: SpecHeaderModifier) -> HeaderModifier:
    return HeaderModifier(
        set=tuple((h.name, h.value) for h in m.set),
        add=tuple((h.name, h.value) for h in m.add),
        remove=tuple(m.remove),
    )


def _path_modifier(m: HTTPPathModifier | None) -> PathModifier | None:
    if m is None:
        return None
    value = m.replace_full_path if m.type == "ReplaceFullPath" else m.replace_prefix_match
    return PathModifier(type=m.type, value=value or "")


def _filters(
    ctx: Context,
    route: HTTPRoute,
    filters: list[HTTPRouteFilter],
    decorate: BackendDecorator,
    out: CompiledRoute,
) -> Filters:
    values: dict[str, object] = {}
    mirrors: list[Mirror] = []
    for f in filters:
        if f.type not in SUPPORTED_FILTERS:
            if f.type == "ExtensionRef" and f.extension_ref is not None:
                e = f.extension_ref
                out.problems.append(
                    BackendProblem(
                        Reason.INVALID_KIND,
                        f"ExtensionRef filter {e.group}/{e.kind} {e.name}: nodegate has no "
                        "extension filters",
                    )
                )
            else:
                out.unsupported.append(f"filter type {f.type} is not supported")
            continue
        if f.type == "RequestHeaderModifier" and f.request_header_modifier is not None:
            values["request_headers"] = _header_modifier(f.request_header_modifier)
        elif f.type == "ResponseHeaderModifier" and f.response_header_modifier is not None:
            values["response_headers"] = _header_modifier(f.response_header_modifier)
        elif f.type == "RequestRedirect" and f.request_redirect is not None:
            r = f.request_redirect
            values["redirect"] = Redirect(
                scheme=r.scheme,
                hostname=r.hostname,
                path=_path_modifier(r.path),
                port=r.port,
                status_code=r.status_code,
            )
        elif f.type == "URLRewrite" and f.url_rewrite is not None:
            values["rewrite"] = URLRewrite(
                hostname=f.url_rewrite.hostname, path=_path_modifier(f.url_rewrite.path)
            )
        elif f.type == "RequestMirror" and f.request_mirror is not None:
            m = f.request_mirror
            backend, problem = resolve_backend(
                ctx, m.backend_ref, 1, "HTTPRoute", route.namespace, HTTP_APP_PROTOCOLS
            )
            if problem is not None:
                out.problems.append(problem)
                continue
            num, den = 100, 100
            if m.fraction is not None:
                num, den = m.fraction.numerator, m.fraction.denominator
            elif m.percent is not None:
                num = m.percent
            mirrors.append(Mirror(backend=decorate(backend), numerator=num, denominator=den))
        elif f.type == "CORS" and f.cors is not None:
            c = f.cors
            values["cors"] = CORS(
                allow_origins=tuple(c.allow_origins),
                allow_credentials=bool(c.allow_credentials),
                allow_methods=tuple(c.allow_methods),
                allow_headers=tuple(c.allow_headers),
                expose_headers=tuple(c.expose_headers),
                max_age=c.max_age,
            )
        else:
            out.unsupported.append(
                f"filter {f.type} is missing its {f.type[0].lower() + f.type[1:]} field"
            )
    return Filters(mirrors=tuple(mirrors), **values)  # type: ignore[arg-type]


def match_precedence(
    match: HTTPMatch, route: HTTPRoute, rule: int, index: int
) -> tuple[object, ...]:
    """Sort key: lower sorts first (see module doc)."""
    path_rank = {"Exact": 0, "PathPrefix": 1, "RegularExpression": 2}[match.path_type]
    return (
        0 if path_rank == 0 else 1,
        -len(match.path) if path_rank else 0,
        path_rank,
        0 if match.method else 1,
        -len(match.headers),
        -len(match.query_params),
        route.metadata.creation_timestamp or "",
        f"{route.namespace}/{route.name}",
        rule,
        index,
    )


def matches_of(rule: HTTPRouteRule) -> list[HTTPMatch]:
    return [
        HTTPMatch(
            path_type=m.path.type,
            path=m.path.value,
            headers=tuple((h.type, h.name, h.value) for h in m.headers),
            query_params=tuple((q.type, q.name, q.value) for q in m.query_params),
            method=m.method,
        )
        for m in rule.matches
    ]
