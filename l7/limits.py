"""Limits and message checks that keep a client from smuggling or holding the proxy.

h11 already refuses most malformed framing (conflicting Content-Length values,
non-hex chunk sizes, bare CR in a header line, whitespace before the colon).
Two shapes it accepts are refused here:

- RFC 9112, 6.1: "A server MAY reject a request that contains both Content-Length
  and Transfer-Encoding or process such a request in accordance with the
  Transfer-Encoding alone. Regardless, the server MUST close the connection after
  responding to such a request". A proxy that forwards such a request invites
  request smuggling, so nodegate rejects it.
- RFC 9112, 5.2: "A server that receives an obs-fold in a request message ... MUST
  either reject the message by sending a 400 (Bad Request) ... or replace each
  received obs-fold with one or more SP octets". h11 does the latter, which hides
  the fold from anything checking the headers afterwards; nodegate rejects it
  (and a folded response from a backend is a 502).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import h11
import h11._readers as _h11_readers


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-worker limits. Sizes in bytes, durations in seconds."""

    max_header_bytes: int = 16 * 1024  # request line and headers together
    max_headers: int = 100
    max_body_bytes: int = 16 * 1024 * 1024
    header_timeout: float = 10.0  # from the first byte of a request to the end of its head
    body_timeout: float = 30.0  # between two reads of a request body
    keepalive_timeout: float = 60.0  # an idle client connection between requests
    connect_timeout: float = 5.0  # to a backend
    upstream_idle: float = 30.0  # a pooled backend connection unused this long is closed
    pool_size: int = 64  # idle connections kept per endpoint
    eject_seconds: float = 5.0  # an endpoint that refused or reset sits out this long
    drain_timeout: float = 5.0  # a removed listener's connections are closed after this

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class RequestRefused(Exception):
    """A request refused before routing; answered with `status` and the connection closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _reject_obs_fold(lines: Iterable[bytearray]) -> Iterable[bytearray]:
    # A plain loop, not a generator: h11 calls this for every head, on the hot path.
    for line in lines:
        if line[:1] in _FOLD_STARTS:
            raise h11.LocalProtocolError("obs-fold (line folding) is not allowed", 400)
    return lines


_FOLD_STARTS = (b" ", b"\t")


def install_h11_hardening() -> None:
    """Make h11 refuse obs-fold instead of unfolding it (see the module doc).

    h11 reads header blocks through `_obsolete_line_fold`, looked up at call time;
    the replacement raises where h11 would have joined the lines, and h11 turns that
    into a RemoteProtocolError with status hint 400.
    """
    _h11_readers._obsolete_line_fold = _reject_obs_fold  # type: ignore[assignment]


def check_request_framing(
    target: bytes, headers: Iterable[tuple[bytes, bytes]], limits: Limits
) -> None:
    """Refuse Content-Length with Transfer-Encoding (400), too many or too large fields (431)
    and a declared body over the limit (413, before any of it is read)."""
    count = 0
    length = -1
    has_te = False
    # h11 bounds a head that arrives in pieces (max_incomplete_event_size); one that
    # arrives whole is measured here, as the request line and field lines it was.
    size = len(target) + 14
    for name, value in headers:
        count += 1
        size += len(name) + len(value) + 4
        if name == b"content-length":
            length = int(value)  # h11 has checked it is digits, and one value
        elif name == b"transfer-encoding":
            has_te = True
    if length >= 0 and has_te:
        raise RequestRefused(400, "both Content-Length and Transfer-Encoding")
    if count > limits.max_headers:
        # RFC 6585, 5: "431 (Request Header Fields Too Large)".
        raise RequestRefused(431, f"more than {limits.max_headers} header fields")
    if size > limits.max_header_bytes:
        raise RequestRefused(431, f"a request head of more than {limits.max_header_bytes} bytes")
    if length > limits.max_body_bytes:
        raise RequestRefused(413, f"a body of {length} bytes")
