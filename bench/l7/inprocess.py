"""`python -m bench.l7.inprocess`: the L7 request path's own CPU per request, without sockets.

A benchmark, not a test. The bench's wrk runs measure the whole proxy on a
shared machine, where every number moves with the neighbours' load; this one
drives the same code (client connection, router, filters, backend pool,
response relay, stats) through fake transports in one uvloop process and
reports CPU time (time.process_time) per request, which a busy machine
disturbs far less. What it leaves out: the kernel (socket reads and writes)
and the event loop's polling. `--profile` prints where the time goes (cProfile sees
no frames inside l7's compiled modules: profile the sources after
`python scripts/build_native.py --clean`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from typing import Any

import uvloop

from bench.l7.run import nodegate_config
from l7 import server as l7server
from l7.limits import Limits, install_h11_hardening
from l7.proxy import bind_port_state
from l7.router import compile_port
from l7.upstream import Pool, UpstreamConnection, Upstreams

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18083\r\n\r\n"
# What the bench's nginx backend answers, byte for byte but the date.
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: 64\r\nConnection: keep-alive\r\n\r\n"
    + b"x"
    * 64
)


class FakeTransport:
    def __init__(self, on_write: Any) -> None:
        self.on_write = on_write
        self.closing = False

    def write(self, data: bytes) -> None:
        self.on_write(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 4242) if name == "peername" else default

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


def _answering(loop: asyncio.AbstractEventLoop, pool: Pool) -> UpstreamConnection:
    """A backend connection whose backend answers every request with RESPONSE."""
    conn = UpstreamConnection(pool)
    answer = FakeTransport(lambda _: loop.call_soon(conn.data_received, RESPONSE))
    conn.connection_made(answer)  # type: ignore[arg-type]
    return conn


async def run(clients: int, requests: int) -> float:
    """CPU seconds per request over `requests` keep-alive requests from `clients` clients."""
    loop = asyncio.get_running_loop()
    install_h11_hardening()
    limits = Limits()
    table = compile_port(nodegate_config().http[0])
    state = bind_port_state(table, Upstreams(limits))

    # A pooled backend connection for each client, answering at once (the pool takes
    # them back after each response, so no request needs a new one).
    for backend in state.states.values():
        for pool in backend.pools:
            for _ in range(clients):
                pool.release(_answering(loop, pool))
    server = l7server.PortServer("127.0.0.1", 1, False, state, limits, None)

    async def round_of(total: int) -> None:
        done = loop.create_future()
        count = 0

        def client() -> None:
            c = l7server.ClientConnection(server)

            def on_write(_: bytes) -> None:
                nonlocal count
                count += 1
                if count >= total:
                    if not done.done():
                        done.set_result(None)
                    return
                loop.call_soon(c.data_received, REQUEST)

            c.connection_made(FakeTransport(on_write))  # type: ignore[arg-type]
            loop.call_soon(c.data_received, REQUEST)

        for _ in range(clients):
            client()
        await done

    await round_of(requests // 10)  # warm-up: pools, caches
    t0 = time.process_time()
    await round_of(requests)
    return (time.process_time() - t0) / requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.l7.inprocess", description=__doc__)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--requests", type=int, default=30000)
    parser.add_argument("--rounds", type=int, default=3, help="report the best of N")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        uvloop.run(run(args.clients, args.requests))
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return 0
    best = min(uvloop.run(run(args.clients, args.requests)) for _ in range(args.rounds))
    print(f"{best * 1e6:.1f} µs CPU per request (best of {args.rounds}, {args.requests} requests)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
