"""The bpf(2) system call through ctypes: maps, pins, object info, test runs.

libbcc 0.26 exports no wrapper for several of these (BPF_PROG_TEST_RUN,
batch updates), and `nodegate cleanup` must work without compiling
anything, so the datapath's Python talks to the kernel here. Only the
commands nodegate uses are wrapped. Each raises OSError with the errno.
"""

from __future__ import annotations

import ctypes
import os
import platform
from typing import Any

# asm/unistd_64.h and friends; the datapath runs on these two.
_NR_BPF = {"x86_64": 321, "aarch64": 280}

BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_PROG_TEST_RUN = 10
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_MAP_UPDATE_BATCH = 26

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _Attr(ctypes.Union):
    """union bpf_attr, large enough for every command (the kernel zero-checks the tail)."""

    _fields_ = [("raw", ctypes.c_uint8 * 128)]


def _addr(buf: ctypes.Array[ctypes.c_char] | ctypes._CData | None) -> int:
    return 0 if buf is None else ctypes.addressof(buf)


def bpf(cmd: int, attr: ctypes.Structure) -> int:
    """Runs bpf(cmd, attr); the result, or OSError."""
    u = _Attr()
    ctypes.memmove(ctypes.addressof(u), ctypes.addressof(attr), ctypes.sizeof(attr))
    nr = _NR_BPF.get(platform.machine())
    if nr is None:
        raise OSError(f"bpf(2): unsupported machine {platform.machine()}")
    rc = _libc.syscall(nr, cmd, ctypes.byref(u), ctypes.sizeof(u))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf(cmd {cmd}): {os.strerror(err)}")
    ctypes.memmove(ctypes.addressof(attr), ctypes.addressof(u), ctypes.sizeof(attr))
    return int(rc)


class _MapElem(ctypes.Structure):
    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class _ObjPin(ctypes.Structure):
    _fields_ = [
        ("pathname", ctypes.c_uint64),
        ("bpf_fd", ctypes.c_uint32),
        ("file_flags", ctypes.c_uint32),
    ]


class _TestRun(ctypes.Structure):
    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("data_in", ctypes.c_uint64),
        ("data_out", ctypes.c_uint64),
        ("repeat", ctypes.c_uint32),
        ("duration", ctypes.c_uint32),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_uint64),
        ("ctx_out", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class _InfoByFd(ctypes.Structure):
    _fields_ = [
        ("bpf_fd", ctypes.c_uint32),
        ("info_len", ctypes.c_uint32),
        ("info", ctypes.c_uint64),
    ]


class _GetFdById(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("next_id", ctypes.c_uint32),
        ("open_flags", ctypes.c_uint32),
    ]


class _Batch(ctypes.Structure):
    _fields_ = [
        ("in_batch", ctypes.c_uint64),
        ("out_batch", ctypes.c_uint64),
        ("keys", ctypes.c_uint64),
        ("values", ctypes.c_uint64),
        ("count", ctypes.c_uint32),
        ("map_fd", ctypes.c_uint32),
        ("elem_flags", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class MapInfo(ctypes.Structure):
    """The head of struct bpf_map_info."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
    ]


class ProgInfo(ctypes.Structure):
    """The head of struct bpf_prog_info."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * 16),
    ]


def map_lookup(fd: int, key: ctypes._CData, value: ctypes._CData) -> bool:
    """Fills value; False if the key is absent."""
    attr = _MapElem(map_fd=fd, key=_addr(key), value=_addr(value))
    try:
        bpf(BPF_MAP_LOOKUP_ELEM, attr)
    except FileNotFoundError:
        return False
    return True


def map_update(fd: int, key: ctypes._CData, value: ctypes._CData, flags: int = BPF_ANY) -> None:
    bpf(BPF_MAP_UPDATE_ELEM, _MapElem(map_fd=fd, key=_addr(key), value=_addr(value), flags=flags))


def map_delete(fd: int, key: ctypes._CData) -> bool:
    """False if the key was absent."""
    try:
        bpf(BPF_MAP_DELETE_ELEM, _MapElem(map_fd=fd, key=_addr(key)))
    except FileNotFoundError:
        return False
    return True


def map_next_key(fd: int, key: ctypes._CData | None, next_key: ctypes._CData) -> bool:
    """Fills next_key with the key after key (the first if None); False at the end."""
    attr = _MapElem(map_fd=fd, key=_addr(key), value=_addr(next_key))
    try:
        bpf(BPF_MAP_GET_NEXT_KEY, attr)
    except FileNotFoundError:
        return False
    return True


def map_update_batch(fd: int, keys: Any, values: Any, count: int) -> None:
    """Writes count elements at once (arrays: all or an error)."""
    attr = _Batch(keys=_addr(keys), values=_addr(values), count=count, map_fd=fd)
    bpf(BPF_MAP_UPDATE_BATCH, attr)
    if attr.count != count:
        raise OSError(f"batch update wrote {attr.count} of {count} elements")


def obj_pin(fd: int, path: str) -> None:
    p = ctypes.create_string_buffer(path.encode())
    bpf(BPF_OBJ_PIN, _ObjPin(pathname=_addr(p), bpf_fd=fd))


def obj_get(path: str) -> int:
    """An fd for a pinned object (the caller closes it)."""
    p = ctypes.create_string_buffer(path.encode())
    return bpf(BPF_OBJ_GET, _ObjPin(pathname=_addr(p)))


def _info(fd: int, info: ctypes.Structure) -> None:
    attr = _InfoByFd(bpf_fd=fd, info_len=ctypes.sizeof(info), info=_addr(info))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr)


def map_info(fd: int) -> MapInfo:
    info = MapInfo()
    bpf(
        BPF_OBJ_GET_INFO_BY_FD, _InfoByFd(bpf_fd=fd, info_len=ctypes.sizeof(info), info=_addr(info))
    )
    return info


def prog_info(fd: int) -> ProgInfo:
    info = ProgInfo()
    bpf(
        BPF_OBJ_GET_INFO_BY_FD, _InfoByFd(bpf_fd=fd, info_len=ctypes.sizeof(info), info=_addr(info))
    )
    return info


def prog_fd_by_id(prog_id: int) -> int:
    return bpf(BPF_PROG_GET_FD_BY_ID, _GetFdById(id=prog_id))


def prog_test_run(
    fd: int, data: bytes, ctx: bytes | None = None, out_size: int = 4096
) -> tuple[int, bytes]:
    """Runs a program once on a packet; (return value, packet after the run)."""
    din = ctypes.create_string_buffer(data, len(data))
    dout = ctypes.create_string_buffer(max(out_size, len(data) + 256))
    cin = ctypes.create_string_buffer(ctx, len(ctx)) if ctx is not None else None
    attr = _TestRun(
        prog_fd=fd,
        data_size_in=len(data),
        data_size_out=len(dout),
        data_in=_addr(din),
        data_out=_addr(dout),
        repeat=1,
        ctx_size_in=len(ctx) if ctx is not None else 0,
        ctx_in=_addr(cin),
    )
    bpf(BPF_PROG_TEST_RUN, attr)
    return int(attr.retval), dout.raw[: attr.data_size_out]


def possible_cpus() -> int:
    """How many values a per-CPU map holds per key (/sys/devices/system/cpu/possible)."""
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n = max(n, int(hi or lo) + 1)
    return n
