"""Keeping the service maps equal to a Plan, never exposing a half-written
service.

Every service has two tables (ng_backends rows + ng_maglev slots) in a
pool of 2 x NG_MAX_SVC. A change is written into a free table first;
then, for all changed services together, ng_svc entries are flipped to the
new tables (one map write each, atomic for readers); then removed services
are deleted and the old tables go back to the pool. If writing any table
fails, nothing has been flipped: the previous state still serves.

Counter slots (svc_val.id) stay with a listener for its life, also across
agent restarts: load() reads them back from the pinned ng_svc.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import sys
from dataclasses import dataclass
from typing import Any

from bpf.maps import Map, PerCpuMap
from bpf.options import Options
from bpf.services import Plan, Service, is_v6

NG_SVC_REJECT = 1
NG_BACKEND_INVALID = 1


def be128(addr: str) -> list[int]:
    """An IPv6 address as four host-order integers whose memory is network order."""
    return list(struct.unpack("=4I", socket.inet_pton(socket.AF_INET6, addr)))


def from_be128(words: Any) -> str:
    return socket.inet_ntop(socket.AF_INET6, struct.pack("=4I", *words))


def be32(addr: str) -> int:
    """An IPv4 address as the host-order integer whose memory is network order."""
    return int.from_bytes(socket.inet_aton(addr), sys.byteorder)


def be16(port: int) -> int:
    return int.from_bytes(port.to_bytes(2, "big"), sys.byteorder)


def from_be32(value: int) -> str:
    return socket.inet_ntoa(value.to_bytes(4, sys.byteorder))


def from_be16(value: int) -> int:
    return int.from_bytes(value.to_bytes(2, sys.byteorder), "big")


@dataclass
class Live:
    service: Service | None  # None: found pinned at start, content unknown
    id: int
    table: int
    gen: int = 0  # the NodeConfig generation that wrote its Maglev table (ng_svc gen)


class TableWriter:
    def __init__(self, maps: dict[str, Map], options: Options) -> None:
        self.svc = maps["ng_svc"]
        self.backends = maps["ng_backends"]
        self.svc6 = maps["ng_svc6"]
        self.backends6 = maps["ng_backends6"]
        self.maglev = maps["ng_maglev"]
        stats = maps["ng_stats"]
        assert isinstance(stats, PerCpuMap)
        self.stats = stats
        self.opt = options
        self.live: dict[tuple[str, int, int], Live] = {}

    def svc_map(self, key: tuple[str, int, int]) -> Map:
        return self.svc6 if is_v6(key[0]) else self.svc

    def key(self, key: tuple[str, int, int]) -> ctypes.Structure:
        m = self.svc_map(key)
        k = m.Key()
        k.addr = type(k.addr)(*be128(key[0])) if m is self.svc6 else be32(key[0])
        k.port, k.proto = be16(key[1]), key[2]
        return k  # type: ignore[no-any-return]

    def load(self) -> None:
        """Adopts what a previous agent left in the pinned ng_svc and ng_svc6."""
        self.live.clear()
        for k, v in self.svc.items():
            key = (from_be32(k.addr), from_be16(k.port), int(k.proto))
            self.live[key] = Live(None, int(v.id), int(v.table), int(v.gen))
        for k, v in self.svc6.items():
            key = (from_be128(k.addr), from_be16(k.port), int(k.proto))
            self.live[key] = Live(None, int(v.id), int(v.table), int(v.gen))

    def _free_tables(self) -> list[int]:
        used = {lv.table for lv in self.live.values()}
        return [t for t in range(2 * self.opt.max_services) if t not in used]

    def _free_ids(self) -> list[int]:
        used = {lv.id for lv in self.live.values()}
        return [i for i in range(self.opt.max_services) if i not in used]

    def _write_table(self, svc: Service, table: int) -> None:
        v6 = is_v6(svc.key[0])
        backends = self.backends6 if v6 else self.backends
        rows = []
        for r in svc.rows:
            b = backends.Leaf()
            if not r.invalid and v6:
                b.addr = type(b.addr)(*be128(r.address))
                b.snat_addr = type(b.snat_addr)(*be128(r.snat_address))
                b.port = be16(r.port)
            elif not r.invalid:
                b.addr, b.snat_addr, b.port = be32(r.address), be32(r.snat_address), be16(r.port)
            b.flags = NG_BACKEND_INVALID if r.invalid else 0
            rows.append(b)
        backends.set_many_structs(table * self.opt.max_backends, rows)
        self.maglev.set_many(table * self.opt.maglev_size, list(svc.table))

    def apply(self, plan: Plan, generation: int) -> None:
        desired = {s.key: s for s in plan.services}
        changed = [
            s
            for key, s in desired.items()
            if key not in self.live
            or self.live[key].service is None
            or not s.same_datapath(self.live[key].service)  # type: ignore[arg-type]
        ]
        free = self._free_tables()
        if len(free) < len(changed):
            raise RuntimeError(f"{len(changed)} tables needed, {len(free)} free")
        new_tables = dict(zip((s.key for s in changed), free, strict=False))
        for s in changed:  # 1. write the new tables; nothing points at them yet
            self._write_table(s, new_tables[s.key])

        ids = self._free_ids()
        flipped: list[tuple[tuple[str, int, int], Live | None]] = []
        try:  # 2. flip each changed service to its new table
            for s in changed:
                old = self.live.get(s.key)
                if old is None:
                    sid = ids.pop(0)
                    self.stats.zero(ctypes.c_uint32(sid))
                else:
                    sid = old.id
                v = self.svc.Leaf()
                v.id, v.table = sid, new_tables[s.key]
                v.flags = NG_SVC_REJECT if s.reject else 0
                v.gen = generation & 0xFFFFFFFF
                self.svc_map(s.key).set(self.key(s.key), v)
                flipped.append((s.key, old))
                self.live[s.key] = Live(s, sid, new_tables[s.key], int(v.gen))
        except BaseException:
            self._roll_back(flipped)
            raise
        for key, lv in list(self.live.items()):  # 3. remove what is gone
            if key not in desired:
                self.svc_map(key).delete(self.key(key))
                del self.live[key]
            elif lv.service is not desired[key] and lv.service is not None:
                lv.service = desired[key]  # same datapath content, newer listener refs

    def _roll_back(self, flipped: list[tuple[tuple[str, int, int], Live | None]]) -> None:
        for key, old in reversed(flipped):
            if old is None:
                self.svc_map(key).delete(self.key(key))
                self.live.pop(key, None)
                continue
            v = self.svc.Leaf()
            v.id, v.table = old.id, old.table
            v.flags = NG_SVC_REJECT if old.service is not None and old.service.reject else 0
            self.svc_map(key).set(self.key(key), v)
            self.live[key] = old
