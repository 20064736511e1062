"""Writes of one event loop tick, sent together: the first at once, the rest at its end.

Every write to a socket whose reader sleeps wakes that reader; on loopback and in a
VM the wake-up (an inter-processor interrupt, a VM exit) costs more than the write.
A proxy under load produces, in one tick, a write to a backend for each request it
read and a write to a client for each response: sent back to back at the end of the
tick, the first wakes the peer and the rest find it awake. (uvloop itself writes at
once whenever a socket's buffer is empty.) Measured in bench.l7: ~3 µs less kernel
time per request at 50 connections (+5-10% req/s, p99 -15%); at one connection the
end-of-tick callback costs a loop iteration per tick (~8% fewer req/s there, p50
+~20 µs), though the lone write itself goes at once.

`send(loop, conn)` calls `conn.write_due()` at once if it is the tick's first write (a
lone write, as at one connection, waits for nothing) and otherwise when the loop has
run the tick's I/O callbacks (asyncio runs a `call_soon` callback after them), with
the others queued; one loop callback per tick, whatever the number of connections.
"""

from __future__ import annotations

import asyncio
from typing import Any

_due: list[Any] = []
_loop: list[asyncio.AbstractEventLoop | None] = [None]  # the loop whose tick is open


def send(loop: asyncio.AbstractEventLoop, conn: Any) -> None:
    """`conn.write_due()` now if this is the first write of this tick of `loop`, else at
    the tick's end (once per `send`)."""
    if _loop[0] is not loop:
        # The tick's first write (or the first since a loop stopped with its tick open:
        # a test's loop, whose queue is dropped with it).
        _due.clear()
        _loop[0] = loop
        loop.call_soon(_run)
        conn.write_due()
        return
    _due.append(conn)


def _run() -> None:
    _loop[0] = None
    due = _due[:]
    _due.clear()
    for conn in due:
        conn.write_due()
