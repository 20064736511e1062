"""Echo backends for the L7 tests: real sockets on loopback, served from a thread.

Each backend answers like the conformance echo-basic server (echo-backend.md)
in the parts the tests use: a JSON echo of what it saw (path with query, host,
method, headers, namespace, pod, TLS server name), `?delay=` seconds, `/status/N`,
`/bytes?size=N` (N bytes, `&chunked=1`: without Content-Length, in 64 KiB pieces),
`?early=1` (a 103 before the answer),
the `/retry` simulator (fail `succeedAfter` times with `responseCode` or a TCP
reset), and `/ws`, which answers the WebSocket handshake and then echoes bytes.
Every request is appended to `log` (the mirror and hot-swap tests read it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import ssl
import struct
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import h11

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class Seen:
    backend: str
    method: str
    path: str
    headers: dict[str, list[str]]


@dataclass
class EchoBackend:
    name: str  # the pod name reported; tests use "<service>-<n>"
    namespace: str = "ns"
    address: str = "127.0.0.1"
    ssl_context: ssl.SSLContext | None = None
    port: int = 0
    log: list[Seen] = field(default_factory=list)
    retries: dict[str, int] = field(default_factory=dict)
    connections: int = 0  # accepted so far
    open_connections: int = 0  # accepted and not yet closed

    def start(self) -> EchoBackend:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, self.address, self.port, ssl=self.ssl_context)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(10)
        self._loop.close()

    def requests_to(self, path_prefix: str) -> list[Seen]:
        return [s for s in list(self.log) if s.path.startswith(path_prefix)]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        try:
            await self._serve_connection(reader, writer)
        finally:
            self.open_connections -= 1

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn = h11.Connection(h11.SERVER)
        sslobj = writer.get_extra_info("ssl_object")
        sni = getattr(sslobj, "sni", None)
        peer_cert = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return
                if not isinstance(event, h11.Request):
                    continue
                body = b""
                while True:
                    e = conn.next_event()
                    if e is h11.NEED_DATA:
                        conn.receive_data(await reader.read(65536))
                        continue
                    if isinstance(e, h11.Data):
                        body += e.data
                    if isinstance(e, h11.EndOfMessage):
                        break
                outcome = await self._answer(conn, event, body, writer, sni, peer_cert)
                if outcome == "closed":
                    return
                if outcome == "ws":
                    while data := await reader.read(65536):
                        writer.write(data)
                    writer.close()
                    return
                if conn.our_state is h11.MUST_CLOSE:
                    writer.close()
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.CancelledError):
            writer.close()

    async def _answer(
        self,
        conn: h11.Connection,
        req: h11.Request,
        body: bytes,
        writer: asyncio.StreamWriter,
        sni: str | None,
        peer_cert: bytes | None,
    ) -> str:
        target = req.target.decode()
        path, _, query = target.partition("?")
        params = dict(parse_qsl(query))
        headers: dict[str, list[str]] = {}
        host = ""
        for n, v in req.headers:
            name = "-".join(p.capitalize() for p in n.decode().split("-"))
            if name == "Host":
                host = v.decode()
                continue
            headers.setdefault(name, []).append(v.decode())
        self.log.append(Seen(self.name, req.method.decode(), target, headers))
        if "early" in params:  # a 103 (Early Hints) before the answer
            hint = h11.InformationalResponse(status_code=103, headers=[(b"link", b"</s>")])
            writer.write(conn.send(hint) or b"")
            await writer.drain()
        if path == "/ws":
            key = dict(req.headers).get(b"sec-websocket-key", b"")
            accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
            writer.write(
                conn.send(
                    h11.InformationalResponse(
                        status_code=101,
                        headers=[
                            (b"upgrade", b"websocket"),
                            (b"connection", b"Upgrade"),
                            (b"sec-websocket-accept", accept),
                        ],
                    )
                )
                or b""
            )
            return "ws"
        if path.startswith("/status/"):
            return await self._send(conn, writer, int(path.rsplit("/", 1)[1]), b"", [])
        if path == "/bytes":
            payload = bytes(i % 251 for i in range(int(params["size"])))
            if "chunked" not in params:
                return await self._send(conn, writer, 200, payload, [], req.method == b"HEAD")
            writer.write(conn.send(h11.Response(status_code=200, headers=[])) or b"")
            for i in range(0, len(payload), 65536):
                writer.write(conn.send(h11.Data(data=payload[i : i + 65536])) or b"")
                await writer.drain()
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
            return "ok"
        if path.startswith("/retry"):
            uid = params.get("uuid", "")
            failed = self.retries.get(uid, 0)
            if failed < int(params.get("succeedAfter", "0")):
                self.retries[uid] = failed + 1
                code = params.get("responseCode")
                if code is None:
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return "closed"
                return await self._send(conn, writer, int(code), b"", [])
        if "delay" in params:
            await asyncio.sleep(float(params["delay"]))
        extra = []
        for item in headers.get("X-Echo-Set-Header", []):
            for part in item.split(","):
                if ":" in part:
                    k, v = part.split(":", 1)
                    extra.append((k.strip().encode(), v.strip().encode()))
        doc = {
            "path": target,
            "host": host,
            "method": req.method.decode(),
            "proto": "HTTP/1.1",
            "headers": headers,
            "namespace": self.namespace,
            "pod": self.name,
            "body": body.decode("latin-1"),
        }
        if sni is not None or peer_cert is not None:
            doc["tls"] = {"serverName": sni or "", "peerCertificate": peer_cert is not None}
        payload = json.dumps(doc, indent=1).encode()
        return await self._send(
            conn, writer, 200, payload, [(b"content-type", b"application/json"), *extra]
        )

    async def _send(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        status: int,
        payload: bytes,
        headers: list[tuple[bytes, bytes]],
        head: bool = False,
    ) -> str:
        hs = [*headers, (b"content-length", str(len(payload)).encode())]
        data = conn.send(h11.Response(status_code=status, headers=hs)) or b""
        if conn.our_state is h11.SEND_BODY and not head:  # HEAD: the GET's fields, no body
            data += conn.send(h11.Data(data=payload)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        writer.write(data)
        await writer.drain()
        return "ok"
