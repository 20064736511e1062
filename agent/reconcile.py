"""The agent loop: watch the source, translate on change (debounced), hand NodeConfigs to datapaths.

Invariants:
- A datapath gets a NodeConfig only when it differs from the last one applied,
  with a generation number that rises by one each time.
- A datapath that fails to apply keeps its previous configuration (it applies a
  NodeConfig as a whole or not at all); the failure is logged and retried with
  the next change or after `retry_after` seconds.
- Translation failures (a bug, by construction: translation does not fail on bad
  input) are logged and the last good configuration keeps serving.
- Every translation and every apply is reported to agent.metrics (durations,
  generations, objects); an apply holds metrics.DATAPATH_LOCK, under which the
  metrics collectors read the datapaths.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent import metrics
from agent.health import LIVENESS
from agent.model import ObjectKey
from agent.nodeconfig import NodeConfig
from agent.status import now, stamp
from agent.store import Store
from agent.translate import TranslateOptions, TranslateResult, translate

log = logging.getLogger(__name__)


class Datapath(Protocol):
    """What the loop needs of a datapath (bpf/, l7/)."""

    name: str

    def apply(self, config: NodeConfig, generation: int) -> None: ...


class LoggingDatapath:
    """Stands in for datapaths not attached yet: says what it would program."""

    name = "log"

    def apply(self, config: NodeConfig, generation: int) -> None:
        log.info(
            "generation %d (%s): would serve %d HTTP port(s) and %d L4 listener(s)",
            generation,
            config.digest,
            len(config.http),
            len(config.l4),
        )
        for port in config.http:
            hosts = sorted(
                {vh.hostname or "*" for lst in port.listeners for vh in lst.virtual_hosts}
            )
            log.info(
                "  %s %s:%d hosts=%s",
                "HTTPS" if port.tls else "HTTP",
                port.address,
                port.port,
                ",".join(hosts),
            )
        for l4 in config.l4:
            log.info(
                "  %s %s:%d -> %s (%d backend(s))",
                l4.protocol,
                l4.address,
                l4.port,
                l4.route,
                len(l4.backends),
            )


class Source(Protocol):
    def scan(self) -> list[str]: ...


@dataclass
class Reconciler:
    source: Source
    store: Store
    options: TranslateOptions
    datapaths: Sequence[Datapath]
    debounce: float = 0.2
    interval: float = 0.5
    retry_after: float = 5.0
    on_status: Callable[[Mapping[ObjectKey, dict[str, Any]]], None] | None = None
    # Called once every datapath has applied the NodeConfig of a translation, with the
    # generation in force and that translation's statuses (cluster mode reports them).
    on_applied: Callable[[int, Mapping[ObjectKey, dict[str, Any]]], None] | None = None
    generation: int = 0
    applied: dict[str, int] = field(default_factory=dict)  # datapath -> generation in force
    last: TranslateResult | None = None
    statuses: dict[ObjectKey, dict[str, Any]] = field(
        default_factory=dict
    )  # stamped, as last reported
    _config: NodeConfig | None = None
    _translated_version: int = -1

    def __post_init__(self) -> None:
        metrics.AGENT.expect_datapaths(d.name for d in self.datapaths)

    def step(self) -> bool:
        """Translate if the store changed, apply if the NodeConfig did; whether it applied."""
        version = self.store.version
        if version == self._translated_version and all(
            self.applied.get(d.name) == self.generation for d in self.datapaths
        ):
            return False
        started = time.monotonic()
        snapshot = self.store.snapshot()
        try:
            result = translate(snapshot, self.options)
            translate_seconds = time.monotonic() - started
        except Exception:
            log.exception("translation failed; the last good configuration stays in force")
            self._translated_version = version
            return False
        self._translated_version = version
        self.last = result
        self._report(result)
        if self._config is None or result.node_config != self._config:
            self._config = result.node_config
            self.generation += 1
            log.info(
                "store version %d -> NodeConfig generation %d in %.1f ms",
                version,
                self.generation,
                1000 * (time.monotonic() - started),
            )
        metrics.AGENT.translated(
            translate_seconds,
            self.generation,
            metrics.count_by_kind(snapshot.keys()),
            metrics.invalid_by_kind(result.statuses),
        )
        applied = self._apply()
        if self.on_applied is not None and all(
            self.applied.get(d.name) == self.generation for d in self.datapaths
        ):
            self.on_applied(self.generation, result.statuses)
        return applied

    def _apply(self) -> bool:
        assert self._config is not None
        applied = False
        for d in self.datapaths:
            if self.applied.get(d.name) == self.generation:
                continue
            started = time.monotonic()
            try:
                # The metrics collectors read the datapaths under this lock (agent.metrics).
                with metrics.DATAPATH_LOCK:
                    d.apply(self._config, self.generation)
            except Exception:
                metrics.AGENT.apply_failed(d.name, time.monotonic() - started)
                log.exception(
                    "datapath %s failed to apply generation %d; it keeps generation %s",
                    d.name,
                    self.generation,
                    self.applied.get(d.name),
                )
                continue
            metrics.AGENT.applied(d.name, self.generation, time.monotonic() - started, self._config)
            self.applied[d.name] = self.generation
            applied = True
        return applied

    def _report(self, result: TranslateResult) -> None:
        when = now()
        stamped = {k: stamp(v, self.statuses.get(k), when) for k, v in result.statuses.items()}
        changed = stamped != self.statuses
        self.statuses = stamped
        if changed:
            bad = [str(k) for k, v in result.statuses.items() if _not_accepted(v)]
            log.info(
                "status: %d object(s), %d not accepted%s",
                len(stamped),
                len(bad),
                f" ({', '.join(bad[:5])}{'...' if len(bad) > 5 else ''})" if bad else "",
            )
            if self.on_status is not None:
                self.on_status(stamped)

    async def run(self, stop: asyncio.Event) -> None:
        """Scan, translate and apply until `stop` is set."""
        loop = asyncio.get_running_loop()
        last_change = -1.0
        seen_version = -1
        next_retry = 0.0
        while not stop.is_set():
            LIVENESS.tick()
            await loop.run_in_executor(None, self.source.scan)
            t = loop.time()
            if self.store.version != seen_version:
                seen_version = self.store.version
                last_change = t
            quiet = t - last_change >= self.debounce
            pending = self.store.version != self._translated_version
            failed = any(self.applied.get(d.name) != self.generation for d in self.datapaths)
            if quiet and (pending or (failed and t >= next_retry)):
                self.step()
                next_retry = t + self.retry_after
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), timeout=self.debounce if pending else self.interval
                )


def _not_accepted(status: dict[str, Any]) -> bool:
    for c in status.get("conditions", []):
        if c.get("type") == "Accepted" and c.get("status") != "True":
            return True
    return any(_not_accepted(p) for p in status.get("parents", []))
