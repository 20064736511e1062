"""l7.tick: the first write of a tick goes at once; the tick's other writes run at its
end, after the tick's I/O callbacks, in the order queued, with one loop callback per
tick; a queue a stopped loop left behind does not stop the next loop's."""

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


def test_first_at_once_the_rest_at_the_end_of_the_tick_in_order() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        log: list[str] = []
        a, b, c = Conn("a", log), Conn("b", log), Conn("c", log)
        tick.send(loop, a)  # the tick's first write: at once
        tick.send(loop, b)
        tick.send(loop, c)
        log.append("tick")  # the rest of the tick runs first
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        tick.send(loop, b)  # a new tick: at once again
        tick.send(loop, a)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return log

    assert uvloop.run(main()) == ["a", "tick", "b", "c", "b", "a"]


def test_a_queue_left_by_a_stopped_loop_is_dropped() -> None:
    log: list[str] = []
    # What a loop that stopped before its tick ended leaves behind.
    tick._due.append(Conn("lost", log))
    tick._loop[0] = object()  # type: ignore[assignment]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tick.send(loop, Conn("first", log))
        tick.send(loop, Conn("next", log))
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    uvloop.run(main())
    assert log == ["first", "next"]
