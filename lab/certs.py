"""The Secrets and ConfigMaps the upstream conformance suite generates at setup (not in any YAML).

Source: gateway-api v1.6.1 `conformance/utils/kubernetes/certificate.go` and the
suite's setup, summarised in shared/conformance/echo-backend.md section 12:

    All RSA 2048, valid 1 year, Secrets of type `kubernetes.io/tls` with
    `tls.crt`/`tls.key` (PKCS#1 key), CA ConfigMaps with keys `ca.crt` and
    `key.crt`. SAN rule: an entry that parses as an IP becomes an IP SAN, one
    that is a valid DNS name (optionally `*.`-prefixed) a DNS SAN, anything
    else a URI SAN (so `"*"` becomes a URI SAN `*`).

The certificate templates copy upstream's on purpose, quirks included, because
the gateway must cope with exactly these certificates:
- leaves are CN=default, O=Acme Co, KeyUsage keyEncipherment|digitalSignature,
  ExtKeyUsage serverAuth; the three client certificates (`client=True`) also
  carry clientAuth. Upstream's older `generateRSACert` template gives every leaf
  serverAuth only, and a peer checking purposes refuses such a leaf as a client
  certificate: OpenSSL with "unsuitable certificate purpose", Go's crypto/tls
  (`verifyClientCertificate` asks for ExtKeyUsageClientAuth) with "certificate
  specifies an incompatible key usage". Upstream's own echo backend is Go and
  verifies the Gateway's client certificate (GatewayTLSBackendClientCertificate),
  so that case can only pass with client certificates that allow clientAuth;
- every CA is CN=gatewayapi, O=Kubernetes Gateway API, C=US with the fixed
  serial number 2024, KeyUsage digitalSignature|keyCertSign, ExtKeyUsage
  clientAuth+serverAuth; CAs differ only by key (and so by subjectKeyIdentifier).

Invariants:
- `generated_objects()` returns fresh deep copies of one generation per process
  (and, when given a cache folder, per cache version on disk), so callers may
  mutate what they get and every caller in a run sees the same key material.
- Objects are shaped like `kubectl get -o yaml`: Secrets carry base64 `data`,
  ConfigMaps plain `data`.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import ipaddress
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.sources.files import write_atomically

RSA_BITS = 2048
VALID_FOR = dt.timedelta(days=365)
# Bump when FIXTURES or the templates change: it keys the on-disk cache.
CACHE_VERSION = "gateway-api-v1.6.1.2"
# A cached set is regenerated when it would expire within this margin.
_MIN_REMAINING_VALIDITY = dt.timedelta(days=7)

INFRA = "gateway-conformance-infra"
APP_BACKEND = "gateway-conformance-app-backend"
WEB_BACKEND = "gateway-conformance-web-backend"


@dataclass(frozen=True)
class SelfSigned:
    """A kubernetes.io/tls Secret holding a self-signed leaf (MustCreateSelfSignedCertSecret)."""

    namespace: str
    name: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class CertificateAuthority:
    """A ConfigMap with a CA's ca.crt and key.crt (MustCreateCACertConfigMap)."""

    namespace: str
    name: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class SignedBy:
    """A kubernetes.io/tls Secret holding a leaf signed by `ca` ("namespace/name" of a CA)."""

    namespace: str
    name: str
    hosts: tuple[str, ...]
    ca: str
    client: bool = False  # presented as a client certificate: ExtKeyUsage adds clientAuth


Fixture = SelfSigned | CertificateAuthority | SignedBy

