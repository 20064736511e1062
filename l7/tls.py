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

import _ssl
import ctypes
import os
import ssl
import tempfile
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

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


# --- frontend mTLS ---------------------------------------------------------------------------
#
# OpenSSL takes an SSL object's verify mode and verify callback from the context it was
# created with (the port's listening context), not from the one the SNI callback switches
# to, while it verifies against the chosen context's CA store. So the listening context
# asks for a certificate (CERT_OPTIONAL) whenever any listener of the port validates them.
#
# AllowValidOnly: "the gateway MUST reject the connection if the client certificate is
# missing or invalid". On a port where every validating listener is AllowValidOnly,
# OpenSSL verifies during the handshake (an invalid certificate fails it) and the
# connection refuses a missing one.
#
# AllowInsecureFallback: "the gateway will accept connections even if the client
# certificate is not presented or fails verification. This approach delegates client
# authorization to the backend". Python's ssl cannot tell OpenSSL to carry on past a
# verification error, so on a port where some listener falls back, the listening context
# gets a verify callback that accepts whatever was presented (set with libssl's
# SSL_CTX_set_verify through ctypes), and the connection judges the certificate itself
# (`ClientVerifiers`, RFC 5280 path validation by `cryptography` against the listener's
# CAs, clientAuth usage required): AllowValidOnly listeners of that port still refuse an
# invalid one, fallback listeners let it through and tell the backend the verdict.
# Python 3.11 exposes only the peer's leaf certificate, so a client whose chain needs an
# intermediate verifies only when the listener's CA bundle holds that intermediate.

SSL_VERIFY_PEER = 1
_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


@_VERIFY_CALLBACK
def _accept_presented(preverify_ok: int, store: int) -> int:
    return 1  # the connection judges the certificate (ClientVerifiers)


_libssl: Any = None


def _ssl_ctx_pointer(ctx: ssl.SSLContext) -> int:
    """The SSL_CTX* of a context: CPython's PySSLContext holds it right after its object
    header. Checked against SSL_CTX_get_verify_mode before anything is written."""
    global _libssl
    if _libssl is None:
        lib = ctypes.CDLL(_ssl.__file__)  # resolves libssl's symbols through _ssl's links
        lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
        lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        lib.SSL_CTX_set_verify.restype = None
        _libssl = lib
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ptr:
        raise RuntimeError("no SSL_CTX behind this SSLContext")
    return int(ptr)


def set_fallback_verification(ctx: ssl.SSLContext, on: bool) -> None:
    """Request client certificates and let every presented one through the handshake (on),
    or go back to OpenSSL's own verdict (off)."""
    ctx.verify_mode = ssl.CERT_OPTIONAL if on else ctx.verify_mode
    ptr = _ssl_ctx_pointer(ctx)
    mode = _libssl.SSL_CTX_get_verify_mode(ptr)
    if mode != {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}[ctx.verify_mode]:
        raise RuntimeError("SSLContext layout not understood: not touching OpenSSL")
    callback = ctypes.cast(_accept_presented, ctypes.c_void_p) if on else None
    _libssl.SSL_CTX_set_verify(ptr, mode, callback)


def require_client_certificates(base: ssl.SSLContext, listeners: list[HTTPListener]) -> None:
    """Ask clients for a certificate on a port where some listener validates them, and
    let the connection decide (see above) where some listener falls back."""
    wanted = any(li.client_validation is not None for li in listeners)
    fallback = any(
        li.client_validation is not None and li.client_validation.mode == "AllowInsecureFallback"
        for li in listeners
    )
    base.verify_mode = ssl.CERT_OPTIONAL if wanted else ssl.CERT_NONE
    set_fallback_verification(base, fallback)


class ClientVerifiers:
    """Verdicts on presented client certificates, one verifier per CA bundle."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, ...], Any] = {}

    def verdict(self, validation: ClientValidation, der: bytes | None) -> str:
        """ "SUCCESS", "NONE" (nothing presented) or "FAILED:<why>" (nginx's
        $ssl_client_verify values)."""
        if not der:
            return "NONE"
        verifier = self._cache.get(validation.ca_pems)
        if verifier is None:
            cas = [
                c
                for pem in validation.ca_pems
                for c in x509.load_pem_x509_certificates(pem.encode())
            ]
            # RFC 5280 path validation to one of the CAs, with the Web PKI rules for the
            # CAs; the leaf is held to what Go and OpenSSL ask of a client certificate (a
            # private CA's leaf often lacks the extensions the Web PKI profile requires).
            verifier = (
                PolicyBuilder()
                .store(Store(cas))
                .extension_policies(
                    ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                    ee_policy=ExtensionPolicy.permit_all(),
                )
                .build_client_verifier()
            )
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[validation.ca_pems] = verifier
        try:
            leaf = x509.load_der_x509_certificate(der)
            verifier.verify(leaf, [])
        except (VerificationError, ValueError) as exc:
            return "FAILED:" + " ".join(str(exc).split())[:200]
        try:
            usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            return "SUCCESS"  # no ExtendedKeyUsage: any purpose (RFC 5280, 4.2.1.12)
        if ExtendedKeyUsageOID.CLIENT_AUTH in usages or (
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages
        ):
            return "SUCCESS"
        return "FAILED:unsuitable certificate purpose (no clientAuth in ExtendedKeyUsage)"


def client_certificate_verdict(
    listener: HTTPListener, sslobj: Any, fallback_port: bool, verifiers: ClientVerifiers
) -> str | None:
    """The verdict on the client's certificate for a listener that validates them (None for
    one that does not): on a port where OpenSSL judged (no fallback listener), a presented
    certificate passed the handshake, so it is valid."""
    v = listener.client_validation
    if v is None:
        return None
    der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    if not fallback_port:
        return "SUCCESS" if der else "NONE"
    return verifiers.verdict(v, der)


def client_certificate_refused(listener: HTTPListener, verdict: str | None) -> bool:
    """AllowValidOnly: "the gateway MUST reject the connection if the client certificate is
    missing or invalid"."""
    v = listener.client_validation
    return v is not None and v.mode == "AllowValidOnly" and verdict != "SUCCESS"


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
