"""Filters and proxy header rules as data: headers and paths in, headers and paths out."""

from __future__ import annotations

import pytest

from agent.nodeconfig import CORS, HeaderModifier, HTTPMatch, PathModifier, Redirect
from l7.filters import (
    CompiledModifier,
    CORSPolicy,
    forwarded_headers,
    is_preflight,
    is_websocket,
    modify_headers,
    outgoing_request_headers,
    outgoing_response_headers,
    redirect_location,
    replace_path,
    strip_hop_by_hop,
)

H = list[tuple[bytes, bytes]]


@pytest.mark.parametrize(
    ("headers", "mod", "expected"),
    [
        ([(b"x-a", b"1")], HeaderModifier(set=(("X-A", "2"),)), [(b"x-a", b"2")]),
        ([(b"x-a", b"1"), (b"x-a", b"3")], HeaderModifier(set=(("x-a", "2"),)), [(b"x-a", b"2")]),
        ([(b"x-a", b"1")], HeaderModifier(add=(("X-A", "2"),)), [(b"x-a", b"1"), (b"x-a", b"2")]),
        ([], HeaderModifier(add=(("X-New", "v"),)), [(b"x-new", b"v")]),
        ([(b"x-a", b"1"), (b"x-b", b"2")], HeaderModifier(remove=("X-A",)), [(b"x-b", b"2")]),
        (
            [(b"x-a", b"1")],
            HeaderModifier(set=(("x-a", "s"),), add=(("x-b", "a"),), remove=("x-c",)),
            [(b"x-a", b"s"), (b"x-b", b"a")],
        ),
    ],
)
def test_modify_headers(headers: H, mod: HeaderModifier, expected: H) -> None:
    assert modify_headers(headers, mod) == expected


PREFIX = HTTPMatch(path_type="PathPrefix", path="/prefix/one")


@pytest.mark.parametrize(
    ("mod", "path", "m", "expected"),
    [
        (PathModifier(type="ReplaceFullPath", value="/one"), "/full/one/two", PREFIX, "/one"),
        (
            PathModifier(type="ReplacePrefixMatch", value="/one"),
            "/prefix/one/two",
            PREFIX,
            "/one/two",
        ),
        (
            PathModifier(type="ReplacePrefixMatch", value="/"),
            "/strip-prefix/three",
            HTTPMatch(path="/strip-prefix"),
            "/three",
        ),
        (
            PathModifier(type="ReplacePrefixMatch", value="/"),
            "/strip-prefix",
            HTTPMatch(path="/strip-prefix"),
            "/",
        ),
        (
            PathModifier(type="ReplacePrefixMatch", value="/xyz"),
            "/foo/",
            HTTPMatch(path="/foo"),
            "/xyz/",
        ),
        (
            PathModifier(type="ReplacePrefixMatch", value="/xyz/"),
            "/foo/bar",
            HTTPMatch(path="/foo/"),
            "/xyz/bar",
        ),
        (
            PathModifier(type="ReplacePrefixMatch", value="/prefix"),
            "/prefix/rewrite-path-and-modify-headers/one",
            HTTPMatch(path="/prefix/rewrite-path-and-modify-headers"),
            "/prefix/one",
        ),
    ],
)
def test_replace_path(mod: PathModifier, path: str, m: HTTPMatch, expected: str) -> None:
    assert replace_path(mod, path, m) == expected


@pytest.mark.parametrize(
    ("redirect", "scheme", "listener_port", "expected"),
    [
        (Redirect(), "http", 80, "http://gw.example/a/b?q=1"),
        (
            Redirect(hostname="example.org", status_code=301),
            "http",
            80,
            "http://example.org/a/b?q=1",
        ),
        (
            Redirect(scheme="https"),
            "http",
            80,
            "https://gw.example/a/b?q=1",
        ),  # well-known port, omitted
        (Redirect(scheme="https", port=8443), "http", 80, "https://gw.example:8443/a/b?q=1"),
        (Redirect(port=8080), "http", 80, "http://gw.example:8080/a/b?q=1"),
        (Redirect(), "http", 8080, "http://gw.example:8080/a/b?q=1"),  # empty scheme: listener port
        (Redirect(scheme="http"), "https", 8443, "http://gw.example/a/b?q=1"),
        (
            Redirect(path=PathModifier(type="ReplacePrefixMatch", value="/new")),
            "http",
            80,
            "http://gw.example/new/b?q=1",
        ),
        (
            Redirect(path=PathModifier(type="ReplaceFullPath", value="/full")),
            "http",
            80,
            "http://gw.example/full?q=1",
        ),
    ],
)
def test_redirect_location(
    redirect: Redirect, scheme: str, listener_port: int, expected: str
) -> None:
    got = redirect_location(
        redirect,
        scheme=scheme,
        host="gw.example",
        listener_port=listener_port,
        path="/a/b",
        query="q=1",
        match=HTTPMatch(path="/a"),
    )
    assert got == expected