# echo-backend.md section 12, in setup order (every CA before what it signs).
# The SANs of CAs and client certificates are not given there; the ones below
# are our choice (no conformance case depends on them).
FIXTURES: tuple[Fixture, ...] = (
    SelfSigned(WEB_BACKEND, "certificate", ("*",)),
    SelfSigned(INFRA, "tls-validity-checks-certificate", ("*", "*.org", "*.wildcard.org")),
    CertificateAuthority(WEB_BACKEND, "web-backend-cm", ("*",)),
    CertificateAuthority(INFRA, "tls-validity-checks-ca-certificate", ("*", "*.org")),
    SignedBy(
        INFRA,
        "tls-validity-checks-client-certificate",
        ("*", "*.org"),
        ca=f"{INFRA}/tls-validity-checks-ca-certificate",
        client=True,
    ),
    CertificateAuthority(INFRA, "tls-validity-checks-per-port-ca-certificate", ("*", "*.org")),
    SignedBy(
        INFRA,
        "tls-validity-checks-per-port-client-certificate",
        ("*", "*.org"),
        ca=f"{INFRA}/tls-validity-checks-per-port-ca-certificate",
        client=True,
    ),
    CertificateAuthority(INFRA, "tls-checks-ca-certificate", ("abc.example.com",)),
    SignedBy(
        INFRA,
        "tls-checks-certificate",
        ("abc.example.com", "spiffe://abc.example.com/test-identity", "other.example.com"),
        ca=f"{INFRA}/tls-checks-ca-certificate",
    ),
    SignedBy(
        INFRA,
        "tls-checks-client-certificate",
        ("abc.example.com",),
        ca=f"{INFRA}/tls-checks-ca-certificate",
        client=True,
    ),
    SignedBy(
        INFRA,
        "tls-passthrough-checks-certificate",
        ("abc.example.com",),
        ca=f"{INFRA}/tls-checks-ca-certificate",
    ),
    SignedBy(
        APP_BACKEND,
        "tls-passthrough-checks-certificate",
        ("abc.example.com",),
        ca=f"{INFRA}/tls-checks-ca-certificate",
    ),
    SignedBy(
        INFRA,
        "tls-terminate-checks-certificate",
        ("tls.example.com",),
        ca=f"{INFRA}/tls-checks-ca-certificate",
    ),
    CertificateAuthority(INFRA, "mismatch-ca-certificate", ("abc.example.com",)),
)

# k8s.io/apimachinery IsDNS1123Subdomain / IsDNS1123Label, as upstream's validateHost uses them.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)

_process_cache: dict[str, list[dict[str, Any]]] = {}


def subject_alt_name(host: str) -> x509.GeneralName:
    """The SAN upstream puts in a certificate for `host`.

    certificate.go: "if ip := net.ParseIP(h) ... else if err = validateHost(h)
    ... DNSNames ... else if u, parseErr := url.Parse(h) ... URIs"; validateHost
    strips one leading "*." and then requires a DNS-1123 subdomain made of
    DNS-1123 labels. (Go's url.Parse accepts every host string used here.)
    """
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    bare = host.removeprefix("*.")
    if (
        len(bare) <= 253
        and _DNS1123_SUBDOMAIN.match(bare)
        and all(len(label) <= 63 and _DNS1123_LABEL.match(label) for label in bare.split("."))
    ):
        return x509.DNSName(host)
    return x509.UniformResourceIdentifier(host)


