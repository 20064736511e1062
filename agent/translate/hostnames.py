"""Hostname matching and intersection, as the Gateway API defines them.

"Hostnames that are prefixed with a wildcard label (`*.`) are interpreted as a
suffix match. That means that a match for `*.example.com` would match both
`test.example.com`, and `foo.test.example.com`, but not `example.com`."
"""

from __future__ import annotations


def wildcard_matches(pattern: str, hostname: str) -> bool:
    """Whether `hostname` (exact or wildcard) falls inside wildcard `pattern` ("*.suffix")."""
    suffix = pattern[1:]  # ".suffix"
    if hostname.startswith("*."):
        # "*.foo.example.com" is inside "*.example.com"; "*.example.com" is inside itself.
        return hostname == pattern or hostname[1:].endswith(suffix)
    return hostname.endswith(suffix) and len(hostname) > len(suffix)


def intersect(listener: str | None, route: str) -> str | None:
    """The hostname a route hostname serves on a listener, or None if they do not meet.

    The more specific of the two is the result: "*.example.com" on a listener and
    "foo.example.com" on a route gives "foo.example.com", and the other way round.
    """
    if not listener:
        return route
    if listener == route:
        return route
    if listener.startswith("*.") and wildcard_matches(listener, route):
        return route
    if route.startswith("*.") and wildcard_matches(route, listener):
        return listener
    return None


def route_hostnames(listener: str | None, route: list[str]) -> list[str] | None:
    """Hostnames a route serves on a listener ("" = any); None if the route does not match it.

    "If both the Listener and HTTPRoute have specified hostnames, and none match
    with the criteria above, then the HTTPRoute is not accepted."
    """
    if not route:
        return [listener or ""]
    out: list[str] = []
    for h in route:
        got = intersect(listener, h)
        if got is not None and got not in out:
            out.append(got)
    return out or None


def specificity(hostname: str) -> tuple[int, int, str]:
    """Sort key, most specific first: exact names, then longer wildcards, then "" (any)."""
    if not hostname:
        return (2, 0, "")
    if hostname.startswith("*."):
        return (1, -hostname.count("."), hostname)
    return (0, 0, hostname)
