"""A request that fails on the gateway's side (a bug in nodegate, not a backend's doing)
gets a 500 and its connection ends: the client is never left waiting on it.

In-process on a real loopback socket: the failure is injected where a worker process
could not be reached (the port server's request handler raising)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from agent.nodeconfig import NodeConfig
from l7 import server as l7server
from l7.limits import Limits
from l7.proxy import bind_port_state
from l7.router import compile_port
from l7.upstream import Upstreams
from tests.l7.support import free_port, match, rule, simple_port

ADDR = "127.0.0.5"


def _port_state(port: int) -> Any:
    http = simple_port(ADDR, port, (rule(), [match("/")]))
    config = NodeConfig(http=(http,))
    return bind_port_state(compile_port(config.http[0]), Upstreams(Limits()))


def _exchange(port: int, data: bytes) -> bytes:
    """Send `data`, read until the server closes (bounded by a 5 s timeout)."""
    with socket.create_connection((ADDR, port), timeout=5) as s:
        s.sendall(data)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        return got


@pytest.mark.parametrize("where", ["at once", "in the task"])
def test_a_gateway_side_failure_answers_500_and_closes(where: str) -> None:
    def broken(*args: object) -> Any:
        if where == "at once":
            raise RuntimeError("injected")

        async def later() -> None:
            await asyncio.sleep(0)
            raise RuntimeError("injected")

        return later()

    port = free_port(ADDR)

    srv = l7server.PortServer(ADDR, port, False, _port_state(port), Limits(), None)
    srv.serve = broken

    async def main() -> bytes:
        await srv.start()
        try:
            loop = asyncio.get_running_loop()
            request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
            # Two pipelined requests: the second must not be left hanging.
            return await asyncio.wait_for(
                loop.run_in_executor(None, _exchange, port, request * 2), timeout=10
            )
        finally:
            assert srv.server is not None
            srv.server.close()
            await srv.server.wait_closed()

    got = asyncio.run(main())
    head = got.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 500 ")
    assert b"\r\nconnection: close" in head
    assert got.count(b"HTTP/1.1") == 1  # answered once, then closed
    assert srv.errors == [f"request failed on {ADDR}:{port}: RuntimeError: injected"]


def test_failures_are_logged_with_tracebacks_then_only_kept(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The first LOGGED_FAILURES go to stderr with their tracebacks, then one notice; the
    last 20 stay in `errors` whatever the count."""
    port = free_port(ADDR)
    srv = l7server.PortServer(ADDR, port, False, _port_state(port), Limits(), None)
    for n in range(l7server.LOGGED_FAILURES + 15):
        try:
            raise ValueError(f"failure {n}")
        except ValueError as exc:
            srv.log_error("request failed", exc)
    err = capsys.readouterr().err
    assert err.count("nodegate l7: request failed: ValueError: failure") == l7server.LOGGED_FAILURES
    assert err.count("Traceback (most recent call last)") == l7server.LOGGED_FAILURES
    assert f"failure {l7server.LOGGED_FAILURES - 1}\n" in err
    assert f"failure {l7server.LOGGED_FAILURES}\n" not in err
    assert err.count(f"further failures on {ADDR}:{port} are not logged") == 1
    assert len(srv.errors) == 20
    assert srv.errors[-1] == f"request failed: ValueError: failure {l7server.LOGGED_FAILURES + 14}"