CORS1 = CORSPolicy(
    CORS(
        allow_origins=("https://www.foo.com", "https://*.bar.com", "http://port.example:8080"),
        allow_credentials=True,
        allow_methods=("GET", "OPTIONS"),
        allow_headers=("x-header-1", "x-header-2"),
        expose_headers=("x-header-3", "x-header-4"),
        max_age=3600,
    )
)
WILD = CORSPolicy(
    CORS(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",), allow_credentials=True)
)


@pytest.mark.parametrize(
    ("policy", "origin", "expected"),
    [
        (CORS1, "https://www.foo.com", True),
        (CORS1, "https://www.foo.com:443", True),  # 443 is assumed for https
        (CORS1, "http://www.foo.com", False),
        (CORS1, "https://www.bar.com", True),
        (CORS1, "https://xpto.www.bar.com", True),  # "*" takes any number of labels
        (CORS1, "https://bar.com", False),
        (CORS1, "https://foobar.com", False),
        (CORS1, "http://port.example:8080", True),
        (CORS1, "http://port.example", False),
        (CORS1, "null", False),
        (WILD, "https://foobar.com:12345", True),
    ],
)
def test_cors_origins(policy: CORSPolicy, origin: str, expected: bool) -> None:
    assert policy.allows(origin) is expected


def test_cors_preflight_lists_configuration() -> None:
    got = dict(CORS1.preflight_headers("https://www.foo.com", "GET", "x-header-1"))
    assert got == {
        b"access-control-allow-origin": b"https://www.foo.com",
        b"access-control-allow-credentials": b"true",
        b"access-control-allow-methods": b"GET, OPTIONS",
        b"access-control-allow-headers": b"x-header-1, x-header-2",
        b"access-control-expose-headers": b"x-header-3, x-header-4",
        b"access-control-max-age": b"3600",
        b"vary": b"Origin",
    }


def test_cors_wildcards_with_credentials_echo_the_request() -> None:
    got = dict(WILD.preflight_headers("https://other.foo.com", "PUT", "x-header-1, x-header-2"))
    assert got[b"access-control-allow-origin"] == b"https://other.foo.com"
    assert got[b"access-control-allow-methods"] == b"PUT"
    assert got[b"access-control-allow-headers"] == b"x-header-1, x-header-2"
    assert got[b"access-control-max-age"] == b"5"


def test_cors_no_request_method_no_allow_methods() -> None:
    got = dict(CORS1.preflight_headers("https://www.foo.com", "", ""))
    assert b"access-control-allow-methods" not in got


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("OPTIONS", [(b"origin", b"o"), (b"access-control-request-method", b"GET")], True),
        ("OPTIONS", [(b"origin", b"o")], False),
        ("GET", [(b"origin", b"o"), (b"access-control-request-method", b"GET")], False),
    ],
)
def test_is_preflight(method: str, headers: H, expected: bool) -> None:
    assert is_preflight(method, headers) is expected


@pytest.mark.parametrize(
    ("headers", "keep_upgrade", "expected"),
    [
        (
            [
                (b"host", b"h"),
                (b"connection", b"keep-alive, x-private"),
                (b"x-private", b"1"),
                (b"keep-alive", b"5"),
                (b"te", b"trailers"),
                (b"x-ok", b"1"),
            ],
            False,
            [(b"host", b"h"), (b"x-ok", b"1")],
        ),
        (
            [
                (b"transfer-encoding", b"chunked"),
                (b"content-length", b"5"),
                (b"proxy-connection", b"x"),
            ],
            False,
            [],
        ),
        (
            [(b"upgrade", b"websocket"), (b"connection", b"Upgrade"), (b"sec-websocket-key", b"k")],
            True,
            [(b"sec-websocket-key", b"k"), (b"upgrade", b"websocket"), (b"connection", b"upgrade")],
        ),
    ],
)
def test_strip_hop_by_hop(headers: H, keep_upgrade: bool, expected: H) -> None:
    assert strip_hop_by_hop(headers, keep_upgrade) == expected


