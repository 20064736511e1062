"""Fixtures for the L7 tests: one engine (two real worker processes) for the session and
echo backends on loopback. Builders are in support.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from l7.engine import L7Datapath
from tests.l7.backends import EchoBackend
from tests.l7.support import TEST_LIMITS, Engine


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    dp = L7Datapath(workers=2, limits=TEST_LIMITS)
    dp.start()
    try:
        yield Engine(dp)
    finally:
        dp.stop(drain_timeout=1.0)


@pytest.fixture
def echo() -> Iterator[Callable[..., EchoBackend]]:
    started: list[EchoBackend] = []

    def make(name: str, **kw: object) -> EchoBackend:
        b = EchoBackend(name=name, **kw).start()  # type: ignore[arg-type]
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()
