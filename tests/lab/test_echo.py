"""lab.echo against real loopback sockets: the echo-basic protocol as the conformance suite uses it.

One echo process (a real subprocess, every listener on an ephemeral
127.0.0.1 port) serves most tests; a few start their own to check the
container-style environment configuration. Clients are the standard
library's: sockets, http.client, ssl. Every wait is bounded.

The pure helpers (Go duration/query/path parsing, Go JSON, pod names,
settings) get table tests at the end.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import json
import os
import queue
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lab.echo import gojson, goparse, podname, routes, tlsinfo, websocket
from lab.echo.settings import Context, Listeners, Settings, SettingsError

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 5.0  # any single network wait
START_TIMEOUT = 10.0
NAMESPACE = "gateway-conformance-infra"
POD = "infra-backend-v1-6b8f7c9d4b-x2k7q"
SNI = "abc.example.com"

# --------------------------------------------------------------------------
# certificates


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_pem: str
    rogue_cert: Path
    rogue_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    dns: list[str] | None = None,
    client: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name = issuer[0].subject if issuer else name
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
        )
    if client:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("certs")
    ca_key = _key()
    ca = _cert("test CA", ca_key, None, ca=True)
    _write(d / "ca", ca, ca_key)
    server_key = _key()
    _write(d / "server", _cert(SNI, server_key, (ca, ca_key), dns=[SNI]), server_key)
    client_key = _key()
    client = _cert("gateway", client_key, (ca, ca_key), client=True)
    _write(d / "client", client, client_key)
    rogue_key = _key()
    _write(d / "rogue", _cert("rogue", rogue_key, None, client=True), rogue_key)
    return Certs(
        dir=d,
        ca=d / "ca.crt",
        server_cert=d / "server.crt",
        server_key=d / "server.key",
        client_cert=d / "client.crt",
        client_key=d / "client.key",
        client_pem=client.public_bytes(serialization.Encoding.PEM).decode(),
        rogue_cert=d / "rogue.crt",
        rogue_key=d / "rogue.key",
    )


# --------------------------------------------------------------------------
# the echo process

_STARTUP = {
    "http": re.compile(r"^Starting server, listening on port (\d+) \(http\)$"),
    "https": re.compile(r"^Starting server, listening on port (\d+) \(https\)$"),
    "tcp": re.compile(r"^Starting server \(tcp\) protocol=tcp port=(\d+)$"),
    "tls": re.compile(r"^Starting server \(tcp\) protocol=tls port=(\d+)$"),
    "udp": re.compile(r"^UDP server listening on :(\d+) "),
}


class EchoProcess:
    """`python -m lab.echo` as a subprocess, with its stdout collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.endswith("_ECHO_SERVER")}
        full_env["PYTHONPATH"] = str(REPO)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lab.echo", "--bind", "127.0.0.1", *args],
            cwd=REPO,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._stderr: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.ports: dict[str, int] = {}

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.put(line)

    def stderr(self) -> str:
        out = []
        while not self._stderr.empty():
            out.append(self._stderr.get_nowait())
        return "".join(out)

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(
                        f"echo log never matched; lines={self.lines!r} stderr={self.stderr()!r}"
                    )
                self._changed.wait(min(left, 0.1))

    def started(self, listeners: list[str]) -> EchoProcess:
        def all_up(lines: list[str]) -> bool:
            for line in lines:
                for name, pattern in _STARTUP.items():
                    m = pattern.match(line)
                    if m:
                        self.ports[name] = int(m.group(1))
            return all(name in self.ports for name in listeners)

        self.wait_for(all_up, START_TIMEOUT)
        return self

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
            raise


@pytest.fixture(scope="module")
def echo(certs: Certs) -> Iterator[EchoProcess]:
    proc = EchoProcess(
        [
            "--namespace",
            NAMESPACE,
            "--pod",
            POD,
            "--service",
            "infra-backend-v1",
            "--http-port",
            "0",
            "--https-port",
            "0",
            "--tcp-port",
            "0",
            "--tls-port",
            "0",
            "--udp-port",
            "0",
            "--cert",
            str(certs.server_cert),
            "--key",
            str(certs.server_key),
            "--client-ca",
            str(certs.ca),
        ]
    )
    try:
        yield proc.started(["http", "https", "tcp", "tls", "udp"])
    finally:
        code = proc.stop()
    # SIGTERM is a clean shutdown; anything on stderr means something broke.
    assert code == 0, proc.stderr()
    assert "Traceback" not in proc.stderr(), proc.stderr()


