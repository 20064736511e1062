"""The engine <-> worker control channel: length-prefixed JSON frames over a pipe.

Frames are a 4-byte big-endian length and a UTF-8 JSON object with an "op".

engine -> worker: {"op": "apply", "generation": g, "config": <NodeConfig JSON>}
                  {"op": "stats"}
                  {"op": "stop", "drain": seconds}
worker -> engine: {"op": "ready", "pid": p, "loop": "uvloop"}
                  {"op": "applied", "generation": g, "ok": bool, "error": str,
                   "ports": {"address:port": "bind error", ...}}
                  {"op": "stats", "stats": <the worker's counters, l7/stats.py>}
                  {"op": "stopped"}

A worker answers every apply, in order, and keeps its previous configuration
when it answers ok=false.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


class ChannelClosed(Exception):
    """The other end of the control pipe went away."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict[str, Any]:
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("control frame is not an object")
    return message


def write_frame(fd: int, message: dict[str, Any]) -> None:
    data = memoryview(encode(message))
    while data:
        n = os.write(fd, data)
        data = data[n:]


def read_frame(fd: int, timeout: float | None) -> dict[str, Any]:
    """Read one frame from a blocking fd, giving up (TimeoutError) after `timeout` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    head = _read_exact(fd, HEADER.size, deadline)
    (size,) = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ValueError(f"control frame of {size} bytes")
    return decode(_read_exact(fd, size, deadline))


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer on the control channel")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise TimeoutError("no answer on the control channel")
        got = os.read(fd, n - len(chunks))
        if not got:
            raise ChannelClosed("control channel closed")
        chunks += got
    return bytes(chunks)
