"""Limits and message checks that keep a client from smuggling or holding the proxy.

h11 already refuses most malformed framing (conflicting Content-Length values,
non-hex chunk sizes, bare CR in a header line, whitespace before the colon).
Two shapes it accepts are refused by nodegate:

- RFC 9112, 6.1: "A server MAY reject a request that contains both Content-Length
  and Transfer-Encoding or process such a request in accordance with the
  Transfer-Encoding alone. Regardless, the server MUST close the connection after
  responding to such a request". A proxy that forwards such a request invites
  request smuggling, so nodegate rejects it (h1server.RequestParser, with the
  field count, head size and declared body limits below).
- RFC 9112, 5.2: "A server that receives an obs-fold in a request message ... MUST
  either reject the message by sending a 400 (Bad Request) ... or replace each
  received obs-fold with one or more SP octets". h11 does the latter, which hides
  the fold from anything checking the headers afterwards; nodegate rejects it
  (`install_h11_hardening` below; a folded response from a backend is a 502).
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
