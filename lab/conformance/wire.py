"""One round trip of each kind the suite makes, on plain sockets (run them in the client netns).

Each function opens a new connection (or socket), does one exchange bounded
by its timeout, closes, and returns what it saw; transport problems raise
OSError (ssl.SSLError is one). Nothing here decides pass or fail: that is
lab.conformance.traffic, with upstream's rules.

HTTP/1.1 goes through h11 so every header sent is exactly the one asked for:
Host, User-Agent `Go-http-client/1.1`, `Connection: close` (upstream's client
disables keep-alive: one connection per attempt), the case's headers and
`X-Echo-Set-Header`. TLS verifies the chain against the one trusted PEM and
the server name with Go's rules (a `*` matches one whole leftmost label),
since OpenSSL refuses some wildcards Go accepts (`*.org`).
"""

from __future__ import annotations

import socket
import ssl
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h11
from cryptography import x509

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class TLSOptions:
    sni: str | None = None
    trust_pem: bytes | None = None  # None: the system roots
    client_cert: tuple[bytes, bytes] | None = None  # (cert PEM, key PEM)
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    alpn: tuple[str, ...] = ()


@dataclass
class HTTPResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def _dns_names(der: bytes) -> list[str]:
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in san.get_values_for_type(x509.DNSName)]


def go_hostname_match(pattern: str, host: str) -> bool:
    """crypto/x509 matchHostnames: case-insensitive, `*` only as the whole leftmost label."""
    p, h = pattern.lower().rstrip(".").split("."), host.lower().rstrip(".").split(".")
    if len(p) != len(h) or not all(p):
        return False
    return all((i == 0 and a == "*") or a == b for i, (a, b) in enumerate(zip(p, h, strict=True)))


def tls_context(opts: TLSOptions) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = opts.min_version
    ctx.check_hostname = False  # checked below with Go's rules
    ctx.verify_mode = ssl.CERT_REQUIRED
    if opts.trust_pem is not None:
        ctx.load_verify_locations(cadata=opts.trust_pem.decode())
    else:
        ctx.load_default_certs()
    if opts.client_cert is not None:
        with tempfile.TemporaryDirectory() as d:
            cert, key = Path(d, "crt"), Path(d, "key")
            cert.write_bytes(opts.client_cert[0])
            key.write_bytes(opts.client_cert[1])
            ctx.load_cert_chain(cert, key)
    if opts.alpn:
        ctx.set_alpn_protocols(list(opts.alpn))
    return ctx


def tls_wrap(sock: socket.socket, opts: TLSOptions) -> ssl.SSLSocket:
    tls = tls_context(opts).wrap_socket(sock, server_hostname=opts.sni or None)
    der = tls.getpeercert(binary_form=True)
    if opts.sni and der is not None:
        names = _dns_names(der)
        if not any(go_hostname_match(n, opts.sni) for n in names):
            tls.close()
            raise ssl.SSLCertVerificationError(f"certificate is valid for {names}, not {opts.sni}")
    return tls


def connect(address: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((address, port), timeout=timeout)


def http_request(
    address: str,
    port: int,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    timeout: float,
    tls: TLSOptions | None = None,
) -> HTTPResponse:
    """One HTTP/1.1 request on a new connection; raises OSError on transport trouble."""
    sock: socket.socket = connect(address, port, timeout)
    try:
        sock.settimeout(timeout)
        if tls is not None:
            sock = tls_wrap(sock, tls)
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_BODY)
        data = conn.send(h11.Request(method=method, target=target, headers=list(headers)))
        data += conn.send(h11.EndOfMessage())
        sock.sendall(data)
        response: HTTPResponse | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                chunk = sock.recv(65536)
                conn.receive_data(chunk)
                continue
            if isinstance(event, h11.Response):
                response = HTTPResponse(
                    event.status_code,
                    [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers],
                )
            elif isinstance(event, h11.InformationalResponse):
                continue
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise OSError("response body too large")
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        if response is None:
            raise OSError("connection closed before a response")
        response.body = bytes(body)
        return response
    except h11.RemoteProtocolError as e:
        raise OSError(f"bad HTTP response: {e}") from e
    finally:
        sock.close()


# --- TCP echo (l4-protocol.md section 2) -----------------------------------


class _Lines:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def line(self) -> str:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionResetError("EOF before a full line")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace") + "\n"