def generated_objects(cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Every generated Secret and ConfigMap, as Kubernetes object dicts (fresh copies).

    Generated once per process; with `cache_dir`, also reused across processes
    from `<cache_dir>/certs-<CACHE_VERSION>.json` while it stays valid long enough.
    """
    key = str(cache_dir) if cache_dir is not None else ""
    cached = _process_cache.get(key)
    if cached is None:
        cached = _load_disk_cache(cache_dir) if cache_dir is not None else None
        if cached is None:
            cached = _generate(FIXTURES)
            if cache_dir is not None:
                _store_disk_cache(cache_dir, cached)
        _process_cache[key] = cached
    return copy.deepcopy(cached)


def write_yaml(
    folder: Path,
    objects: Sequence[Mapping[str, Any]] | None = None,
    filename: str = "generated-certificates.yaml",
) -> Path:
    """Write `objects` (default: `generated_objects()`) as one multi-document YAML file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    docs = list(objects) if objects is not None else generated_objects()
    path.write_text(yaml.safe_dump_all([dict(d) for d in docs], sort_keys=False), encoding="utf-8")
    return path


def find(
    objects: Iterable[Mapping[str, Any]], kind: str, namespace: str, name: str
) -> Mapping[str, Any]:
    """The object of `kind` at namespace/name among `objects`; KeyError if absent."""
    for obj in objects:
        meta = obj.get("metadata") or {}
        if (
            obj.get("kind") == kind
            and meta.get("namespace") == namespace
            and meta.get("name") == name
        ):
            return obj
    raise KeyError(f"{kind} {namespace}/{name}")


def tls_pair(secret: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) decoded from a kubernetes.io/tls Secret."""
    data = secret["data"]
    return base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"])


def ca_pem(config_map: Mapping[str, Any]) -> bytes:
    """The CA certificate PEM of a CA ConfigMap."""
    return str(config_map["data"]["ca.crt"]).encode()


# --------------------------------------------------------------------------
# generation


@dataclass(frozen=True)
class _Issuer:
    name: x509.Name
    key: rsa.RSAPrivateKey
    ski: x509.SubjectKeyIdentifier


_LEAF_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Co"),
        x509.NameAttribute(NameOID.COMMON_NAME, "default"),
    ]
)
# Go's pkix.Name orders the RDNs C, O, ..., CN.
_CA_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kubernetes Gateway API"),
        x509.NameAttribute(NameOID.COMMON_NAME, "gatewayapi"),
    ]
)


def _generate(fixtures: Sequence[Fixture]) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    issuers: dict[str, _Issuer] = {}
    objects: list[dict[str, Any]] = []
    for fx in fixtures:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        if isinstance(fx, CertificateAuthority):
            cert = _ca_certificate(key, fx.hosts, now)
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            issuers[f"{fx.namespace}/{fx.name}"] = _Issuer(cert.subject, key, ski)
            objects.append(_config_map(fx.namespace, fx.name, cert, key))
        else:
            issuer = issuers[fx.ca] if isinstance(fx, SignedBy) else None
            client = isinstance(fx, SignedBy) and fx.client
            cert = _leaf_certificate(key, fx.hosts, now, issuer, client)
            objects.append(_tls_secret(fx.namespace, fx.name, cert, key))
    return objects


def _sans(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName([subject_alt_name(h) for h in hosts])


def _leaf_certificate(
    key: rsa.RSAPrivateKey,
    hosts: Sequence[str],
    now: dt.datetime,
    issuer: _Issuer | None,
    client: bool = False,
) -> x509.Certificate:
    usages = [ExtendedKeyUsageOID.SERVER_AUTH]
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_LEAF_SUBJECT)
        .issuer_name(issuer.name if issuer else _LEAF_SUBJECT)
        .public_key(key.public_key())
        .serial_number(secrets.randbelow(1 << 128) or 1)
        .not_valid_before(now)
        .not_valid_after(now + VALID_FOR)
        .add_extension(_key_usage(key_encipherment=True, cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_sans(hosts), critical=False)
    )
    if issuer is not None:
        # Go copies the parent's subjectKeyId into authorityKeyId when signing with a CA.
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer.ski),
            critical=False,
        )
    return builder.sign(issuer.key if issuer else key, hashes.SHA256())


def _ca_certificate(
    key: rsa.RSAPrivateKey, hosts: Sequence[str], now: dt.datetime
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_CA_SUBJECT)
        .issuer_name(_CA_SUBJECT)
        .public_key(key.public_key())
        .serial_number(2024)
        .not_valid_before(now)
        .not_valid_after(now + VALID_FOR)
        .add_extension(_key_usage(key_encipherment=False, cert_sign=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        # Go generates a subjectKeyId for CA templates that have none.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_sans(hosts), critical=False)
        .sign(key, hashes.SHA256())
    )


def _key_usage(*, key_encipherment: bool, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    # TraditionalOpenSSL for an RSA key is PKCS#1: "-----BEGIN RSA PRIVATE KEY-----".
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _tls_secret(
    namespace: str, name: str, cert: x509.Certificate, key: rsa.RSAPrivateKey
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(_cert_pem(cert)).decode(),
            "tls.key": base64.b64encode(_key_pem(key)).decode(),
        },
    }


def _config_map(
    namespace: str, name: str, cert: x509.Certificate, key: rsa.RSAPrivateKey
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        # Upstream: `"key.crt": keyData.String()` -- "Don't do this in production,
        # this is just for conformance testing."
        "data": {"ca.crt": _cert_pem(cert).decode(), "key.crt": _key_pem(key).decode()},
    }


# --------------------------------------------------------------------------
# on-disk cache


def _cache_path(cache_dir: Path) -> Path:
    return cache_dir / f"certs-{CACHE_VERSION}.json"


def _load_disk_cache(cache_dir: Path) -> list[dict[str, Any]] | None:
    path = _cache_path(cache_dir)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(loaded, list) or not _still_valid(loaded):
        return None
    return loaded


def _still_valid(objects: list[Any]) -> bool:
    """Every expected object is present and no certificate expires within the margin."""
    deadline = dt.datetime.now(dt.UTC) + _MIN_REMAINING_VALIDITY
    try:
        for fx in FIXTURES:
            obj = find(
                objects,
                "ConfigMap" if isinstance(fx, CertificateAuthority) else "Secret",
                fx.namespace,
                fx.name,
            )
            pem = ca_pem(obj) if isinstance(fx, CertificateAuthority) else tls_pair(obj)[0]
            if x509.load_pem_x509_certificate(pem).not_valid_after_utc < deadline:
                return False
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    return True


def _store_disk_cache(cache_dir: Path, objects: list[dict[str, Any]]) -> None:
    write_atomically(_cache_path(cache_dir), json.dumps(objects))
