"""TLS termination with SNI and 421, certificate updates, BackendTLSPolicy origination."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import h11
import pytest

from agent.nodeconfig import BackendTLS, Certificate, ClientValidation, NodeConfig, Ref
from l7.engine import L7ConfigRejected
from tests.l7.backends import EchoBackend
from tests.l7.certs import CA, Issued
from tests.l7.client import connect, request
from tests.l7.support import (
    Engine,
    backend,
    free_port,
    http_port,
    listener,
    match,
    rule,
    simple_port,
    vhost,
)

ADDR = "127.0.0.4"
Echo = Callable[..., EchoBackend]


def cert(issued: Issued, *names: str) -> Certificate:
    return Certificate(cert_pem=issued.cert_pem, key_pem=issued.key_pem, hostnames=names)


def served_names(address: str, port: int, sni: str) -> list[str]:
    """The DNS names of the certificate the gateway presents for `sni`."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with connect(address, port) as raw, ctx.wrap_socket(raw, server_hostname=sni) as s:
        der = s.getpeercert(binary_form=True)
    from cryptography import x509

    c = x509.load_der_x509_certificate(der or b"")
    return list(
        c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    )


def https_port(port: int, ca: CA, a: EchoBackend, b: EchoBackend, c: EchoBackend) -> object:
    org = ca.issue("example.org")
    wild = ca.issue("*.wildcard.org")
    catch_all = ca.issue("default.example")
    return http_port(
        ADDR,
        port,
        listener(
            vhost("example.org", (rule(backend(a)), [match("/")])),
            hostname="example.org",
            name="org",
            certificates=(cert(org, "example.org"),),
        ),
        listener(
            vhost("*.wildcard.org", (rule(backend(b)), [match("/")])),
            hostname="*.wildcard.org",
            name="wild",
            certificates=(cert(wild, "*.wildcard.org"),),
        ),
        listener(
            vhost("", (rule(backend(c)), [match("/only-this")])),
            hostname="",
            name="any",
            certificates=(cert(catch_all, "default.example"),),
        ),
        tls=True,
    )


def test_sni_chooses_certificate_and_listener_421_for_misdirected(
    engine: Engine, echo: Echo
) -> None:
    ca = CA()
    a, b, c = echo("org-1"), echo("wild-1"), echo("any-1")
    port = free_port(ADDR)
    engine.apply(https_port(port, ca, a, b, c))  # type: ignore[arg-type]

    def go(sni: str, host: str, path: str = "/") -> tuple[int, str | None]:
        r = request(ADDR, port, path, sni=sni, host=host, ca=ca.pem)  # verifies chain and name
        return r.status, r.backend

    assert go("example.org", "example.org") == (200, "org-1")
    assert go("third.wildcard.org", "fourth.wildcard.org") == (200, "wild-1")
    assert go("example.org", "x.wildcard.org") == (421, None)
    assert go("x.wildcard.org", "example.org") == (421, None)
    assert go("default.example", "default.example", "/only-this") == (200, "any-1")
    assert go("default.example", "unknown.example") == (404, None)
    assert go("default.example", "example.org") == (421, None)
    r = request(ADDR, port, "/", sni="example.org", host="example.org", ca=ca.pem)
    assert r.json()["headers"]["X-Forwarded-Proto"] == ["https"]


def test_certificates_update_without_restart(engine: Engine, echo: Echo) -> None:
    ca = CA()
    a = echo("a-1")
    port = free_port(ADDR)

    def config(names: tuple[str, ...]) -> object:
        issued = ca.issue(*names)
        return http_port(
            ADDR,
            port,
            listener(
                vhost("", (rule(backend(a)), [match("/")])), certificates=(cert(issued, *names),)
            ),
            tls=True,
        )

    engine.apply(config(("first.example",)))  # type: ignore[arg-type]
    assert served_names(ADDR, port, "first.example") == ["first.example"]
    with connect(ADDR, port, sni="first.example", ca=ca.pem) as kept:
        engine.apply(config(("second.example",)))  # type: ignore[arg-type]
        assert served_names(ADDR, port, "second.example") == ["second.example"]
        # the connection made before the update keeps working
        from tests.l7.client import exchange

        assert exchange(kept, "GET", "/", "first.example").status == 200


