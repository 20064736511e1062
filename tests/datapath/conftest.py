"""Fixtures for the datapath tests: the lab, one compile per session, and
entering a lab namespace from the test process.

These tests load real BPF programs and build network namespaces: they run
as root, in CI too, and never skip. Missing bcc or kernel headers fail them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
from collections.abc import Iterator

import pytest

from lab.netns import Lab

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Runs the block with this thread in network namespace `name`."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def pin_dir_for(tag: str) -> str:
    return f"/sys/fs/bpf/ngtest-{os.getpid()}-{tag}"


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    with Lab(backends=2) as lab:
        yield lab


@pytest.fixture(scope="session")
def pin_root() -> Iterator[None]:
    yield
    for name in os.listdir("/sys/fs/bpf") if os.path.isdir("/sys/fs/bpf") else []:
        if name.startswith(f"ngtest-{os.getpid()}-"):
            shutil.rmtree(f"/sys/fs/bpf/{name}", ignore_errors=True)


@pytest.fixture(scope="session")
def pass_prog(pin_root: None) -> Iterator[int]:
    """The fd of a loaded ng_pass (XDP_PASS), for veth peers in the lab."""
    from bpf.bpffs import ensure_pin_dir
    from bpf.compile import compile_datapath
    from bpf.options import Options

    opt = Options(
        pin_dir=pin_dir_for("pass"), max_services=1, max_backends=1, maglev_size=3, ct_size=16
    )
    ensure_pin_dir(opt.pin_dir)
    compiled = compile_datapath(opt.cflags(), programs=("ng_pass",))
    try:
        yield compiled.progs["ng_pass"]
    finally:
        compiled.close()


SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17


def set_tx_checksum(netns: str, ifname: str, on: bool) -> None:
    """`ethtool -K ifname tx on|off` inside netns, through the ioctl.

    Native XDP on veth turns a frame into an xdp_frame and back, which loses
    CHECKSUM_PARTIAL: a sender on veth must then compute full checksums.
    """
    import fcntl
    import socket
    import struct

    with in_netns(netns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            value = ctypes.create_string_buffer(struct.pack("=II", ETHTOOL_STXCSUM, int(on)))
            ifr = struct.pack("=16sQ", ifname.encode(), ctypes.addressof(value)) + bytes(16)
            fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
        finally:
            s.close()
