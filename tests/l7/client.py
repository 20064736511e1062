"""A blocking HTTP/1.1 test client over real sockets (plain or TLS with a chosen SNI)."""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

import h11


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names, repeated fields joined with ","
    body: bytes
    header_list: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def backend(self) -> str | None:
        if self.headers.get("content-type") != "application/json":
            return None
        return str(self.json()["pod"])


def connect(
    address: str,
    port: int,
    *,
    sni: str | None = None,
    ca: str | None = None,
    tls: bool = False,
    timeout: float = 10.0,
) -> socket.socket:
    sock = socket.create_connection((address, port), timeout=timeout)
    if tls or sni is not None:
        ctx = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
        if ca is None:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx.wrap_socket(sock, server_hostname=sni)
    return sock


def exchange(
    sock: socket.socket,
    method: str,
    target: str,
    host: str,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> Reply:
    conn = h11.Connection(h11.CLIENT)
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    hs = [("Host", host), *items]
    if body:
        hs.append(("Content-Length", str(len(body))))
    data = conn.send(h11.Request(method=method, target=target, headers=hs)) or b""
    if body:
        data += conn.send(h11.Data(data=body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    sock.sendall(data)
    status = 0
    out_headers: list[tuple[str, str]] = []
    chunks = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
            out_headers = [(n.decode(), v.decode()) for n, v in event.headers]
        elif isinstance(event, h11.Data):
            chunks += event.data
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            break
    joined: dict[str, str] = {}
    for n, v in out_headers:
        joined[n] = f"{joined[n]},{v}" if n in joined else v
    return Reply(status, joined, chunks, out_headers)


def request(
    address: str,
    port: int,
    target: str = "/",
    *,
    method: str = "GET",
    host: str | None = None,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes = b"",
    sni: str | None = None,
    ca: str | None = None,
    tls: bool = False,
    timeout: float = 10.0,
) -> Reply:
    """One request on a new connection."""
    with connect(address, port, sni=sni, ca=ca, tls=tls, timeout=timeout) as sock:
        return exchange(sock, method, target, host or f"{address}:{port}", headers, body)


def raw(address: str, port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes as they are and read until the server closes (or `timeout`)."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return out
