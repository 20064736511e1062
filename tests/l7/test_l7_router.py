"""Route tables as data: request in, chosen rule (or 404/421) out. No sockets."""

from __future__ import annotations

import pytest

from agent.nodeconfig import (
    Backend,
    Certificate,
    Filters,
    HeaderModifier,
    HTTPMatch,
    PathModifier,
    Redirect,
    Ref,
    URLRewrite,
)
from l7.router import (
    Matcher,
    Refused,
    RequestHead,
    Routed,
    Rule,
    compile_port,
    host_of,
    hostname_matches,
    prefix_matches,
)
from tests.l7.support import http_port, listener, match, rule, vhost


def head(
    path: str = "/",
    method: str = "GET",
    host: str = "example.com",
    query: str = "",
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> RequestHead:
    return RequestHead(method=method, path=path, query=query, host=host, headers=headers)


@pytest.mark.parametrize(
    ("prefix", "path", "expected"),
    [
        ("/", "/anything", True),
        ("/abc", "/abc", True),
        ("/abc", "/abc/", True),
        ("/abc", "/abc/def", True),
        ("/abc", "/abcd", False),
        ("/abc/", "/abc", True),  # "When specified, a trailing `/` is ignored."
        ("/abc/", "/abc/x", True),
        ("/abc/", "/abcx", False),
        ("/abc", "/ab", False),
    ],
)
def test_path_prefix_matches_whole_elements(prefix: str, path: str, expected: bool) -> None:
    assert prefix_matches(prefix, path) is expected


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("", "anything.example", True),
        ("example.com", "example.com", True),
        ("example.com", "www.example.com", False),
        ("*.example.com", "www.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "xexample.com", False),
    ],
)
def test_hostname_matches(pattern: str, host: str, expected: bool) -> None:
    assert hostname_matches(pattern, host) is expected


@pytest.mark.parametrize(
    ("authority", "host"),
    [
        ("Example.COM:8080", "example.com"),
        ("example.com", "example.com"),
        ("[::1]:80", "[::1]"),
        ("foo.example.", "foo.example"),
    ],
)
def test_host_of(authority: str, host: str) -> None:
    assert host_of(authority) == host


@pytest.mark.parametrize(
    ("m", "req", "expected"),
    [
        (match("/exact", "Exact"), head("/exact"), True),
        (match("/exact", "Exact"), head("/exact/"), False),
        (match(r"/re/\d+", "RegularExpression"), head("/re/123"), True),
        (match(r"/re/\d+", "RegularExpression"), head("/re/123x"), False),  # whole path
        (match("/", method="POST"), head("/", method="POST"), True),
        (match("/", method="POST"), head("/", method="GET"), False),
        (
            match("/", headers=(("Exact", "Version", "two"),)),
            head(headers=((b"version", b"two"),)),
            True,
        ),
        (
            match("/", headers=(("Exact", "version", "two"),)),
            head(headers=((b"version", b"Two"),)),
            False,
        ),
        (match("/", headers=(("Exact", "version", "two"),)), head(), False),
        (
            match("/", headers=(("RegularExpression", "v", "t.o"),)),
            head(headers=((b"v", b"two"),)),
            True,
        ),
        (
            match("/", headers=(("Exact", "v", "one"), ("Exact", "V", "two"))),
            head(headers=((b"v", b"one"),)),
            True,
        ),  # first of equivalent names only
        (
            match("/", query_params=(("Exact", "animal", "whale"),)),
            head(query="animal=whale&x=1"),
            True,
        ),
        (
            match("/", query_params=(("Exact", "animal", "whale"),)),
            head(query="Animal=whale"),
            False,
        ),  # names are case-sensitive
        (
            match("/", query_params=(("Exact", "animal", "whale"),)),
            head(query="animal=whale&animal=dolphin"),
            True,
        ),
        (match("/", query_params=(("RegularExpression", "n", r"\d+"),)), head(query="n=42"), True),
        (match("/", query_params=(("Exact", "q", "a b"),)), head(query="q=a%20b"), True),
    ],
)
def test_matcher_table(m: HTTPMatch, req: RequestHead, expected: bool) -> None:
    assert Matcher(m).matches(req) is expected


