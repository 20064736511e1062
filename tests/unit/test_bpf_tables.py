"""TableWriter against recording fake maps: a service's rows and Maglev
slots are written before its ng_svc entry points at them, a failure while
writing tables leaves every entry as it was, and removed listeners go."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest

from agent.nodeconfig import Backend, Endpoint, L4Listener, Ref
from bpf.maps import Map, PerCpuMap
from bpf.options import Options
from bpf.services import plan_services
from bpf.tables import TableWriter

OPT = Options(max_services=4, max_backends=4, maglev_size=7, ct_size=16)


class SvcKey(ctypes.Structure):
    _fields_ = [
        ("addr", ctypes.c_uint32),
        ("port", ctypes.c_uint16),
        ("proto", ctypes.c_uint8),
        ("pad", ctypes.c_uint8),
    ]


class SvcKey6(ctypes.Structure):
    _fields_ = [
        ("addr", ctypes.c_uint32 * 4),
        ("port", ctypes.c_uint16),
        ("proto", ctypes.c_uint8),
        ("pad", ctypes.c_uint8),
    ]


class SvcVal(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("table", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("gen", ctypes.c_uint32),
    ]


class BackendVal(ctypes.Structure):
    _fields_ = [
        ("addr", ctypes.c_uint32),
        ("snat_addr", ctypes.c_uint32),
        ("port", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
    ]


class Backend6Val(ctypes.Structure):
    _fields_ = [
        ("addr", ctypes.c_uint32 * 4),
        ("snat_addr", ctypes.c_uint32 * 4),
        ("port", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
    ]


class FakeMap(Map):
    def __init__(self, name: str, key: Any, leaf: Any, log: list[tuple[str, ...]]) -> None:
        self.name, self.Key, self.Leaf, self.log = name, key, leaf, log
        self.data: dict[bytes, bytes] = {}
        self.fail = False

    def get(self, key: Any) -> Any | None:
        raw = self.data.get(bytes(key))
        return None if raw is None else self.Leaf.from_buffer_copy(raw)

    def set(self, key: Any, value: Any, flags: int = 0) -> None:
        self.log.append(("set", self.name, str(getattr(value, "table", ""))))
        self.data[bytes(key)] = bytes(value)

    def delete(self, key: Any) -> bool:
        self.log.append(("delete", self.name))
        return self.data.pop(bytes(key), None) is not None

    def items(self) -> Any:
        for k, v in list(self.data.items()):
            yield self.Key.from_buffer_copy(k), self.Leaf.from_buffer_copy(v)

    def set_many(self, start: int, values: Any) -> None:
        if self.fail:
            raise OSError("injected")
        self.log.append(("fill", self.name, str(start // OPT.maglev_size)))

    def set_many_structs(self, start: int, values: Any) -> None:
        self.log.append(("fill", self.name, str(start // OPT.max_backends)))


class FakeStats(PerCpuMap):
    def __init__(self) -> None:
        self.name = "ng_stats"
        self.zeroed: list[int] = []

    def zero(self, key: Any) -> None:
        self.zeroed.append(key.value)


def writer() -> tuple[TableWriter, list[tuple[str, ...]], dict[str, Any]]:
    log: list[tuple[str, ...]] = []
    maps: dict[str, Any] = {
        "ng_svc": FakeMap("ng_svc", SvcKey, SvcVal, log),
        "ng_svc6": FakeMap("ng_svc6", SvcKey6, SvcVal, log),
        "ng_backends": FakeMap("ng_backends", ctypes.c_uint32, BackendVal, log),
        "ng_backends6": FakeMap("ng_backends6", ctypes.c_uint32, Backend6Val, log),
        "ng_maglev": FakeMap("ng_maglev", ctypes.c_uint32, ctypes.c_uint32, log),
        "ng_stats": FakeStats(),
    }
    return TableWriter(maps, OPT), log, maps


def lst(port: int, *addrs: str, address: str = "198.18.1.1") -> L4Listener:
    r = Ref(kind="Gateway", namespace="n", name="g", section=str(port))
    b = Backend(
        ref=Ref(kind="Service", namespace="n", name="s"),
        endpoints=tuple(Endpoint(address=a, port=80) for a in addrs),
    )
    return L4Listener(ref=r, gateway=r, protocol="TCP", address=address, port=port, backends=(b,))


def plan(*listeners: L4Listener):  # type: ignore[no-untyped-def]
    return plan_services(
        listeners,
        lambda a: "fd00::1" if ":" in a else "10.0.0.1",
        OPT.maglev_size,
        OPT.max_backends,
        OPT.max_services,
    )


def test_tables_are_written_before_the_service_points_at_them() -> None:
    w, log, _ = writer()
    w.apply(plan(lst(1, "10.1.0.1"), lst(2, "10.1.0.2"), lst(3, "fd00:1::1", address="fd00::5")), 1)
    for i, entry in enumerate(log):
        if entry[0] == "set":
            table = entry[2]
            before = {(e[1], e[2]) for e in log[:i] if e[0] == "fill"}
            family = "ng_backends6" if entry[1] == "ng_svc6" else "ng_backends"
            assert (family, table) in before and ("ng_maglev", table) in before, (entry, log[:i])


def test_a_failed_table_write_changes_no_service() -> None:
    w, _log, maps = writer()
    w.apply(plan(lst(1, "10.1.0.1")), 1)
    before = dict(maps["ng_svc"].data)
    live = {k: (v.id, v.table) for k, v in w.live.items()}
    maps["ng_maglev"].fail = True
    with pytest.raises(OSError):
        w.apply(plan(lst(1, "10.1.0.9"), lst(2, "10.1.0.2")), 2)
    assert maps["ng_svc"].data == before
    assert {k: (v.id, v.table) for k, v in w.live.items()} == live


def test_a_change_moves_a_service_to_another_table_and_keeps_its_counter_slot() -> None:
    w, _, _maps = writer()
    w.apply(plan(lst(1, "10.1.0.1")), 1)
    (first,) = w.live.values()
    w.apply(plan(lst(1, "10.1.0.2")), 2)
    (second,) = w.live.values()
    assert second.id == first.id and second.table != first.table
    w.apply(plan(lst(1, "10.1.0.2")), 3)  # nothing changed: nothing rewritten
    (third,) = w.live.values()
    assert third.table == second.table


def test_removed_listeners_are_deleted_and_new_slots_zeroed() -> None:
    w, _, maps = writer()
    w.apply(plan(lst(1, "10.1.0.1"), lst(2, "10.1.0.2")), 1)
    assert sorted(maps["ng_stats"].zeroed) == [0, 1]
    w.apply(plan(lst(2, "10.1.0.2")), 2)
    assert [k[1] for k in w.live] == [2] and len(maps["ng_svc"].data) == 1


def test_load_adopts_what_a_previous_agent_left() -> None:
    w, _, maps = writer()
    w.apply(plan(lst(1, "10.1.0.1"), lst(3, "fd00:1::1", address="fd00::5")), 1)
    again = TableWriter(maps, OPT)
    again.load()
    assert {k: (v.id, v.table) for k, v in again.live.items()} == {
        k: (v.id, v.table) for k, v in w.live.items()
    }
    assert all(v.service is None for v in again.live.values())
