"""Typed access to the datapath's maps through their fds (bpf.syscall).

Keys and values are the ctypes types bcc built from the C structs
(bpf/lib/structs.h), carried in a MapHandle; nothing here knows a layout.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bpf import syscall

CType = Any  # a ctypes type built by bcc (Structure or simple)


@dataclass(frozen=True)
class MapHandle:
    name: str
    fd: int
    key_type: CType
    leaf_type: CType
    max_entries: int
    percpu: bool


class Map:
    def __init__(self, handle: MapHandle) -> None:
        self.handle = handle
        self.name = handle.name
        self.fd = handle.fd
        self.Key = handle.key_type
        self.Leaf = handle.leaf_type

    def get(self, key: Any) -> Any | None:
        value = self.Leaf()
        return value if syscall.map_lookup(self.fd, key, value) else None

    def set(self, key: Any, value: Any, flags: int = syscall.BPF_ANY) -> None:
        syscall.map_update(self.fd, key, value, flags)

    def delete(self, key: Any) -> bool:
        return syscall.map_delete(self.fd, key)

    def keys(self) -> Iterator[Any]:
        key = None
        while True:
            nxt = self.Key()
            if not syscall.map_next_key(self.fd, key, nxt):
                return
            yield nxt
            key = nxt

    def items(self) -> Iterator[tuple[Any, Any]]:
        for k in self.keys():
            v = self.get(k)
            if v is not None:
                yield k, v

    def set_many(self, start: int, values: Sequence[int]) -> None:
        """Array of u32: values[i] into index start + i, in one batch."""
        n = len(values)
        if n == 0:
            return
        keys = (ctypes.c_uint32 * n)(*range(start, start + n))
        vals = (self.Leaf * n)(*values)
        syscall.map_update_batch(self.fd, keys, vals, n)

    def set_many_structs(self, start: int, values: Sequence[Any]) -> None:
        n = len(values)
        if n == 0:
            return
        keys = (ctypes.c_uint32 * n)(*range(start, start + n))
        vals = (self.Leaf * n)(*values)
        syscall.map_update_batch(self.fd, keys, vals, n)


class PerCpuMap(Map):
    """Values are one leaf per possible CPU."""

    def __init__(self, handle: MapHandle) -> None:
        super().__init__(handle)
        self.ncpus = syscall.possible_cpus()
        size = ctypes.sizeof(self.Leaf)
        if size % 8:
            raise ValueError(f"{self.name}: per-CPU leaf size {size} is not a multiple of 8")
        self.Values = self.Leaf * self.ncpus

    def get_all(self, key: Any) -> list[Any]:
        values = self.Values()
        if not syscall.map_lookup(self.fd, key, values):
            return []
        return list(values)

    def zero(self, key: Any) -> None:
        syscall.map_update(self.fd, key, self.Values())
