"""The L4 datapath: TCP and UDP listeners load-balanced in the kernel.

    dp = L4Datapath(mode="auto")
    dp.start()                 # compile, pin, attach (before any agent thread)
    dp.apply(config, gen)      # maps := config.l4
    dp.counters()
    dp.stop()                  # programs and pinned maps stay: flows survive

Invariants:
- start() compiles with bcc and attaches; it reopens the maps a previous
  agent pinned under pin_dir (conntrack included), so established flows
  keep their backend and NAT port across restarts. Programs are replaced
  atomically (tc filter replace, XDP fd replace).
- apply() makes the maps equal to config.l4 or raises and leaves the
  previous state serving (bpf.tables).
- Attach modes: "tc" (clsact ingress, direct action); "xdp" (native) and
  "xdp-generic" run ng_xdp with ng_tc behind it on the same interfaces to
  finish what XDP passes on (a next hop not yet resolved); "auto" uses tc
  on virtual interfaces (veth: native XDP turns GRO/TSO off there, and tc
  measured faster, see BPF-NOTES and bench/l4) and native XDP where the
  driver takes it, tc otherwise.
- The node must forward IPv4 (net.ipv4.ip_forward=1), as Kubernetes nodes
  do: bpf_fib_lookup refuses to route otherwise.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import os
import threading
import time
from typing import Any

from agent.nodeconfig import NodeConfig
from bpf import ports, syscall
from bpf.bpffs import ensure_pin_dir
from bpf.compile import MAPS, Compiled, compile_datapath
from bpf.counters import DROP_REASONS, L4Counters, ListenerCounters
from bpf.maps import Map, PerCpuMap
from bpf.netlink import TC_NAME_PREFIX, Interface, Netlink
from bpf.options import Options
from bpf.services import plan_services
from bpf.tables import TableWriter

log = logging.getLogger(__name__)

MODES = ("auto", "xdp", "xdp-generic", "tc")
NG_CT_REPLY = 1
NG_CT_CLOSING = 2
_PROTO_NAMES = {6: "TCP", 17: "UDP"}
_FIELDS = ("packets", "bytes", "reply_packets", "reply_bytes", "new_flows")


class DatapathError(RuntimeError):
    pass


def _tc_name(pin_dir: str) -> str:
    return f"{TC_NAME_PREFIX}:{pin_dir}"


class L4Datapath:
    name = "l4"

    def __init__(
        self,
        interfaces: list[str] | None = None,
        mode: str = "auto",
        snat_ports: tuple[int, int] = (61000, 65000),
        tcp_timeout: float = 3600.0,
        udp_timeout: float = 30.0,
        pin_dir: str = "/sys/fs/bpf/nodegate",
        tcp_fin_timeout: float = 10.0,
        max_services: int = 64,
        max_backends: int = 256,
        maglev_size: int = 16381,
        ct_size: int = 131072,
        ct_sample_interval: float = 10.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: want one of {MODES}")
        self.interfaces = interfaces
        self.mode = mode
        self.options = Options(
            pin_dir=pin_dir.rstrip("/"),
            snat_ports=snat_ports,
            tcp_timeout=tcp_timeout,
            tcp_fin_timeout=tcp_fin_timeout,
            udp_timeout=udp_timeout,
            max_services=max_services,
            max_backends=max_backends,
            maglev_size=maglev_size,
            ct_size=ct_size,
        )
        self.attached: dict[str, str] = {}  # interface -> "tc" | "xdp" | "xdp-generic"
        self._attached_index: dict[str, int] = {}  # interface -> ifindex it was attached at
        self.ct_sample_interval = ct_sample_interval
        self._ct_sample: tuple[int, int, float] = (0, 0, 0.0)
        self._sampler_stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self.skipped: list[str] = []
        self.generation: int | None = None
        self._compiled: Compiled | None = None
        self._maps: dict[str, Map] = {}
        self._writer: TableWriter | None = None
        self._nl: Netlink | None = None
        # apply() runs on the agent's loop, counters() on a metrics thread.
        self._lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        opt = self.options
        for done in ensure_pin_dir(opt.pin_dir):
            log.info("l4: %s", done)
        if _read_sysctl("/proc/sys/net/ipv4/ip_forward") != "1":
            log.warning("l4: net.ipv4.ip_forward is 0: the kernel will not route NATed packets")
        if _read_sysctl("/proc/sys/net/ipv6/conf/all/forwarding") == "0":
            log.info("l4: IPv6 forwarding is off: IPv6 listeners will not be served")
        self._compiled = compile_datapath(opt.cflags())
        try:
            self._open_maps()
            self._reserve_ports()
            self._writer = TableWriter(self._maps, opt)
            self._writer.load()
            self._nl = Netlink()
            self._attach_all()
        except BaseException:
            self.stop()
            raise

    def _open_maps(self) -> None:
        assert self._compiled is not None
        for name in MAPS:
            h = self._compiled.maps[name]
            info = syscall.map_info(h.fd)
            want = (ctypes.sizeof(h.key_type), ctypes.sizeof(h.leaf_type), h.max_entries)
            have = (info.key_size, info.value_size, info.max_entries)
            if have != want:
                raise DatapathError(
                    f"pinned map {self.options.pin_dir}/{name} has key/value/entries {have}, "
                    f"this build wants {want}: run `nodegate cleanup` (drops existing flows)"
                )
            self._maps[name] = PerCpuMap(h) if h.percpu else Map(h)

    def _reserve_ports(self) -> None:
        lo, hi = self.options.snat_ports
        params = self._maps["ng_params"]
        key = ctypes.c_uint32(0)
        old = params.get(key)
        ours = bool(old is not None and old.reserved and (old.snat_lo, old.snat_hi) == (lo, hi))
        added = ports.reserve(lo, hi)
        v = params.Leaf()
        v.snat_lo, v.snat_hi, v.reserved = lo, hi, int(added or ours)
        params.set(key, v)

    def _targets(self, nl: Netlink) -> list[Interface]:
        links = nl.interfaces()
        if self.interfaces is None:
            return [i for i in links if i.name != "lo" and i.up]
        by_name = {i.name: i for i in links}
        missing = [n for n in self.interfaces if n not in by_name]
        if missing:
            raise DatapathError(f"no such interface: {', '.join(missing)}")
        return [by_name[n] for n in self.interfaces]

    def _attach_all(self, only_new: bool = False) -> None:
        """Attach to every target interface; with only_new, just to the ones that appeared
        (or were recreated) since: pods' interfaces come and go, and replies from new
        backends arrive through theirs."""
        assert self._nl is not None and self._compiled is not None
        nl, progs = self._nl, self._compiled.progs
        targets = self._targets(nl)
        for gone in set(self.attached) - {i.name for i in targets}:
            del self.attached[gone]
            self._attached_index.pop(gone, None)
        if only_new:
            targets = [i for i in targets if self._attached_index.get(i.name) != i.index]
            if not targets:
                return
        for iface in targets:
            self._attached_index[iface.name] = iface.index
            # tc first: it serves alone, or finishes behind XDP, so there is
            # never a moment with neither attached.
            nl.attach_tc(iface.index, progs["ng_tc"], _tc_name(self.options.pin_dir))
            want = self._xdp_mode_for(iface)
            state = nl.xdp_state(iface.index)
            current = {"xdp": "xdp", "xdpgeneric": "xdp-generic"}.get(state.mode, "")
            if want == "tc":
                if current and _prog_name(state.prog_id) == "ng_xdp":
                    nl.detach_xdp(iface.index)
                self.attached[iface.name] = "tc"
                continue
            if current and current != want and _prog_name(state.prog_id) == "ng_xdp":
                nl.detach_xdp(iface.index)
            try:
                nl.attach_xdp(iface.index, progs["ng_xdp"], generic=want == "xdp-generic")
            except RuntimeError:
                if self.mode != "auto":
                    raise
                self.attached[iface.name] = "tc"
                continue
            self.attached[iface.name] = want
        log.info("l4: attached %s", {i.name: self.attached[i.name] for i in targets})

    def _xdp_mode_for(self, iface: Interface) -> str:
        if self.mode != "auto":
            return self.mode
        return "tc" if iface.kind else "xdp"

    def apply(self, config: NodeConfig, generation: int) -> None:
        with self._lock:
            self._apply(config, generation)

    def _apply(self, config: NodeConfig, generation: int) -> None:
        if self._writer is None or self._nl is None:
            raise DatapathError("apply before start")
        o = self.options
        nl = self._nl
        if self.interfaces is None:
            self._attach_all(only_new=True)
        plan = plan_services(
            config.l4, nl.route_source, o.maglev_size, o.max_backends, o.max_services
        )
        self._writer.apply(plan, generation)
        self.skipped = plan.skipped
        for s in plan.skipped:
            log.warning("l4: not programmed: %s", s)
        self.generation = generation

    def counters(self) -> L4Counters:
        with self._lock:
            return self._counters()

    def _counters(self) -> L4Counters:
        if self._writer is None:
            raise DatapathError("counters before start")
        stats = self._maps["ng_stats"]
        assert isinstance(stats, PerCpuMap)
        listeners = []
        for key, lv in sorted(self._writer.live.items()):
            s = _sum(stats.get_all(ctypes.c_uint32(lv.id)))
            listeners.append(
                ListenerCounters(
                    ref=lv.service.listener.ref if lv.service else None,
                    protocol=_PROTO_NAMES.get(key[2], str(key[2])),
                    address=key[0],
                    port=key[1],
                    packets=s["packets"],
                    bytes=s["bytes"],
                    reply_packets=s["reply_packets"],
                    reply_bytes=s["reply_bytes"],
                    new_flows=s["new_flows"],
                    drops=s["drops"],
                    maglev_generation=lv.gen,
                )
            )
        glob = _sum(stats.get_all(ctypes.c_uint32(self.options.max_services)))
        flows, entries, sampled_at = self._ct_sample
        return L4Counters(
            listeners=listeners,
            unattributed_drops=glob["drops"],
            conntrack_flows=flows,
            conntrack_entries=entries,
            conntrack_capacity=self.options.ct_size,
            conntrack_sampled_at=sampled_at,
        )

    def sample_conntrack(self) -> None:
        """Walk conntrack now and keep the result for counters()."""
        flows, entries = self._conntrack_occupancy()
        self._ct_sample = (flows, entries, time.monotonic())

    def _sample_conntrack(self) -> None:
        """Walks conntrack every ct_sample_interval seconds, off the apply lock: the cost of
        the walk grows with the flows, so it never runs on a metrics scrape."""
        while not self._sampler_stop.is_set():
            try:
                self.sample_conntrack()
            except Exception:  # a failed walk leaves the last sample; the next one retries
                log.exception("l4: sampling conntrack")
            self._sampler_stop.wait(self.ct_sample_interval)

    def _conntrack_occupancy(self) -> tuple[int, int]:
        o = self.options
        now = time.monotonic_ns()  # bpf_ktime_get_ns is CLOCK_MONOTONIC
        flows = entries = 0
        for k, v in itertools.chain(self._maps["ng_ct"].items(), self._maps["ng_ct6"].items()):
            if k.proto == 6:
                timeout = o.tcp_fin_timeout if v.flags & NG_CT_CLOSING else o.tcp_timeout
            else:
                timeout = o.udp_timeout
            if now - v.last_seen > timeout * 1e9:
                continue
            entries += 1
            if not v.flags & NG_CT_REPLY:
                flows += 1
        return flows, entries

    def start_sampler(self) -> None:
        """Start the background conntrack walk (after start(): bcc compiles before any thread)."""
        if self._sampler is None and self._writer is not None:
            self._sampler = threading.Thread(
                target=self._sample_conntrack, name="ng-ct-sample", daemon=True
            )
            self._sampler.start()

    def stop(self) -> None:
        self._sampler_stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=5)
            self._sampler = None
        if self._nl is not None:
            self._nl.close()
            self._nl = None
        if self._compiled is not None:
            self._compiled.close()
            self._compiled = None
        self._maps.clear()
        self._writer = None


def _sum(values: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(_FIELDS, 0)
    drops = [0] * len(DROP_REASONS)
    for v in values:
        for f in _FIELDS:
            out[f] += int(getattr(v, f))
        for i in range(len(DROP_REASONS)):
            drops[i] += int(v.drops[i])
    out["drops"] = dict(zip(DROP_REASONS, drops, strict=True))
    return out


def _read_sysctl(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _prog_name(prog_id: int) -> str:
    if not prog_id:
        return ""
    try:
        fd = syscall.prog_fd_by_id(prog_id)
    except OSError:
        return ""
    try:
        return str(syscall.prog_info(fd).name.decode())
    finally:
        os.close(fd)


def cleanup(pin_dir: str = "/sys/fs/bpf/nodegate") -> list[str]:
    """Removes the programs, pinned maps and reserved port range nodegate
    made (in this network namespace and mount namespace); what it removed."""
    pin_dir = pin_dir.rstrip("/")
    removed: list[str] = []
    with Netlink() as nl:
        for iface in nl.interfaces():
            f = nl.tc_filter(iface.index)
            if f is not None and f[0] == _tc_name(pin_dir) and nl.detach_tc(iface.index):
                removed.append(f"tc filter ng_tc on {iface.name}")
            state = nl.xdp_state(iface.index)
            if state.prog_id and _prog_name(state.prog_id) == "ng_xdp":
                nl.detach_xdp(iface.index)
                removed.append(f"XDP program ng_xdp on {iface.name}")
    params = os.path.join(pin_dir, "ng_params")
    if os.path.exists(params):
        lohi = _read_params(params)
        if lohi is not None:
            ports.release(*lohi)
            removed.append(f"reserved ports {lohi[0]}-{lohi[1]}")
    if os.path.isdir(pin_dir):
        for name in sorted(os.listdir(pin_dir)):
            os.unlink(os.path.join(pin_dir, name))
            removed.append(f"pinned map {pin_dir}/{name}")
        try:
            os.rmdir(pin_dir)
            removed.append(f"directory {pin_dir}")
        except OSError as e:
            if e.errno != errno.ENOTEMPTY:
                raise
    return removed


class _Params(ctypes.Structure):
    # struct params_val (bpf/lib/structs.h); read without compiling.
    _fields_ = [
        ("snat_lo", ctypes.c_uint32),
        ("snat_hi", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


def _read_params(path: str) -> tuple[int, int] | None:
    """The port range the agent reserved itself, or None."""
    fd = syscall.obj_get(path)
    try:
        v = _Params()
        if not syscall.map_lookup(fd, ctypes.c_uint32(0), v) or not v.reserved:
            return None
        return int(v.snat_lo), int(v.snat_hi)
    finally:
        os.close(fd)
