"""L7Datapath: the agent's handle on the L7 worker processes.

`start()` spawns N workers (`python -m l7.worker`, default one per core), each a
uvloop process binding every HTTPPort with SO_REUSEPORT. `apply()` sends the
whole NodeConfig to every worker and waits for each to confirm it; a worker that
rejects a configuration keeps the previous one and `apply()` raises. Nothing here
starts a thread: the agent process only forks and talks over pipes.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

from agent.nodeconfig import NodeConfig
from l7 import control
from l7.limits import Limits


class L7ConfigRejected(Exception):
    """A worker refused a NodeConfig; every worker still serves the previous one."""


class L7WorkerFailed(Exception):
    """A worker died or stopped answering."""


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    generation: int = 0
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
    ) -> None:
        self.count = workers if workers is not None else (os.cpu_count() or 1)
        if self.count < 1:
            raise ValueError("an L7 datapath needs at least one worker")
        self.limits = limits or Limits()
        self.python = python or sys.executable
        self.answer_timeout = answer_timeout
        self.workers: list[_Worker] = []
        self.config: NodeConfig | None = None
        self.generation = 0

    def _spawn(self) -> _Worker:
        args = [self.python, "-m", "l7.worker", json.dumps(self.limits.to_dict())]
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        return _Worker(proc)

    def start(self) -> None:
        if self.workers:
            return
        self.workers = [self._spawn() for _ in range(self.count)]
        for w in self.workers:
            self._expect(w, "ready")
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
            self._expect(fresh, "ready")
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
