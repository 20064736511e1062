"""Certificates and CA bundles read from Secrets and ConfigMaps, checked before use.

A keypair is usable when tls.crt holds at least one PEM certificate, tls.key a
PEM private key, and the key belongs to the first certificate. A CA bundle is
usable when ca.crt holds at least one PEM certificate. Parsing is pure and
cached by content.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.model import ConfigMap, Secret
from agent.model.gateway import ObjectReference, SecretObjectReference
from agent.nodeconfig import Certificate
from agent.translate.conditions import Reason
from agent.translate.context import Context


@dataclass(frozen=True)
class RefProblem:
    reason: Reason
    message: str


def _decode(secret: Secret, key: str) -> bytes | None:
    if key in secret.string_data:
        return secret.string_data[key].encode()
    value = secret.data.get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


@lru_cache(maxsize=512)
def load_keypair(cert_pem: bytes, key_pem: bytes) -> Certificate | str:
    """A Certificate, or why the pair is unusable."""
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as e:
        return f"tls.crt is not a PEM certificate ({e})"
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        return f"tls.key is not an unencrypted PEM private key ({e})"
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != chain[0].public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        return "tls.key does not belong to the certificate in tls.crt"
    try:
        san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return Certificate(cert_pem=cert_pem.decode(), key_pem=key_pem.decode(), hostnames=names)


@lru_cache(maxsize=512)
def load_ca_bundle(pem: bytes) -> str | None:
    """The bundle as text if it holds at least one certificate, else None."""
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        return None
    return pem.decode()


def resolve_certificate_ref(
    ctx: Context, ref: SecretObjectReference, from_group: str, from_kind: str, from_namespace: str
) -> Certificate | RefProblem:
    """A listener's certificateRef (or a Gateway's backend clientCertificateRef)."""
    namespace = ref.namespace or from_namespace
    where = f"{ref.kind} {namespace}/{ref.name}"
    if ref.group != "" or ref.kind != "Secret":
        return RefProblem(
            Reason.INVALID_CERTIFICATE_REF,
            f"{ref.group}/{ref.kind} is not a supported certificate kind (core Secret is)",
        )
    if not ctx.reference_allowed(
        from_group, from_kind, from_namespace, "", "Secret", namespace, ref.name
    ):
        return RefProblem(
            Reason.REF_NOT_PERMITTED,
            f"{where} is in another namespace and no ReferenceGrant allows it",
        )
    secret = ctx.snapshot.get_typed(Secret, namespace, ref.name)
    if secret is None:
        return RefProblem(Reason.INVALID_CERTIFICATE_REF, f"{where} does not exist")
    cert, key = _decode(secret, "tls.crt"), _decode(secret, "tls.key")
    if cert is None or key is None:
        return RefProblem(Reason.INVALID_CERTIFICATE_REF, f"{where} has no tls.crt and tls.key")
    loaded = load_keypair(cert, key)
    if isinstance(loaded, str):
        return RefProblem(Reason.INVALID_CERTIFICATE_REF, f"{where}: {loaded}")
    return loaded


def resolve_ca_ref(
    ctx: Context,
    ref: ObjectReference,
    from_group: str,
    from_kind: str,
    from_namespace: str,
    bad_kind: Reason,
) -> str | RefProblem:
    """A caCertificateRef: the PEM bundle, or the problem. `bad_kind` is the reason the
    caller's spec uses for an unsupported kind (InvalidCACertificateKind or InvalidKind)."""
    namespace = ref.namespace or from_namespace
    where = f"{ref.kind} {namespace}/{ref.name}"
    if ref.group != "" or ref.kind not in ("ConfigMap", "Secret"):
        return RefProblem(
            bad_kind,
            f"{ref.group}/{ref.kind} is not a supported CA certificate kind (core ConfigMap "
            "or Secret are)",
        )
    if not ctx.reference_allowed(
        from_group, from_kind, from_namespace, "", ref.kind, namespace, ref.name
    ):
        return RefProblem(
            Reason.REF_NOT_PERMITTED,
            f"{where} is in another namespace and no ReferenceGrant allows it",
        )
    pem: bytes | None
    if ref.kind == "ConfigMap":
        cm = ctx.snapshot.get_typed(ConfigMap, namespace, ref.name)
        pem = cm.data.get("ca.crt", "").encode() if cm is not None else None
    else:
        secret = ctx.snapshot.get_typed(Secret, namespace, ref.name)
        pem = _decode(secret, "ca.crt") if secret is not None else None
    if pem is None:
        return RefProblem(Reason.INVALID_CA_CERTIFICATE_REF, f"{where} does not exist")
    bundle = load_ca_bundle(pem)
    if bundle is None:
        return RefProblem(
            Reason.INVALID_CA_CERTIFICATE_REF, f"{where} has no PEM certificate under ca.crt"
        )
    return bundle
