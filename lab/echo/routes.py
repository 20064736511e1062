"""echo-basic's HTTP application: its ServeMux and handlers, returning outcomes to carry out.

Routing (echo-backend.md section 2), Go ServeMux semantics: every `//` in the
path becomes `/` first (echo-basic's preserveSlashes); a path that is not
clean, or names a subtree root without its slash (`/status`, `/retry`), is
answered `301`; then `/health` and `/ws` exactly, `/status/...`,
`/retry/...`, and everything else to the echo handler.

The echo handler (section 3) logs `Echoing back request made to <RequestURI>
to client (<ip:port>)` before anything else, honours `delay=`, and answers
`200` with the JSON body the suite parses (field order as Go's struct:
path, host, method, proto, headers, httpPort, namespace, ingress, service,
pod, tls). Headers are keyed by Go's canonical form, sorted as Go writes map
keys, without Host, as net/http hands them to a handler.

Invariant: this module does no socket I/O; `handle` returns an Outcome and
only ever sleeps (delay=, delayRetry=).
"""

from __future__ import annotations

import asyncio
import email.utils
import html
import http
import re
from collections.abc import Iterable
from dataclasses import dataclass

from lab.echo import gojson, goparse, websocket
from lab.echo.requestlog import RequestLog
from lab.echo.retry import RetrySimulator
from lab.echo.settings import Context
from lab.echo.tlsinfo import TLSInfo

Header = tuple[bytes, bytes]

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_GO_INT = re.compile(r"^[+-]?[0-9]+$")
_MAX_FORM_BODY = 10 << 20  # net/http maxFormSize
# Response headers the connection layer frames itself; an X-Echo-Set-Header
# naming them would contradict the body we send.
_FRAMING = {b"content-length", b"transfer-encoding"}
_TEXT_PLAIN = (b"Content-Type", b"text/plain; charset=utf-8")
_NOSNIFF = (b"X-Content-Type-Options", b"nosniff")
_JSON = (b"Content-Type", b"application/json")


@dataclass(frozen=True)
class EchoRequest:
    """One complete HTTP/1.x request as the connection received it."""

    method: str
    target: str  # the raw request-target: Go's RequestURI
    http_version: str  # "1.1" or "1.0"
    headers: tuple[Header, ...]  # in arrival order, names as sent
    body: bytes
    remote: str  # "ip:port", Go's RemoteAddr
    tls: TLSInfo | None = None


@dataclass(frozen=True)
class Reply:
    """An HTTP response. The connection adds Date and Content-Length."""

    status: int
    headers: tuple[Header, ...] = ()
    body: bytes = b""
    close: bool = False


@dataclass(frozen=True)
class Reset:
    """Abort the TCP connection with a RST (SO_LINGER 0, then close)."""


@dataclass(frozen=True)
class Hangup:
    """Close without an answer, as Go's server does when a handler panics."""


@dataclass(frozen=True)
class Raw:
    """Bytes written on a hijacked connection. Then close, or carry WebSocket frames."""

    data: bytes
    websocket: bool = False


Outcome = Reply | Reset | Hangup | Raw


def canonical_key(name: str) -> str:
    """Returns: textproto.CanonicalMIMEHeaderKey: `x-header-set` -> `X-Header-Set`."""
    if not _TOKEN.match(name.encode("latin-1", "replace")):
        return name  # Go leaves names with invalid bytes alone
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def status_text(code: int) -> str:
    """Returns: the reason phrase for `code` (Go: "status code N" for unknown codes)."""
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return f"status code {code}"


def http_date() -> bytes:
    return email.utils.formatdate(usegmt=True).encode()


def plain_error(code: int, message: str) -> Reply:
    """Returns: what Go's http.Error writes."""
    return Reply(code, (_TEXT_PLAIN, _NOSNIFF), (message + "\n").encode())


def bare_status(code: int) -> Outcome:
    """Returns: the answer of a handler that only calls WriteHeader(code)."""
    if code < 100 or code > 999:
        return Hangup()  # checkWriteHeaderCode panics
    if code == 101:
        # A 101 ends HTTP on this connection; Go writes it and the peer
        # decides what comes next. We have nothing to switch to.
        return Raw(b"HTTP/1.1 101 Switching Protocols\r\nDate: " + http_date() + b"\r\n\r\n")
    return Reply(code)