# --------------------------------------------------------------------------
# clients


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ",".join(values) if values else None

    def json(self) -> dict[str, Any]:
        assert self.header("Content-Type") == "application/json"
        parsed = json.loads(self.body)
        assert isinstance(parsed, dict)
        return parsed


def get(
    port: int,
    path: str,
    headers: list[tuple[str, str]] | None = None,
    *,
    method: str = "GET",
    body: bytes | None = None,
    tls: ssl.SSLContext | None = None,
) -> Response:
    """One request on a fresh connection, as the suite sends them (keep-alive off).

    Over TLS it dials 127.0.0.1 but sends SNI and Host for the certificate's name.
    """
    host = f"{SNI if tls else '127.0.0.1'}:{port}"
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=SNI)
    with sock:
        sock.sendall(request)
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        return Response(resp.status, resp.getheaders(), resp.read())


def raw_exchange(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Sends bytes, returns everything the server sends until it closes (bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before it has read everything
        out = b""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def client_tls(
    certs: Certs,
    *,
    cert: tuple[Path, Path] | None = None,
    alpn: list[str] | None = None,
    max_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if max_version:
        ctx.maximum_version = max_version
    return ctx


class LineReader:
    """Newline-framed reads from a socket, each bounded by the socket timeout."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"


# --------------------------------------------------------------------------
# HTTP echo


def test_echo_body_reports_the_request(echo: EchoProcess) -> None:
    port = echo.ports["http"]
    resp = get(
        port,
        "/some/path?b=2&a=<1>",
        [
            ("X-Echo-Set-Header", ""),
            ("x-header-set", "one"),
            ("X-HEADER-SET", "two"),
            ("Pragma", "no-cache"),
            ("User-Agent", "lab-test"),
        ],
    )
    assert resp.status == 200
    assert resp.header("Content-Type") == "application/json"
    assert resp.header("X-Content-Type-Options") == "nosniff"
    # Go's encoder: struct field order, HTML-safe escapes, one-space indent.
    assert b'"path": "/some/path?b=2\\u0026a=\\u003c1\\u003e"' in resp.body
    assert resp.body.startswith(b'{\n "path": ')
    body = resp.json()
    assert list(body) == [
        "path", "host", "method", "proto", "headers", "httpPort",
        "namespace", "ingress", "service", "pod",
    ]  # fmt: skip
    assert body["path"] == "/some/path?b=2&a=<1>"
    assert body["host"] == f"127.0.0.1:{port}"
    assert body["method"] == "GET"
    assert body["proto"] == "HTTP/1.1"
    assert body["httpPort"] == str(port)
    assert (body["namespace"], body["ingress"], body["service"], body["pod"]) == (
        NAMESPACE,
        "",
        "infra-backend-v1",
        POD,
    )
    headers = body["headers"]
    assert list(headers) == sorted(headers)
    assert "Host" not in headers
    assert headers["X-Header-Set"] == ["one", "two"]
    assert headers["X-Echo-Set-Header"] == [""]
    assert headers["User-Agent"] == ["lab-test"]
    assert headers["Cache-Control"] == ["no-cache"]  # net/http's Pragma fix-up
    assert "tls" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
def test_echo_any_method(echo: EchoProcess, method: str) -> None:
    resp = get(echo.ports["http"], "/method", method=method, body=b"payload")
    assert resp.status == 200
    if method == "HEAD":
        assert resp.body == b""
        assert int(resp.header("Content-Length") or 0) > 0
    else:
        assert resp.json()["method"] == method


@pytest.mark.parametrize(
    ("set_header", "expected"),
    [
        # HTTPRouteResponseHeaderModifier's backend_set_response_headers
        (["Some-Other-Header:val"], {"Some-Other-Header": "val"}),
        (
            ["Some-Other-Header:val,X-Header-Set:some-other-value"],
            {"Some-Other-Header": "val", "X-Header-Set": "some-other-value"},
        ),
        # trimmed items, repeated names appended, case kept; "X-B " is no token
        ([" X-A: 1 , X-A:2", "x-lower:v,X-B :3"], {"X-A": "1,2", "x-lower": "v"}),
        # the empty value the suite always sends adds nothing
        ([""], {}),
    ],
)
def test_x_echo_set_header(
    echo: EchoProcess, set_header: list[str], expected: dict[str, str]
) -> None:
    resp = get(echo.ports["http"], "/set", [("X-Echo-Set-Header", v) for v in set_header])
    assert resp.status == 200
    base = {"Content-Type", "X-Content-Type-Options", "Date", "Content-Length", "Connection"}
    extra = {n: v for n, v in resp.headers if n not in base}
    assert extra == expected


@pytest.mark.parametrize(
    ("path", "status", "location"),
    [
        ("/status/200", 200, None),
        ("/status/404", 404, None),
        ("/status/503", 503, None),
        ("/status/20", 400, None),
        ("/status/2000", 400, None),
        ("/status/200?x=1", 400, None),  # the regexp sees the whole RequestURI
        ("/status", 301, "/status/"),  # ServeMux subtree redirect
        ("/a/../b?q=1", 301, "/b?q=1"),  # ServeMux clean-path redirect
        ("//double//slash", 200, None),  # preserveSlashes: echoed, not redirected
    ],
)
def test_status_and_routing(
    echo: EchoProcess, path: str, status: int, location: str | None
) -> None:
    resp = get(echo.ports["http"], path)
    assert resp.status == status
    assert resp.header("Location") == location
    if status == 200 and path.startswith("/status/"):
        assert resp.body == b""
    if path == "//double//slash":
        assert resp.json()["path"] == "//double//slash"


def test_health(echo: EchoProcess) -> None:
    resp = get(echo.ports["http"], "/health")
    assert (resp.status, resp.body) == (200, b"OK")


def test_delay_query_and_form(echo: EchoProcess) -> None:
    port = echo.ports["http"]
    start = time.monotonic()
    resp = get(port, "/backend-timeout?delay=400ms")
    assert resp.status == 200
    assert time.monotonic() - start >= 0.4
    assert resp.json()["path"] == "/backend-timeout?delay=400ms"

    start = time.monotonic()
    form = [("Content-Type", "application/x-www-form-urlencoded")]
    resp = get(port, "/form", form, method="POST", body=b"delay=200ms")
    assert resp.status == 200
    assert time.monotonic() - start >= 0.2

    resp = get(port, "/x?delay=1parsec")
    assert resp.status == 500
    assert resp.json() == {"message": 'time: unknown unit "parsec" in duration "1parsec"'}


def test_request_log_line(echo: EchoProcess) -> None:
    request_id = uuid.uuid4()
    path = f"/mirror?gateway-api-conformance-request-id={request_id}"
    with socket.create_connection(("127.0.0.1", echo.ports["http"]), timeout=TIMEOUT) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n".encode())
        assert LineReader(sock).line() == b"HTTP/1.1 200 OK\r\n"
    expected = f"Echoing back request made to {path} to client (127.0.0.1:{client_port})"
    # The line is flushed before the reply is sent, so it is there already.
    echo.wait_for(lambda lines: expected in lines, timeout=1.0)
    # The suite's regexp, and exactly one line for one request.
    pattern = re.compile(f"Echoing back request made to {re.escape(path)} to client")
    assert sum(1 for line in echo.lines if pattern.search(line)) == 1


def test_keep_alive_and_pipelining(echo: EchoProcess) -> None:
    requests = b"".join(f"GET /pipe/{i} HTTP/1.1\r\nHost: gw\r\n\r\n".encode() for i in range(3))
    data = raw_exchange(
        echo.ports["http"],
        requests + b"GET /pipe/last HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
    )
    paths = re.findall(rb'"path": "([^"]+)"', data)
    assert paths == [b"/pipe/0", b"/pipe/1", b"/pipe/2", b"/pipe/last"]
    assert data.count(b"HTTP/1.1 200 OK") == 4


# --------------------------------------------------------------------------
# retry simulator


def test_retry_with_response_code(echo: EchoProcess) -> None:
    path = f"/retry/x?responseCode=503&succeedAfter=2&uuid={uuid.uuid4()}"
    port = echo.ports["http"]
    assert [get(port, path).status for _ in range(2)] == [503, 503]
    resp = get(port, path)
    assert resp.status == 200
    assert resp.json()["path"] == path


def test_retry_without_response_code_resets(echo: EchoProcess) -> None:
    path = f"/retry/x?succeedAfter=1&uuid={uuid.uuid4()}"
    with pytest.raises(ConnectionResetError):
        get(echo.ports["http"], path)
    assert get(echo.ports["http"], path).status == 200


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("succeedAfter=1", b"uuid is required\n"),
        ("uuid=u1", b"succeedAfter is required\n"),
        ("uuid=u1&succeedAfter=x", b"succeedAfter is required\n"),
    ],
)
def test_retry_bad_parameters(echo: EchoProcess, query: str, body: bytes) -> None:
    resp = get(echo.ports["http"], f"/retry/x?{query}")
    assert (resp.status, resp.body) == (400, body)


# --------------------------------------------------------------------------
# WebSocket


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    length = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    return bytes([0x80 | opcode]) + length + mask + masked


def _ws_read(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    def need(n: int) -> None:
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError
            buf.extend(chunk)

    need(2)
    opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
    offset = 2
    if n == 126:
        need(4)
        n, offset = struct.unpack_from("!H", buf, 2)[0], 4
    need(offset + n)
    payload = bytes(buf[offset : offset + n])
    del buf[: offset + n]
    return opcode, payload


def _ws_connect(port: int, origin: str | None) -> tuple[socket.socket, bytes, bytearray]:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /ws HTTP/1.1",
        "Host: gw",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    accept = base64.b64encode(
        hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    )
    if head.startswith(b"HTTP/1.1 101"):
        assert b"Sec-WebSocket-Accept: " + accept in head
    return sock, head, bytearray(rest)


def test_websocket_echo(echo: EchoProcess) -> None:
    origin = "ws://gateway/TestConformance/HTTPRouteBackendProtocolWebSocket"
    sock, head, buf = _ws_connect(echo.ports["http"], origin)
    with sock:
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols")
        sock.sendall(_ws_frame(websocket.OP_TEXT, b"Websocket Support!"))
        assert _ws_read(sock, buf) == (websocket.OP_TEXT, b"Websocket Support!")
        sock.sendall(_ws_frame(websocket.OP_BINARY, bytes([1, 2, 3, 4, 5, 6, 7])))
        assert _ws_read(sock, buf) == (websocket.OP_BINARY, bytes([1, 2, 3, 4, 5, 6, 7]))
        big = os.urandom(5000)
        sock.sendall(_ws_frame(websocket.OP_BINARY, big))
        assert _ws_read(sock, buf) == (websocket.OP_BINARY, big)
        sock.sendall(_ws_frame(websocket.OP_PING, b"hb"))
        assert _ws_read(sock, buf) == (websocket.OP_PONG, b"hb")
        sock.sendall(_ws_frame(websocket.OP_CLOSE, struct.pack("!H", 1000)))
        assert _ws_read(sock, buf) == (websocket.OP_CLOSE, struct.pack("!H", 1000))
    echo.wait_for(lambda lines: f"established websocket connection {origin}" in lines)


def test_websocket_needs_origin(echo: EchoProcess) -> None:
    sock, head, _ = _ws_connect(echo.ports["http"], None)
    sock.close()
    assert head.startswith(b"HTTP/1.1 403 Forbidden")


def test_websocket_unmasked_frame_is_a_protocol_error(echo: EchoProcess) -> None:
    sock, head, buf = _ws_connect(echo.ports["http"], "http://gateway")
    with sock:
        assert head.startswith(b"HTTP/1.1 101")
        sock.sendall(websocket.encode_frame(websocket.OP_TEXT, b"unmasked"))
        assert _ws_read(sock, buf) == (websocket.OP_CLOSE, struct.pack("!H", 1002))
        assert sock.recv(1) == b""


# --------------------------------------------------------------------------
# HTTPS


def test_https_reports_tls(echo: EchoProcess, certs: Certs) -> None:
    ctx = client_tls(certs, alpn=["h2", "http/1.1"])
    body = get(echo.ports["https"], "/backendtlspolicy", tls=ctx).json()
    assert body["host"] == f"{SNI}:{echo.ports['https']}"
    assert body["httpPort"] == str(echo.ports["http"])  # HTTP_PORT on every listener
    assert list(body)[-1] == "tls"
    tls = body["tls"]
    assert tls == {
        "version": "TLSv1.3",
        "serverName": SNI,
        "negotiatedProtocol": "http/1.1",
        "cipherSuite": tls["cipherSuite"],
    }
    assert tls["cipherSuite"] in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384")


def test_https_tls12_names_cipher_like_go(echo: EchoProcess, certs: Certs) -> None:
    ctx = client_tls(certs, max_version=ssl.TLSVersion.TLSv1_2)
    tls = get(echo.ports["https"], "/", tls=ctx).json()["tls"]
    assert tls["version"] == "TLSv1.2"
    assert tls["cipherSuite"].startswith("TLS_ECDHE_ECDSA_WITH_")
    assert tls["cipherSuite"] in tlsinfo.GO_CIPHER_SUITES.values()
    assert "negotiatedProtocol" not in tls  # no ALPN offered, none reported


def test_https_client_certificate(echo: EchoProcess, certs: Certs) -> None:
    ctx = client_tls(certs, cert=(certs.client_cert, certs.client_key))
    tls = get(echo.ports["https"], "/", tls=ctx).json()["tls"]
    assert tls["peerCertificates"] == [certs.client_pem]
    assert list(tls) == ["version", "peerCertificates", "serverName", "cipherSuite"]


def test_https_rejects_untrusted_client_certificate(echo: EchoProcess, certs: Certs) -> None:
    ctx = client_tls(certs, cert=(certs.rogue_cert, certs.rogue_key))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(echo.ports["https"], "/", tls=ctx)
    # ... and a client without a certificate is still welcome.
    assert get(echo.ports["https"], "/", tls=client_tls(certs)).status == 200


# --------------------------------------------------------------------------
# TCP and UDP


def test_tcp_echo(echo: EchoProcess) -> None:
    with socket.create_connection(("127.0.0.1", echo.ports["tcp"]), timeout=TIMEOUT) as sock:
        reader = LineReader(sock)
        assert reader.line() == b"Gateway API Test TCP Server\n"
        sock.sendall(b"PING\n")
        assert reader.line() == b"PONG\n"
        sock.sendall(b"IS_TLS\r\n")
        assert reader.line() == b"false\n"
        sock.sendall(b"HELLO\nTEST\n")  # unknown lines get no answer
        line = reader.line()
    assert line == (
        b'{"namespace":"gateway-conformance-infra","ingress":"","service":"infra-backend-v1",'
        b'"pod":"' + POD.encode() + b'","tcpport":"' + str(echo.ports["tcp"]).encode() + b'",'
        b'"tlsport":"' + str(echo.ports["tls"]).encode() + b'","isTLS":false}\n'
    )


def test_tcp_pipelined_and_last_line_at_eof(echo: EchoProcess) -> None:
    data = raw_exchange(echo.ports["tcp"], b"PING\nPING\nPING", half_close=True)
    assert data == b"Gateway API Test TCP Server\nPONG\nPONG\nPONG\n"


def test_tcp_backpressure(echo: EchoProcess) -> None:
    # 1 MiB of answers to a client with a small receive buffer that only
    # starts reading later: the server must stop reading, and lose nothing.
    count = 200_000
    got = bytearray()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", echo.ports["tcp"]))
        sender = threading.Thread(target=sock.sendall, args=(b"PING\n" * count,), daemon=True)
        sender.start()
        time.sleep(0.2)
        expected = len(b"Gateway API Test TCP Server\n") + 5 * count
        while len(got) < expected:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        sender.join(TIMEOUT)
    assert len(got) == expected
    assert got.count(b"PONG\n") == count


def test_tcp_tls_echo(echo: EchoProcess, certs: Certs) -> None:
    ctx = client_tls(certs, alpn=["h2"])
    raw = socket.create_connection(("127.0.0.1", echo.ports["tls"]), timeout=TIMEOUT)
    with ctx.wrap_socket(raw, server_hostname=SNI) as sock:
        reader = LineReader(sock)
        assert reader.line() == b"Gateway API Test TCP Server\n"
        sock.sendall(b"IS_TLS\n")
        assert reader.line() == b"true\n"
        sock.sendall(b"TEST\n")
        body = json.loads(reader.line())
    assert body["isTLS"] is True
    assert body["pod"].startswith("infra-backend-v1-")
    assert list(body) == [
        "namespace", "ingress", "service", "pod", "tcpport", "tlsport", "isTLS", "tls",
    ]  # fmt: skip
    # tcpserver names versions like tls.VersionName and offers no ALPN.
    assert body["tls"]["version"] == "TLS 1.3"
    assert body["tls"]["serverName"] == SNI
    assert "negotiatedProtocol" not in body["tls"]
    assert body["tls"]["cipherSuite"].startswith("TLS_")


def _udp(port: int, payload: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(("127.0.0.1", port))  # like the suite: a connected socket
        sock.send(payload)
        return sock.recv(4096)


def test_udp_echo(echo: EchoProcess) -> None:
    reply = _udp(echo.ports["udp"], b"gateway-api-conformance-udp-echo")
    assert reply == (
        b'{"request":"gateway-api-conformance-udp-echo","namespace":"gateway-conformance-infra",'
        b'"ingress":"","service":"infra-backend-v1","pod":"' + POD.encode() + b'"}'
    )
    weight = json.loads(_udp(echo.ports["udp"], b"gateway-api-conformance-udp-weight\n"))
    assert weight["request"] == "gateway-api-conformance-udp-weight\n"
    assert podname.backend_of(weight["pod"]) == "infra-backend-v1"


def test_udp_truncates_and_replaces_bad_utf8(echo: EchoProcess) -> None:
    assert len(json.loads(_udp(echo.ports["udp"], b"x" * 3000))["request"]) == 1024
    assert json.loads(_udp(echo.ports["udp"], b"a\xe2\x82b"))["request"] == "a\ufffd\ufffdb"


# --------------------------------------------------------------------------
# robustness


@pytest.mark.parametrize(
    ("data", "answer"),
    [
        (b"GARBAGE\r\n\r\n", b"HTTP/1.0 400 Bad Request"),
        (b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.0 400 Bad Request"),  # no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"HTTP/1.0 400 Bad Request"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", b"HTTP/1.0 400 Bad Request"),
        # 431, though the RST for the unread rest may destroy it before we read it
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * (2 << 20), None),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64), b"HTTP/1.0 400 "),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", b""),  # EOF mid-body
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.0 400 ",
        ),
        (b"\x00" * 100 + b"\r\n\r\n", b"HTTP/1.0 400 "),
    ],
)
def test_malformed_http_closes_connection_only(
    echo: EchoProcess, data: bytes, answer: bytes | None
) -> None:
    got = raw_exchange(echo.ports["http"], data, half_close=True)
    if answer is None:
        assert got == b"" or got.startswith(b"HTTP/1.0 431 Request Header Fields Too Large")
    else:
        assert got.startswith(answer)
    assert get(echo.ports["http"], "/still-alive").status == 200


def test_plain_bytes_on_tls_ports_do_not_hurt(echo: EchoProcess, certs: Certs) -> None:
    for port in (echo.ports["https"], echo.ports["tls"]):
        raw_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", half_close=True)
    assert get(echo.ports["https"], "/", tls=client_tls(certs)).status == 200


def test_client_gone_during_delay(echo: EchoProcess) -> None:
    with socket.create_connection(("127.0.0.1", echo.ports["http"]), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /gone?delay=300ms HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.4)
    assert get(echo.ports["http"], "/after-gone").status == 200


# --------------------------------------------------------------------------
# configured like the container


def test_env_tcp_mode() -> None:
    env = {
        "TCP_ECHO_SERVER": "1",
        "TCP_PORT": "0",
        "NAMESPACE": "gateway-conformance-web-backend",
        "POD_NAME": "tcp-backend-v1-6d8f7c9b5x-x7k2p",
        "SERVICE_NAME": "tcp-backend-v1",
    }
    proc = EchoProcess([], env).started(["tcp"])
    try:
        data = raw_exchange(proc.ports["tcp"], b"TEST\n", half_close=True)
    finally:
        assert proc.stop() == 0
    banner, line, _ = data.split(b"\n")
    assert banner == b"Gateway API Test TCP Server"
    assert json.loads(line) == {
        "namespace": "gateway-conformance-web-backend",
        "ingress": "",
        "service": "tcp-backend-v1",
        "pod": "tcp-backend-v1-6d8f7c9b5x-x7k2p",
        "tcpport": str(proc.ports["tcp"]),
        "tlsport": "8443",
        "isTLS": False,
    }
    assert not [name for name in proc.ports if name != "tcp"]


def test_env_udp_mode_and_log_file(tmp_path: Path) -> None:
    log = tmp_path / "echo.log"
    env = {"UDP_ECHO_SERVER": "1", "UDP_PORT": "0", "SERVICE_NAME": "udp-backend-v1"}
    proc = EchoProcess(["--log", str(log)], env)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "UDP server listening" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline and proc.proc.poll() is None, proc.stderr()
            time.sleep(0.05)
        port = int(re.findall(r"listening on :(\d+)", log.read_text())[0])
        assert json.loads(_udp(port, b"probe"))["service"] == "udp-backend-v1"
    finally:
        assert proc.stop() == 0
    assert "Received UDP probe from 127.0.0.1:" in log.read_text()
    assert proc.lines == []  # everything went to the file


def test_bad_configuration_is_refused() -> None:
    for args, env in [
        (["--https-port", "0"], {}),  # TLS without a key pair
        ([], {"GRPC_ECHO_SERVER": "1"}),
        ([], {"TCP_ECHO_SERVER": "1", "TCP_PORT": "http"}),
    ]:
        proc = EchoProcess(args, env)
        assert proc.proc.wait(timeout=START_TIMEOUT) == 2


# --------------------------------------------------------------------------
# pure helpers


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("0", 0),
        ("1s", 1_000_000_000),
        ("500ms", 500_000_000),
        ("1.5s", 1_500_000_000),
        (".5s", 500_000_000),
        ("1h15m", 4_500_000_000_000),
        ("-2us", -2_000),
        ("+3\u00b5s", 3_000),
        ("10ns", 10),
    ],
)
def test_parse_duration(text: str, nanos: int) -> None:
    assert goparse.parse_duration(text) == nanos


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("1", 'time: missing unit in duration "1"'),
        ("abc", 'time: invalid duration "abc"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        (".s", 'time: invalid duration ".s"'),
        ("9999999999h", 'time: invalid duration "9999999999h"'),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(goparse.DurationError) as err:
        goparse.parse_duration(text)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("a=1&b=2&a=3", {"a": ["1", "3"], "b": ["2"]}),
        ("delay=1s+x&k=%41", {"delay": ["1s x"], "k": ["A"]}),
        ("a;b=1&c=2&d=%zz", {"c": ["2"]}),
        ("", {}),
    ],
)
def test_parse_query(raw: str, parsed: dict[str, list[str]]) -> None:
    assert goparse.parse_query(raw) == parsed


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [("", "/"), ("/a/./b/", "/a/b/"), ("/a/../../b", "/b"), ("//x", "/x"), ("/", "/")],
)
def test_clean_path(path: str, cleaned: str) -> None:
    assert goparse.clean_path(path) == cleaned


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("x-header-set", "X-Header-Set"), ("USER-AGENT", "User-Agent"), ("x_y", "X_y")],
)
def test_canonical_key(name: str, canonical: str) -> None:
    assert routes.canonical_key(name) == canonical


def test_go_json() -> None:
    assert gojson.marshal({"a": "<&>\u2028é"}) == '{"a":"\\u003c\\u0026\\u003e\\u2028é"}'.encode()
    assert gojson.go_string(b"\xff\xfeok\xe2\x82") == "\ufffd\ufffdok\ufffd\ufffd"
    assert gojson.marshal_indent({"h": {"K": ["v"]}, "e": {}}) == (
        b'{\n "h": {\n  "K": [\n   "v"\n  ]\n },\n "e": {}\n}'
    )


def _masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    frame = bytearray(_ws_frame(opcode, payload))
    if not fin:
        frame[0] &= 0x7F
    return bytes(frame)


@pytest.mark.parametrize(
    ("frames", "answer", "closed"),
    [
        # a fragmented binary message: each fragment echoed as binary
        (
            [_masked(websocket.OP_BINARY, b"ab", fin=False), _masked(0, b"cd")],
            websocket.encode_frame(2, b"ab") + websocket.encode_frame(2, b"cd"),
            False,
        ),
        ([_masked(websocket.OP_TEXT, b"")], b"", False),  # io.Copy writes nothing
        ([_masked(websocket.OP_PONG, b"x")], b"", False),
        ([_masked(0x3, b"?")], websocket.close_frame(1002), True),  # reserved opcode
        ([_masked(websocket.OP_CLOSE, b"")], websocket.close_frame(1000), True),
    ],
)
def test_websocket_session(frames: list[bytes], answer: bytes, closed: bool) -> None:
    session = websocket.EchoSession()
    data = b"".join(frames)
    # Fed one byte at a time: frames split anywhere must parse the same.
    out = b"".join(session.receive(data[i : i + 1]) for i in range(len(data)))
    assert (out, session.closed) == (answer, closed)


def test_pod_names() -> None:
    names = podname.pod_names("infra-backend-v1", 3)
    assert len(set(names)) == 3
    shape = re.compile(
        r"^infra-backend-v1-([bcdfghjklmnpqrstvwxz2456789]{10})-[" + podname.ALPHABET + "]{5}$"
    )
    matches = [shape.match(n) for n in names]
    assert all(matches)
    assert len({m.group(1) for m in matches if m}) == 1  # one ReplicaSet
    assert {podname.backend_of(n) for n in names} == {"infra-backend-v1"}
    assert podname.backend_of("solo") == "solo"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, Settings(listeners=Listeners(http=True))),
        (
            {
                "HTTP_PORT": "8080",
                "TLS_SERVER_CERT": "c",
                "TLS_SERVER_PRIVKEY": "k",
                "POD_NAME": "p",
            },
            Settings(
                context=Context(pod="p"),
                listeners=Listeners(http=True, https=True),
                http_port=8080,
                cert="c",
                key="k",
            ),
        ),
        # HTTP mode ignores the TCP spelling of the key variable.
        ({"TLS_SERVER_CERT": "c", "TLS_SERVER_PRIV_KEY": "k"}, None),
        (
            {"TCP_ECHO_SERVER": "y", "TLS_SERVER_CERT": "c", "TLS_SERVER_PRIV_KEY": "k"},
            Settings(listeners=Listeners(tcp=True, tls=True), cert="c", key="k"),
        ),
        ({"UDP_ECHO_SERVER": "y"}, Settings(listeners=Listeners(udp=True))),
    ],
)
def test_settings_from_env(env: dict[str, str], expected: Settings | None) -> None:
    settings = Settings.from_env(env)
    if expected is None:
        assert settings.listeners == Listeners(http=True)
        assert settings.key is None
    else:
        assert settings == expected


def test_settings_errors() -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({"GRPC_ECHO_SERVER": "1"})
    with pytest.raises(SettingsError, match="non-integer value in UDP_PORT"):
        Settings.from_env({"UDP_ECHO_SERVER": "1", "UDP_PORT": "x"})
