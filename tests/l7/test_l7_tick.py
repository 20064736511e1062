"""l7.tick: writes queued during a tick run at its end, after the tick's I/O callbacks,
in the order queued, with one loop callback per tick; a queue a stopped loop left behind
does not stop the next loop's."""

from __future__ import annotations

import asyncio

import uvloop

from l7 import tick


class Conn:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def write_due(self) -> None:
        self.log.append(self.name)


def test_due_at_the_end_of_the_tick_in_order() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        log: list[str] = []
        a, b = Conn("a", log), Conn("b", log)
        tick.later(loop, a)
        tick.later(loop, b)
        log.append("tick")  # the rest of the tick runs first
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        tick.later(loop, a)  # a new tick: a new callback
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return log

    assert uvloop.run(main()) == ["tick", "a", "b", "a"]


def test_a_queue_left_by_a_stopped_loop_is_dropped() -> None:
    log: list[str] = []
    # What a loop that stopped before its tick ended leaves behind.
    tick._due.append(Conn("lost", log))
    tick._loop[0] = object()  # type: ignore[assignment]

    async def main() -> None:
        tick.later(asyncio.get_running_loop(), Conn("next", log))
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    uvloop.run(main())
    assert log == ["next"]
