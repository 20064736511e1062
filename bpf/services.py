"""From NodeConfig.l4 to the rows of the service maps. Pure: no I/O.

Each L4Listener becomes one service keyed (address, port, protocol);
"0.0.0.0" stays the wildcard. Its backends become rows of endpoints:

- a valid backendRef's weight is shared equally by its endpoints;
- an invalid backendRef (or a valid one with no ready endpoint, which the
  spec counts as invalid) becomes one row flagged invalid carrying its
  whole weight: Maglev gives it that share of flows, which the BPF side
  rejects (RST for a TCP SYN, drop for UDP);
- weight 0 rows get no Maglev slot, so no new flows;
- no row with weight > 0 means the listener rejects everything.

IPv4 and IPv6 listeners alike; an endpoint of the other family than its
listener's cannot be reached without NAT64 and is left out (reported in
Plan.skipped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from ipaddress import IPv4Address, ip_address

from agent.nodeconfig import L4Listener
from bpf.maglev import maglev_table

PROTOCOLS = {"TCP": 6, "UDP": 17}


@dataclass(frozen=True)
class Row:
    """One backend row: an endpoint, or the share of an invalid backendRef."""

    name: str  # Maglev identity: "addr:port", or "invalid:<ref>"
    address: str
    port: int
    snat_address: str
    invalid: bool
    weight: Fraction


@dataclass(frozen=True)
class Service:
    key: tuple[str, int, int]  # (address, port, IP protocol number)
    listener: L4Listener
    rows: tuple[Row, ...]
    table: tuple[int, ...]  # Maglev slot -> row index; () = reject everything

    @property
    def reject(self) -> bool:
        return not self.table

    def same_datapath(self, other: Service) -> bool:
        """Whether both would write the same rows and table."""
        return self.rows == other.rows and self.table == other.table


@dataclass
class Plan:
    services: list[Service] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _family(addr: str) -> int:
    """4, 6, or 0 for something that is not an address."""
    try:
        a = ip_address(addr)
    except ValueError:
        return 0
    return 4 if isinstance(a, IPv4Address) else 6


def is_v6(address: str) -> bool:
    return _family(address) == 6


def plan_services(
    listeners: tuple[L4Listener, ...],
    snat_source: Callable[[str], str | None],
    maglev_size: int,
    max_backends: int,
    max_services: int,
) -> Plan:
    """The services to program; ValueError when the config does not fit the maps."""
    plan = Plan()
    seen: set[tuple[str, int, int]] = set()
    for lst in listeners:
        fam = _family(lst.address)
        if not fam:
            plan.skipped.append(f"{lst.ref}: {lst.address!r} is not an IP address")
            continue
        key = (str(ip_address(lst.address)), lst.port, PROTOCOLS[lst.protocol])
        if key in seen:
            plan.skipped.append(f"{lst.ref}: duplicate {lst.protocol} {lst.address}:{lst.port}")
            continue
        seen.add(key)
        rows = _rows(lst, fam, snat_source, plan.skipped)
        if len(rows) > max_backends:
            raise ValueError(
                f"{lst.ref}: {len(rows)} backend endpoints, more than max_backends={max_backends}"
            )
        table = maglev_table([r.name for r in rows], [r.weight for r in rows], maglev_size)
        plan.services.append(Service(key=key, listener=lst, rows=tuple(rows), table=tuple(table)))
    if len(plan.services) > max_services:
        raise ValueError(
            f"{len(plan.services)} L4 listeners, more than max_services={max_services}"
        )
    return plan


def _rows(
    lst: L4Listener, fam: int, snat_source: Callable[[str], str | None], skipped: list[str]
) -> list[Row]:
    rows: list[Row] = []
    names: set[str] = set()
    none = "0.0.0.0" if fam == 4 else "::"
    for b in lst.backends:
        if b.weight < 0:
            raise ValueError(f"{lst.ref}: negative weight on {b.ref}")
        eps = [e for e in b.endpoints if _family(e.address) == fam]
        skipped.extend(
            f"{lst.ref}: endpoint {e.address} of {b.ref} is not IPv{fam} like the listener"
            for e in b.endpoints
            if _family(e.address) != fam
        )
        if b.invalid or not eps:
            name = f"invalid:{b.ref}"
            if name not in names:
                names.add(name)
                rows.append(Row(name, none, 0, none, True, Fraction(b.weight)))
            continue
        share = Fraction(b.weight, len(eps))
        for e in eps:
            addr = str(ip_address(e.address))
            name = f"[{addr}]:{e.port}" if fam == 6 else f"{addr}:{e.port}"
            if name in names:  # the same endpoint behind two backendRefs: add up
                i = next(i for i, r in enumerate(rows) if r.name == name)
                r = rows[i]
                rows[i] = Row(r.name, r.address, r.port, r.snat_address, False, r.weight + share)
                continue
            names.add(name)
            src = snat_source(e.address)
            if src is None:
                skipped.append(f"{lst.ref}: no route to endpoint {e.address} of {b.ref}")
                rows.append(Row(f"unroutable:{name}", addr, e.port, none, True, share))
                continue
            rows.append(Row(name, addr, e.port, src, False, share))
    return rows