def test_forwarded_headers_append_the_client() -> None:
    got = forwarded_headers(
        [(b"x-forwarded-for", b"10.0.0.1"), (b"x-forwarded-proto", b"spoofed"), (b"a", b"b")],
        "127.0.0.9",
        "https",
        b"gw.example",
    )
    assert got == [
        (b"a", b"b"),
        (b"x-forwarded-for", b"10.0.0.1, 127.0.0.9"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"gw.example"),
    ]


# --- the one-pass hot path equals the rules composed -------------------------------------

MODS = [
    HeaderModifier(),
    HeaderModifier(set=(("X-A", "s"),), add=(("x-b", "a"),), remove=("x-c",)),
    HeaderModifier(set=(("x-a", "1"), ("x-b", "2"), ("x-a", "3")), add=(("x-a", "4"),)),
    HeaderModifier(add=(("x-c", "v"),), remove=("X-C",)),
    # Fields the proxy owns: the composition is taken literally.
    HeaderModifier(set=(("X-Forwarded-For", "1.2.3.4"),), remove=("host",)),
    HeaderModifier(add=(("Connection", "close"), ("x-private", "p"))),
]
REQUESTS: list[H] = [
    [(b"host", b"gw"), (b"x-a", b"0"), (b"x-c", b"1"), (b"x-c", b"2")],
    [
        (b"host", b"gw"),
        (b"connection", b"keep-alive, x-private"),
        (b"x-private", b"1"),
        (b"x-forwarded-for", b"10.0.0.1"),
        (b"x-forwarded-proto", b"spoofed"),
        (b"te", b"trailers"),
        (b"content-length", b"3"),
        (b"x-ok", b"1"),
    ],
    [
        (b"host", b"gw"),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", b"k"),
    ],
    [(b"upgrade", b"h2c"), (b"connection", b"upgrade"), (b"x-a", b"1")],
]


@pytest.mark.parametrize("mod", MODS)
@pytest.mark.parametrize("headers", REQUESTS)
def test_compiled_modifier_equals_modify_headers(headers: H, mod: HeaderModifier) -> None:
    assert CompiledModifier(mod).apply(headers) == modify_headers(headers, mod)


@pytest.mark.parametrize("mod", [None, *MODS])
@pytest.mark.parametrize("headers", REQUESTS)
def test_outgoing_request_headers_equal_the_composed_rules(
    headers: H, mod: HeaderModifier | None
) -> None:
    modified = modify_headers(headers, mod) if mod is not None else list(headers)
    ws = is_websocket(modified)
    want = strip_hop_by_hop(modified, keep_upgrade=ws)
    want = [(n, v) for n, v in want if n != b"host"]
    want = [(b"host", b"h:1"), *forwarded_headers(want, "127.0.0.9", "https", b"h:1")]
    fields = [(n, n, v) for n, v in headers]
    compiled = CompiledModifier(mod) if mod is not None else None
    got = outgoing_request_headers(fields, compiled, b"127.0.0.9", b"https", b"h:1")
    assert got == (want, ws)


@pytest.mark.parametrize("mod", MODS[:4])
@pytest.mark.parametrize("headers", REQUESTS)
def test_outgoing_response_headers_equal_the_composed_rules(
    headers: H, mod: HeaderModifier
) -> None:
    cors = [(b"access-control-allow-origin", b"o"), (b"x-a", b"cors")]
    cl = next((v for n, v in headers if n == b"content-length"), None)
    want = strip_hop_by_hop(headers) + ([(b"content-length", cl)] if cl is not None else [])
    want = modify_headers(want, mod)
    want = [(n, v) for n, v in want if n not in {b"access-control-allow-origin", b"x-a"}] + cors
    fields = [(n, n, v) for n, v in headers]
    assert outgoing_response_headers(fields, (CompiledModifier(mod),), cors) == want
