"""`python -m lab.conformance.coredns --conf Corefile`: the CoreDNS backend of the suite, emulated.

The base manifest runs CoreDNS with a Corefile holding a `whoami` zone
(`foo.bar.com:53 { whoami }`) next to a catch-all `forward` zone. The
UDPRoute test only needs a well-formed DNS reply whose ID matches its query
(l4-protocol.md section 1.3). We serve what the Corefile says, over UDP:

- a query for a name inside a zone whose block has `whoami` gets what the
  whoami plugin answers: NOERROR, an empty answer section, and in the
  additional section an A record with the client's address and an SRV record
  `_<transport>.<qname>` with the client's port;
- anything else (the `forward` zone: no upstream resolver is reachable from
  the lab, by design) gets SERVFAIL, as CoreDNS does when forwarding fails.

One log line per query, like the `log` plugin.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import socket
import struct
import sys
from collections.abc import Sequence
from pathlib import Path

_BLOCK = re.compile(r"([^\s{}]+)\s*\{([^{}]*)\}", re.S)


def whoami_zones(corefile: str) -> tuple[list[str], int]:
    """(zones served by whoami, port) from a Corefile; port defaults to 53."""
    zones, port = [], 53
    for keys, body in _BLOCK.findall(corefile):
        for key in keys.split(","):
            name, _, p = key.strip().partition(":")
            if p.isdigit():
                port = int(p)
            if "whoami" in body.split():
                zones.append(name.rstrip(".").lower() + ".")
    return zones, port


def _qname(msg: bytes, offset: int) -> tuple[str, int]:
    labels = []
    while True:
        n = msg[offset]
        offset += 1
        if n == 0:
            break
        if n & 0xC0:
            raise ValueError("compressed question name")
        labels.append(msg[offset : offset + n].decode("ascii", "replace"))
        offset += n
    return ".".join(labels).lower() + ".", offset


def answer(query: bytes, zones: Sequence[str], client: tuple[str, int]) -> bytes | None:
    """The reply to one query datagram, or None for something that is not a query."""
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    name, end = _qname(query, 12)
    question = query[12 : end + 4]
    in_zone = any(name == z or name.endswith("." + z) or z == "." for z in zones)
    rd = flags & 0x0100
    if not in_zone:
        return struct.pack("!HHHHHH", ident, 0x8000 | rd | 2, 1, 0, 0, 0) + question
    addr = ipaddress.ip_address(client[0])
    pointer = struct.pack("!H", 0xC00C)  # the question's name
    rr_a = (
        pointer
        + struct.pack("!HHIH", 1 if addr.version == 4 else 28, 1, 0, len(addr.packed))
        + addr.packed
    )
    srv_name = b"\x04_udp" + query[12:end]
    target = query[12:end]
    srv_data = struct.pack("!HHH", 0, 0, client[1]) + target
    rr_srv = srv_name + struct.pack("!HHIH", 33, 1, 0, len(srv_data)) + srv_data
    header = struct.pack("!HHHHHH", ident, 0x8400 | rd, 1, 0, 0, 2)
    return header + question + rr_a + rr_srv


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.conformance.coredns")
    parser.add_argument("--conf", required=True, type=Path)
    args = parser.parse_args(argv)
    zones, port = whoami_zones(args.conf.read_text(encoding="utf-8"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    print(f"coredns (lab): whoami for {', '.join(zones) or 'no zone'} on :{port}/udp", flush=True)
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            reply = answer(data, zones, peer)
        except (ValueError, IndexError, struct.error):
            reply = None
        if reply is not None:
            sock.sendto(reply, peer)
            print(f"[INFO] {peer[0]}:{peer[1]} query {len(data)}B -> {len(reply)}B", flush=True)


if __name__ == "__main__":
    sys.exit(main())
