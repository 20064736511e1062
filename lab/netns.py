"""Network-namespace lab: a client, the gateway node and backend hosts.

    with Lab(backends=2) as lab:
        server = lab.backends[0].run(["python3", "-m", "http.server", "80"])
        vip = lab.gateway.add_address()
        assert lab.client.ping(lab.backends[0].address)

The shape and the address plan are in lab.topology. This module does the
I/O, through iproute2 run as argument lists (the product's one pyroute2
module is not for the lab).

Invariants this module owns:

- A run holds an flock on its record, /run/nodegate-lab/<prefix>.json, for
  as long as its lab is up. The record exists before the run's first
  namespace and is removed after its last, so a namespace whose prefix has
  no record, or whose record nobody holds locked, belongs to no live run.
  The kernel drops the lock when the owner dies, even by SIGKILL.
- Every Lab start first removes such stale labs (killing what still runs in
  them); nothing ever removes a lab whose record is locked. Sweeping and
  claiming a prefix happen under one global lock, so they never race.
- A lab is torn down by its context manager, by close(), by a SIGINT,
  SIGTERM or SIGHUP handler, or at interpreter exit, whichever comes first.
  Teardown runs once (a signal arriving meanwhile waits for it) and kills
  every process group started through Host.run before it deletes the
  namespaces. Handlers chain to the ones they replaced: SIGINT still raises
  KeyboardInterrupt, SIGTERM still ends the process.
- Nothing in a lab links to the root namespace (veth ends are created in
  their namespaces), and no route leads out: the backends' default route
  points at the gateway node, which has none.

`python -m lab.netns list` shows labs on this machine; `cleanup` removes
the stale ones.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from lab.topology import (
    BACKEND_SEGMENT,
    CLIENT_SEGMENT,
    GATEWAY_POOL,
    LAB_NET,
    SEGMENTS,
    SWITCH,
    AddressPool,
    Segment,
    TopologyError,
    check_host_name,
    new_prefix,
    port_names,
    prefix_of,
)

RUN_DIR = Path("/run/nodegate-lab")
CMD_TIMEOUT = 10.0  # seconds; bounds every command the lab runs for itself
LOCK_TIMEOUT = 30.0
STOP_GRACE = 1.0  # seconds between SIGTERM and SIGKILL at teardown

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

# Sysctls for every lab namespace. IPv6 is off: the lab is IPv4 only and
# this silences DAD, router solicitations and MLD on every link.
_NS_SYSCTLS = (
    "net.ipv6.conf.all.disable_ipv6=1",
    "net.ipv6.conf.default.disable_ipv6=1",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
)


class LabError(RuntimeError):
    """A lab operation failed (an ip command, a lock, a dead lab)."""


# --- iproute2 -------------------------------------------------------------


def _run(argv: Sequence[str], *, check: bool = True) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=CMD_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{' '.join(argv)}: timed out after {CMD_TIMEOUT}s") from e
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def ip(*args: str, ns: str | None = None, check: bool = True) -> str:
    """Run `ip [-n ns] args...` and return its stdout."""
    return _run(["ip", *(["-n", ns] if ns else []), *args], check=check)


def ip_json(*args: str, ns: str | None = None) -> list[dict[str, Any]]:
    out = ip("-json", *args, ns=ns).strip()
    return json.loads(out) if out else []


def netns_names() -> list[str]:
    return [n["name"] for n in ip_json("netns", "list")]


def netns_pids(ns: str) -> list[int]:
    out = _run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in out.split()]


def _destroy_netns(ns: str) -> None:
    """Kill whatever runs in a namespace, then delete it."""
    for pid in netns_pids(ns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    ip("netns", "del", ns, check=False)


def _namespaces_by_prefix() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in netns_names():
        prefix = prefix_of(name)
        if prefix:
            out.setdefault(prefix, []).append(name)
    return out


# --- records and locks ----------------------------------------------------


def _record_path(prefix: str) -> Path:
    return RUN_DIR / f"{prefix.rstrip('-')}.json"


def _records() -> dict[str, Path]:
    if not RUN_DIR.is_dir():
        return {}
    out = {}
    for path in RUN_DIR.glob("ng*.json"):
        prefix = prefix_of(path.stem + "-")
        if prefix and path.stem + "-" == prefix:
            out[prefix] = path
    return out


def _flock_wait(fd: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise LabError(f"lab registry lock still held after {timeout}s") from None
            time.sleep(0.02)


@contextlib.contextmanager
def registry_lock() -> Iterator[None]:
    """Serialises sweeping and claiming prefixes across processes.

    Holding it keeps every sweep away, e.g. while a test stages a stale lab.
    """
    RUN_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd = os.open(RUN_DIR / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        _flock_wait(fd, LOCK_TIMEOUT)
        yield
    finally:
        os.close(fd)


def _lock_if_stale(path: Path) -> int | None:
    """Lock a record nobody holds; the fd, or None if its run is live.

    The lock is kept only if the path still names the inode we locked, so a
    record removed and recreated meanwhile is never mistaken for stale.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
            return fd
    except (BlockingIOError, FileNotFoundError):
        pass
    os.close(fd)
    return None


