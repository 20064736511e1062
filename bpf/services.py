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

IPv6 listeners and endpoints are left out (the BPF side is IPv4 only for
now) and reported in Plan.skipped.
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


def _is_v4(addr: str) -> bool:
    try:
        return isinstance(ip_address(addr), IPv4Address)
    except ValueError:
        return False


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
        if not _is_v4(lst.address):
            plan.skipped.append(f"{lst.ref}: {lst.protocol} {lst.address}:{lst.port} (IPv6 waits)")
            continue
        key = (str(IPv4Address(lst.address)), lst.port, PROTOCOLS[lst.protocol])
        if key in seen:
            plan.skipped.append(f"{lst.ref}: duplicate {lst.protocol} {lst.address}:{lst.port}")
            continue
        seen.add(key)
        rows = _rows(lst, snat_source, plan.skipped)
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
    lst: L4Listener, snat_source: Callable[[str], str | None], skipped: list[str]
) -> list[Row]:
    rows: list[Row] = []
    names: set[str] = set()
    for b in lst.backends:
        if b.weight < 0:
            raise ValueError(f"{lst.ref}: negative weight on {b.ref}")
        eps = [e for e in b.endpoints if _is_v4(e.address)]
        skipped.extend(
            f"{lst.ref}: endpoint {e.address} of {b.ref} (IPv6 waits)"
            for e in b.endpoints
            if not _is_v4(e.address)
        )
        if b.invalid or not eps:
            name = f"invalid:{b.ref}"
            if name not in names:
                names.add(name)
                rows.append(Row(name, "0.0.0.0", 0, "0.0.0.0", True, Fraction(b.weight)))
            continue
        share = Fraction(b.weight, len(eps))
        for e in eps:
            name = f"{e.address}:{e.port}"
            if name in names:  # the same endpoint behind two backendRefs: add up
                i = next(i for i, r in enumerate(rows) if r.name == name)
                r = rows[i]
                rows[i] = Row(r.name, r.address, r.port, r.snat_address, False, r.weight + share)
                continue
            names.add(name)
            src = snat_source(e.address)
            if src is None:
                skipped.append(f"{lst.ref}: no route to endpoint {e.address} of {b.ref}")
                rows.append(Row(f"unroutable:{name}", e.address, e.port, "0.0.0.0", True, share))
                continue
            rows.append(Row(name, e.address, e.port, src, False, share))
    return rows
