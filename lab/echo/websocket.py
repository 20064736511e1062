"""WebSocket echo as echo-basic's `/ws` does it (golang.org/x/net/websocket + io.Copy), no I/O.

Two parts:

- `handshake`: the server side of the RFC 6455 opening handshake with
  x/net/websocket's checks and error answers. Its default Handler rejects a
  request without a parseable `Origin` (403), which is why a gateway must
  pass `Origin` through (HTTPRouteBackendProtocolWebSocket sends
  `ws://gateway/<test name>`). x/net answers on the hijacked connection, so
  every answer here is raw bytes and the connection closes after an error.
- `EchoSession`: bytes in, bytes out. Every data frame is sent back as one
  final frame of the current message's type (text stays text, binary stays
  binary; a continuation takes its message's type), pings get pongs, a close
  frame or EOF is answered with close 1000.

RFC 6455 rules enforced: "a client MUST mask all frames that it sends to the
server ... a server MUST close the connection upon receiving a frame that is
not masked" (5.1; x/net sends close 1002 first); a server "MUST NOT mask any
frames that it sends to the client" (5.1).
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002

MAX_PAYLOAD = 32 << 20  # x/net/websocket DefaultMaxPayloadBytes
MAX_CONTROL_PAYLOAD = 125  # RFC 6455 section 5.5

# url.ParseRequestURI accepts an absolute URI or an absolute path.
_REQUEST_URI = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*:\S*|/\S*)$")


def accept_key(key: str) -> str:
    """Returns: Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    digest = hashlib.sha1(key.encode() + _GUID).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Handshake:
    """The raw answer to an upgrade request, and whether frames follow it."""

    response: bytes
    accepted: bool
    origin: str = ""


def _raw(code: int, reason: str, extra: str = "", body: str = "") -> Handshake:
    return Handshake(f"HTTP/1.1 {code:03d} {reason}\r\n{extra}\r\n{body}".encode(), False)


def handshake(method: str, headers: Mapping[str, str]) -> Handshake:
    """Returns: x/net/websocket's answer to a request for `/ws`.

    `headers` maps lower-case names to the first value, as Go's Header.Get.
    """
    if method != "GET":
        return _raw(405, "Method Not Allowed", body="bad method")
    upgrade = headers.get("upgrade", "").lower()
    connection = headers.get("connection", "").lower()
    if upgrade != "websocket" or "upgrade" not in connection:
        return _raw(400, "Bad Request", body="not websocket protocol")
    key = headers.get("sec-websocket-key", "")
    if not key:
        return _raw(400, "Bad Request", body="mismatch challenge/response")
    if headers.get("sec-websocket-version", "") != "13":
        return _raw(
            400,
            "Bad Request",
            extra="Sec-WebSocket-Version: 13\r\n",
            body="missing or bad WebSocket Version",
        )
    protocols = [
        p.strip() for p in headers.get("sec-websocket-protocol", "").strip().split(",") if p.strip()
    ]
    origin = headers.get("origin", "")
    if not _REQUEST_URI.match(origin):
        # checkOrigin: no Origin, or one url.ParseRequestURI rejects ("null").
        return _raw(403, "Forbidden")
    if len(protocols) > 1:
        return _raw(400, "Bad Request")
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    if protocols:
        lines.append(f"Sec-WebSocket-Protocol: {protocols[0]}")
    return Handshake(("\r\n".join(lines) + "\r\n\r\n").encode(), True, origin)


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """Returns: one final, unmasked frame (server to client)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def close_frame(code: int) -> bytes:
    return encode_frame(OP_CLOSE, struct.pack("!H", code))


def _unmask(payload: bytes, mask: bytes) -> bytes:
    # XOR with the 4-byte key repeated; done on big ints to stay fast.
    n = len(payload)
    if n == 0:
        return payload
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class _Failure(Exception):
    """The connection must end with a close frame carrying `code`."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class EchoSession:
    """The frames of one accepted connection. Feed bytes, send what comes back."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._message_opcode = OP_TEXT
        self.closed = False

    def receive(self, data: bytes) -> bytes:
        """Returns: bytes to send. After it sets `closed`, send them and close."""
        if self.closed:
            return b""
        self._buf += data
        out = bytearray()
        while not self.closed:
            try:
                frame = self._next_frame()
            except _Failure as failure:
                self.closed = True
                out += close_frame(failure.code)
                break
            if frame is None:
                break
            out += self._answer(*frame)
        return bytes(out)

    def eof(self) -> bytes:
        """Returns: the close frame Go's Conn.Close writes when the peer hangs up."""
        if self.closed:
            return b""
        self.closed = True
        return close_frame(CLOSE_NORMAL)

    def _next_frame(self) -> tuple[int, bytes] | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        opcode = buf[0] & 0x0F
        masked = bool(buf[1] & 0x80)
        length = buf[1] & 0x7F
        offset = 2
        if length == 126:
            if len(buf) < 4:
                return None
            (length,) = struct.unpack_from("!H", buf, 2)
            offset = 4
        elif length == 127:
            if len(buf) < 10:
                return None
            (length,) = struct.unpack_from("!Q", buf, 2)
            offset = 10
        if not masked:
            raise _Failure(CLOSE_PROTOCOL_ERROR)
        if length > MAX_PAYLOAD:
            # x/net's reader errors out and Conn.Close sends a normal close.
            raise _Failure(CLOSE_NORMAL)
        end = offset + 4 + length
        if len(buf) < end:
            return None
        mask = bytes(buf[offset : offset + 4])
        payload = _unmask(bytes(buf[offset + 4 : end]), mask)
        del buf[:end]
        return opcode, payload

    def _answer(self, opcode: int, payload: bytes) -> bytes:
        if opcode in (OP_TEXT, OP_BINARY):
            self._message_opcode = opcode
        elif opcode == OP_CONTINUATION:
            opcode = self._message_opcode
        elif opcode == OP_CLOSE:
            self.closed = True
            return close_frame(CLOSE_NORMAL)
        elif opcode == OP_PING:
            return encode_frame(OP_PONG, payload[:MAX_CONTROL_PAYLOAD])
        elif opcode == OP_PONG:
            return b""
        else:
            # Reserved opcodes: RFC 6455 section 5.2 "the receiving endpoint
            # MUST _Fail the WebSocket Connection_".
            self.closed = True
            return close_frame(CLOSE_PROTOCOL_ERROR)
        # io.Copy writes nothing for an empty read, so empty frames get no echo.
        return encode_frame(opcode, payload) if payload else b""
