"""The lab's shape as data: names and the address plan. No I/O.

Topology (P is the run's prefix, "ng" + 4 hex digits + "-")::

    P client ──┐                               ┌── P b1
               │  client segment   backend segment  │
          [P sw: bridge P brc] ── P gw ── [P sw: bridge P brb] ──┴── P b2 ...

Both segments are bridges in one switch namespace (P sw), so a segment can
hold any number of hosts and the gateway node has two plain veth "NICs",
like a real node. Nothing connects to the root namespace.

Address plan, all inside 198.18.0.0/15 (RFC 2544 benchmarking space):

    client segment   198.18.0.0/24  gateway node .1, clients from .2
    Gateway pool     198.18.1.0/24  one address per Gateway, a /32 on the
                                    gateway node's client-side link
    backend segment  198.19.0.0/24  gateway node .1, backends from .2

Routes: clients reach 198.18.0.0/15 (pool and backend segment) via the
gateway node; backends default via the gateway node; the gateway node has
no default route, so nothing leaves the lab.

Invariants: every name built here carries the prefix and fits IFNAMSIZ;
every address handed out is inside LAB_NET.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

LAB_NET = IPv4Network("198.18.0.0/15")
GATEWAY_POOL = IPv4Network("198.18.1.0/24")

# Interface names are limited to IFNAMSIZ - 1 characters.
IFNAME_MAX = 15

PREFIX_RE = re.compile(r"^ng[0-9a-f]{4}-")
HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
SWITCH = "sw"
RESERVED_NAMES = frozenset({SWITCH})


class TopologyError(ValueError):
    """A name or address request the lab cannot satisfy."""


@dataclass(frozen=True)
class Segment:
    """One L2 segment: a bridge in the switch namespace and its subnet."""

    name: str
    letter: str
    network: IPv4Network

    @property
    def router(self) -> IPv4Address:
        """The gateway node's address on this segment."""
        return self.network.network_address + 1

    def bridge(self, prefix: str) -> str:
        return ifname(prefix, "br" + self.letter)


CLIENT_SEGMENT = Segment("client", "c", IPv4Network("198.18.0.0/24"))
BACKEND_SEGMENT = Segment("backend", "b", IPv4Network("198.19.0.0/24"))
SEGMENTS = (CLIENT_SEGMENT, BACKEND_SEGMENT)

assert all(s.network.subnet_of(LAB_NET) for s in SEGMENTS)
assert GATEWAY_POOL.subnet_of(LAB_NET)
assert not any(GATEWAY_POOL.overlaps(s.network) for s in SEGMENTS)


def new_prefix() -> str:
    return f"ng{secrets.token_hex(2)}-"


def prefix_of(name: str) -> str | None:
    """The lab prefix a namespace name carries, or None if it is not ours."""
    m = PREFIX_RE.match(name)
    return m.group(0) if m else None


def ifname(prefix: str, tag: str) -> str:
    name = prefix + tag
    if len(name) > IFNAME_MAX:
        raise TopologyError(f"interface name {name!r} is longer than {IFNAME_MAX}")
    return name


def port_names(prefix: str, segment: Segment, port: int) -> tuple[str, str]:
    """(host-side, bridge-side) names of the veth pair for a segment port."""
    host = ifname(prefix, f"{segment.letter}{port}")
    return host, ifname(prefix, f"{segment.letter}{port}p")


def check_host_name(name: str) -> None:
    if not HOST_NAME_RE.match(name) or name in RESERVED_NAMES:
        raise TopologyError(
            f"bad host name {name!r}: want {HOST_NAME_RE.pattern}, not {sorted(RESERVED_NAMES)}"
        )


@dataclass
class AddressPool:
    """Hands out host addresses of a network, lowest free first."""

    network: IPv4Network
    first: int = 1
    _used: set[IPv4Address] = field(default_factory=set)

    def take(self) -> IPv4Address:
        for i, addr in enumerate(self.network.hosts(), start=1):
            if i >= self.first and addr not in self._used:
                self._used.add(addr)
                return addr
        raise TopologyError(f"address pool {self.network} is exhausted")

    def release(self, addr: IPv4Address) -> None:
        self._used.discard(addr)
