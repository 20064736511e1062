"""Server TLS for the echo listeners, and the connection facts echo-basic reports, in Go's words.

echo-basic describes a TLS connection with Go names: `tls.CipherSuiteName`
for the cipher (IANA-style, not OpenSSL's), `TLSv1.3` on the HTTPS listener
but `TLS 1.3` (`tls.VersionName`) on the TCP one, the SNI the client sent,
and the client's certificates as PEM. `TLSInfo` holds those facts for one
connection; the two `*_assertions` methods lay them out as each server does.

Invariants:
- A context built here offers TLS 1.2 and 1.3 only, and for 1.2 only the
  ECDHE suites Go's server enables by default, so every cipher we can
  negotiate has a Go name in `GO_CIPHER_SUITES`.
- Client certificates are requested only when a client CA is configured,
  and then verified if presented (Go's VerifyClientCertIfGiven); without a
  CA none are requested, so `peerCertificates` is absent, as upstream.
- The SNI is captured by the context's sni_callback, keyed weakly by the
  connection's SSLObject, so nothing outlives the connection.
"""

from __future__ import annotations

import ssl
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# crypto/tls cipher_suites.go: CipherSuites() and InsecureCipherSuites().
GO_CIPHER_SUITES: dict[int, str] = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0x0005: "TLS_RSA_WITH_RC4_128_SHA",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
    0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0xC007: "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    0xC011: "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    0xC012: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
}

# The TLS 1.2 suites a Go (>= 1.22) server enables by default, in OpenSSL names.
_TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
    ]
)

# ssl.SSLObject.version() -> (echo-basic HTTP name, Go tls.VersionName).
_VERSIONS = {
    "TLSv1.3": ("TLSv1.3", "TLS 1.3"),
    "TLSv1.2": ("TLSv1.2", "TLS 1.2"),
    "TLSv1.1": ("TLSv1.1", "TLS 1.1"),
    "TLSv1": ("TLSv1.0", "TLS 1.0"),
}


def go_cipher_name(suite_id: int) -> str:
    """Returns: tls.CipherSuiteName(id): the Go name, or `0xABCD` for one Go does not know."""
    return GO_CIPHER_SUITES.get(suite_id, f"0x{suite_id:04X}")


@dataclass(frozen=True)
class TLSInfo:
    """What one accepted TLS connection negotiated."""

    version: str  # as ssl.SSLObject.version() says it, e.g. "TLSv1.3"
    server_name: str  # SNI received, "" if none
    negotiated_protocol: str  # ALPN, "" if none
    cipher_suite: str  # Go name
    peer_certificates: tuple[str, ...]  # PEM, leaf first

    def http_assertions(self) -> dict[str, Any]:
        """Returns: the `tls` object of the HTTP echo body (echo-basic TLSAssertions order)."""
        out: dict[str, Any] = {"version": _VERSIONS.get(self.version, ("", ""))[0]}
        if self.peer_certificates:
            out["peerCertificates"] = list(self.peer_certificates)
        out["serverName"] = self.server_name
        if self.negotiated_protocol:
            out["negotiatedProtocol"] = self.negotiated_protocol
        out["cipherSuite"] = self.cipher_suite
        return out

    def tcp_assertions(self) -> dict[str, Any]:
        """Returns: the `tls` object of the TCP `TEST` line (tcpserver TLSAssertions order).

        `curves` (Go's CurveID name) is omitted: Python's ssl module does not
        expose the negotiated key-exchange group, and the suite never reads it.
        """
        version = _VERSIONS.get(self.version)
        out: dict[str, Any] = {
            "version": version[1] if version else self.version,
            "serverName": self.server_name,
        }
        if self.negotiated_protocol:
            out["negotiatedProtocol"] = self.negotiated_protocol
        out["cipherSuite"] = self.cipher_suite
        return out


class ServerTLS:
    """An ssl.SSLContext for one echo listener, plus what it learns per connection."""

    def __init__(
        self,
        cert: str,
        key: str,
        *,
        client_ca: str | None = None,
        alpn: Sequence[str] = (),
    ) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(_TLS12_CIPHERS)
        ctx.load_cert_chain(cert, key)
        if client_ca:
            ctx.load_verify_locations(cafile=client_ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        ctx.sni_callback = self._remember_sni
        self.context = ctx
        self._sni: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        # OpenSSL names the cipher; the id (low 16 bits) is what Go names.
        self._cipher_ids = {c["name"]: c["id"] & 0xFFFF for c in ctx.get_ciphers()}

    def _remember_sni(self, sslobj: Any, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        if server_name is not None:
            self._sni[sslobj] = server_name

    def describe(self, sslobj: ssl.SSLObject) -> TLSInfo:
        """Returns: the TLSInfo of a connection whose handshake has completed."""
        cipher = sslobj.cipher()
        cipher_name = cipher[0] if cipher else ""
        suite_id = self._cipher_ids.get(cipher_name)
        return TLSInfo(
            version=sslobj.version() or "",
            server_name=self._sni.get(sslobj, ""),
            negotiated_protocol=sslobj.selected_alpn_protocol() or "",
            cipher_suite=go_cipher_name(suite_id) if suite_id is not None else cipher_name,
            peer_certificates=_peer_chain(sslobj),
        )


def _peer_chain(sslobj: ssl.SSLObject) -> tuple[str, ...]:
    # Go reports every certificate the peer sent. Python >= 3.13 can list
    # them; before that only the leaf is reachable, which is the one the
    # suite compares (it looks for the client certificate among them).
    chain_of = getattr(sslobj, "get_unverified_chain", None)
    chain = chain_of() if chain_of is not None else None
    if chain and all(isinstance(c, bytes) for c in chain):
        return tuple(ssl.DER_cert_to_PEM_cert(c) for c in chain)
    leaf = sslobj.getpeercert(binary_form=True)
    return (ssl.DER_cert_to_PEM_cert(leaf),) if leaf else ()
