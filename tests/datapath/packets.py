"""Building Ethernet/IPv4/TCP/UDP frames for the packet tables.

Checksums are computed from scratch here, independently of the C, so a
table's expected output checks the datapath's incremental updates.
"""

from __future__ import annotations

import socket
import struct

ETH_IP = 0x0800
ETH_ARP = 0x0806
ETH_IPV6 = 0x86DD
TCP, UDP, ICMP, ICMP6 = 6, 17, 1, 58
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(dst: str, src: str, ethertype: int, payload: bytes) -> bytes:
    return mac(dst) + mac(src) + struct.pack("!H", ethertype) + payload


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    if ":" in src:  # RFC 8200 8.1
        return (
            socket.inet_pton(socket.AF_INET6, src)
            + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack("!IxxxB", length, proto)
        )
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, length)


def tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: int = SYN,
    seq: int = 1000,
    ack: int = 0,
    payload: bytes = b"",
    doff: int = 5,
    window: int = 64240,
) -> bytes:
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, 0)
    hdr += b"\0" * max(0, doff * 4 - 20)
    seg = hdr + payload
    c = csum(_pseudo(src, dst, TCP, len(seg)) + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes, checksum: bool = True) -> bytes:
    length = 8 + len(payload)
    seg = struct.pack("!HHHH", sport, dport, length, 0) + payload
    if not checksum:
        return seg
    c = csum(_pseudo(src, dst, UDP, length) + seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def icmp(kind: int, code: int, data: bytes, rest: bytes = bytes(4)) -> bytes:
    """An ICMPv4 message: type, code, checksum, the 4 bytes after it (unused, or the
    next-hop MTU of "fragmentation needed"), then `data` (for an error: the quoted packet)."""
    msg = struct.pack("!BBH", kind, code, 0) + rest + data
    return msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]


def icmp6(src: str, dst: str, kind: int, code: int, data: bytes, rest: bytes = bytes(4)) -> bytes:
    """An ICMPv6 message (RFC 4443), its checksum over the pseudo-header of src and dst."""
    msg = struct.pack("!BBH", kind, code, 0) + rest + data
    c = csum(_pseudo(src, dst, ICMP6, len(msg)) + msg)
    return msg[:2] + struct.pack("!H", c) + msg[4:]


def ipv4(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    ttl: int = 64,
    ident: int = 1,
    frag: int = 0x4000,
    options: bytes = b"",
    tot_len: int | None = None,
    bad_csum: bool = False,
    tos: int = 0,
) -> bytes:
    ihl = 5 + len(options) // 4
    length = tot_len if tot_len is not None else ihl * 4 + len(payload)
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        (4 << 4) | ihl,
        tos,
        length,
        ident,
        frag,
        ttl,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    hdr += options
    c = csum(hdr) ^ (0x1234 if bad_csum else 0)
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload


def ipv6(
    src: str, dst: str, nh: int, payload: bytes, hop: int = 64, plen: int | None = None
) -> bytes:
    length = len(payload) if plen is None else plen
    return (
        struct.pack("!IHBB", 6 << 28, length, nh, hop)
        + socket.inet_pton(socket.AF_INET6, src)
        + socket.inet_pton(socket.AF_INET6, dst)
        + payload
    )


def tcp6(
    smac: str, dmac: str, src: str, dst: str, sport: int, dport: int, hop: int = 64, **kw: object
) -> bytes:
    return eth(
        dmac, smac, ETH_IPV6, ipv6(src, dst, TCP, tcp(src, dst, sport, dport, **kw), hop=hop)
    )  # type: ignore[arg-type]


def udp6(
    smac: str, dmac: str, src: str, dst: str, sport: int, dport: int, payload: bytes, hop: int = 64
) -> bytes:
    return eth(
        dmac, smac, ETH_IPV6, ipv6(src, dst, UDP, udp(src, dst, sport, dport, payload), hop=hop)
    )


def fields6(frame: bytes) -> dict[str, object]:
    ip = frame[14:54]
    sport, dport = struct.unpack("!HH", frame[54:58])
    return {
        "src": socket.inet_ntop(socket.AF_INET6, ip[8:24]),
        "dst": socket.inet_ntop(socket.AF_INET6, ip[24:40]),
        "hop": ip[7],
        "sport": sport,
        "dport": dport,
    }


def tcp4(smac: str, dmac: str, src: str, dst: str, sport: int, dport: int, **kw: object) -> bytes:
    ttl = int(kw.pop("ttl", 64))  # type: ignore[call-overload]
    return eth(dmac, smac, ETH_IP, ipv4(src, dst, TCP, tcp(src, dst, sport, dport, **kw), ttl=ttl))  # type: ignore[arg-type]


def udp4(
    smac: str, dmac: str, src: str, dst: str, sport: int, dport: int, payload: bytes, **kw: object
) -> bytes:
    ttl = int(kw.pop("ttl", 64))  # type: ignore[call-overload]
    return eth(
        dmac, smac, ETH_IP, ipv4(src, dst, UDP, udp(src, dst, sport, dport, payload, **kw), ttl=ttl)
    )  # type: ignore[arg-type]


def fields(frame: bytes) -> dict[str, object]:
    """The parts of an IPv4 TCP/UDP frame a test compares."""
    ihl = (frame[14] & 15) * 4
    ip = frame[14 : 14 + ihl]
    l4 = frame[14 + ihl :]
    sport, dport = struct.unpack("!HH", l4[:4])
    return {
        "dmac": frame[0:6].hex(":"),
        "smac": frame[6:12].hex(":"),
        "src": socket.inet_ntoa(ip[12:16]),
        "dst": socket.inet_ntoa(ip[16:20]),
        "ttl": ip[8],
        "proto": ip[9],
        "sport": sport,
        "dport": dport,
    }
