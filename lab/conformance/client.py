"""The client side of the lab: worker threads that live in the client host's network namespace.

Network namespaces are per thread on Linux: a thread that calls setns(2) on
/run/netns/<name> creates every later socket there, while the rest of the
process (the runner, its status polling, the agent it started) stays where it
was. `NetnsPool` is a thread pool whose threads all do that once, at start;
every request the runner sends is a function submitted to it, so no socket is
ever opened in the root namespace.

Invariants: a worker that failed to enter the namespace never runs a task
(the pool is broken and says why); tasks are bounded by their own timeouts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"

T = TypeVar("T")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def enter_netns(name: str) -> None:
    """Move the calling thread into network namespace `name` (from `ip netns add`)."""
    fd = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def current_netns_inode() -> int:
    return os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net").st_ino


class NetnsPool:
    """A thread pool whose workers run in one network namespace."""

    def __init__(self, netns: str, workers: int = 16) -> None:
        self.netns = netns
        self._error: BaseException | None = None
        self._expected = os.stat(os.path.join(NETNS_DIR, netns)).st_ino
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"netns-{netns}", initializer=self._enter
        )

    def _enter(self) -> None:
        try:
            enter_netns(self.netns)
        except BaseException as e:
            self._error = e
            raise

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        if self._error is not None:
            raise RuntimeError(f"client pool cannot enter {self.netns}: {self._error}")
        return self._pool.submit(self._guarded, fn, *args)

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        if current_netns_inode() != self._expected:
            raise RuntimeError(f"worker thread is not in network namespace {self.netns}")
        return fn(*args)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) in the namespace and wait for it."""
        return self.submit(fn, *args).result()

    def map(self, fn: Callable[..., T], items: Iterable[Any]) -> list[T]:
        futures = [self.submit(fn, item) for item in items]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
