"""HTTPRoute filters and proxy header rules as pure functions over header lists.

Headers are lists of (name, value) byte pairs, names lower case as h11 gives
them; a filter returns a new list and never mutates its input. Nothing here
does I/O, so every rule is table-tested (tests/l7/test_filters.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.nodeconfig import CORS, HeaderModifier, HTTPMatch, PathModifier, Redirect

Headers = list[tuple[bytes, bytes]]

# RFC 9110, 7.6.1: "Connection" and the fields it names are hop-by-hop, as are the fields
# below that RFC 7230 and RFC 2616 (13.5.1) list; "a proxy or gateway MUST ... remove or
# replace any received connection options before forwarding the message".
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


def modify_headers(headers: Sequence[tuple[bytes, bytes]], mod: HeaderModifier) -> Headers:
    """HTTPHeaderFilter: set overwrites, add appends a value, remove drops every value.

    "Set overwrites the request with the given header (name, value) before the action."
    "Add adds the given header(s) (name, value) to the request before the action. It
    appends to any existing values associated with the header name."
    "Remove the given header(s) from the HTTP request before the action. The value of
    Remove is a list of HTTP header names. Note that the header names are case-insensitive."
    """
    out = list(headers)
    for name, value in mod.set:
        key = name.lower().encode("latin-1")
        out = [(n, v) for n, v in out if n != key]
        out.append((key, value.encode("latin-1")))
    for name, value in mod.add:
        out.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    if mod.remove:
        gone = {n.lower().encode("latin-1") for n in mod.remove}
        out = [(n, v) for n, v in out if n not in gone]
    return out


def replace_path(mod: PathModifier, path: str, match: HTTPMatch) -> str:
    """HTTPPathModifier. ReplacePrefixMatch: "a request to "/foo/bar" with a prefix match of
    "/foo" and a ReplacePrefixMatch of "/xyz" would be modified to "/xyz/bar". ... This matches
    full path elements ... When specified, a trailing `/` is ignored."
    """
    if mod.type == "ReplaceFullPath":
        return mod.value or "/"
    prefix = match.path.rstrip("/") if match.path_type == "PathPrefix" else ""
    rest = path[len(prefix) :] if path.startswith(prefix) else path
    new = mod.value.rstrip("/") + rest
    if not new.startswith("/"):
        new = "/" + new
    return new


def redirect_location(
    r: Redirect,
    *,
    scheme: str,
    host: str,
    listener_port: int,
    path: str,
    query: str,
    match: HTTPMatch,
) -> str:
    """The Location of a RequestRedirect (HTTPRequestRedirectFilter)."""
    new_scheme = r.scheme or scheme
    new_host = r.hostname or host
    if r.port is not None:
        port = r.port
    elif r.scheme:
        # "If redirect scheme is not-empty, the redirect port MUST be the well-known port
        # associated with the redirect scheme. Specifically "http" to port 80 and "https" to
        # port 443. If the redirect scheme does not have a well-known port, the listener port
        # of the Gateway SHOULD be used."
        port = {"http": 80, "https": 443}.get(r.scheme, listener_port)
    else:
        # "If redirect scheme is empty, the redirect port MUST be the Gateway Listener port."
        port = listener_port
    # "Implementations SHOULD NOT add the port number in the 'Location' header in the
    # following cases: A Location header that will use HTTP ... and use port 80. A Location
    # header that will use HTTPS ... and use port 443."
    default = (new_scheme == "http" and port == 80) or (new_scheme == "https" and port == 443)
    authority = new_host if default else f"{new_host}:{port}"
    new_path = replace_path(r.path, path, match) if r.path is not None else path
    tail = f"?{query}" if query else ""
    return f"{new_scheme}://{authority}{new_path}{tail}"


# --- CORS (HTTPCORSFilter) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OriginPattern:
    scheme: str  # "" = any (the lone "*")
    host: re.Pattern[str]
    port: int | None  # None = any


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "https": 443}.get(scheme)


def compile_origin(value: str) -> OriginPattern:
    """An allowOrigins entry. "`*` is a greedy match to the _left_, including any number of
    DNS labels to the left of its position." "if not included, port `80` is assumed for
    `http` scheme origins, and port `443` is assumed for `https` origins."
    """
    if value == "*":
        return OriginPattern("", re.compile(r".*"), None)
    scheme, _, rest = value.partition("://")
    host, _, port = rest.partition(":")
    host_re = re.compile(re.escape(host.lower()).replace(r"\*", ".*"))
    return OriginPattern(
        scheme.lower(), host_re, int(port) if port else _default_port(scheme.lower())
    )


def origin_allowed(patterns: Iterable[OriginPattern], origin: str) -> bool:
    scheme, sep, rest = origin.partition("://")
    if not sep:
        return False
    scheme = scheme.lower()
    host, _, port_text = rest.partition(":")
    try:
        port = int(port_text) if port_text else _default_port(scheme)
    except ValueError:
        return False
    host = host.lower()
    for p in patterns:
        if not p.scheme:
            return True
        if p.scheme == scheme and p.port == port and p.host.fullmatch(host):
            return True
    return False


class CORSPolicy:
    """A CORS filter, compiled."""

    __slots__ = ("cors", "origins")

    def __init__(self, cors: CORS) -> None:
        self.cors = cors
        self.origins = tuple(compile_origin(o) for o in cors.allow_origins)

    def allows(self, origin: str) -> bool:
        return origin_allowed(self.origins, origin)

    def preflight_headers(self, origin: str, method: str, request_headers: str) -> Headers:
        """Headers of the gateway's own answer to an allowed preflight."""
        c = self.cors
        # "the gateway must return the given `Origin` and sets value of the header
        # `Access-Control-Allow-Origin` same as the `Origin` header provided by the client."
        out: Headers = [(b"access-control-allow-origin", origin.encode("latin-1"))]
        if c.allow_credentials:
            out.append((b"access-control-allow-credentials", b"true"))
        if method and c.allow_methods:
            # "If the configuration contains the wildcard `*` in `allowMethods` and
            # `allowCredentials` is set to `true`, the gateway must not return `*` ... it must
            # return a single HTTP method matching the value of the
            # `Access-Control-Request-Method` request header." Echoing is valid either way.
            # "If the `Access-Control-Request-Method` header is not present in the request,
            # the gateway must omit the `Access-Control-Allow-Methods` response header."
            value = method if "*" in c.allow_methods else ", ".join(c.allow_methods)
            out.append((b"access-control-allow-methods", value.encode("latin-1")))
        if c.allow_headers:
            if "*" in c.allow_headers:
                if request_headers:
                    out.append((b"access-control-allow-headers", request_headers.encode("latin-1")))
            else:
                out.append(
                    (b"access-control-allow-headers", ", ".join(c.allow_headers).encode("latin-1"))
                )
        if c.expose_headers:
            out.append(
                (b"access-control-expose-headers", ", ".join(c.expose_headers).encode("latin-1"))
            )
        out.append((b"access-control-max-age", str(c.max_age).encode()))
        out.append((b"vary", b"Origin"))
        return out

    def response_headers(self, origin: str) -> Headers:
        """Headers added to a proxied response for an allowed cross-origin request."""
        c = self.cors
        out: Headers = [(b"access-control-allow-origin", origin.encode("latin-1"))]
        if c.allow_credentials:
            out.append((b"access-control-allow-credentials", b"true"))
        if c.expose_headers:
            out.append(
                (b"access-control-expose-headers", ", ".join(c.expose_headers).encode("latin-1"))
            )
        out.append((b"vary", b"Origin"))
        return out


