"""The UDP echo (echo-basic `udpechoserver`, l4-protocol.md section 1.2).

Every datagram gets exactly one reply, sent from the listening socket to the
sender: compact JSON `{"request","namespace","ingress","service","pod"}`
without a trailing newline. `request` is the payload as a Go string, cut to
the 1024 bytes upstream's read buffer holds.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from lab.echo import gojson
from lab.echo.requestlog import RequestLog, format_addr
from lab.echo.settings import Context

READ_BUFFER = 1024


def reply_for(context: Context, payload: bytes) -> bytes:
    """Returns: the reply datagram for one received datagram."""
    return gojson.marshal({"request": gojson.go_string(payload[:READ_BUFFER]), **context.fields()})


class UDPEcho(asyncio.DatagramProtocol):
    def __init__(self, context: Context, log: RequestLog) -> None:
        self._context = context
        self._log = log
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self._transport is None:
            return
        payload = data[:READ_BUFFER]
        self._log.line(f"Received UDP {gojson.go_string(payload)} from {format_addr(addr)}")
        self._transport.sendto(reply_for(self._context, payload), addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier replies (the client went away); nothing to do.
        pass
