"""Byte relay after a protocol switch (WebSocket upgrades).

After the backend answers 101 and the client has been sent the 101, neither
side speaks HTTP any more; h11 hands over the bytes it had read past the switch
(`trailing_data`) and the `Tunnel` copies everything else as it arrives. Each
direction has back-pressure: when one side's transport buffer fills, the other
side's socket stops being read. The tunnel ends when either side closes; a
half-close (EOF) is passed on where the transport supports it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from l7.upstream import UpstreamConnection


class Tunnel:
    def __init__(self, client: asyncio.Transport, backend: UpstreamConnection, owner: Any) -> None:
        self.client = client
        self.backend = backend
        self.owner = owner
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _backend_transport(self) -> asyncio.Transport | None:
        t = self.backend.transport
        return t if t is not None and not t.is_closing() else None

    def from_client(self, data: bytes) -> None:
        t = self._backend_transport()
        if t is not None:
            t.write(data)

    def from_backend(self, data: bytes) -> None:
        if not self.client.is_closing():
            self.client.write(data)

    def client_eof(self) -> None:
        t = self._backend_transport()
        if t is not None and t.can_write_eof():
            t.write_eof()
        elif t is not None:
            t.close()

    def backend_eof(self) -> None:
        if self.client.is_closing():
            return
        if self.client.can_write_eof():
            self.client.write_eof()
        else:
            self.client.close()

    def client_closed(self) -> None:
        t = self._backend_transport()
        if t is not None:
            t.close()
        self._finish()

    def backend_closed(self) -> None:
        if not self.client.is_closing():
            self.client.close()
        self._finish()

    def pause_backend(self) -> None:
        t = self._backend_transport()
        if t is not None:
            t.pause_reading()

    def resume_backend(self) -> None:
        t = self._backend_transport()
        if t is not None:
            t.resume_reading()

    def pause_client(self) -> None:
        if not self.client.is_closing():
            self.client.pause_reading()

    def resume_client(self) -> None:
        if not self.client.is_closing():
            self.client.resume_reading()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