def is_preflight(method: str, headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """A CORS preflight: OPTIONS with Origin and Access-Control-Request-Method (Fetch, 3.2.2)."""
    if method != "OPTIONS":
        return False
    names = {n for n, _ in headers}
    return b"origin" in names and b"access-control-request-method" in names


def header_value(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for n, v in headers:
        if n == name:
            return v
    return None


# --- proxy headers ------------------------------------------------------------------------


def connection_tokens(headers: Sequence[tuple[bytes, bytes]]) -> set[bytes]:
    out: set[bytes] = set()
    for n, v in headers:
        if n == b"connection":
            out.update(t.strip().lower() for t in v.split(b","))
    return out


def strip_hop_by_hop(headers: Sequence[tuple[bytes, bytes]], keep_upgrade: bool = False) -> Headers:
    """Drop hop-by-hop fields and those the Connection header names; Content-Length too, as
    the forwarded message is framed anew. With `keep_upgrade` a WebSocket handshake keeps
    `Upgrade` and says `Connection: upgrade` (RFC 9110, 7.8)."""
    named = connection_tokens(headers)
    out = [
        (n, v)
        for n, v in headers
        if n not in HOP_BY_HOP and n not in named and n != b"content-length"
    ]
    if keep_upgrade:
        for n, v in headers:
            if n == b"upgrade":
                out.append((n, v))
        out.append((b"connection", b"upgrade"))
    return out


def forwarded_headers(
    headers: Sequence[tuple[bytes, bytes]], client_ip: str, scheme: str, host: bytes
) -> Headers:
    """X-Forwarded-For gets the client appended; -Proto and -Host say what the client used."""
    prior = [v for n, v in headers if n == b"x-forwarded-for"]
    out = [
        (n, v)
        for n, v in headers
        if n not in (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host")
    ]
    chain = b", ".join([*prior, client_ip.encode("latin-1")])
    out.append((b"x-forwarded-for", chain))
    out.append((b"x-forwarded-proto", scheme.encode("latin-1")))
    out.append((b"x-forwarded-host", host))
    return out


# --- the hot path: the same rules in one pass, modifiers compiled once ----------------------


class CompiledModifier:
    """A HeaderModifier with names and values encoded once, at compile time.

    `apply(h)` equals `modify_headers(h, mod)`: every field named by a set or a remove
    goes, then what set and add leave after remove (`modify_headers([], mod)`) follows.
    """

    __slots__ = ("drop", "names", "tail")

    def __init__(self, mod: HeaderModifier) -> None:
        self.tail = tuple(modify_headers([], mod))
        self.drop = frozenset(
            [n.lower().encode("latin-1") for n, _ in mod.set]
            + [n.lower().encode("latin-1") for n in mod.remove]
        )
        self.names = self.drop | {n for n, _ in self.tail}  # every name it touches

    def apply(self, headers: Sequence[tuple[bytes, bytes]]) -> Headers:
        drop = self.drop
        out = [h for h in headers if h[0] not in drop] if drop else list(headers)
        out += self.tail
        return out


def compile_modifier(mod: HeaderModifier | None) -> CompiledModifier | None:
    return CompiledModifier(mod) if mod is not None else None


# What the gateway made of the client's certificate on a listener that validates them
# (frontend mTLS): "SUCCESS", "NONE" or "FAILED:<why>", and the certificate's SHA-256.
# A client cannot send these: they are dropped from every request.
CLIENT_VERIFY = b"x-forwarded-client-cert-verify"
CLIENT_CERT = b"x-forwarded-client-cert"

# Request fields the proxy drops or writes itself on the way to a backend.
_FORWARDED = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", CLIENT_VERIFY, CLIENT_CERT}
)
_REQUEST_OWN = HOP_BY_HOP | _FORWARDED | {b"content-length", b"host"}
# Connection tokens that name no field of their own.
STANDARD_TOKENS = frozenset({b"keep-alive", b"close", b"upgrade"})


def outgoing_request_headers(
    fields: Sequence[tuple[bytes, bytes, bytes]],
    mod: CompiledModifier | None,
    client_ip: bytes,
    scheme: bytes,
    host: bytes,
    extra: Headers | None = None,
) -> tuple[Headers, bool]:
    """The fields a request is forwarded with, and whether it is a WebSocket handshake.

    `fields` are h11's (raw name, lower-case name, value) triples. The result equals,
    in one pass: the rule's RequestHeaderModifier, then `strip_hop_by_hop` (keeping a
    WebSocket handshake's Upgrade), Host dropped, `forwarded_headers`, and `host`
    put first; then `extra` (the client-certificate fields), any copy the client sent
    dropped. A modifier that touches a field the proxy owns takes that composition
    literally."""
    if mod is not None and not mod.names.isdisjoint(_REQUEST_OWN):
        slow, ws = _outgoing_slow(fields, mod, client_ip, scheme, host)
        slow = [h for h in slow if h[0] not in (CLIENT_VERIFY, CLIENT_CERT)]
        return slow + (extra or []), ws
    kept: Headers = []
    prior: list[bytes] = []
    connection: list[bytes] = []
    upgrades: list[bytes] = []
    for _, name, value in fields:
        if name in _REQUEST_OWN:
            if name == b"x-forwarded-for":
                prior.append(value)
            elif name == b"connection":
                connection.append(value)
            elif name == b"upgrade":
                upgrades.append(value)
        else:
            kept.append((name, value))
    if mod is not None:
        kept = mod.apply(kept)
    ws = False
    if connection:
        tokens = {t.strip().lower() for v in connection for t in v.split(b",")}
        if not tokens <= STANDARD_TOKENS:
            kept = [h for h in kept if h[0] not in tokens]
        ws = (
            bool(upgrades)
            and upgrades[0].strip().lower() == b"websocket"
            and any(b"upgrade" in v.lower() for v in connection)
        )
    out: Headers = [(b"host", host), *kept]
    if ws:
        out += [(b"upgrade", v) for v in upgrades]
        out.append((b"connection", b"upgrade"))
    prior.append(client_ip)
    out.append((b"x-forwarded-for", b", ".join(prior)))
    out.append((b"x-forwarded-proto", scheme))
    out.append((b"x-forwarded-host", host))
    if extra:
        out += extra
    return out, ws


def _outgoing_slow(
    fields: Sequence[tuple[bytes, bytes, bytes]],
    mod: CompiledModifier,
    client_ip: bytes,
    scheme: bytes,
    host: bytes,
) -> tuple[Headers, bool]:
    headers = mod.apply([(n, v) for _, n, v in fields])
    ws = is_websocket(headers)
    out = strip_hop_by_hop(headers, keep_upgrade=ws)
    out = [(n, v) for n, v in out if n != b"host"]
    out = forwarded_headers(out, client_ip.decode("latin-1"), scheme.decode("latin-1"), host)
    out.insert(0, (b"host", host))
    return out, ws


def is_websocket(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    up = header_value(headers, b"upgrade")
    if up is None or up.strip().lower() != b"websocket":
        return False
    return any(n == b"connection" and b"upgrade" in v.lower() for n, v in headers)


def outgoing_response_headers(
    fields: Sequence[tuple[bytes, bytes, bytes]],
    mods: Sequence[CompiledModifier],
    cors: Headers,
) -> Headers:
    """The fields a backend's response is relayed with: hop-by-hop fields and those its
    Connection names dropped, Content-Length kept (the body is streamed in the framing it
    came in), then the ResponseHeaderModifiers in order, then CORS fields replacing any
    of the same name."""
    out: Headers = []
    length: bytes | None = None
    connection: list[bytes] = []
    for _, name, value in fields:
        if name in HOP_BY_HOP:
            if name == b"connection":
                connection.append(value)
        elif name == b"content-length":
            if length is None:
                length = value
        else:
            out.append((name, value))
    if connection:
        tokens = {t.strip().lower() for v in connection for t in v.split(b",")}
        if not tokens <= STANDARD_TOKENS:
            out = [h for h in out if h[0] not in tokens]
    if length is not None:
        out.append((b"content-length", length))
    for m in mods:
        out = m.apply(out)
    if cors:
        drop = {n for n, _ in cors}
        out = [h for h in out if h[0] not in drop]
        out += cors
    return out
