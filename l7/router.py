"""Compiled route tables: from an HTTPPort of the NodeConfig to "which rule serves this request".

Pure: no I/O, no clocks. A `PortTable` is built once per NodeConfig and port and
never changes; the server swaps whole tables, so a request keeps the table it
started with.

Order is the NodeConfig's: listeners and virtual hosts come most specific
hostname first, entries in the Gateway API's match precedence. The first
match wins at every level, and the router never re-sorts.

Hostname rules (Gateway spec, Listener.hostname): "Hostnames that are prefixed
with a wildcard label (`*.`) are interpreted as a suffix match. That means that
a match for `*.example.com` would match both `test.example.com`, and
`foo.test.example.com`, but not `example.com`."
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import parse_qsl

from agent.nodeconfig import (
    Backend,
    Filters,
    HeaderModifier,
    HTTPListener,
    HTTPMatch,
    HTTPPort,
    HTTPRule,
    Ref,
    VirtualHost,
)
from l7.filters import CompiledModifier, compile_modifier


class RequestHead(NamedTuple):
    """What routing looks at. Header names are lower case bytes (as h11 gives them).
    A NamedTuple: immutable, and built once per request at a tuple's cost."""

    method: str
    path: str  # the raw path, without the query
    query: str  # the raw query, without "?"
    host: str  # lower case, without port
    headers: Sequence[tuple[bytes, bytes]] = ()


def split_target(target: str) -> tuple[str, str]:
    path, _, query = target.partition("?")
    return path, query


def host_of(authority: str) -> str:
    """The host part of a Host header, lower case, without the port."""
    a = authority.strip().lower()
    if a.startswith("["):  # IPv6 literal
        end = a.find("]")
        return a[: end + 1] if end > 0 else a
    host, _, _ = a.partition(":")
    return host.rstrip(".")


def hostname_matches(pattern: str, host: str) -> bool:
    """Whether a listener or route hostname ("" = any, "*.suffix", exact) covers `host`."""
    if not pattern:
        return True
    if pattern.startswith("*."):
        # "*.example.com" matches "foo.example.com" and "a.b.example.com", not "example.com".
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def prefix_matches(prefix: str, path: str) -> bool:
    """PathPrefix: "matches full path elements ... When specified, a trailing `/` is ignored.
    For example, the paths `/abc`, `/abc/`, and `/abc/def` would all match the prefix `/abc`,
    but the path `/abcd` would not."
    """
    p = prefix.rstrip("/")
    if not p:
        return True
    if not path.startswith(p):
        return False
    return len(path) == len(p) or path[len(p)] == "/"


class Matcher:
    """One HTTPRouteMatch, compiled. Every condition in a match must hold (AND)."""

    __slots__ = ("headers", "match", "method", "path", "path_re", "path_type", "queries")

    def __init__(self, match: HTTPMatch) -> None:
        self.match = match
        self.path_type = match.path_type
        self.path = match.path
        self.path_re = re.compile(match.path) if match.path_type == "RegularExpression" else None
        self.method = match.method
        # "If multiple entries specify equivalent header names, only the first entry with an
        # equivalent name MUST be considered for a match." Header names are case-insensitive.
        seen: set[str] = set()
        headers: list[tuple[str, str | None, re.Pattern[str] | None]] = []
        for kind, name, value in match.headers:
            key = name.lower()
            if key in seen:
                continue
            seen.add(key)
            if kind == "Exact":
                headers.append((key, value, None))
            else:
                headers.append((key, None, re.compile(value)))
        self.headers = tuple(headers)
        # "If multiple entries specify equivalent query param names, only the first entry with
        # an equivalent name MUST be considered for a match." Query names are case-sensitive.
        qseen: set[str] = set()
        queries: list[tuple[str, str | None, re.Pattern[str] | None]] = []
        for kind, name, value in match.query_params:
            if name in qseen:
                continue
            qseen.add(name)
            if kind == "Exact":
                queries.append((name, value, None))
            else:
                queries.append((name, None, re.compile(value)))
        self.queries = tuple(queries)

    def matches(self, req: RequestHead) -> bool:
        if self.path_type == "PathPrefix":
            if not prefix_matches(self.path, req.path):
                return False
        elif self.path_type == "Exact":
            if req.path != self.path:
                return False
        elif self.path_re is None or self.path_re.fullmatch(req.path) is None:
            return False
        if self.method is not None and req.method != self.method:
            return False
        if self.headers:
            values: dict[str, list[str]] = {}
            for raw_name, raw_value in req.headers:
                values.setdefault(raw_name.decode("latin-1"), []).append(
                    raw_value.decode("latin-1")
                )
            for name, exact, pattern in self.headers:
                got = values.get(name)
                if got is None:
                    return False
                # Several lines of one header are one comma-joined value (RFC 9110, 5.3).
                joined = ",".join(got)
                if exact is not None:
                    if joined != exact:
                        return False
                elif pattern is None or pattern.fullmatch(joined) is None:
                    return False
        if self.queries:
            params: dict[str, str] = {}
            for name, value in parse_qsl(req.query, keep_blank_values=True):
                # The first occurrence of a repeated parameter is the one matched.
                params.setdefault(name, value)
            for name, exact, pattern in self.queries:
                got_value = params.get(name)
                if got_value is None:
                    return False
                if exact is not None:
                    if got_value != exact:
                        return False
                elif pattern is None or pattern.fullmatch(got_value) is None:
                    return False
        return True