def tcp_conversation(
    address: str, port: int, timeout: float, tls: TLSOptions | None = None
) -> dict[str, str]:
    """welcome, PING, IS_TLS and TEST answers of one connection (raw lines, newline stripped
    except for the welcome)."""
    sock: socket.socket = connect(address, port, timeout)
    try:
        sock.settimeout(timeout)
        if tls is not None:
            sock = tls_wrap(sock, tls)
        lines = _Lines(sock)
        out = {"welcome": lines.line()}
        for cmd in ("PING", "IS_TLS", "TEST"):
            sock.sendall(cmd.encode() + b"\n")
            out[cmd] = lines.line().rstrip("\n")
        return out
    finally:
        sock.close()


def tcp_send_once(address: str, port: int, timeout: float) -> str:
    """EchoSendOnce: banner, TEST, the JSON's pod (non-empty)."""
    import json

    sock = connect(address, port, timeout)
    try:
        sock.settimeout(timeout)
        lines = _Lines(sock)
        welcome = lines.line()
        if welcome != "Gateway API Test TCP Server\n":
            raise OSError(f"unexpected welcome line {welcome!r}")
        sock.sendall(b"TEST\n")
        pod = str(json.loads(lines.line()).get("pod") or "")
        if not pod:
            raise OSError("TEST answer has no pod")
        return pod
    except ValueError as e:
        raise OSError(f"TEST answer is not JSON: {e}") from e
    finally:
        sock.close()


def tcp_connect(address: str, port: int, timeout: float) -> None:
    connect(address, port, timeout).close()


def tls_dial(address: str, port: int, timeout: float, tls: TLSOptions) -> str:
    """Dial and handshake; 'rejected' when the handshake ends in EOF or a reset, else what
    happened ('handshake completed' or the error)."""
    sock = connect(address, port, timeout)
    try:
        sock.settimeout(timeout)
        ctx = tls_context(tls)
        try:
            s = ctx.wrap_socket(sock, server_hostname=tls.sni or None)
            s.close()
            return "handshake completed"
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, BrokenPipeError):
            return "rejected"
        except ssl.SSLError as e:
            if "EOF" in str(e) or "reset" in str(e).lower():
                return "rejected"
            return f"TLS error: {e}"
    finally:
        sock.close()


# --- UDP -----------------------------------------------------------------


def udp_exchange(address: str, port: int, payload: bytes, timeout: float, bufsize: int) -> bytes:
    """One datagram from a new connected socket; the reply (the kernel drops replies from any
    other source than address:port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((address, port))
        s.send(payload)
        return s.recv(bufsize)


def dns_query(address: str, port: int, name: str, qtype: int, timeout: float) -> bytes:
    """A recursion-desired query; returns the first reply whose ID matches (miekg/dns drops
    others and keeps reading until its deadline)."""
    import secrets
    import time

    ident = secrets.randbelow(1 << 16)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    query = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((address, port))
        s.send(query)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no DNS reply with a matching ID")
            s.settimeout(left)
            reply = s.recv(4096)
            if len(reply) >= 12 and struct.unpack("!H", reply[:2])[0] == ident and reply[2] & 0x80:
                return reply


# --- WebSocket (RFC 6455, client side: handshake and single-frame messages) --------


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame ("a client MUST mask all frames", RFC 6455 5.3)."""
    import os

    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _ws_read(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    def need(n: int) -> bytes:
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("EOF inside a WebSocket frame")
            buf.extend(chunk)
        out = bytes(buf[:n])
        del buf[:n]
        return out

    b0, b1 = need(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", need(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", need(8))[0]
    mask = need(4) if b1 & 0x80 else b""
    data = need(n)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return b0 & 0x0F, data


def websocket_echo(
    address: str,
    port: int,
    host: str,
    path: str,
    origin: str,
    messages: Sequence[tuple[int, bytes]],
    timeout: float,
) -> list[tuple[int, bytes]]:
    """Open a WebSocket, send each (opcode, payload) message and read one reply to each."""
    import base64
    import os

    key = base64.b64encode(os.urandom(16)).decode()
    sock = connect(address, port, timeout)
    try:
        sock.settimeout(timeout)
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
        )
        sock.sendall(request.encode())
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("EOF during the WebSocket handshake")
            buf.extend(chunk)
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise OSError(f"WebSocket handshake answered {status.decode('latin-1')!r}")
        buf = bytearray(rest)
        replies = []
        for opcode, payload in messages:
            sock.sendall(_ws_frame(opcode, payload))
            while True:
                op, data = _ws_read(sock, buf)
                if op in (0x9, 0xA):  # ping / pong
                    continue
                if op == 0x8:
                    raise ConnectionResetError("WebSocket closed by the server")
                replies.append((op, data))
                break
        sock.sendall(_ws_frame(0x8, b"\x03\xe8"))
        return replies
    finally:
        sock.close()