def _b(name: str, weight: int, invalid: str = "") -> Backend:
    return Backend(
        ref=Ref(kind="Service", namespace="ns", name=name), weight=weight, invalid=invalid
    )


@pytest.mark.parametrize(
    ("draw", "expected"),
    [(0.0, "a"), (0.24, "a"), (0.25, "b"), (0.99, "b")],
)
def test_weighted_pick(draw: float, expected: str) -> None:
    r = Rule(rule(_b("a", 1), _b("zero", 0), _b("b", 3)))
    got = r.pick(draw)
    assert got is not None and got.ref.name == expected


def test_rule_without_weight_has_no_backend() -> None:
    assert Rule(rule(_b("a", 0))).pick(0.5) is None
    assert Rule(rule()).pick(0.5) is None


def _table():  # type: ignore[no-untyped-def]
    exact = rule(name="exact")
    prefix_long = rule(name="prefix-long")
    prefix_short = rule(name="prefix-short")
    wild = rule(name="wild")
    anyhost = rule(name="any")
    other_listener = rule(name="other-listener")
    return compile_port(
        http_port(
            "127.0.0.1",
            80,
            listener(
                vhost("foo.example.com", (other_listener, [match("/")])),
                hostname="foo.example.com",
                name="foo",
            ),
            listener(
                vhost(
                    "bar.example.com",
                    (exact, [match("/one", "Exact")]),
                    (prefix_long, [match("/one/two")]),
                    (prefix_short, [match("/one")]),
                ),
                vhost("*.example.com", (wild, [match("/")])),
                vhost("", (anyhost, [match("/")])),
                hostname="",
                name="any",
            ),
        )
    )


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("bar.example.com", "/one", "exact"),
        ("bar.example.com", "/one/two/three", "prefix-long"),
        ("bar.example.com", "/one/x", "prefix-short"),
        (
            "bar.example.com",
            "/elsewhere",
            404,
        ),  # the most specific virtual host alone is considered
        ("baz.example.com", "/x", "wild"),
        ("example.com", "/x", "any"),
        ("foo.example.com", "/x", "other-listener"),  # the most specific listener wins
        ("FOO.example.com", "/x", "other-listener"),
    ],
)
def test_port_table_routes(host: str, path: str, expected: str | int) -> None:
    got = _table().route(head(path, host=host_of(host)))
    if isinstance(expected, int):
        assert isinstance(got, Refused) and got.status == expected
    else:
        assert isinstance(got, Routed) and got.rule.rule.ref.name == expected


def _tls_table():  # type: ignore[no-untyped-def]
    cert = Certificate(cert_pem="c", key_pem="k")
    return compile_port(
        http_port(
            "127.0.0.1",
            443,
            listener(
                vhost("example.org", (rule(name="a"), [match("/")])),
                hostname="example.org",
                name="a",
                certificates=(cert,),
            ),
            listener(
                vhost("*.wildcard.org", (rule(name="w"), [match("/")])),
                hostname="*.wildcard.org",
                name="w",
                certificates=(cert,),
            ),
            listener(
                vhost("", (rule(name="any"), [match("/only")])),
                hostname="",
                name="any",
                certificates=(cert,),
            ),
            tls=True,
        )
    )


@pytest.mark.parametrize(
    ("sni", "host", "expected"),
    [
        ("example.org", "example.org", "a"),
        ("example.org", "x.wildcard.org", 421),  # another listener matches the Host
        ("x.wildcard.org", "example.org", 421),
        ("x.wildcard.org", "y.wildcard.org", "w"),  # same listener, different name: fine
        ("unknown.net", "other.net", 404),  # catch-all listener, no route for the path
        ("example.org", "unknown.net", 421),  # Host falls to the catch-all listener, not SNI's
    ],
)
def test_misdirected_requests(sni: str, host: str, expected: str | int) -> None:
    got = _tls_table().route(head("/", host=host), sni=sni)
    if isinstance(expected, int):
        assert isinstance(got, Refused) and got.status == expected
    else:
        assert isinstance(got, Routed) and got.rule.rule.ref.name == expected