def ref_label(ref: Ref) -> str:
    """The low-cardinality name stats and logs use for an object: "namespace/name"."""
    return f"{ref.namespace}/{ref.name}"


class Rule:
    """An HTTPRule with its weighted backend choice and header work precomputed."""

    __slots__ = (
        "backend_mods",
        "backends",
        "cumulative",
        "label",
        "request_mod",
        "response_mods",
        "rule",
        "total",
    )

    def __init__(self, rule: HTTPRule) -> None:
        self.rule = rule
        self.label = ref_label(rule.ref)
        self.request_mod = compile_modifier(rule.filters.request_headers)
        # ResponseHeaderModifiers in the order they apply: the rule's, then the backendRef's.
        mine = compile_modifier(rule.filters.response_headers)
        self.response_mods: tuple[CompiledModifier, ...] = (mine,) if mine is not None else ()
        # id(Backend) with filters -> (its RequestHeaderModifier, the response modifiers).
        self.backend_mods: dict[
            int, tuple[CompiledModifier | None, tuple[CompiledModifier, ...]]
        ] = {}
        for b in rule.backends:
            if b.filters is not None:
                theirs = compile_modifier(b.filters.response_headers)
                self.backend_mods[id(b)] = (
                    compile_modifier(b.filters.request_headers),
                    self.response_mods + ((theirs,) if theirs is not None else ()),
                )
        # "a weight of 0 receives nothing new": zero-weight backends are left out of the draw.
        self.backends = tuple(b for b in rule.backends if b.weight > 0)
        cumulative: list[int] = []
        total = 0
        for b in self.backends:
            total += b.weight
            cumulative.append(total)
        self.cumulative = cumulative
        self.total = total

    def pick(self, draw: float) -> Backend | None:
        """The backend for a uniform draw in [0, 1); None when the rule has nowhere to send."""
        if not self.total:
            return None
        if len(self.backends) == 1:
            return self.backends[0]
        i = bisect.bisect_right(self.cumulative, draw * self.total)
        return self.backends[min(i, len(self.backends) - 1)]


# Below this many entries a virtual host is scanned in order; above it, indexed.
INDEX_FROM = 6


def _path_keys(path: str) -> list[str]:
    """The stripped PathPrefix values that can match `path`: the path itself and every
    prefix ending before a "/" ("" for a prefix of "/")."""
    keys = [path]
    i = path.find("/")
    while i >= 0:
        keys.append(path[:i])
        i = path.find("/", i + 1)
    return keys