def echo_set_headers(values: Iterable[bytes]) -> dict[bytes, bytes]:
    """Returns: the response headers X-Echo-Set-Header asks for, name case kept.

    Each value is split on `,`; each item is trimmed and cut at its first
    `:`. A repeated name gets `,<value>` appended (writeEchoResponseHeaders).
    Names that are not tokens are dropped, as Go's header writer drops them;
    that includes the empty name of the empty value the suite always sends.
    """
    out: dict[bytes, bytes] = {}
    for value in values:
        for item in value.split(b","):
            name, _, val = item.strip().partition(b":")
            val = val.strip()
            if name in out:
                out[name] += b"," + val
            else:
                out[name] = val
    return {
        name: val
        for name, val in out.items()
        if _TOKEN.match(name) and name.lower() not in _FRAMING
    }


def _split_target(target: str) -> tuple[str, str, str]:
    """Returns: (authority, path, query) of a request-target (origin or absolute form)."""
    authority = ""
    rest = target
    scheme_end = target.find("://")
    if not target.startswith("/") and scheme_end > 0:
        after = target[scheme_end + 3 :]
        slash = after.find("/")
        question = after.find("?")
        cut = min(i for i in (slash, question, len(after)) if i >= 0)
        authority, rest = after[:cut], after[cut:]
    path, _, query = rest.partition("?")
    return authority, path, query