def test_frontend_client_certificate_validation(engine: Engine, echo: Echo) -> None:
    ca, client_ca = CA(), CA("client CA")
    a = echo("a-1")
    port = free_port(ADDR)
    issued = ca.issue("mtls.example")
    lst = listener(
        vhost("", (rule(backend(a)), [match("/")])),
        certificates=(cert(issued, "mtls.example"),),
        client_validation=ClientValidation(ca_pems=(client_ca.pem,)),
    )
    engine.apply(http_port(ADDR, port, lst, tls=True))
    with pytest.raises((ssl.SSLError, ConnectionError, h11.RemoteProtocolError)):
        request(ADDR, port, "/", sni="mtls.example", ca=ca.pem)
    ctx = ssl.create_default_context(cadata=ca.pem)
    good = client_ca.issue("client.example")
    tmp = Path(f"/tmp/nodegate-l7-test-client-{port}.pem")
    tmp.write_text(good.cert_pem + good.key_pem)
    try:
        ctx.load_cert_chain(str(tmp))
    finally:
        tmp.unlink()
    import socket

    from tests.l7.client import exchange

    with (
        socket.create_connection((ADDR, port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="mtls.example") as s,
    ):
        assert exchange(s, "GET", "/", "mtls.example").status == 200


def tls_echo(
    echo: Echo, tmp_path: Path, name: str, issued: Issued, client_ca: CA | None = None
) -> EchoBackend:
    f = tmp_path / f"{name}.pem"
    f.write_text(issued.cert_pem + issued.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(f))
    ctx.sni_callback = lambda obj, name, _ctx: setattr(obj, "sni", name)  # type: ignore[assignment,func-returns-value]
    if client_ca is not None:
        ctx.load_verify_locations(cadata=client_ca.pem)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return echo(name, ssl_context=ctx)


def test_backend_tls_policy(engine: Engine, echo: Echo, tmp_path: Path) -> None:
    ca, other_ca, gw_client_ca = CA("backend CA"), CA("mismatch CA"), CA("gateway client CA")
    be = tls_echo(
        echo,
        tmp_path,
        "tls-backend-1",
        ca.issue(
            "abc.example.com", "other.example.com", uris=("spiffe://abc.example.com/test-identity",)
        ),
        client_ca=gw_client_ca,
    )
    policy = Ref(kind="BackendTLSPolicy", namespace="ns", name="p")

    def tls(**kw: object) -> BackendTLS:
        return BackendTLS(policy=policy, **kw)  # type: ignore[arg-type]

    gw_client = gw_client_ca.issue("gateway.example")
    port = free_port(ADDR)
    engine.apply(
        http_port(
            ADDR,
            port,
            listener(
                vhost(
                    "",
                    (
                        rule(
                            backend(
                                be,
                                name="ok",
                                tls=tls(hostname="abc.example.com", ca_pems=(ca.pem,)),
                            )
                        ),
                        [match("/ok")],
                    ),
                    (
                        rule(
                            backend(
                                be,
                                name="other",
                                tls=tls(hostname="other.example.com", ca_pems=(ca.pem,)),
                            )
                        ),
                        [match("/other-sni")],
                    ),
                    (
                        rule(
                            backend(
                                be,
                                name="wrong-ca",
                                tls=tls(hostname="abc.example.com", ca_pems=(other_ca.pem,)),
                            )
                        ),
                        [match("/wrong-ca")],
                    ),
                    (
                        rule(
                            backend(
                                be,
                                name="wrong-name",
                                tls=tls(hostname="nope.example.com", ca_pems=(ca.pem,)),
                            )
                        ),
                        [match("/wrong-name")],
                    ),
                    (
                        rule(
                            backend(
                                be,
                                name="san-uri",
                                tls=tls(
                                    hostname="nope.example.com",
                                    ca_pems=(ca.pem,),
                                    subject_alt_names=(
                                        ("URI", "spiffe://abc.example.com/test-identity"),
                                    ),
                                ),
                            )
                        ),
                        [match("/san-uri")],
                    ),
                    (
                        rule(
                            backend(
                                be,
                                name="san-dns",
                                tls=tls(
                                    hostname="abc.example.com",
                                    ca_pems=(ca.pem,),
                                    subject_alt_names=(("Hostname", "other.example.com"),),
                                ),
                            )
                        ),
                        [match("/san-dns")],
                    ),
                    (
                        rule(
                            backend(
                                be,
                                name="san-bad",
                                tls=tls(
                                    hostname="abc.example.com",
                                    ca_pems=(ca.pem,),
                                    subject_alt_names=(("Hostname", "nowhere.example.com"),),
                                ),
                            )
                        ),
                        [match("/san-bad")],
                    ),
                ),
                backend_client_certificate=cert(gw_client),
            ),
        )
    )
    r = request(ADDR, port, "/ok", host="abc.example.com")
    assert r.status == 200 and r.json()["tls"] == {
        "serverName": "abc.example.com",
        "peerCertificate": True,
    }
    assert r.json()["host"] == "abc.example.com"
    assert request(ADDR, port, "/other-sni").json()["tls"]["serverName"] == "other.example.com"
    assert request(ADDR, port, "/wrong-ca").status == 502
    assert request(ADDR, port, "/wrong-name").status == 502
    assert request(ADDR, port, "/san-uri").json()["tls"]["serverName"] == "nope.example.com"
    assert request(ADDR, port, "/san-dns").status == 200
    assert request(ADDR, port, "/san-bad").status == 502


def test_plain_port_next_to_tls_port(engine: Engine, echo: Echo) -> None:
    """A NodeConfig with an HTTP and an HTTPS port serves both."""
    ca = CA()
    a = echo("a-1")
    plain, secure = free_port(ADDR), free_port(ADDR)
    issued = ca.issue("both.example")
    engine.apply(
        simple_port(ADDR, plain, (rule(backend(a)), [match("/")])),
        http_port(
            ADDR,
            secure,
            listener(
                vhost("", (rule(backend(a)), [match("/")])),
                certificates=(cert(issued, "both.example"),),
            ),
            tls=True,
        ),
    )
    assert request(ADDR, plain, "/").status == 200
    assert request(ADDR, secure, "/", sni="both.example", ca=ca.pem).status == 200


def test_unusable_key_pair_rejects_the_config(engine: Engine, echo: Echo) -> None:
    ca = CA()
    a = echo("a-1")
    port = free_port(ADDR)
    good = ca.issue("keep.example")
    lst = listener(
        vhost("", (rule(backend(a)), [match("/")])), certificates=(cert(good, "keep.example"),)
    )
    g = engine.apply(http_port(ADDR, port, lst, tls=True))
    broken = Certificate(
        cert_pem=good.cert_pem, key_pem=CA().issue("other.example").key_pem
    )  # not its key
    bad = listener(vhost("", (rule(backend(a)), [match("/")])), certificates=(broken,))
    with pytest.raises(L7ConfigRejected):
        engine.dp.apply(NodeConfig(http=(http_port(ADDR, port, bad, tls=True),)), g + 1)
    assert engine.dp.applied_generation() == g
    assert request(ADDR, port, "/", sni="keep.example", ca=ca.pem).status == 200


def _client_ctx(server_ca: CA, client: Issued | None, tmp_path: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=server_ca.pem)
    if client is not None:
        f = tmp_path / f"client-{id(client)}.pem"
        f.write_text(client.cert_pem + client.key_pem)
        ctx.load_cert_chain(str(f))
    return ctx


def _mtls_get(port: int, sni: str, ctx: ssl.SSLContext) -> tuple[int, dict[str, list[str]]]:
    """(status, the request fields the backend saw) of one request with `ctx`."""
    import socket

    from tests.l7.client import exchange

    with (
        socket.create_connection((ADDR, port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as s,
    ):
        r = exchange(s, "GET", "/", sni, headers={"X-Forwarded-Client-Cert-Verify": "SUCCESS"})
        return r.status, (r.json()["headers"] if r.status == 200 else {})


def test_insecure_fallback_lets_any_client_through_and_tells_the_backend(
    engine: Engine, echo: Echo, tmp_path: Path
) -> None:
    a = echo("a")
    ca, client_ca, other_ca = CA(), CA("client CA"), CA("other CA")
    good, bad = client_ca.issue("client.example"), other_ca.issue("client.example")
    port = free_port(ADDR)
    fallback = listener(
        vhost("fallback.example", (rule(backend(a)), [match("/")])),
        hostname="fallback.example",
        name="fallback",
        certificates=(cert(ca.issue("fallback.example"), "fallback.example"),),
        client_validation=ClientValidation(ca_pems=(client_ca.pem,), mode="AllowInsecureFallback"),
    )
    strict = listener(
        vhost("strict.example", (rule(backend(a)), [match("/")])),
        hostname="strict.example",
        name="strict",
        certificates=(cert(ca.issue("strict.example"), "strict.example"),),
        client_validation=ClientValidation(ca_pems=(client_ca.pem,)),
    )
    engine.apply(http_port(ADDR, port, fallback, strict, tls=True))
    verdicts = {}
    for name, client in (("good", good), ("bad", bad), ("none", None)):
        status, seen = _mtls_get(port, "fallback.example", _client_ctx(ca, client, tmp_path))
        assert status == 200, name
        # The client's own copy of the field never reaches the backend.
        (verdicts[name],) = seen["X-Forwarded-Client-Cert-Verify"]
        assert ("X-Forwarded-Client-Cert" in seen) is (client is not None)
    assert verdicts["good"] == "SUCCESS"
    assert verdicts["bad"].startswith("FAILED:")
    assert verdicts["none"] == "NONE"
    # The same port's AllowValidOnly listener still refuses what does not verify.
    status, seen = _mtls_get(port, "strict.example", _client_ctx(ca, good, tmp_path))
    assert status == 200 and seen["X-Forwarded-Client-Cert-Verify"] == ["SUCCESS"]
    for client in (bad, None):
        with pytest.raises((ssl.SSLError, ConnectionError, h11.RemoteProtocolError)):
            _mtls_get(port, "strict.example", _client_ctx(ca, client, tmp_path))


def test_a_client_certificate_without_client_auth_usage_is_not_valid() -> None:
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from l7.tls import ClientVerifiers

    client_ca, other_ca = CA("client CA"), CA("other CA")
    leaf = cx509.load_pem_x509_certificate(client_ca.issue("client.example").cert_pem.encode())

    def with_usage(*usages: cx509.ObjectIdentifier) -> bytes:
        built = (
            cx509.CertificateBuilder()
            .subject_name(leaf.subject)
            .issuer_name(leaf.issuer)
            .public_key(leaf.public_key())  # type: ignore[arg-type]
            .serial_number(cx509.random_serial_number())
            .not_valid_before(leaf.not_valid_before_utc)
            .not_valid_after(leaf.not_valid_after_utc)
            .add_extension(cx509.ExtendedKeyUsage(list(usages)), critical=False)
            .sign(client_ca.key, hashes.SHA256())
        )
        return built.public_bytes(Encoding.DER)

    v = ClientValidation(ca_pems=(client_ca.pem,))
    verifiers = ClientVerifiers()
    assert verifiers.verdict(v, leaf.public_bytes(Encoding.DER)) == "SUCCESS"  # no EKU: any
    assert verifiers.verdict(v, with_usage(ExtendedKeyUsageOID.CLIENT_AUTH)) == "SUCCESS"
    assert verifiers.verdict(v, with_usage(ExtendedKeyUsageOID.SERVER_AUTH)).startswith(
        "FAILED:unsuitable"
    )
    other = other_ca.issue("client.example").cert_pem.encode()
    assert verifiers.verdict(
        v, cx509.load_pem_x509_certificate(other).public_bytes(Encoding.DER)
    ).startswith("FAILED:")
    assert verifiers.verdict(v, None) == "NONE"