@dataclass(slots=True)
class VHostTable:
    vhost: VirtualHost
    rules: tuple[Rule, ...]
    entries: tuple[tuple[Matcher, int], ...]
    # The index (used from INDEX_FROM entries): positions in `entries` by Exact path, by
    # stripped PathPrefix value, and of the rest (RegularExpression), each ascending.
    exact: dict[str, list[int]] = field(default_factory=dict)
    prefix: dict[str, list[int]] = field(default_factory=dict)
    other: list[int] = field(default_factory=list)

    def route(self, req: RequestHead) -> tuple[Rule, HTTPMatch] | None:
        """The first entry, in precedence order, that matches. With the index only the
        entries whose path can match are tried, in the same order: O(path depth) lookups
        and the candidates, not every route of the host."""
        entries = self.entries
        if len(entries) < INDEX_FROM:
            for matcher, index in entries:
                if matcher.matches(req):
                    return self.rules[index], matcher.match
            return None
        path = req.path
        cands: list[int] = []
        got = self.exact.get(path)
        if got:
            cands += got
        if self.prefix:
            for key in _path_keys(path):
                got = self.prefix.get(key)
                if got:
                    cands += got
        if self.other:
            cands += self.other
        cands.sort()
        for pos in cands:
            matcher, index = entries[pos]
            if matcher.matches(req):
                return self.rules[index], matcher.match
        return None


def compile_vhost(vhost: VirtualHost) -> VHostTable:
    table = VHostTable(
        vhost=vhost,
        rules=tuple(Rule(r) for r in vhost.rules),
        entries=tuple((Matcher(e.match), e.rule) for e in vhost.entries),
    )
    for pos, (matcher, _) in enumerate(table.entries):
        if matcher.path_type == "Exact":
            table.exact.setdefault(matcher.path, []).append(pos)
        elif matcher.path_type == "PathPrefix":
            table.prefix.setdefault(matcher.path.rstrip("/"), []).append(pos)
        else:
            table.other.append(pos)
    return table


def _first_wildcard(host: str, wildcards: dict[str, int]) -> int | None:
    """The lowest position among the "*.suffix" patterns (keyed by ".suffix") covering
    `host`: one dict lookup per label of the host."""
    best: int | None = None
    i = host.find(".")
    while i > 0:  # "*.example.com" needs at least one character before ".example.com"
        pos = wildcards.get(host[i:])
        if pos is not None and (best is None or pos < best):
            best = pos
        i = host.find(".", i + 1)
    return best


@dataclass(slots=True)
class ListenerTable:
    listener: HTTPListener
    exact: dict[str, VHostTable] = field(default_factory=dict)
    wildcards: list[tuple[str, VHostTable]] = field(default_factory=list)  # most specific first
    any_host: VHostTable | None = None
    by_suffix: dict[str, int] = field(default_factory=dict)  # ".suffix" -> index in wildcards
    gateway_label: str = ""  # "namespace/name" of the Gateway, for stats and logs
    listener_label: str = ""  # the listener's name

    def vhost_for(self, host: str) -> VHostTable | None:
        """The most specific virtual host covering `host`; its routes alone are considered."""
        got = self.exact.get(host)
        if got is not None:
            return got
        if self.by_suffix:
            pos = _first_wildcard(host, self.by_suffix)
            if pos is not None:
                return self.wildcards[pos][1]
        return self.any_host


def compile_listener(listener: HTTPListener) -> ListenerTable:
    table = ListenerTable(
        listener=listener,
        gateway_label=ref_label(listener.gateway),
        listener_label=listener.ref.section,
    )
    for vhost in listener.virtual_hosts:
        compiled = compile_vhost(vhost)
        name = vhost.hostname.lower()
        if not name:
            if table.any_host is None:
                table.any_host = compiled
        elif name.startswith("*."):
            table.by_suffix.setdefault(name[1:], len(table.wildcards))
            table.wildcards.append((name, compiled))
        else:
            table.exact.setdefault(name, compiled)
    return table


class Routed(NamedTuple):
    """A request's place in the table: the rule and the match that selected it."""

    listener: ListenerTable
    rule: Rule
    match: HTTPMatch


class Refused(NamedTuple):
    status: int  # 404 (no route) or 421 (misdirected)
    listener: ListenerTable | None = None