class EchoApp:
    """echo-basic's HTTP handler tree for one process."""

    def __init__(
        self,
        context: Context,
        http_port: str,
        log: RequestLog,
        retry: RetrySimulator | None = None,
    ) -> None:
        self._context = context
        self._http_port = http_port
        self._log = log
        self._retry = retry or RetrySimulator()

    async def handle(self, req: EchoRequest) -> Outcome:
        if req.target == "*":
            if req.method == "OPTIONS":
                return Reply(200)  # net/http's globalOptionsHandler
            return Reply(400, close=True)
        if req.method == "CONNECT":
            # ServeMux does not clean CONNECT paths; an authority-form target
            # matches no pattern.
            return plain_error(404, "404 page not found")
        _, raw_path, query = _split_target(req.target)
        # preserveSlashes: Go's strings.ReplaceAll, non-overlapping.
        path = raw_path.replace("//", "/")
        cleaned = goparse.clean_path(path)
        suffix = f"?{query}" if query else ""
        if cleaned in ("/status", "/retry"):
            return self._redirect(req, cleaned + "/" + suffix)
        if cleaned != path:
            return self._redirect(req, cleaned + suffix)
        if path == "/health":
            return Reply(200, (_TEXT_PLAIN,), b"OK")
        if path == "/ws":
            return self._websocket(req)
        if path.startswith("/status/"):
            return self._status(req)
        if path.startswith("/retry/"):
            return await self._retry_attempt(req, query)
        return await self.echo(req, query)

    def _redirect(self, req: EchoRequest, location: str) -> Reply:
        # http.Redirect(w, r, url, 301): a short HTML body for GET only.
        headers: list[Header] = [(b"Location", location.encode())]
        body = b""
        if req.method in ("GET", "HEAD"):
            headers.append((b"Content-Type", b"text/html; charset=utf-8"))
        if req.method == "GET":
            text = status_text(301)
            body = f'<a href="{html.escape(location)}">{text}</a>.\n\n'.encode()
        return Reply(301, tuple(headers), body)

    def _status(self, req: EchoRequest) -> Outcome:
        # The regexp runs on the raw RequestURI, so a query string makes it 400.
        prefix = "/status/"
        rest = req.target[len(prefix) :] if req.target.startswith(prefix) else ""
        if not goparse.is_three_digits(rest):
            return Reply(400)
        return bare_status(int(rest))

    def _websocket(self, req: EchoRequest) -> Outcome:
        first: dict[str, str] = {}
        for name, value in req.headers:
            first.setdefault(name.decode("latin-1").lower(), gojson.go_string(value))
        answer = websocket.handshake(req.method, first)
        if answer.accepted:
            # x/net's RemoteAddr on a server connection is the Origin.
            self._log.line(f"established websocket connection {answer.origin}")
        return Raw(answer.response, websocket=answer.accepted)

    async def _retry_attempt(self, req: EchoRequest, query: str) -> Outcome:
        params = goparse.parse_query(query)

        def first(name: str) -> str:
            return params.get(name, [""])[0]

        uuid = first("uuid")
        if not uuid:
            return plain_error(400, "uuid is required")
        succeed_after = first("succeedAfter")
        if not _GO_INT.match(succeed_after):
            return plain_error(400, "succeedAfter is required")
        response_code = first("responseCode")
        if response_code and not _GO_INT.match(response_code):
            return plain_error(400, "responseCode must be an integer")
        delay_ns = 0
        if first("delayRetry"):
            try:
                delay_ns = goparse.parse_duration(first("delayRetry"))
            except goparse.DurationError as exc:
                return plain_error(400, str(exc))
        if not self._retry.should_fail(uuid, int(succeed_after)):
            return await self.echo(req, query)
        if delay_ns > 0:
            await asyncio.sleep(delay_ns / 1e9)
        if response_code:
            return bare_status(int(response_code))
        return Reset()

    def _form_value(self, req: EchoRequest, query: str, key: str) -> str:
        # Request.FormValue: a urlencoded POST/PUT/PATCH body first, then the query.
        values: list[str] = []
        if req.method in ("POST", "PUT", "PATCH"):
            ctype = b""
            for name, value in req.headers:
                if name.lower() == b"content-type":
                    ctype = value
                    break
            media = ctype.split(b";")[0].strip().lower()
            if media == b"application/x-www-form-urlencoded":
                body = gojson.go_string(req.body[:_MAX_FORM_BODY])
                values += goparse.parse_query(body).get(key, [])
        values += goparse.parse_query(query).get(key, [])
        return values[0] if values else ""

    async def echo(self, req: EchoRequest, query: str) -> Outcome:
        self._log.echoing(req.target, req.remote)
        delay = self._form_value(req, query, "delay")
        if delay:
            try:
                nanos = goparse.parse_duration(delay)
            except goparse.DurationError as exc:
                body = gojson.marshal({"message": str(exc)})
                return Reply(500, (_JSON, _NOSNIFF), body)
            if nanos > 0:
                await asyncio.sleep(nanos / 1e9)
        body = gojson.marshal_indent(self.assertions(req))
        extra = echo_set_headers(v for n, v in req.headers if n.lower() == b"x-echo-set-header")
        # w.Header().Set replaces a canonical Content-Type the client asked for.
        extra.pop(b"Content-Type", None)
        extra.pop(b"X-Content-Type-Options", None)
        headers = (*extra.items(), _JSON, _NOSNIFF)
        return Reply(200, tuple(sorted(headers)), body)

    def assertions(self, req: EchoRequest) -> dict[str, object]:
        """Returns: echo-basic's RequestAssertions for `req`, in its field order."""
        authority, _, _ = _split_target(req.target)
        grouped: dict[str, list[str]] = {}
        hosts: list[str] = []
        for raw_name, raw_value in req.headers:
            name = canonical_key(raw_name.decode("latin-1"))
            value = gojson.go_string(raw_value)
            if name == "Host":
                hosts.append(value)
                continue
            grouped.setdefault(name, []).append(value)
        if "Transfer-Encoding" in grouped:
            # net/http consumes the framing headers of a chunked body.
            for framing in ("Transfer-Encoding", "Content-Length", "Trailer"):
                grouped.pop(framing, None)
        if grouped.get("Pragma", [""])[0] == "no-cache" and "Cache-Control" not in grouped:
            grouped["Cache-Control"] = ["no-cache"]  # net/http fixPragmaCacheControl
        out: dict[str, object] = {
            "path": req.target,
            "host": authority or (hosts[0] if hosts else ""),
            "method": req.method,
            "proto": f"HTTP/{req.http_version}",
            "headers": dict(sorted(grouped.items())),
            "httpPort": self._http_port,
            **self._context.fields(),
        }
        if req.tls is not None:
            out["tls"] = req.tls.http_assertions()
        return out