def _process_start_time(pid: int) -> int | None:
    """Start time in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _claim(prefix: str) -> int | None:
    """Create the prefix's record already locked; its fd, or None if taken.

    The record is written to a private file, locked, then hard-linked into
    place: it never exists unlocked while its run is alive.
    """
    final = _record_path(prefix)
    tmp = RUN_DIR / f".{final.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        record = {
            "prefix": prefix,
            "pid": os.getpid(),
            "start_time": _process_start_time(os.getpid()),
            "argv": sys.argv,
            "created": time.time(),
        }
        os.write(fd, json.dumps(record).encode() + b"\n")
        os.link(tmp, final)
    except FileExistsError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return fd


def _read_record(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


@dataclass(frozen=True)
class LabInfo:
    """One lab seen on this machine."""

    prefix: str
    state: str  # "live" (record locked), "stale" (record unlocked), "orphan" (no record)
    pid: int | None
    namespaces: tuple[str, ...]


def labs() -> list[LabInfo]:
    """Every lab on this machine, live or not. Changes nothing."""
    by_prefix = _namespaces_by_prefix()
    records = _records()
    out = []
    for prefix in sorted(set(by_prefix) | set(records)):
        path = records.get(prefix)
        state, pid = "orphan", None
        if path is not None:
            pid = _read_record(path).get("pid")
            fd = _lock_if_stale(path)
            state = "live" if fd is None else "stale"
            if fd is not None:
                os.close(fd)
        out.append(LabInfo(prefix, state, pid, tuple(sorted(by_prefix.get(prefix, [])))))
    return out


def _sweep_locked() -> list[str]:
    by_prefix = _namespaces_by_prefix()
    records = _records()
    removed = []
    for prefix in sorted(set(by_prefix) | set(records)):
        fd = None
        path = records.get(prefix)
        if path is not None:
            fd = _lock_if_stale(path)
            if fd is None:
                continue  # a live run holds it
        try:
            for ns in by_prefix.get(prefix, []):
                _destroy_netns(ns)
            if path is not None:
                path.unlink(missing_ok=True)
        finally:
            if fd is not None:
                os.close(fd)
        removed.append(prefix)
    return removed


def sweep(*, locked: bool = False) -> list[str]:
    """Remove every stale lab (never a live one); the prefixes removed.

    Pass locked=True when already holding registry_lock().
    """
    if locked:
        return _sweep_locked()
    with registry_lock():
        return _sweep_locked()


# --- teardown on exit and on signals --------------------------------------

# Reentrant: a signal handler runs on the main thread between any two
# bytecodes, possibly while that thread holds the lock.
_live_lock = threading.RLock()
_live: list[Lab] = []
_tearing_down = 0  # teardowns in progress in this process
_deferred: list[int] = []  # signals that arrived during one, re-raised after
_previous_handlers: dict[int, Any] = {}
_atexit_registered = False
_handlers_installed = False


def close_all() -> None:
    """Tear down every lab this process has up."""
    with _live_lock:
        mine = [lab for lab in _live if lab.owner_pid == os.getpid()]
    for lab in reversed(mine):
        with contextlib.suppress(Exception):
            lab.close()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _tearing_down:
        _deferred.append(signum)  # let the teardown finish first
        return
    close_all()
    previous = _previous_handlers.get(signum)
    if callable(previous):
        previous(signum, frame)  # SIGINT: raises KeyboardInterrupt
        return
    # Default action: die of the signal, so the exit status still says so.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    global _atexit_registered, _handlers_installed
    with _live_lock:
        if not _atexit_registered:
            _atexit_registered = True
            atexit.register(close_all)
        # Only the main thread may set handlers; until one does, atexit and
        # the next run's sweep are the safety net.
        if _handlers_installed or threading.current_thread() is not threading.main_thread():
            return
        _handlers_installed = True
    for sig in _SIGNALS:
        previous = signal.getsignal(sig)
        if previous is signal.SIG_IGN:
            continue  # e.g. SIGHUP under nohup: whoever ignored it meant it
        _previous_handlers[sig] = previous
        signal.signal(sig, _on_signal)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold back our signal handlers' work until the teardown is over.

    (Blocking the signals would not do: the kernel hands a process-directed
    signal to any thread that has it unblocked.)
    """
    global _tearing_down
    with _live_lock:
        _tearing_down += 1
    try:
        yield
    finally:
        with _live_lock:
            _tearing_down -= 1
            pending = [] if _tearing_down else list(dict.fromkeys(_deferred))
            if pending:
                _deferred.clear()
        for sig in pending:
            signal.raise_signal(sig)