@dataclass(slots=True)
class PortTable:
    """The compiled routes of one HTTPPort."""

    port: HTTPPort
    listeners: tuple[ListenerTable, ...]
    # Listener positions by exact hostname, by ".suffix" of a wildcard, and the first
    # listener for any host: `listener_for` without a scan of the listeners.
    exact: dict[str, int] = field(default_factory=dict)
    by_suffix: dict[str, int] = field(default_factory=dict)
    any_host: int | None = None

    def __post_init__(self) -> None:
        for pos, lt in enumerate(self.listeners):
            name = lt.listener.hostname.lower()
            if not name:
                if self.any_host is None:
                    self.any_host = pos
            elif name.startswith("*."):
                self.by_suffix.setdefault(name[1:], pos)
            else:
                self.exact.setdefault(name, pos)

    def listener_for(self, host: str) -> ListenerTable | None:
        """The first listener, in the NodeConfig's (most specific first) order, whose hostname
        covers `host` (SNI or Host)."""
        best = self.exact.get(host)
        if self.by_suffix:
            pos = _first_wildcard(host, self.by_suffix)
            if pos is not None and (best is None or pos < best):
                best = pos
        if self.any_host is not None and (best is None or self.any_host < best):
            best = self.any_host
        return self.listeners[best] if best is not None else None

    def tls_listener(self, sni: str) -> ListenerTable | None:
        """The listener whose certificate (and client validation) a handshake uses: the one
        SNI names if it has certificates, else the first listener that has some."""
        lt = self.listener_for(sni) if sni else None
        if lt is None or not lt.listener.certificates:
            lt = next((x for x in self.listeners if x.listener.certificates), None)
        return lt

    def route(self, req: RequestHead, sni: str | None = None) -> Routed | Refused:
        listener = self.listener_for(req.host)
        if sni is not None and self.port.tls:
            # Gateway spec, Listener.hostname: "If the current Listener (selected by SNI matching
            # during ClientHello) does not match the Host: If another Listener does match the
            # Host, the Gateway SHOULD return a 421. If no other Listener matches the Host, the
            # Gateway MUST return a 404." and "If another Listener has an exact match or more
            # specific wildcard entry, the Gateway SHOULD return a 421."
            by_sni = self.listener_for(sni.lower())
            if listener is not None and by_sni is not None and listener is not by_sni:
                return Refused(421, listener)
        if listener is None:
            return Refused(404)
        vhost = listener.vhost_for(req.host)
        if vhost is None:
            return Refused(404, listener)
        got = vhost.route(req)
        if got is None:
            return Refused(404, listener)
        return Routed(listener, got[0], got[1])


# RFC 9110, 5.1 (field-name = token) and 5.5: "Field values containing CR, LF, or NUL
# characters are invalid and dangerous, due to the varying ways that implementations might
# parse and interpret those characters". Configured fields are checked once, here, so the
# proxy can hand them to h11 unchecked per request.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\x00]")


def check_header_modifier(mod: HeaderModifier | None, where: Ref) -> None:
    if mod is None:
        return
    for name, value in (*mod.set, *mod.add):
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise ValueError(f"{where}: header {name!r}: {value!r} is not a valid HTTP field")
    for name in mod.remove:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"{where}: header name {name!r} is not a valid HTTP field name")


def check_filters(filters: Filters | None, where: Ref) -> None:
    """Refuse configuration that would put an invalid field or target on the wire."""
    if filters is None:
        return
    check_header_modifier(filters.request_headers, where)
    check_header_modifier(filters.response_headers, where)
    texts: list[str] = []
    if filters.rewrite is not None:
        texts += [
            filters.rewrite.hostname or "",
            filters.rewrite.path.value if filters.rewrite.path else "",
        ]
    if filters.redirect is not None:
        r = filters.redirect
        texts += [r.hostname or "", r.scheme or "", r.path.value if r.path else ""]
    for t in texts:
        if any(c in t for c in " \r\n\x00\t"):
            raise ValueError(f"{where}: {t!r} cannot be put in a request or Location")


def compile_port(port: HTTPPort) -> PortTable:
    for li in port.listeners:
        for vh in li.virtual_hosts:
            for r in vh.rules:
                check_filters(r.filters, r.ref)
                for b in r.backends:
                    check_filters(b.filters, r.ref)
    return PortTable(port=port, listeners=tuple(compile_listener(li) for li in port.listeners))