@pytest.mark.parametrize(
    "filters",
    [
        Filters(request_headers=HeaderModifier(set=(("X-Injected", "a\r\nX-Evil: 1"),))),
        Filters(response_headers=HeaderModifier(add=(("Bad Name", "v"),))),
        Filters(request_headers=HeaderModifier(remove=("X:colon",))),
        Filters(request_headers=HeaderModifier(add=(("X-Nul", "a\x00b"),))),
        Filters(rewrite=URLRewrite(path=PathModifier(type="ReplaceFullPath", value="/a b"))),
        Filters(redirect=Redirect(hostname="evil.example\r\nX: y")),
    ],
)
def test_config_that_would_inject_fields_is_refused(filters: Filters) -> None:
    with pytest.raises(ValueError):
        compile_port(
            http_port("127.0.0.1", 80, listener(vhost("", (rule(filters=filters), [match("/")]))))
        )
    with pytest.raises(ValueError):  # on a backendRef too
        compile_port(
            http_port(
                "127.0.0.1",
                80,
                listener(
                    vhost(
                        "",
                        (
                            rule(
                                Backend(
                                    ref=Ref(kind="Service", namespace="n", name="s"),
                                    filters=filters,
                                )
                            ),
                            [match("/")],
                        ),
                    )
                ),
            )
        )


def test_valid_filters_compile() -> None:
    ok = Filters(
        request_headers=HeaderModifier(
            set=(("X-Header-Set", "set-overwrites-values"),),
            add=(("X-A", "a, b; q=1"),),
            remove=("X-R",),
        )
    )
    compile_port(http_port("127.0.0.1", 80, listener(vhost("", (rule(filters=ok), [match("/")])))))


# --- the indexes give what the ordered scan gives -------------------------------------------

INDEXED_MATCHES = [
    match("/a/b", "Exact"),
    match("/a/b/", "PathPrefix"),
    match("/a", "PathPrefix", method="POST"),
    match("/a", "PathPrefix", headers=(("Exact", "x-v", "1"),)),
    match("/a/b.*", "RegularExpression"),
    match("/abc", "PathPrefix"),
    match("/", "Exact"),
    match("/c//", "PathPrefix"),
    match("/a", "PathPrefix"),
    match("/", "PathPrefix", query_params=(("Exact", "q", "1"),)),
]
PATHS = ["/", "/a", "/a/", "/a/b", "/a/b/", "/a/bc", "/a/b/c", "/abc", "/abcd", "/c", "/c/", "/x"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("hdrs", [(), ((b"x-v", b"1"),)])
@pytest.mark.parametrize("query", ["", "q=1"])
def test_indexed_vhost_routes_like_the_ordered_scan(
    path: str, method: str, hdrs: tuple[tuple[bytes, bytes], ...], query: str
) -> None:
    from l7.router import INDEX_FROM, compile_vhost

    rules = [(rule(name=f"r{i}"), [m]) for i, m in enumerate(INDEXED_MATCHES)]
    table = compile_vhost(vhost("", *rules))
    assert len(table.entries) >= INDEX_FROM
    req = head(path=path, method=method, headers=hdrs, query=query)
    scan = next(
        ((table.rules[i], m.match) for m, i in table.entries if m.matches(req)),
        None,
    )
    assert table.route(req) == scan


@pytest.mark.parametrize(
    "host",
    ["a.example.com", "b.a.example.com", "example.com", "x.other.org", "other.org", "", "a.b.c"],
)
def test_listener_lookup_equals_the_first_listener_in_order(host: str) -> None:
    names = ["a.example.com", "*.a.example.com", "*.example.com", "*.org", "", "example.com"]
    port = compile_port(
        http_port(
            "127.0.0.1", 80, *(listener(name=f"l{i}", hostname=n) for i, n in enumerate(names))
        )
    )
    want = next((lt for lt in port.listeners if hostname_matches(lt.listener.hostname, host)), None)
    assert port.listener_for(host) is want