# --- hosts ----------------------------------------------------------------

_PING = r"""
import os, socket, struct, sys, time
dst, timeout = sys.argv[1], float(sys.argv[2])
ident, payload = os.getpid() & 0xFFFF, b"nodegate-lab"
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF
body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + payload
pkt = body[:2] + struct.pack("!H", csum(body)) + body[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.sendto(pkt, (dst, 0))
deadline = time.monotonic() + timeout
while (left := deadline - time.monotonic()) > 0:
    s.settimeout(left)
    try:
        data, (src, _) = s.recvfrom(2048)
    except (socket.timeout, OSError):
        break
    ihl = (data[0] & 15) * 4
    kind, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl : ihl + 8])
    if kind == 0 and rid == ident and src == dst:
        sys.exit(0)
sys.exit(1)
"""


@dataclass(frozen=True)
class Link:
    """A host's veth into a segment; its peer is a port of the segment's bridge."""

    name: str  # in the host's namespace
    peer: str  # in the switch namespace
    segment: str
    address: IPv4Address
    network: IPv4Network


class Host:
    """One namespace standing in for a machine."""

    def __init__(self, lab: Lab, name: str) -> None:
        self.lab = lab
        self.name = name
        self.netns = lab.prefix + name
        self.links: dict[str, Link] = {}
        self._procs: list[subprocess.Popen[Any]] = []

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.netns} {[str(a) for a in self.addresses]}>"

    @property
    def addresses(self) -> list[IPv4Address]:
        return [link.address for link in self.links.values()]

    @property
    def address(self) -> IPv4Address:
        """The host's first address (a client's or backend's only one)."""
        return self.addresses[0]

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """argv wrapped to run in this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a process in this host; the lab kills its group at teardown.

        Keyword arguments go to subprocess.Popen. The process always leads a
        new session, so killing its group never reaches the caller.
        """
        self.lab.check_open()
        if not kwargs.pop("start_new_session", True) or "process_group" in kwargs:
            raise LabError("lab processes always start a new session")
        proc: subprocess.Popen[Any] = subprocess.Popen(
            self.exec_argv(argv), start_new_session=True, **kwargs
        )
        self._procs.append(proc)
        return proc

    def check_output(self, argv: Sequence[str], timeout: float = CMD_TIMEOUT, **kwargs: Any) -> str:
        """Run a command in this host to completion; its stdout as text.

        Raises subprocess.CalledProcessError or TimeoutExpired like
        subprocess.check_output, which gets the keyword arguments.
        """
        self.lab.check_open()
        argv = self.exec_argv(argv)
        out: str = subprocess.check_output(argv, timeout=timeout, text=True, **kwargs)
        return out

    def ip(self, *args: str, check: bool = True) -> str:
        """`ip -n <this host> args...`"""
        return ip(*args, ns=self.netns, check=check)

    def ping(self, address: IPv4Address | str, timeout: float = 1.0) -> bool:
        """Send one ICMP echo request; whether the reply came within timeout."""
        self.lab.check_open()
        argv = self.exec_argv([sys.executable, "-I", "-c", _PING, str(address), str(timeout)])
        done = subprocess.run(argv, capture_output=True, timeout=timeout + CMD_TIMEOUT)
        return done.returncode == 0

    def stop_processes(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM every process group started here, SIGKILL after grace."""
        _stop_groups(self._procs, grace)
        self._procs.clear()


def _stop_groups(procs: Sequence[subprocess.Popen[Any]], grace: float) -> None:
    def signal_all(sig: int) -> None:
        for proc in procs:
            # The group may outlive its leader, so signal it either way.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)

    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    signal_all(signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=CMD_TIMEOUT)


class Gateway(Host):
    """The gateway node: routes between the segments and holds Gateway addresses."""

    def __init__(self, lab: Lab, name: str) -> None:
        super().__init__(lab, name)
        self.vips: list[IPv4Address] = []

    @property
    def address(self) -> IPv4Address:
        """The node's address on the client segment."""
        return self.client_link.address

    @property
    def backend_address(self) -> IPv4Address:
        """The node's address on the backend segment (a full-NAT source)."""
        return self.backend_link.address

    @property
    def client_link(self) -> Link:
        return self.links[CLIENT_SEGMENT.name]

    @property
    def backend_link(self) -> Link:
        return self.links[BACKEND_SEGMENT.name]

    def add_address(self) -> IPv4Address:
        """Take the next Gateway address from the pool, as a /32 on the client link."""
        self.lab.check_open()
        addr = self.lab.vip_pool.take()
        try:
            self.ip("addr", "add", f"{addr}/32", "dev", self.client_link.name)
        except LabError:
            self.lab.vip_pool.release(addr)
            raise
        self.vips.append(addr)
        return addr

    def remove_address(self, addr: IPv4Address) -> None:
        self.lab.check_open()
        self.ip("addr", "del", f"{addr}/32", "dev", self.client_link.name)
        self.vips.remove(addr)
        self.lab.vip_pool.release(addr)


# --- the lab --------------------------------------------------------------


class Lab:
    """A client, the gateway node and backends in fresh network namespaces.

    Use as a context manager, or call start() and close(). Hosts: `client`,
    `gateway`, `backends` (and all of them by name in `hosts`).
    """

    def __init__(self, backends: int = 2) -> None:
        self.n_backends = backends
        self.prefix = ""
        self.owner_pid = os.getpid()
        self.switch = ""
        self.hosts: dict[str, Host] = {}
        self.backends: list[Host] = []
        self.vip_pool = AddressPool(GATEWAY_POOL)
        self._pools = {s.name: AddressPool(s.network, first=2) for s in SEGMENTS}
        self._ports = {s.name: 0 for s in SEGMENTS}
        self._namespaces: list[str] = []
        self._record_fd: int | None = None
        self._state = "new"  # new -> open -> closing -> closed
        self._state_lock = threading.RLock()  # see _live_lock

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Lab {self.prefix or '-'} {self._state} hosts={sorted(self.hosts)}>"

    @property
    def client(self) -> Host:
        return self.hosts["client"]

    @property
    def gateway(self) -> Gateway:
        gw = self.hosts["gw"]
        assert isinstance(gw, Gateway)
        return gw

    @property
    def namespaces(self) -> list[str]:
        return list(self._namespaces)

    def check_open(self) -> None:
        if self._state != "open":
            raise LabError(f"lab {self.prefix or '-'} is {self._state}")

    def start(self) -> Lab:
        with self._state_lock:
            if self._state != "new":
                raise LabError(f"lab {self.prefix} was already started")
            self._state = "open"
        _install_hooks()
        with _live_lock:
            _live.append(self)
        try:
            with registry_lock():
                _sweep_locked()
                self._claim_prefix()
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _claim_prefix(self) -> None:
        taken = _namespaces_by_prefix()
        for _ in range(64):
            prefix = new_prefix()
            if prefix in taken:
                continue
            fd = _claim(prefix)
            if fd is not None:
                self.prefix, self._record_fd = prefix, fd
                return
        raise LabError("no free lab prefix")

    def _build(self) -> None:
        self.switch = self._add_netns(SWITCH)
        for seg in SEGMENTS:
            br = seg.bridge(self.prefix)
            # No STP: ports forward as soon as they are up.
            options = ["stp_state", "0", "mcast_snooping", "0"]
            ip("link", "add", br, "type", "bridge", *options, ns=self.switch)
            ip("link", "set", br, "up", ns=self.switch)

        gw = Gateway(self, "gw")
        self._add_host(gw, forwarding=True)
        for seg in SEGMENTS:
            self._attach(gw, seg, seg.router)

        self._add_end_host("client", CLIENT_SEGMENT, str(LAB_NET))
        for i in range(1, self.n_backends + 1):
            self.add_host(f"b{i}")

    def add_host(self, name: str | None = None) -> Host:
        """A new backend host on the backend segment, default route via the gateway."""
        self.check_open()
        host = self._add_end_host(name or self._free_name("b"), BACKEND_SEGMENT, "default")
        self.backends.append(host)
        return host

    def add_client(self, name: str | None = None) -> Host:
        """Another client host on the client segment, the lab routed via the gateway."""
        self.check_open()
        return self._add_end_host(name or self._free_name("client"), CLIENT_SEGMENT, str(LAB_NET))

    def _add_end_host(self, name: str, seg: Segment, route: str) -> Host:
        host = Host(self, name)
        self._add_host(host)
        self._attach(host, seg, self._pools[seg.name].take())
        host.ip("route", "add", route, "via", str(seg.router))
        return host

    def _free_name(self, stem: str) -> str:
        i = 1
        while f"{stem}{i}" in self.hosts:
            i += 1
        return f"{stem}{i}"

    def _add_netns(self, name: str, *, forwarding: bool = False) -> str:
        ns = self.prefix + name
        self._namespaces.append(ns)  # before creating it: a failure still cleans it
        ip("netns", "add", ns)
        sysctls = [*_NS_SYSCTLS, f"net.ipv4.ip_forward={int(forwarding)}"]
        _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *sysctls])
        ip("link", "set", "lo", "up", ns=ns)
        return ns

    def _add_host(self, host: Host, *, forwarding: bool = False) -> None:
        check_host_name(host.name)
        if host.name in self.hosts:
            raise TopologyError(f"host {host.name!r} already exists")
        self.hosts[host.name] = host
        self._add_netns(host.name, forwarding=forwarding)

    def _attach(self, host: Host, seg: Segment, addr: IPv4Address) -> Link:
        port = self._ports[seg.name]
        self._ports[seg.name] += 1
        name, peer = port_names(self.prefix, seg, port)
        # Both ends are born in their namespaces: nothing touches the root one.
        far_end = ["peer", "name", name, "netns", host.netns]
        ip("link", "add", peer, "type", "veth", *far_end, ns=self.switch)
        ip("link", "set", peer, "master", seg.bridge(self.prefix), "up", ns=self.switch)
        host.ip("addr", "add", f"{addr}/{seg.network.prefixlen}", "dev", name)
        host.ip("link", "set", name, "up")
        link = Link(name, peer, seg.name, addr, seg.network)
        host.links[seg.name] = link
        return link

    def close(self) -> None:
        """Tear the lab down: processes, namespaces, then the record. Idempotent."""
        with self._state_lock:
            if self._state in ("closing", "closed"):
                return
            self._state = "closing"
        try:
            with _signals_deferred():
                self._teardown()
        finally:
            self._state = "closed"
            with _live_lock:
                if self in _live:
                    _live.remove(self)

    def _teardown(self) -> None:
        try:
            _stop_groups([p for h in self.hosts.values() for p in h._procs], STOP_GRACE)
            for host in self.hosts.values():
                host._procs.clear()
            if not self.prefix:
                return
            for ns in reversed(self._namespaces):
                _destroy_netns(ns)
            left = _namespaces_by_prefix().get(self.prefix, [])
            for ns in left:
                _destroy_netns(ns)
            if _namespaces_by_prefix().get(self.prefix):
                # Leave the record, unlocked: the next sweep finishes the job.
                raise LabError(f"could not remove every namespace of lab {self.prefix}")
            _record_path(self.prefix).unlink(missing_ok=True)
        finally:
            if self._record_fd is not None:
                os.close(self._record_fd)
                self._record_fd = None


# --- command line ---------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["list"]:
        for info in labs():
            pid = info.pid if info.pid is not None else "-"
            print(f"{info.prefix}\t{info.state}\tpid={pid}\t{' '.join(info.namespaces)}")
        return 0
    if args == ["cleanup"]:
        for prefix in sweep():
            print(f"removed {prefix}")
        return 0
    print("usage: python -m lab.netns list|cleanup", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
