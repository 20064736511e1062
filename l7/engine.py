"""L7Datapath: the agent's handle on the L7 worker processes.

`start()` spawns N workers (`python -m l7.worker`, default one per core), each a
uvloop process binding every HTTPPort with SO_REUSEPORT. `apply()` sends the
whole NodeConfig to every worker and waits for each to confirm it; a worker that
rejects a configuration keeps the previous one and `apply()` raises. `stats()`
asks every worker for its counters and sums them (l7/stats.py has the shape).
Nothing here starts a thread: the agent process only forks and talks over pipes;
a lock keeps two callers (an apply and a metrics scrape) from interleaving frames.

With `access_log=True` every worker writes one JSON line per request
(l7/accesslog.py) to `access_log_stream` (a file object or fd), else to its stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any

from agent.nodeconfig import NodeConfig
from l7 import control
from l7 import stats as l7stats
from l7.limits import Limits


class L7ConfigRejected(Exception):
    """A worker refused a NodeConfig; every worker still serves the previous one."""


class L7WorkerFailed(Exception):
    """A worker died or stopped answering."""


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    generation: int = 0
    loop: str = ""  # the event loop's module the worker reported when ready
    port_errors: dict[str, str] = field(default_factory=dict)

    @property
    def to_fd(self) -> int:
        assert self.proc.stdin is not None
        return self.proc.stdin.fileno()

    @property
    def from_fd(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()


class L7Datapath:
    name = "l7"

    def __init__(
        self,
        workers: int | None = None,
        limits: Limits | None = None,
        python: str | None = None,
        answer_timeout: float = 30.0,
        access_log: bool = False,
        access_log_stream: IO[Any] | int | None = None,
    ) -> None:
        self.count = workers if workers is not None else (os.cpu_count() or 1)
        if self.count < 1:
            raise ValueError("an L7 datapath needs at least one worker")
        self.limits = limits or Limits()
        self.python = python or sys.executable
        self.answer_timeout = answer_timeout
        self.access_log = access_log
        self.access_log_stream = access_log_stream
        self.workers: list[_Worker] = []
        self.config: NodeConfig | None = None
        self.generation = 0
        self.lock = threading.RLock()

    def _spawn(self) -> _Worker:
        args = [self.python, "-m", "l7.worker", json.dumps(self.limits.to_dict())]
        pass_fds: tuple[int, ...] = ()
        if self.access_log:
            stream = self.access_log_stream
            if stream is None:
                fd = 2  # the worker's stderr, which is ours
            elif isinstance(stream, int):
                fd = stream
            else:
                stream.flush()
                fd = stream.fileno()
            args.append(str(fd))
            pass_fds = (fd,) if fd > 2 else ()
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            pass_fds=pass_fds,
        )
        return _Worker(proc)

    def start(self) -> None:
        if self.workers:
            return
        self.workers = [self._spawn() for _ in range(self.count)]
        for w in self.workers:
            w.loop = str(self._expect(w, "ready").get("loop", ""))
        if self.config is not None:
            self.apply(self.config, self.generation)

    def _revive(self) -> None:
        """Replace workers that died; the configuration about to be sent brings them up to date."""
        for i, w in enumerate(self.workers):
            if w.proc.poll() is None:
                continue
            for f in (w.proc.stdin, w.proc.stdout):
                if f is not None:
                    f.close()
            fresh = self._spawn()
            fresh.loop = str(self._expect(fresh, "ready").get("loop", ""))
            self.workers[i] = fresh

    def _expect(self, w: _Worker, op: str) -> dict[str, object]:
        try:
            message = control.read_frame(w.from_fd, self.answer_timeout)
        except (TimeoutError, control.ChannelClosed, ValueError) as exc:
            raise L7WorkerFailed(f"l7 worker {w.proc.pid}: {exc}") from exc
        if message.get("op") != op:
            raise L7WorkerFailed(f"l7 worker {w.proc.pid}: expected {op}, got {message!r}")
        return message

    def apply(self, config: NodeConfig, generation: int) -> None:
        with self.lock:
            self._apply(config, generation)

    def _apply(self, config: NodeConfig, generation: int) -> None:
        if not self.workers:
            raise L7WorkerFailed("start() the L7 datapath before apply()")
        self._revive()
        frame = {"op": "apply", "generation": generation, "config": config.model_dump(mode="json")}
        for w in self.workers:
            try:
                control.write_frame(w.to_fd, frame)
            except OSError as exc:
                raise L7WorkerFailed(f"l7 worker {w.proc.pid}: {exc}") from exc
        errors = []
        for w in self.workers:
            answer = self._expect(w, "applied")
            if answer.get("ok"):
                w.generation = generation
                ports = answer.get("ports")
                w.port_errors = dict(ports) if isinstance(ports, dict) else {}
            else:
                errors.append(f"worker {w.proc.pid}: {answer.get('error')}")
        if errors:
            raise L7ConfigRejected("; ".join(errors))
        self.config = config
        self.generation = generation

    def stats(self) -> dict[str, Any]:
        """Every worker's counters summed: JSON-able, keyed by NodeConfig refs and small
        enums only (l7/stats.py). Raises L7WorkerFailed if a worker does not answer."""
        with self.lock:
            for w in self.workers:
                try:
                    control.write_frame(w.to_fd, {"op": "stats"})
                except OSError as exc:
                    raise L7WorkerFailed(f"l7 worker {w.proc.pid}: {exc}") from exc
            snaps = []
            for w in self.workers:
                answer = self._expect(w, "stats")
                got = answer.get("stats")
                if isinstance(got, dict):
                    snaps.append(got)
            return l7stats.merge(snaps, self.applied_generation())

    def applied_generation(self) -> int:
        if not self.workers:
            return 0
        return min(w.generation for w in self.workers)

    def port_errors(self) -> dict[str, str]:
        """Ports some worker could not bind with the last configuration ("addr:port" -> why)."""
        out: dict[str, str] = {}
        for w in self.workers:
            out.update(w.port_errors)
        return out

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers]

    def stop(self, drain_timeout: float = 5.0) -> None:
        with self.lock:
            self._stop(drain_timeout)

    def _stop(self, drain_timeout: float) -> None:
        workers, self.workers = self.workers, []
        for w in workers:
            with contextlib.suppress(OSError):
                control.write_frame(w.to_fd, {"op": "stop", "drain": drain_timeout})
        deadline = time.monotonic() + drain_timeout + 5.0
        for w in workers:
            try:
                w.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            for f in (w.proc.stdin, w.proc.stdout):
                if f is not None:
                    f.close()
