"""One echo process: bind the listeners Settings name, serve them, stop on SIGTERM/SIGINT.

Sockets are bound first, all of them, before anything is served: a port
already taken fails the start instead of leaving half a server. A listener
without a bind address takes one dual-stack socket (`::` with IPV6_V6ONLY
off, like Go's `:port`), falling back to IPv4 where IPv6 is unavailable;
so asking for port 0 yields one port, not one per address family.

Each listener announces itself with a startup line once its socket is bound
(the HTTP ones in echo-basic's words), giving the port actually bound; the
lab and the tests read the ports from these lines when they asked for 0.
The port strings echoed in bodies (`httpPort`, `tcpport`, `tlsport`) are the
bound ports too, or the configured/default value for a listener that is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.echo.http1 import HTTPConnection
from lab.echo.requestlog import RequestLog
from lab.echo.routes import EchoApp
from lab.echo.settings import Settings
from lab.echo.tcp import TCPEchoConnection
from lab.echo.tlsinfo import ServerTLS
from lab.echo.udp import UDPEcho

BACKLOG = 1024


def bind_socket(bind: str | None, port: int, kind: socket.SocketKind) -> socket.socket:
    """Returns: a bound, non-blocking socket (not yet listening)."""
    candidates: list[tuple[socket.AddressFamily, tuple[str, int]]]
    if bind is None:
        candidates = [(socket.AF_INET6, ("::", port)), (socket.AF_INET, ("0.0.0.0", port))]
    else:
        infos = socket.getaddrinfo(bind, port, type=kind, flags=socket.AI_PASSIVE)
        candidates = [(info[0], (str(info[4][0]), int(info[4][1]))) for info in infos[:1]]
    last_error: OSError | None = None
    for family, addr in candidates:
        sock = socket.socket(family, kind)
        try:
            if family == socket.AF_INET6 and bind is None:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        sock.setblocking(False)
        return sock
    assert last_error is not None
    raise last_error


@dataclass
class EchoServer:
    settings: Settings
    log: RequestLog
    ports: dict[str, int] = field(default_factory=dict)  # listener name -> bound port
    _servers: list[asyncio.Server] = field(default_factory=list)
    _transports: list[asyncio.BaseTransport] = field(default_factory=list)

    async def start(self) -> None:
        """Binds every listener, then serves them. Raises OSError if a port is taken."""
        s = self.settings
        wanted = {
            "http": (s.listeners.http, s.http_port, socket.SOCK_STREAM),
            "https": (s.listeners.https, s.https_port, socket.SOCK_STREAM),
            "tcp": (s.listeners.tcp, s.tcp_port, socket.SOCK_STREAM),
            "tls": (s.listeners.tls, s.tls_port, socket.SOCK_STREAM),
            "udp": (s.listeners.udp, s.udp_port, socket.SOCK_DGRAM),
        }
        socks: dict[str, socket.socket] = {}
        try:
            for name, (on, port, kind) in wanted.items():
                if on:
                    socks[name] = bind_socket(s.bind, port, kind)
                    self.ports[name] = int(socks[name].getsockname()[1])
        except OSError:
            for sock in socks.values():
                sock.close()
            raise

        def label(name: str, configured: int) -> str:
            return str(self.ports.get(name, configured))

        loop = asyncio.get_running_loop()
        if "http" in socks or "https" in socks:
            app = EchoApp(s.context, label("http", s.http_port), self.log)
            if "http" in socks:
                await self._serve(socks["http"], lambda: HTTPConnection(app))
                self.log.line(f"Starting server, listening on port {self.ports['http']} (http)")
            if "https" in socks:
                assert s.cert and s.key
                https_tls = ServerTLS(s.cert, s.key, client_ca=s.client_ca, alpn=("http/1.1",))
                await self._serve(socks["https"], lambda: HTTPConnection(app, https_tls), https_tls)
                self.log.line(f"Starting server, listening on port {self.ports['https']} (https)")
        tcp_label, tls_label = label("tcp", s.tcp_port), label("tls", s.tls_port)
        if "tcp" in socks:
            await self._serve(
                socks["tcp"], lambda: TCPEchoConnection(s.context, tcp_label, tls_label)
            )
            self.log.line(f"Starting server (tcp) protocol=tcp port={self.ports['tcp']}")
        if "tls" in socks:
            assert s.cert and s.key
            # tcpserver's tls.Config has no NextProtos: no ALPN is negotiated.
            tcp_tls = ServerTLS(s.cert, s.key)
            await self._serve(
                socks["tls"],
                lambda: TCPEchoConnection(s.context, tcp_label, tls_label, tcp_tls),
                tcp_tls,
            )
            self.log.line(f"Starting server (tcp) protocol=tls port={self.ports['tls']}")
        if "udp" in socks:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: UDPEcho(s.context, self.log), sock=socks["udp"]
            )
            self._transports.append(transport)
            c = s.context
            self.log.line(
                f"UDP server listening on :{self.ports['udp']} with context: "
                f"{{Namespace:{c.namespace} Ingress:{c.ingress} Service:{c.service} Pod:{c.pod}}}"
            )

    async def _serve(
        self,
        sock: socket.socket,
        factory: Callable[[], asyncio.Protocol],
        server_tls: ServerTLS | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory,
            sock=sock,
            backlog=BACKLOG,
            ssl=server_tls.context if server_tls else None,
        )
        self._servers.append(server)

    async def close(self) -> None:
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        for server in self._servers:
            # Open keep-alive connections would make wait_closed() wait for
            # them (Python >= 3.12); a bounded wait is enough for a clean exit.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)


async def serve(settings: Settings, log: RequestLog) -> None:
    """Runs an EchoServer until SIGTERM or SIGINT."""
    server = EchoServer(settings, log)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()
