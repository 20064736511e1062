"""Helpers for the L7 tests: limits, the engine wrapper, free ports and NodeConfig builders."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Sequence

from agent.nodeconfig import (
    Backend,
    Endpoint,
    Filters,
    HTTPEntry,
    HTTPListener,
    HTTPMatch,
    HTTPPort,
    HTTPRule,
    NodeConfig,
    Ref,
    VirtualHost,
)
from l7.engine import L7Datapath
from l7.limits import Limits
from tests.l7.backends import EchoBackend

# Short limits so the slow-client tests finish quickly; the defaults are in l7/limits.py.
TEST_LIMITS = Limits(
    header_timeout=1.0,
    body_timeout=1.0,
    keepalive_timeout=3.0,
    max_body_bytes=64 * 1024,
    max_headers=50,
    max_header_bytes=8 * 1024,
    eject_seconds=2.0,
    drain_timeout=1.0,
    connect_timeout=2.0,
)

_generation = itertools.count(1)


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


class Engine:
    """The session's L7Datapath with a helper that applies a config and checks it took."""

    def __init__(self, dp: L7Datapath) -> None:
        self.dp = dp

    def apply(self, *ports: HTTPPort) -> int:
        g = next(_generation)
        self.dp.apply(NodeConfig(node="test", http=tuple(ports)), g)
        assert self.dp.applied_generation() == g
        assert self.dp.port_errors() == {}
        return g


# --- NodeConfig builders ---------------------------------------------------------------


def backend(*servers: EchoBackend, name: str = "svc", weight: int = 1, **kw: object) -> Backend:
    return Backend(
        ref=Ref(kind="Service", namespace="ns", name=name),
        port=8080,
        weight=weight,
        endpoints=tuple(Endpoint(address=s.address, port=s.port) for s in servers),
        **kw,  # type: ignore[arg-type]
    )


def rule(
    *backends: Backend, name: str = "route", filters: Filters | None = None, **kw: object
) -> HTTPRule:
    return HTTPRule(
        ref=Ref(kind="HTTPRoute", namespace="ns", name=name, section="0"),
        filters=filters or Filters(),
        backends=backends,
        **kw,  # type: ignore[arg-type]
    )


def match(path: str = "/", path_type: str = "PathPrefix", **kw: object) -> HTTPMatch:
    return HTTPMatch(path=path, path_type=path_type, **kw)  # type: ignore[arg-type]


def vhost(hostname: str, *routes: tuple[HTTPRule, Sequence[HTTPMatch]]) -> VirtualHost:
    """Routes in precedence order, as translation would have sorted them."""
    rules = tuple(r for r, _ in routes)
    entries = tuple(HTTPEntry(match=m, rule=i) for i, (_, ms) in enumerate(routes) for m in ms)
    return VirtualHost(hostname=hostname, rules=rules, entries=entries)


def listener(
    *vhosts: VirtualHost, hostname: str = "", name: str = "http", **kw: object
) -> HTTPListener:
    return HTTPListener(
        ref=Ref(kind="Gateway", namespace="ns", name="gw", section=name),
        gateway=Ref(kind="Gateway", namespace="ns", name="gw"),
        hostname=hostname,
        virtual_hosts=vhosts,
        **kw,  # type: ignore[arg-type]
    )


def http_port(address: str, port: int, *listeners: HTTPListener, tls: bool = False) -> HTTPPort:
    return HTTPPort(address=address, port=port, tls=tls, listeners=listeners)


def simple_port(
    address: str, port: int, *routes: tuple[HTTPRule, Sequence[HTTPMatch]], hostname: str = ""
) -> HTTPPort:
    """One plain listener, one virtual host."""
    return http_port(address, port, listener(vhost(hostname, *routes)))
