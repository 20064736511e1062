"""Interfaces, attachments and routes through netlink. The only module
that imports pyroute2.

Attachments are atomic replacements, so traffic never meets a gap:
- tc: one bpf filter at clsact ingress, at a fixed priority and handle,
  written with "replace" (the kernel swaps the program in one step);
- XDP: setting a new program fd on a link that has one replaces it
  (no XDP_FLAGS_UPDATE_IF_NOEXIST).
Everything works in the network namespace of the thread that made the
Netlink object. pyroute2 0.9 runs an asyncio loop inside its synchronous
API, which fails on a thread that already runs one (the agent's reconcile
loop calls apply() from its event loop), so every call goes to one private
worker thread, created here and so born in the same network namespace.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

TC_PRIO = 0xC0DE  # our filter's priority at clsact ingress
TC_HANDLE = 1
TC_INGRESS = "ffff:fff2"
TC_NAME_PREFIX = "nodegate"

XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2


class NetlinkFailure(RuntimeError):
    pass


@dataclass(frozen=True)
class Interface:
    index: int
    name: str
    kind: str  # IFLA_INFO_KIND ("veth", "bridge"...), "" for a physical device
    up: bool


@dataclass(frozen=True)
class XdpState:
    prog_id: int
    mode: str  # "", "xdp" (native), "xdpgeneric", "xdpoffload", "xdpmulti"


T = TypeVar("T")


class Netlink:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nodegate-netlink")
        self._ipr: Any = self._pool.submit(IPRoute).result()

    def _run(self, fn: Callable[[], T]) -> T:
        return self._pool.submit(fn).result()

    def close(self) -> None:
        self._run(self._ipr.close)
        self._pool.shutdown()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- links ---------------------------------------------------------------

    def _interfaces(self) -> list[Interface]:
        out = []
        for link in self._ipr.get_links():
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            out.append(
                Interface(
                    index=link["index"],
                    name=link.get_attr("IFLA_IFNAME"),
                    kind=kind or "",
                    up=bool(link["flags"] & 1),
                )
            )
        return out

    def _index_of(self, name: str) -> int:
        found = self._ipr.link_lookup(ifname=name)
        if not found:
            raise NetlinkFailure(f"no interface {name!r} in this network namespace")
        return int(found[0])

    # --- tc --------------------------------------------------------------------

    def _attach_tc(self, index: int, fd: int, name: str) -> None:
        try:
            self._ipr.tc("add", "clsact", index)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise NetlinkFailure(f"clsact on ifindex {index}: {e}") from e
        try:
            self._ipr.tc(
                "replace-filter",
                "bpf",
                index,
                handle=TC_HANDLE,
                fd=fd,
                name=name,
                parent=TC_INGRESS,
                prio=TC_PRIO,
                classid=1,
                direct_action=True,
            )
        except NetlinkError as e:
            raise NetlinkFailure(f"tc filter on ifindex {index}: {e}") from e

    def _tc_filter(self, index: int) -> tuple[str, int] | None:
        """(name, prog id) of the bpf filter at our priority, if any."""
        try:
            filters = self._ipr.get_filters(index=index, parent=TC_INGRESS)
        except NetlinkError:
            return None
        for f in filters:
            if (f["info"] >> 16) != TC_PRIO:
                continue
            opts = f.get_attr("TCA_OPTIONS")
            if opts is None:
                continue
            name = opts.get_attr("TCA_BPF_NAME") or ""
            prog_id = opts.get_attr("TCA_BPF_ID") or 0
            return name, int(prog_id)
        return None

    def _detach_tc(self, index: int) -> bool:
        if self._tc_filter(index) is None:
            return False
        try:
            self._ipr.tc(
                "del-filter", "bpf", index, handle=TC_HANDLE, parent=TC_INGRESS, prio=TC_PRIO
            )
        except NetlinkError as e:
            if e.code in (errno.ENOENT, errno.EINVAL):
                return False
            raise NetlinkFailure(f"removing tc filter on ifindex {index}: {e}") from e
        return True

    # --- XDP -------------------------------------------------------------------

    def _attach_xdp(self, index: int, fd: int, generic: bool) -> None:
        flags = XDP_FLAGS_SKB_MODE if generic else XDP_FLAGS_DRV_MODE
        try:
            self._ipr.link(
                "set",
                index=index,
                xdp={"attrs": [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", flags)]},
            )
        except NetlinkError as e:
            mode = "generic" if generic else "native"
            raise NetlinkFailure(f"{mode} XDP on ifindex {index}: {e}") from e

    def _xdp_state(self, index: int) -> XdpState:
        link = self._ipr.get_links(index)[0]
        xdp = link.get_attr("IFLA_XDP")
        if xdp is None:
            return XdpState(0, "")
        mode = xdp.get_attr("IFLA_XDP_ATTACHED") or ""
        return XdpState(int(xdp.get_attr("IFLA_XDP_PROG_ID") or 0), mode)

    def _detach_xdp(self, index: int) -> bool:
        state = self._xdp_state(index)
        if not state.prog_id:
            return False
        flags = XDP_FLAGS_SKB_MODE if state.mode == "xdpgeneric" else XDP_FLAGS_DRV_MODE
        try:
            self._ipr.link(
                "set",
                index=index,
                xdp={"attrs": [("IFLA_XDP_FD", -1), ("IFLA_XDP_FLAGS", flags)]},
            )
        except NetlinkError as e:
            raise NetlinkFailure(f"removing XDP on ifindex {index}: {e}") from e
        return True

    # --- routes ----------------------------------------------------------------

    def _route_source(self, dst: str) -> str | None:
        """The address the node would send from to reach dst (full-NAT source)."""
        family = socket.AF_INET6 if ":" in dst else socket.AF_INET
        try:
            routes = self._ipr.route("get", dst=dst, family=family)
        except NetlinkError:
            return None
        for r in routes:
            src = r.get_attr("RTA_PREFSRC")
            if src:
                return str(src)
        return None

    # --- the public calls: each runs on the worker thread ----------------------

    def interfaces(self) -> list[Interface]:
        return self._run(self._interfaces)

    def index_of(self, name: str) -> int:
        return self._run(lambda: self._index_of(name))

    def attach_tc(self, index: int, fd: int, name: str) -> None:
        self._run(lambda: self._attach_tc(index, fd, name))

    def tc_filter(self, index: int) -> tuple[str, int] | None:
        return self._run(lambda: self._tc_filter(index))

    def detach_tc(self, index: int) -> bool:
        return self._run(lambda: self._detach_tc(index))

    def attach_xdp(self, index: int, fd: int, generic: bool) -> None:
        self._run(lambda: self._attach_xdp(index, fd, generic))

    def xdp_state(self, index: int) -> XdpState:
        return self._run(lambda: self._xdp_state(index))

    def detach_xdp(self, index: int) -> bool:
        return self._run(lambda: self._detach_xdp(index))

    def route_source(self, dst: str) -> str | None:
        return self._run(lambda: self._route_source(dst))
