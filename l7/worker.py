"""`python -m l7.worker LIMITS_JSON`: one L7 worker process on uvloop.

Reads NodeConfigs from stdin (control.py frames), applies each as a whole and
answers on the original stdout (anything printed goes to stderr instead):

- every HTTPPort is compiled first; if any fails, the worker answers ok=false
  and keeps serving the previous configuration untouched;
- ports are then diffed: a kept port swaps its state in one assignment, a new
  port is bound (SO_REUSEPORT, shared with the other workers), a removed port
  stops accepting and drains in the background. A port that fails to bind is
  reported in "ports" and tried again with the next configuration; the other
  ports are served regardless.

A "stats" frame is answered at once with the worker's counters (l7/stats.py);
argv[2], when given, is the fd the access log goes to (l7/accesslog.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
import weakref
from typing import Any

import uvloop

from agent.nodeconfig import HTTPListener, NodeConfig
from l7 import control
from l7.accesslog import AccessLog
from l7.limits import Limits, install_h11_hardening
from l7.proxy import PortState, bind_port_state
from l7.router import ListenerTable, PortTable, compile_port
from l7.server import PortServer
from l7.stats import WorkerStats
from l7.tls import ServerContexts, listening_context
from l7.upstream import Upstreams

PortKey = tuple[str, int]


def _handshake_over(done: list[bool], stats: WorkerStats, gateway: str, listener: str) -> None:
    if not done[0]:
        stats.handshake_failed(gateway, listener)


def track_handshake(sslobj: Any, lt: ListenerTable | None, stats: WorkerStats) -> None:
    """Count a TLS handshake that got as far as its ClientHello and never completed: the
    connection marks it done when it is made; the SSL object going away unmarked (the
    handshake failed or the client left) counts a failure for the listener SNI chose."""
    done = [False]
    sslobj.nodegate_handshake = done
    gateway, listener = (lt.gateway_label, lt.listener_label) if lt is not None else ("", "")
    weakref.finalize(sslobj, _handshake_over, done, stats, gateway, listener)


class Worker:
    def __init__(self, limits: Limits, out_fd: int, access_log_fd: int | None = None) -> None:
        self.limits = limits
        self.out_fd = out_fd
        self.servers: dict[PortKey, PortServer] = {}
        self.upstreams = Upstreams(limits)
        self.contexts = ServerContexts()
        self.draining: set[asyncio.Task[None]] = set()
        self.stopped = asyncio.Event()
        self.stats = WorkerStats()
        self.access_log = AccessLog(access_log_fd) if access_log_fd is not None else None
        self.generation = 0

    def stats_snapshot(self) -> dict[str, Any]:
        active: dict[tuple[str, str], int] = {}
        for srv in self.servers.values():
            for c in srv.connections:
                key = (c.gateway_label, c.listener_label)
                active[key] = active.get(key, 0) + 1
        return self.stats.snapshot(active, self.generation)

    def _send(self, message: dict[str, Any]) -> None:
        control.write_frame(self.out_fd, message)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=control.MAX_FRAME)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        # The loop's module: "uvloop" (the engine and its tests check it is not asyncio's).
        self._send({"op": "ready", "pid": os.getpid(), "loop": type(loop).__module__})
        while True:
            try:
                head = await reader.readexactly(control.HEADER.size)
                (size,) = control.HEADER.unpack(head)
                message = control.decode(await reader.readexactly(size))
            except asyncio.IncompleteReadError:
                await self.stop(self.limits.drain_timeout)  # the engine went away
                return
            op = message.get("op")
            if op == "apply":
                self._send(await self.apply(message))
            elif op == "stats":
                self._send({"op": "stats", "stats": self.stats_snapshot()})
            elif op == "stop":
                await self.stop(float(message.get("drain", self.limits.drain_timeout)))
                self._send({"op": "stopped"})
                return

    async def apply(self, message: dict[str, Any]) -> dict[str, Any]:
        generation = int(message["generation"])
        try:
            config = NodeConfig.model_validate(message["config"])
            tables = {(p.address, p.port): compile_port(p) for p in config.http}
            listeners: list[HTTPListener] = [li for p in config.http for li in p.listeners]
            states = {key: bind_port_state(t, self.upstreams) for key, t in tables.items()}
            for li in listeners:  # load every key pair now: a bad one rejects the config
                for cert in li.certificates:
                    self.contexts.for_certificate(cert, li.client_validation)
        except Exception as exc:
            return {
                "op": "applied",
                "generation": generation,
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "ports": {},
            }
        errors: dict[str, str] = {}
        for key, state in states.items():
            table = tables[key]
            srv = self.servers.get(key)
            if srv is not None and srv.tls == table.port.tls:
                srv.swap(state)
                continue
            if srv is not None:
                self._drain(self.servers.pop(key))
            try:
                self.servers[key] = await self._open(table, state)
            except OSError as exc:
                errors[f"{key[0]}:{key[1]}"] = str(exc)
        for key in list(self.servers):
            if key not in states:
                self._drain(self.servers.pop(key))
        self.contexts.retain(listeners)
        used = {id(s) for st in states.values() for s in st.states.values()}
        self.upstreams.retain(used)
        self.generation = generation
        return {"op": "applied", "generation": generation, "ok": True, "error": "", "ports": errors}

    async def _open(self, table: PortTable, state: PortState) -> PortServer:
        holder: dict[str, PortServer] = {}
        ctx: ssl.SSLContext | None = None
        if table.port.tls:

            def pick(sni: str, sslobj: Any) -> ssl.SSLContext | None:
                lt = holder["server"].current.table.tls_listener(sni)
                track_handshake(sslobj, lt, self.stats)
                if lt is None:
                    return None
                return self.contexts.choose(lt.listener, sni)

            ctx = listening_context(pick)
        srv = PortServer(
            table.port.address,
            table.port.port,
            table.port.tls,
            state,
            self.limits,
            ctx,
            self.stats,
            self.access_log,
        )
        holder["server"] = srv
        await srv.start()
        return srv

    def _drain(self, srv: PortServer) -> None:
        srv.stop_accepting()  # before the answer to the engine, not in the background
        task = asyncio.get_running_loop().create_task(srv.drain(self.limits.drain_timeout))
        self.draining.add(task)
        task.add_done_callback(self.draining.discard)

    async def stop(self, drain: float) -> None:
        servers = list(self.servers.values())
        self.servers.clear()
        await asyncio.gather(
            *(s.drain(drain) for s in servers), *self.draining, return_exceptions=True
        )


def main(argv: list[str]) -> None:
    limits = Limits(**json.loads(argv[1])) if len(argv) > 1 else Limits()
    # argv[2], when given: the fd to write the access log to.
    log_fd = int(argv[2]) if len(argv) > 2 else None
    # The control channel keeps the real stdout; stray prints go to stderr.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    install_h11_hardening()
    profile = os.environ.get("NODEGATE_L7_PROFILE")  # bench/l7 --profile: where to write
    if not profile:
        uvloop.run(Worker(limits, out_fd, log_fd).run())
        return
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        uvloop.run(Worker(limits, out_fd, log_fd).run())
    finally:
        profiler.disable()
        with open(profile, "w") as f:
            pstats.Stats(profiler, stream=f).sort_stats("tottime").print_stats(40)


if __name__ == "__main__":
    main(sys.argv)
