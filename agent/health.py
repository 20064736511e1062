"""The agent's HTTP endpoint: /metrics (Prometheus), /healthz and /readyz.

    server = HealthServer.start("0.0.0.0:9108")
    server.port            # the bound port (the one asked, or the kernel's pick for 0)
    server.close()

- GET /metrics: the registry in the Prometheus text format (OpenMetrics when the scraper
  asks for it).
- GET /healthz: 200 while the process serves HTTP and the reconcile loop has gone round
  recently (a wedged loop is a dead agent); 503 otherwise.
- GET /readyz: 200 once every datapath applied the current NodeConfig
  (agent.metrics.AgentMetrics.readiness); 503 with what is behind otherwise.

Invariants: the server runs on its own daemon thread and never touches a datapath itself:
the collectors do, under agent.metrics.DATAPATH_LOCK. Requests are answered one at a time,
so concurrent scrapes never pile up reads of the BPF maps or the L7 workers.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from agent import metrics
from agent.metrics import AgentMetrics

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "0.0.0.0:9108"


def parse_address(value: str) -> tuple[str, int]:
    """ "HOST:PORT" (IPv6 in brackets, as "[::]:9108") -> (host, port); ValueError if not."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not HOST:PORT: {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class Liveness:
    """When the reconcile loop last went round; stale after `stale_after` seconds."""

    def __init__(self, stale_after: float = 60.0) -> None:
        self.stale_after = stale_after
        self.last = time.monotonic()

    def tick(self) -> None:
        self.last = time.monotonic()

    def alive(self) -> tuple[bool, str]:
        age = time.monotonic() - self.last
        if age > self.stale_after:
            return False, f"the reconcile loop has not run for {age:.0f}s"
        return True, "alive"


LIVENESS = Liveness()


class _Server(HTTPServer):
    # Set before serve_forever; read by the handler.
    routes: dict[str, Callable[[str], tuple[int, str, bytes]]]

    def __init__(self, address: tuple[str, int], family: int) -> None:
        self.address_family = family
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # seconds a client may take to send its request: a stuck one blocks probes

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        route = self.server.routes.get(path)
        if route is None:
            code, ctype, body = 404, "text/plain; charset=utf-8", b"not found\n"
        else:
            try:
                code, ctype, body = route(self.headers.get("Accept", ""))
            except Exception:
                log.exception("health: %s failed", path)
                code, ctype, body = 500, "text/plain; charset=utf-8", b"internal error\n"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes and scrapes every few seconds are not events


class HealthServer:
    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @classmethod
    def start(
        cls,
        address: str,
        registry: CollectorRegistry = metrics.REGISTRY,
        agent: AgentMetrics = metrics.AGENT,
        liveness: Liveness = LIVENESS,
    ) -> HealthServer:
        """Bind `address` ("HOST:PORT") and serve on a daemon thread; OSError if it cannot bind."""
        host, port = parse_address(address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = _Server((host, port), family)

        def scrape(accept: str) -> tuple[int, str, bytes]:
            encoder, ctype = choose_encoder(accept)
            return 200, ctype, encoder(registry)

        def probe(check: Callable[[], tuple[bool, str]]) -> Callable[[str], tuple[int, str, bytes]]:
            def answer(accept: str) -> tuple[int, str, bytes]:
                ok, why = check()
                return (200 if ok else 503), "text/plain; charset=utf-8", f"{why}\n".encode()

            return answer

        server.routes = {
            "/metrics": scrape,
            "/healthz": probe(liveness.alive),
            "/readyz": probe(agent.readiness),
        }
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()
        self = cls(server, thread)
        log.info("metrics, /healthz and /readyz on http://%s:%d", host or "0.0.0.0", self.port)
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
