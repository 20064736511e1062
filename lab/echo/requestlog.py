"""The echo process's log: the lines echo-basic prints to stdout, one per event.

The mirror tests find a backend's traffic by searching its log for
`Echoing back request made to <path-with-query> to client` (echo-backend.md
section 10), so that line must be written, whole and flushed, before the
response leaves. Each call writes exactly one line; text never contains a
newline of its own (callers escape what they did not produce).
"""

from __future__ import annotations

import sys
from typing import TextIO


def format_addr(peer: object) -> str:
    """Returns: Go's RemoteAddr form, `ip:port` or `[ipv6]:port`."""
    if not isinstance(peer, tuple) or len(peer) < 2:
        return ""
    host, port = str(peer[0]), peer[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:") :]  # Go unmaps IPv4-mapped addresses
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


class RequestLog:
    def __init__(self, stream: TextIO, *, owned: bool = False) -> None:
        self._stream = stream
        self._owned = owned

    @classmethod
    def open(cls, path: str | None) -> RequestLog:
        """Returns: a log appending to `path`, or writing to stdout when path is None."""
        if path is None:
            return cls(sys.stdout)
        return cls(open(path, "a", encoding="utf-8"), owned=True)

    def line(self, text: str) -> None:
        """Writes one line and flushes it, so a reader sees it before the reply is sent."""
        text = text.replace("\r", "\\r").replace("\n", "\\n")
        try:
            self._stream.write(text + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            # A reader that went away must not take the echo server with it.
            pass

    def echoing(self, request_uri: str, remote: str) -> None:
        """The line echo-basic's echo handler prints, byte for byte."""
        self.line(f"Echoing back request made to {request_uri} to client ({remote})")

    def close(self) -> None:
        if self._owned:
            self._stream.close()
