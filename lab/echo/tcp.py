"""The line-based TCP echo (echo-basic `tcpserver`, l4-protocol.md section 1.1), plain and TLS.

    S: Gateway API Test TCP Server\\n        on accept (after the TLS handshake)
    C: PING\\n     S: PONG\\n
    C: IS_TLS\\n   S: true\\n | false\\n
    C: TEST\\n     S: {"namespace":...,"isTLS":...[,"tls":{...}]}\\n
    anything else: no reply

Invariants (all from the Go original):
- The server speaks first and never closes on its own; it closes when the
  client does (after answering a last unterminated line, as bufio.Scanner
  yields it at EOF) or when a line outgrows bufio.MaxScanTokenSize.
- Lines end at `\\n`; one trailing `\\r` is dropped (ScanLines).
- The TEST line is built once per connection.
- Reading pauses while the write buffer is over its high mark, so a client
  that pipelines without reading cannot grow our memory.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from lab.echo import gojson
from lab.echo.settings import Context
from lab.echo.tlsinfo import ServerTLS

WELCOME = b"Gateway API Test TCP Server\n"
MAX_LINE = 64 * 1024  # bufio.MaxScanTokenSize


def test_payload(
    context: Context,
    tcp_port: str,
    tls_port: str,
    tls: dict[str, Any] | None,
) -> bytes:
    """Returns: the TEST answer: compact JSON in tcpserver's field order, plus newline."""
    body: dict[str, Any] = {**context.fields(), "tcpport": tcp_port}
    if tls_port:
        body["tlsport"] = tls_port  # omitempty, but it always has a value
    body["isTLS"] = tls is not None
    if tls is not None:
        body["tls"] = tls
    return gojson.marshal(body) + b"\n"


class TCPEchoConnection(asyncio.Protocol):
    def __init__(
        self,
        context: Context,
        tcp_port: str,
        tls_port: str,
        server_tls: ServerTLS | None = None,
    ) -> None:
        self._context = context
        self._tcp_port = tcp_port
        self._tls_port = tls_port
        self._server_tls = server_tls
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._is_tls = False
        self._payload = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        sslobj = transport.get_extra_info("ssl_object")
        tls = None
        if sslobj is not None and self._server_tls is not None:
            self._is_tls = True
            tls = self._server_tls.describe(sslobj).tcp_assertions()
        self._payload = test_payload(self._context, self._tcp_port, self._tls_port, tls)
        self._transport.write(WELCOME)

    def pause_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                break
            line = bytes(self._buf[:end])
            del self._buf[: end + 1]
            self._answer(line)
        if len(self._buf) >= MAX_LINE:
            # bufio.Scanner: ErrTooLong ends the loop, and Go closes.
            self._close()

    def eof_received(self) -> bool | None:
        if self._buf:
            self._answer(bytes(self._buf))
            self._buf.clear()
        self._close()
        return None

    def _answer(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if line == b"TEST":
            reply = self._payload
        elif line == b"IS_TLS":
            reply = b"true\n" if self._is_tls else b"false\n"
        elif line == b"PING":
            reply = b"PONG\n"
        else:
            return
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(reply)

    def _close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
