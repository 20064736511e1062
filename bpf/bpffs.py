"""The BPF filesystem: pins live there, and a fresh machine has none mounted.

ensure_pin_dir(path) mounts bpffs at /sys/fs/bpf when path would not be on
one (as other datapaths do; a DaemonSet mounts the host's instead), then
creates path. Pins are per mount namespace: every nodegate process of a
node must share the one that holds /sys/fs/bpf (`ip netns exec` makes a
new one with a fresh /sys, which is why the lab enters network namespaces
with setns(CLONE_NEWNET) alone).
"""

from __future__ import annotations

import ctypes
import os

BPF_MOUNT = "/sys/fs/bpf"

_libc = ctypes.CDLL(None, use_errno=True)


class BpffsError(RuntimeError):
    pass


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape")


def fs_type(path: str) -> str:
    """The filesystem type of the mount that holds path (/proc/self/mountinfo)."""
    best, kind = "", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            point = _unescape(left.split()[4])
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(
                best
            ):
                best, kind = point, right.split()[0]
    return kind


def mount_bpffs(target: str = BPF_MOUNT) -> None:
    os.makedirs(target, exist_ok=True)
    rc = _libc.mount(b"bpf", target.encode(), b"bpf", 0, b"mode=0700")
    if rc != 0:
        err = ctypes.get_errno()
        raise BpffsError(f"mount -t bpf bpf {target}: {os.strerror(err)}")


def ensure_pin_dir(pin_dir: str) -> list[str]:
    """Makes pin_dir exist on a bpffs; what it did, for the log."""
    done = []
    if fs_type(pin_dir) != "bpf":
        if not pin_dir.startswith(BPF_MOUNT + "/"):
            raise BpffsError(f"{pin_dir} is not on a BPF filesystem and not under {BPF_MOUNT}")
        if fs_type(BPF_MOUNT) != "bpf":
            mount_bpffs(BPF_MOUNT)
            done.append(f"mounted bpffs at {BPF_MOUNT}")
    if not os.path.isdir(pin_dir):
        os.makedirs(pin_dir, mode=0o700, exist_ok=True)
        done.append(f"created {pin_dir}")
    return done
