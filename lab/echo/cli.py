"""`python -m lab.echo`: one echo-basic replica, configured like the container or by flags.

With no listener flag, the process reads its environment exactly as the
echo-basic image does (see lab.echo.settings): HTTP mode by default,
`TCP_ECHO_SERVER` / `UDP_ECHO_SERVER` for the L4 modes, upstream port
variables and defaults. With one or more listener flags, exactly the named
listeners run (several protocols in one process is fine); anything not
given on the command line still comes from the environment.

    ip netns exec be1 python -m lab.echo --namespace gateway-conformance-infra \\
        --pod infra-backend-v1-6b8f7c9d4b-x2k7q --http-port 3000

Flag            environment (upstream)          meaning
--namespace     NAMESPACE                       echoed `namespace`
--pod           POD_NAME                        echoed `pod`
--service       SERVICE_NAME                    echoed `service`
--ingress       INGRESS_NAME                    echoed `ingress`
--http-port     HTTP_PORT (3000)                HTTP/1.1 echo
--https-port    HTTPS_PORT (8443)               HTTPS echo (needs --cert/--key)
--tcp-port      TCP_PORT (3000)                 line-based TCP echo
--tls-port      TLS_PORT (8443)                 the same over TLS (needs --cert/--key)
--udp-port      UDP_PORT (8080)                 UDP echo
--cert          TLS_SERVER_CERT                 server certificate (PEM, may hold a chain)
--key           TLS_SERVER_PRIVKEY / _PRIV_KEY  its private key
--client-ca     TLS_CLIENT_CACERTS              HTTPS: verify client certificates if sent
--bind          -                               listen address (default: all, dual-stack)
--log           -                               append log lines here instead of stdout
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import os
import sys
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

from lab.echo.requestlog import RequestLog
from lab.echo.server import serve
from lab.echo.settings import Context, Listeners, Settings, SettingsError

_LISTENER_FLAGS = ("http_port", "https_port", "tcp_port", "tls_port", "udp_port")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lab.echo",
        description="Echo backend speaking the Gateway API conformance echo-basic protocol.",
    )
    ident = parser.add_argument_group("identity (echoed in every reply)")
    ident.add_argument("--namespace", help="NAMESPACE")
    ident.add_argument("--pod", help="POD_NAME, e.g. infra-backend-v1-6b8f7c9d4b-x2k7q")
    ident.add_argument("--service", help="SERVICE_NAME")
    ident.add_argument("--ingress", help="INGRESS_NAME")
    ports = parser.add_argument_group("listeners (any of these: run exactly those; 0 = any free)")
    ports.add_argument("--http-port", type=int, metavar="N")
    ports.add_argument("--https-port", type=int, metavar="N")
    ports.add_argument("--tcp-port", type=int, metavar="N")
    ports.add_argument("--tls-port", type=int, metavar="N")
    ports.add_argument("--udp-port", type=int, metavar="N")
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--cert", metavar="FILE", help="TLS_SERVER_CERT")
    tls.add_argument("--key", metavar="FILE", help="TLS_SERVER_PRIVKEY / TLS_SERVER_PRIV_KEY")
    tls.add_argument("--client-ca", metavar="FILE", help="TLS_CLIENT_CACERTS")
    parser.add_argument("--bind", metavar="ADDR", help="listen address (default: all)")
    parser.add_argument("--log", metavar="FILE", help="log file (default: stdout)")
    return parser


def settings_from(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """Returns: validated Settings from parsed flags over the environment."""
    if any(getattr(args, name) is not None for name in _LISTENER_FLAGS):
        settings = Settings(
            context=Context(
                namespace=env.get("NAMESPACE", ""),
                ingress=env.get("INGRESS_NAME", ""),
                service=env.get("SERVICE_NAME", ""),
                pod=env.get("POD_NAME", ""),
            ),
            listeners=Listeners(
                http=args.http_port is not None,
                https=args.https_port is not None,
                tcp=args.tcp_port is not None,
                tls=args.tls_port is not None,
                udp=args.udp_port is not None,
            ),
            cert=env.get("TLS_SERVER_CERT") or None,
            key=env.get("TLS_SERVER_PRIVKEY") or env.get("TLS_SERVER_PRIV_KEY") or None,
            client_ca=env.get("TLS_CLIENT_CACERTS") or None,
        )
        ports = {name: getattr(args, name) for name in _LISTENER_FLAGS}
        settings = dataclasses.replace(
            settings, **{name: port for name, port in ports.items() if port is not None}
        )
    else:
        settings = Settings.from_env(env)
    context = settings.context
    settings = dataclasses.replace(
        settings,
        context=Context(
            namespace=args.namespace if args.namespace is not None else context.namespace,
            ingress=args.ingress if args.ingress is not None else context.ingress,
            service=args.service if args.service is not None else context.service,
            pod=args.pod if args.pod is not None else context.pod,
        ),
        cert=args.cert or settings.cert,
        key=args.key or settings.key,
        client_ca=args.client_ca or settings.client_ca,
        bind=args.bind,
        log_path=args.log,
    )
    return settings.validate()


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from(args, os.environ if env is None else env)
    except SettingsError as exc:
        parser.error(str(exc))
    if isinstance(sys.stdout, io.TextIOWrapper):
        # A request line with odd bytes must not be able to kill the logger.
        sys.stdout.reconfigure(errors="backslashreplace")
    log = RequestLog.open(settings.log_path)
    try:
        _run(serve(settings, log))
    except OSError as exc:
        print(f"echo: {exc}", file=sys.stderr)
        return 1
    finally:
        log.close()
    return 0


def _run(main_coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_coro)
        return
    uvloop.run(main_coro)
