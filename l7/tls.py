"""TLS contexts: termination with SNI certificate choice, and origination to backends.

Termination: one listening context per HTTPS port whose SNI callback looks up the
port's *current* route table, so a NodeConfig with new certificates takes effect
for the next handshake without re-binding. Per-certificate contexts are cached by
the PEM they hold.

Origination (BackendTLSPolicy): "Hostname is used for two purposes in the
connection between Gateways and backends: 1. Hostname MUST be used as the SNI to
connect to the backend (RFC 6066). 2. Hostname MUST be used for authentication and
MUST match the certificate served by the matching backend, unless
SubjectAltNames is specified." and "SubjectAltNames contains one or more Subject
Alternative Names. When specified the certificate served from the backend MUST
have at least one Subject Alternate Name matching one of the specified
SubjectAltNames."
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Callable
from typing import Any

from agent.nodeconfig import BackendTLS, Certificate, ClientValidation, HTTPListener


def _load_chain(ctx: ssl.SSLContext, cert: Certificate) -> None:
    """ssl loads key pairs from files only: write them to a private file, load, unlink."""
    fd, path = tempfile.mkstemp(prefix="nodegate-l7-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(cert.cert_pem)
            if not cert.cert_pem.endswith("\n"):
                f.write("\n")
            f.write(cert.key_pem)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)


def _cert_covers(cert: Certificate, name: str) -> bool:
    for h in cert.hostnames:
        h = h.lower()
        if h == name or (
            h.startswith("*.") and name.endswith(h[1:]) and "." not in name[: -len(h) + 1]
        ):
            return True
    return False


class ServerContexts:
    """Caches one server SSLContext per (certificate, client validation)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, tuple[str, ...], str], ssl.SSLContext] = {}

    def for_certificate(
        self, cert: Certificate, validation: ClientValidation | None
    ) -> ssl.SSLContext:
        key = (
            cert.cert_pem,
            cert.key_pem,
            validation.ca_pems if validation else (),
            validation.mode if validation else "",
        )
        ctx = self._cache.get(key)
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_alpn_protocols(["http/1.1"])
            _load_chain(ctx, cert)
            if validation is not None and validation.ca_pems:
                ctx.load_verify_locations(cadata="\n".join(validation.ca_pems))
                # AllowValidOnly: "the gateway MUST reject the connection if the client
                # certificate is missing or invalid". AllowInsecureFallback asks for a
                # certificate and lets the connection through without one.
                ctx.verify_mode = (
                    ssl.CERT_REQUIRED if validation.mode == "AllowValidOnly" else ssl.CERT_OPTIONAL
                )
            self._cache[key] = ctx
        return ctx

    def choose(self, listener: HTTPListener, sni: str) -> ssl.SSLContext | None:
        """The listener's certificate covering the SNI name, else its first one."""
        if not listener.certificates:
            return None
        chosen = listener.certificates[0]
        for cert in listener.certificates:
            if _cert_covers(cert, sni):
                chosen = cert
                break
        return self.for_certificate(chosen, listener.client_validation)

    def retain(self, listeners: list[HTTPListener]) -> None:
        """Forget contexts no listener uses any more (keys and certificates leave memory)."""
        keep = set()
        for li in listeners:
            v = li.client_validation
            for c in li.certificates:
                keep.add((c.cert_pem, c.key_pem, v.ca_pems if v else (), v.mode if v else ""))
        for key in list(self._cache):
            if key not in keep:
                del self._cache[key]


def listening_context(
    pick: Callable[[str, ssl.SSLObject], ssl.SSLContext | None],
) -> ssl.SSLContext:
    """The context a TLS port listens with; `pick(sni, sslobj)` chooses the real one per
    handshake."""
    base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    base.minimum_version = ssl.TLSVersion.TLSv1_2
    base.set_alpn_protocols(["http/1.1"])

    def on_sni(sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> Any:
        # The server side of an SSLObject does not expose the SNI name: keep it for the
        # connection (server.py reads it), which needs it to detect misdirected requests.
        sslobj.nodegate_sni = server_name  # type: ignore[attr-defined]
        chosen = pick((server_name or "").lower(), sslobj)
        if chosen is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sslobj.context = chosen
        return None

    base.sni_callback = on_sni
    return base


def require_client_certificates(base: ssl.SSLContext, listeners: list[HTTPListener]) -> None:
    """Ask clients for a certificate on a port where some listener validates them.

    OpenSSL takes an SSL object's verify mode from the context it was created with, not
    from the one the SNI callback switches to; the listening context therefore asks
    (CERT_OPTIONAL) whenever any listener of the port validates, the chosen context's CA
    store verifies what is presented, and the connection enforces AllowValidOnly
    (`client_certificate_missing`).
    """
    wanted = any(li.client_validation is not None for li in listeners)
    base.verify_mode = ssl.CERT_OPTIONAL if wanted else ssl.CERT_NONE


def client_certificate_missing(listener: HTTPListener, sslobj: Any) -> bool:
    """AllowValidOnly: "the gateway MUST reject the connection if the client certificate is
    missing or invalid" (an invalid one already failed the handshake)."""
    v = listener.client_validation
    if v is None or v.mode != "AllowValidOnly":
        return False
    return not (sslobj is not None and sslobj.getpeercert())


class BackendContexts:
    """Client SSLContexts for BackendTLSPolicy, cached by policy content."""

    def __init__(self) -> None:
        self._cache: dict[tuple[BackendTLS, Certificate | None], ssl.SSLContext] = {}

    def get(self, tls: BackendTLS, client_cert: Certificate | None) -> ssl.SSLContext:
        key = (tls, client_cert)
        ctx = self._cache.get(key)
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_alpn_protocols(["http/1.1"])
            if tls.system_cas:
                ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
            if tls.ca_pems:
                ctx.load_verify_locations(cadata="\n".join(tls.ca_pems))
            ctx.verify_mode = ssl.CERT_REQUIRED
            # With subjectAltNames the names to accept are those, checked after the handshake.
            ctx.check_hostname = not tls.subject_alt_names
            if client_cert is not None:
                _load_chain(ctx, client_cert)
            self._cache[key] = ctx
        return ctx


def san_matches(tls: BackendTLS, peer: dict[str, Any] | None) -> bool:
    """Whether a verified peer certificate carries one of the policy's subjectAltNames."""
    if not tls.subject_alt_names:
        return True
    if not peer:
        return False
    names = peer.get("subjectAltName", ())
    dns = [v.lower() for k, v in names if k == "DNS"]
    uris = [v for k, v in names if k == "URI"]
    for kind, want in tls.subject_alt_names:
        if kind == "URI":
            if want in uris:
                return True
        else:
            w = want.lower()
            for d in dns:
                if d == w or (
                    d.startswith("*.") and w.endswith(d[1:]) and "." not in w[: -len(d) + 1]
                ):
                    return True
    return False
