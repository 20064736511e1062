"""What one echo process serves, read the way the echo-basic container reads its environment.

echo-basic picks one mode from the environment (echo-backend.md section 1):
`GRPC_ECHO_SERVER`, then `TCP_ECHO_SERVER`, then `UDP_ECHO_SERVER`, else HTTP.
`Settings.from_env` reproduces that, with the upstream variable names and
defaults. The CLI can instead name listeners one by one (`--http-port` ...),
so one lab process may serve several protocols; the echoed identity and port
strings stay those of the upstream container.

Invariants: a TLS listener (HTTPS or TCP-TLS) is only enabled with both a
certificate and a key; the `*_port` numbers are always set (to the upstream
default when the listener is off) because the echo bodies report them anyway
(`httpPort`, `tcpport`, `tlsport`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class SettingsError(ValueError):
    """The environment or flags describe a server we cannot start."""


class Mode(enum.StrEnum):
    HTTP = "http"
    TCP = "tcp"
    UDP = "udp"


@dataclass(frozen=True)
class Context:
    """Identity every reply carries: NAMESPACE, INGRESS_NAME, SERVICE_NAME, POD_NAME."""

    namespace: str = ""
    ingress: str = ""
    service: str = ""
    pod: str = ""

    def fields(self) -> dict[str, str]:
        """Returns: the four JSON fields in echo-basic's order."""
        return {
            "namespace": self.namespace,
            "ingress": self.ingress,
            "service": self.service,
            "pod": self.pod,
        }


@dataclass(frozen=True)
class Listeners:
    """Which sockets to open. A port of 0 asks the kernel for a free one."""

    http: bool = False
    https: bool = False
    tcp: bool = False
    tls: bool = False
    udp: bool = False


@dataclass(frozen=True)
class Settings:
    context: Context = field(default_factory=Context)
    listeners: Listeners = field(default_factory=Listeners)
    http_port: int = 3000  # HTTP_PORT; also echoed as "httpPort" on every listener
    https_port: int = 8443  # HTTPS_PORT
    tcp_port: int = 3000  # TCP_PORT; echoed as "tcpport"
    tls_port: int = 8443  # TLS_PORT; echoed as "tlsport"
    udp_port: int = 8080  # UDP_PORT
    cert: str | None = None  # TLS_SERVER_CERT
    key: str | None = None  # TLS_SERVER_PRIVKEY (HTTP mode) / TLS_SERVER_PRIV_KEY (TCP mode)
    client_ca: str | None = None  # TLS_CLIENT_CACERTS: verify client certs if given
    bind: str | None = None  # None: every address, like Go's ":port"
    log_path: str | None = None  # None: stdout

    def validate(self) -> Settings:
        """Returns: self. Raises SettingsError if nothing would listen or TLS lacks a key pair."""
        ls = self.listeners
        if not (ls.http or ls.https or ls.tcp or ls.tls or ls.udp):
            raise SettingsError("no listener enabled")
        if (ls.https or ls.tls) and not (self.cert and self.key):
            raise SettingsError("a TLS listener needs both a certificate and a key")
        for name in ("http_port", "https_port", "tcp_port", "tls_port", "udp_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise SettingsError(f"{name} out of range: {port}")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Returns: the settings the echo-basic image would run with under `env`."""

        def get(name: str) -> str:
            return env.get(name, "")

        context = Context(
            namespace=get("NAMESPACE"),
            ingress=get("INGRESS_NAME"),
            service=get("SERVICE_NAME"),
            pod=get("POD_NAME"),
        )
        if get("GRPC_ECHO_SERVER"):
            raise SettingsError("GRPC_ECHO_SERVER: the gRPC echo mode is not implemented")
        if get("TCP_ECHO_SERVER"):
            cert, key = get("TLS_SERVER_CERT"), get("TLS_SERVER_PRIV_KEY")
            has_tls = bool(cert and key)
            return cls(
                context=context,
                listeners=Listeners(tcp=True, tls=has_tls),
                tcp_port=_port(env, "TCP_PORT", 3000),
                tls_port=_port(env, "TLS_PORT", 8443),
                cert=cert or None,
                key=key or None,
            ).validate()
        if get("UDP_ECHO_SERVER"):
            return cls(
                context=context,
                listeners=Listeners(udp=True),
                udp_port=_port(env, "UDP_PORT", 8080),
            ).validate()
        # HTTP mode spells the key variable without the underscore.
        cert, key = get("TLS_SERVER_CERT"), get("TLS_SERVER_PRIVKEY")
        has_tls = bool(cert and key)
        return cls(
            context=context,
            listeners=Listeners(http=True, https=has_tls),
            http_port=_port(env, "HTTP_PORT", 3000),
            https_port=_port(env, "HTTPS_PORT", 8443),
            cert=cert or None,
            key=key or None,
            client_ca=get("TLS_CLIENT_CACERTS") or None,
        ).validate()


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"non-integer value in {name}: {raw}") from None
