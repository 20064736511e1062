"""Traffic expectations of cases.json, judged with upstream's loops and comparison rules.

`check(entry, ctx)` runs one `requests[]` entry and returns None (passed) or
the reason it failed. The rules are those of shared/conformance/README.md
("How the upstream suite waits, retries and times out", "cases.json format"),
echo-backend.md section 9 (CompareRoundTrip) and l4-protocol.md:

- eventually-consistent: new connection per attempt, 10 s request timeout;
  a failing attempt resets the count and waits 1 s; 3 passes in a row win;
  30 s budget (MaxTimeToConsistency);
- consistent-failure: 5 answers in a row that are neither 200 nor 408/504;
  a 200 fails at once; transport errors and 408/504 reset the count;
- tls-request-fails-once: one HTTPS attempt, which must not get an answer;
- weighted-distribution: 500 samples, 10 in flight, every sample must pass,
  each backend within +/-0.05 of its weight, exactly the non-zero-weight
  backends seen; up to 10 attempts (HTTP first converges like upstream);
- mirrors: the mirror backends' request logs (one line per echoed request);
- tcp-echo / tcp-echo-repeat / tcp-connect / udp-echo / udp-echo-repeat /
  dns-query / tls-connection-rejected: l4-protocol.md section 2.

Entries the lab client cannot replay (HTTP/2, gRPC, WebSocket) fail with that
reason: a claimed feature must never pass unjudged.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from lab import certs
from lab.conformance.client import NetnsPool
from lab.conformance.wire import (
    HTTPResponse,
    TLSOptions,
    dns_query,
    http_request,
    tcp_connect,
    tcp_conversation,
    tcp_send_once,
    tls_dial,
    udp_exchange,
    websocket_echo,
)
from lab.echo.podname import backend_of

TIMEOUT_CODES = frozenset({408, 504})
WELCOME = "Gateway API Test TCP Server\n"


@dataclass(frozen=True)
class Timeouts:
    """Upstream's defaults (conformance/utils/config/timeout.go); tests may shorten them."""

    max_time_to_consistency: float = 30.0
    required_consecutive_successes: int = 3
    request_timeout: float = 10.0
    default_test_timeout: float = 60.0
    failure_interval: float = 1.0


class TrafficContext(Protocol):
    """What the checks need from the runner."""

    @property
    def pool(self) -> NetnsPool: ...

    @property
    def timeouts(self) -> Timeouts: ...

    def gateway_address(self, gateway: str) -> str | None: ...

    def find_object(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    def mirror_logs(self, namespace: str, service: str) -> list[Path]: ...


class Failed(Exception):
    """A check's verdict: the reason it failed."""


# --------------------------------------------------------------------------
# request building


def _split_ref(text: str) -> tuple[str, str]:
    ref = text.split(" ", 1)[0]
    ns, _, name = ref.rpartition("/")
    return ns, name


def trust_pem(ctx: TrafficContext, text: str | None) -> bytes | None:
    """The one certificate a client trusts: a Secret's tls.crt, or a ConfigMap's ca.crt."""
    if not text:
        return None
    ns, name = _split_ref(text)
    secret = ctx.find_object("Secret", ns, name)
    if secret is not None and "ConfigMap" not in text:
        return certs.tls_pair(secret)[0]
    cm = ctx.find_object("ConfigMap", ns, name)
    if cm is not None:
        return certs.ca_pem(cm)
    raise Failed(f"trusted certificate {text!r} not found in the world")


def client_pair(ctx: TrafficContext, text: str | None) -> tuple[bytes, bytes] | None:
    if not text:
        return None
    ns, name = _split_ref(text)
    secret = ctx.find_object("Secret", ns, name)
    if secret is None:
        raise Failed(f"client certificate Secret {text!r} not found in the world")
    return certs.tls_pair(secret)


def _address(ctx: TrafficContext, entry: Mapping[str, Any]) -> str:
    gw = str(entry.get("gateway") or "")
    addr = ctx.gateway_address(gw)
    if not addr:
        raise Failed(f"Gateway {gw} has no address in status")
    return addr


@dataclass(frozen=True)
class HTTPCall:
    address: str
    port: int
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    tls: TLSOptions | None
    host: str

    def send(self, timeout: float) -> HTTPResponse:
        return http_request(
            self.address, self.port, self.method, self.target, self.headers, timeout, self.tls
        )


def http_call(
    ctx: TrafficContext,
    entry: Mapping[str, Any],
    path: str | None = None,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> HTTPCall:
    req = entry["request"]
    protocol = str(req.get("protocol") or "HTTP")
    if protocol not in ("HTTP", "HTTPS"):
        raise Failed(f"not reproducible here: the lab client does not speak {protocol}")
    scheme = str(req.get("scheme") or "http")
    port = int(req["port"])
    address = _address(ctx, entry)
    default = 443 if scheme == "https" else 80
    host = req.get("host") or (address if port == default else f"{address}:{port}")
    set_headers = entry.get("backend_set_response_headers") or {}
    headers: list[tuple[str, str]] = [("Host", str(host)), ("User-Agent", "Go-http-client/1.1")]
    for name, value in (req.get("headers") or {}).items():
        headers.append((str(name), str(value)))
    headers += list(extra_headers)
    headers.append(("X-Echo-Set-Header", ",".join(f"{k}:{v}" for k, v in set_headers.items())))
    headers.append(("Connection", "close"))
    tls = None
    if scheme == "https":
        tls = TLSOptions(
            sni=req.get("sni") or (str(host).rsplit(":", 1)[0] if host else None),
            trust_pem=trust_pem(ctx, req.get("trust_ca")),
            client_cert=client_pair(ctx, req.get("client_cert")),
        )
    return HTTPCall(
        address,
        port,
        str(req.get("method") or "GET"),
        path if path is not None else str(req.get("path") or "/"),
        tuple(headers),
        tls,
        str(host),
    )


# --------------------------------------------------------------------------
# CompareRoundTrip


def _joined(values: Sequence[Any]) -> str:
    return ",".join(str(v) for v in values)


def _norm(value: str, ignore_ws: bool) -> str:
    return re.sub(r"\s+", "", value) if ignore_ws else value


def compare_http(
    entry: Mapping[str, Any],
    response: HTTPResponse,
    *,
    expected_path: str | None = None,
    extra_request_headers: Mapping[str, str] | None = None,
    peer_pem: Callable[[str], bytes | None] | None = None,
) -> str | None:
    """None if the response meets the entry's expectations, else what differs."""
    expected = entry.get("response") or {}
    statuses = [int(s) for s in expected.get("status") or [200]]
    if response.status in TIMEOUT_CODES and TIMEOUT_CODES & set(statuses):
        return None
    if response.status not in statuses:
        return f"status {response.status}, want {statuses}"
    redirect = expected.get("redirect")
    if 300 <= response.status < 400 and redirect:
        return _compare_redirect(redirect, response, entry)
    if response.status not in (200, 204):
        return None
    content_type = response.header_values("Content-Type")
    captured: dict[str, Any] = {}
    if content_type == ["application/json"]:
        try:
            captured = json.loads(response.body or b"{}")
        except ValueError:
            return "response claims application/json but the body is not JSON"
    exp_req = entry.get("expected_request") or {}
    want_path = expected_path if expected_path is not None else exp_req.get("path")
    if want_path is not None and captured.get("path", "") != want_path:
        return f"backend saw path {captured.get('path', '')!r}, want {want_path!r}"
    method = str(exp_req.get("method") or (entry.get("request") or {}).get("method") or "GET")
    if captured and captured.get("method") != method:
        return f"backend saw method {captured.get('method')!r}, want {method!r}"
    if exp_req.get("host") and captured.get("host") != exp_req["host"]:
        return f"backend saw host {captured.get('host')!r}, want {exp_req['host']!r}"
    namespace = entry.get("namespace")
    if namespace is not None and captured.get("namespace", "") != namespace:
        return f"answered from namespace {captured.get('namespace', '')!r}, want {namespace!r}"
    backend = entry.get("backend")
    if backend and not str(captured.get("pod", "")).startswith(str(backend)):
        return f"answered by pod {captured.get('pod', '')!r}, want one of {backend}"
    seen = {str(k).lower(): v for k, v in (captured.get("headers") or {}).items()}
    want_headers = dict(exp_req.get("headers") or {})
    want_headers.update(extra_request_headers or {})
    for name, value in want_headers.items():
        got = seen.get(str(name).lower())
        if got is None:
            return f"backend did not receive header {name}"
        if _joined(got) != str(value):
            return f"backend saw {name}: {_joined(got)!r}, want {value!r}"
    for name in exp_req.get("absent_headers") or ():
        if str(name).lower() in seen:
            return f"backend received header {name}, which must be absent"
    ignore_ws = bool(expected.get("ignore_whitespace_in_header_values"))
    for name, value in (expected.get("headers") or {}).items():
        got_values = response.header_values(str(name))
        if not got_values:
            return f"response has no header {name}"
        if _norm(_joined(got_values), ignore_ws) != _norm(str(value), ignore_ws):
            return f"response header {name}: {_joined(got_values)!r}, want {value!r}"
    for name, options in (expected.get("valid_header_values") or {}).items():
        got_values = response.header_values(str(name))
        if not got_values:
            return f"response has no header {name}"
        got = _norm(_joined(got_values), ignore_ws)
        if got not in {_norm(str(o), ignore_ws) for o in options}:
            return f"response header {name}: {_joined(got_values)!r}, want one of {options}"
    for name in expected.get("absent_headers") or ():
        if response.header_values(str(name)):
            return f"response has header {name}, which must be absent"
    sni = exp_req.get("sni")
    if sni is not None and (captured.get("tls") or {}).get("serverName") != sni:
        return f"backend saw SNI {(captured.get('tls') or {}).get('serverName')!r}, want {sni!r}"
    presented = exp_req.get("client_cert_presented")
    if presented and peer_pem is not None:
        pem = peer_pem(str(presented))
        peers = (captured.get("tls") or {}).get("peerCertificates") or []
        if pem is None or pem.decode().strip() not in [str(p).strip() for p in peers]:
            return "backend did not receive the expected client certificate"
    return None


def _compare_redirect(
    redirect: Mapping[str, Any], response: HTTPResponse, entry: Mapping[str, Any]
) -> str | None:
    locations = response.header_values("Location")
    if not locations:
        return f"{response.status} without a Location header"
    loc = urlsplit(locations[0])
    scheme = redirect.get("scheme") or str((entry.get("request") or {}).get("scheme") or "http")
    if loc.scheme != scheme:
        return f"redirect scheme {loc.scheme!r} in {locations[0]!r}, want {scheme!r}"
    if redirect.get("host") is not None and loc.hostname != redirect["host"]:
        return f"redirect host {loc.hostname!r} in {locations[0]!r}, want {redirect['host']!r}"
    want_port = redirect.get("port")
    if want_port is not None:
        if loc.port != int(want_port):
            return f"redirect port {loc.port} in {locations[0]!r}, want {want_port}"
    elif loc.port is not None and loc.port != {"http": 80, "https": 443}.get(scheme):
        return f"redirect to port {loc.port} in {locations[0]!r}, want the scheme's default"
    if redirect.get("path") is not None and loc.path != redirect["path"]:
        return f"redirect path {loc.path!r} in {locations[0]!r}, want {redirect['path']!r}"
    return None


# --------------------------------------------------------------------------
# loops


def _attempt_http(
    ctx: TrafficContext,
    call: HTTPCall,
    entry: Mapping[str, Any],
    expected_path: str | None = None,
) -> str | None:
    try:
        response = ctx.pool.call(call.send, ctx.timeouts.request_timeout)
    except Failed:
        raise
    except (OSError, ValueError) as e:
        return f"request failed: {e}"
    follow = (entry.get("request") or {}).get("follow_redirects", True)
    hops = 0
    while (
        follow and 300 <= response.status < 400 and response.header_values("Location") and hops < 10
    ):
        if response.status in [int(s) for s in (entry.get("response") or {}).get("status") or ()]:
            break
        loc = urlsplit(response.header_values("Location")[0])
        target = (loc.path or "/") + (f"?{loc.query}" if loc.query else "")
        port = loc.port or (443 if loc.scheme == "https" else 80)
        host = loc.netloc or call.host
        headers = tuple((k, host if k == "Host" else v) for k, v in call.headers)
        nxt = HTTPCall(call.address, port, call.method, target, headers, call.tls, host)
        try:
            response = ctx.pool.call(nxt.send, ctx.timeouts.request_timeout)
        except (OSError, ValueError) as e:
            return f"following redirect to {loc.geturl()}: {e}"
        hops += 1
    return compare_http(
        entry,
        response,
        expected_path=expected_path,
        peer_pem=lambda text: _secret_crt(ctx, text),
    )


def _secret_crt(ctx: TrafficContext, text: str) -> bytes | None:
    m = re.search(r"Secret (\S+?/\S+?)[;,\s]", text + " ")
    if not m:
        return None
    ns, name = m.group(1).split("/", 1)
    secret = ctx.find_object("Secret", ns, name)
    return certs.tls_pair(secret)[0] if secret is not None else None


def eventually(
    ctx: TrafficContext,
    attempt: Callable[[], str | None],
    needed: int | None = None,
    budget: float | None = None,
) -> None:
    """AwaitConvergence: `needed` passes in a row within `budget` seconds."""
    needed = needed or ctx.timeouts.required_consecutive_successes
    budget = budget if budget is not None else ctx.timeouts.max_time_to_consistency
    deadline = time.monotonic() + budget
    streak, last = 0, "no attempt finished"
    while True:
        problem = attempt()
        if problem is None:
            streak += 1
            if streak >= needed:
                return
        else:
            streak, last = 0, problem
        if time.monotonic() >= deadline:
            raise Failed(f"not {needed} passes in a row within {budget:.0f}s; last failure: {last}")
        if problem is not None:
            time.sleep(min(ctx.timeouts.failure_interval, max(0.0, deadline - time.monotonic())))


def _with_query(path: str, param: str) -> str:
    return path + ("&" if "?" in path else "?") + param


FRESH_UUID = "<fresh-uuid>"


def check_eventually_consistent(ctx: TrafficContext, entry: Mapping[str, Any]) -> None:
    path = str((entry.get("request") or {}).get("path") or "/")
    if FRESH_UUID not in path:
        call = http_call(ctx, entry)
        eventually(ctx, lambda: _attempt_http(ctx, call, entry))
        return

    # cases.json marks where upstream puts a new uuid in every probe (the retry simulator
    # keeps one counter per uuid); the backend must then echo that very path.
    def attempt() -> str | None:
        fresh = path.replace(FRESH_UUID, str(uuid.uuid4()))
        return _attempt_http(ctx, http_call(ctx, entry, path=fresh), entry, expected_path=fresh)

    eventually(ctx, attempt)


def check_consistent_failure(ctx: TrafficContext, entry: Mapping[str, Any]) -> None:
    call = http_call(ctx, entry)
    deadline = time.monotonic() + ctx.timeouts.max_time_to_consistency
    streak, last = 0, "no attempt finished"
    while True:
        try:
            response = ctx.pool.call(call.send, ctx.timeouts.request_timeout)
            if response.status == 200:
                raise Failed("got 200 where every answer must fail")
            if response.status in TIMEOUT_CODES:
                streak, last = 0, f"status {response.status}"
            else:
                streak += 1
        except OSError as e:
            streak, last = 0, f"request failed: {e}"
        if streak >= 5:
            return
        if time.monotonic() >= deadline:
            raise Failed(f"not 5 failing answers in a row; last: {last}")
        if streak == 0:
            time.sleep(ctx.timeouts.failure_interval)


def check_tls_request_fails_once(ctx: TrafficContext, entry: Mapping[str, Any]) -> None:
    call = http_call(ctx, entry)
    try:
        response = ctx.pool.call(call.send, ctx.timeouts.request_timeout)
    except OSError:
        return
    raise Failed(f"got an HTTP answer ({response.status}) where the TLS request must fail")


def check_weighted(ctx: TrafficContext, entry: Mapping[str, Any]) -> None:
    dist = entry.get("distribution") or {}
    weights = {str(k): float(v) for k, v in (dist.get("expected_weights") or {}).items()}
    total = int(dist.get("total_requests") or 500)
    concurrency = int(dist.get("concurrency") or 10)
    tolerance = float(dist.get("tolerance") or 0.05)
    attempts = int(dist.get("max_attempts") or 10)
    scheme = str((entry.get("request") or {}).get("scheme") or "http")
    address = _address(ctx, entry)
    port = int(entry["request"]["port"])
    sample: Callable[[], str]
    if scheme in ("http", "https"):
        # Upstream asserts the request succeeds before sampling.
        check_eventually_consistent(ctx, entry)

        def sample() -> str:
            extra: list[tuple[str, str]] = []
            if random.random() < 0.5:
                extra.append(("X-Jitter", str(random.randrange(10000))))
            call = http_call(ctx, entry, extra_headers=extra)
            response = call.send(ctx.timeouts.request_timeout)
            problem = compare_http(entry, response, extra_request_headers={k: v for k, v in extra})
            if problem is not None:
                raise OSError(problem)
            return str(json.loads(response.body).get("pod") or "")

    elif scheme == "tcp":

        def sample() -> str:
            return tcp_send_once(address, port, ctx.timeouts.request_timeout)

    elif scheme == "udp":
        payload = str(entry["request"].get("payload") or "gateway-api-conformance-udp-weight\n")

        def sample() -> str:
            reply = udp_exchange(address, port, payload.encode(), 2.0, 4096)
            try:
                pod = str(json.loads(reply).get("pod") or "")
            except ValueError as e:
                raise OSError(f"reply is not JSON: {e}") from e
            if not pod:
                raise OSError("reply has no pod")
            return pod

    else:
        raise Failed(f"not reproducible here: the lab client does not speak {scheme}")
    problems = []
    for _ in range(attempts):
        problem = _one_distribution(ctx, sample, total, concurrency, weights, tolerance)
        if problem is None:
            return
        problems.append(problem)
    raise Failed(f"{attempts} attempts failed; last: {problems[-1]}")


def _one_distribution(
    ctx: TrafficContext,
    sample: Callable[[], str],
    total: int,
    concurrency: int,
    weights: Mapping[str, float],
    tolerance: float,
) -> str | None:
    counts: Counter[str] = Counter()
    sent = 0
    while sent < total:
        batch = min(concurrency, total - sent)
        futures: list[Future[str]] = [ctx.pool.submit(sample) for _ in range(batch)]
        for f in futures:
            try:
                pod = f.result()
            except (OSError, ValueError) as e:
                for other in futures:
                    other.cancel()
                return f"sample {sent + 1} failed: {e}"
            backend = backend_of(pod)
            if backend not in weights:
                return f"answer from {pod!r}, not one of the weighted backends {sorted(weights)}"
            counts[backend] += 1
        sent += batch
    for backend, weight in weights.items():
        share = counts[backend] / total
        if abs(share - weight) > tolerance:
            return (
                f"{backend}: {counts[backend]}/{total} = {share:.3f}, want {weight}+/-{tolerance}"
            )
    nonzero = sum(1 for w in weights.values() if w > 0)
    if len(counts) != nonzero:
        return f"backends seen {dict(counts)}, want exactly the {nonzero} with weight > 0"
    return None


def _log_offsets(paths: Sequence[Path]) -> dict[Path, int]:
    return {p: (p.stat().st_size if p.exists() else 0) for p in paths}


def _log_lines_since(offsets: Mapping[Path, int], needle: re.Pattern[str]) -> int:
    count = 0
    for path, offset in offsets.items():
        if not path.exists():
            continue
        with path.open("rb") as f:
            f.seek(offset)
            for line in f.read().decode("utf-8", "replace").splitlines():
                if needle.search(line):
                    count += 1
    return count


def _mirror_needle(path: str) -> re.Pattern[str]:
    return re.compile("Echoing back request made to " + re.escape(path) + " to client")


def check_mirror_log(ctx: TrafficContext, entry: Mapping[str, Any]) -> None:
    path = _with_query(
        str(entry["request"].get("path") or "/"),
        f"gateway-api-conformance-request-id={uuid.uuid4()}",
    )
    mirrors = list(entry.get("mirrored_to") or ())
    logs = {
        (str(m["namespace"]), str(m["name"])): ctx.mirror_logs(str(m["namespace"]), str(m["name"]))
        for m in mirrors
    }
    offsets = {k: _log_offsets(v) for k, v in logs.items()}
    call = http_call(ctx, entry, path=path)
    eventually(ctx, lambda: _attempt_http(ctx, call, entry, expected_path=path))
    needle = _mirror_needle(path)
    for (ns, name), offs in offsets.items():
        if not offs:
            raise Failed(f"mirror backend {ns}/{name} has no pods to read logs from")
        deadline = time.monotonic() + ctx.timeouts.request_timeout
        while _log_lines_since(offs, needle) == 0:
            if time.monotonic() > deadline:
                raise Failed(f"mirror backend {ns}/{name} never logged {path!r}")
            time.sleep(1.0)


def check_mirror_percentage(ctx: TrafficContext, entry: Mapping[str, Any]) -> None:
    dist = entry.get("distribution") or {}
    total = int(dist.get("total_requests") or 500)
    attempts = int(dist.get("max_attempts") or 5)
    concurrency = int(dist.get("concurrency") or 10)
    mirror = (entry.get("mirrored_to") or [{}])[0]
    percent = float(mirror.get("percent") or dist.get("mirror_percent") or 0)
    if "fraction" in mirror:
        frac = mirror["fraction"]
        percent = 100.0 * float(frac["numerator"]) / float(frac.get("denominator") or 100)
    p = percent / 100.0
    margin = 3 * math.sqrt(total * p * (1 - p))
    low, high = total * p - margin, total * p + margin
    logs = ctx.mirror_logs(str(mirror["namespace"]), str(mirror["name"]))
    if not logs:
        raise Failed(f"mirror backend {mirror.get('namespace')}/{mirror.get('name')} has no pods")
    last = ""
    for _ in range(attempts):
        path = _with_query(
            str(entry["request"].get("path") or "/"),
            f"gateway-api-conformance-request-id={uuid.uuid4()}",
        )
        call = http_call(ctx, entry, path=path)
        offsets = _log_offsets(logs)

        def converge(call: HTTPCall = call, path: str = path) -> str | None:
            return _attempt_http(ctx, call, entry, path)

        eventually(ctx, converge)
        futures: list[Future[str | None]] = []
        for _ in range(total - ctx.timeouts.required_consecutive_successes):
            futures.append(ctx.pool.submit(_quiet_attempt, call, entry, path, ctx.timeouts))
            if len(futures) % concurrency == 0:
                [f.result() for f in futures[-concurrency:]]
        bad = [r for r in (f.result() for f in futures) if r is not None]
        if bad:
            last = f"{len(bad)} of {total} requests failed, e.g. {bad[0]}"
            continue
        count = _settled_count(offsets, _mirror_needle(path), ctx.timeouts.request_timeout)
        if low <= count <= high:
            return
        last = f"{count} of {total} mirrored, want {low:.0f}..{high:.0f} ({percent:g}%)"
    raise Failed(f"{attempts} attempts failed; last: {last}")


def _quiet_attempt(call: HTTPCall, entry: Mapping[str, Any], path: str, t: Timeouts) -> str | None:
    try:
        return compare_http(entry, call.send(t.request_timeout), expected_path=path)
    except OSError as e:
        return str(e)


def _settled_count(offsets: Mapping[Path, int], needle: re.Pattern[str], limit: float) -> int:
    deadline = time.monotonic() + limit
    count = _log_lines_since(offsets, needle)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _log_lines_since(offsets, needle)
        if now == count:
            break
        count = now
    return count


def _tls_opts(ctx: TrafficContext, req: Mapping[str, Any]) -> TLSOptions | None:
    if req.get("scheme") != "tls":
        return None
    return TLSOptions(sni=req.get("sni"), trust_pem=trust_pem(ctx, req.get("trust_ca")))


def check_tcp_echo(ctx: TrafficContext, entry: Mapping[str, Any]) -> None:
    req = entry["request"]
    address, port = _address(ctx, entry), int(req["port"])
    tls = _tls_opts(ctx, req)
    deadline = time.monotonic() + ctx.timeouts.max_time_to_consistency
    last = ""
    while True:
        try:
            answers = ctx.pool.call(
                tcp_conversation, address, port, ctx.timeouts.request_timeout, tls
            )
            break
        except OSError as e:
            last = str(e)
        if time.monotonic() >= deadline:
            raise Failed(f"no complete TCP exchange within the budget; last: {last}")
        time.sleep(1.0)
    # The first complete exchange decides (l4-protocol.md 2.1).
    expected = entry.get("expected") or {}
    if answers["welcome"] != expected.get("welcome", WELCOME):
        raise Failed(f"welcome line {answers['welcome']!r}")
    if answers["PING"] != expected.get("PING", "PONG"):
        raise Failed(f"PING answered {answers['PING']!r}")
    if "IS_TLS" in expected and answers["IS_TLS"] != expected["IS_TLS"]:
        raise Failed(f"IS_TLS answered {answers['IS_TLS']!r}, want {expected['IS_TLS']!r}")
    try:
        test = json.loads(answers["TEST"])
    except ValueError as e:
        raise Failed(f"TEST answer is not JSON: {answers['TEST']!r}") from e
    if "TEST.namespace" in expected and test.get("namespace") != expected["TEST.namespace"]:
        raise Failed(f"namespace {test.get('namespace')!r}, want {expected['TEST.namespace']!r}")
    prefix = expected.get("TEST.pod_prefix")
    if prefix and not str(test.get("pod", "")).startswith(prefix):
        raise Failed(f"pod {test.get('pod')!r}, want prefix {prefix!r}")
    sni = expected.get("TEST.tls.serverName")
    if sni is not None and (test.get("tls") or {}).get("serverName") != sni:
        raise Failed(f"backend saw SNI {(test.get('tls') or {}).get('serverName')!r}, want {sni!r}")


def check_tcp_repeat(ctx: TrafficContext, entry: Mapping[str, Any]) -> None:
    req = entry["request"]
    address, port = _address(ctx, entry), int(req["port"])
    count = int(req.get("count") or 100)
    timeout = _seconds(req.get("per_request_timeout"), 5.0)
    expected = entry.get("expected") or {}
    for i in range(count):
        try:
            pod = ctx.pool.call(tcp_send_once, address, port, timeout)
        except OSError as e:
            raise Failed(f"connection {i + 1} of {count} failed: {e}") from e
        prefix = expected.get("every_pod_prefix")
        if prefix and not pod.startswith(prefix):
            raise Failed(f"connection {i + 1} answered by {pod!r}, want prefix {prefix!r}")


def check_tcp_connect(ctx: TrafficContext, entry: Mapping[str, Any]) -> None:
    address, port = _address(ctx, entry), int(entry["request"]["port"])
    deadline = time.monotonic() + ctx.timeouts.max_time_to_consistency
    while True:
        try:
            ctx.pool.call(tcp_connect, address, port, 1.0)
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise Failed(f"{address}:{port} never accepted a connection: {e}") from e
        time.sleep(0.1)


def check_udp_echo(ctx: TrafficContext, entry: Mapping[str, Any]) -> None:
    req = entry["request"]
    address, port = _address(ctx, entry), int(req["port"])
    payload = str(req.get("payload") or "gateway-api-conformance-udp-echo").encode()
    expected = entry.get("expected") or {}
    budget = (
        ctx.timeouts.max_time_to_consistency
        if expected.get("any_reply")
        else ctx.timeouts.default_test_timeout
    )
    deadline = time.monotonic() + budget
    last = ""
    while True:
        try:
            reply = ctx.pool.call(udp_exchange, address, port, payload, 2.0, 1024)
            if expected.get("any_reply") or not (
                "json.service" in expected or "json.namespace" in expected
            ):
                return
            data = json.loads(reply)
            if data.get("service") == expected.get("json.service") and data.get(
                "namespace"
            ) == expected.get("json.namespace"):
                return
            last = f"reply from service {data.get('service')!r} in {data.get('namespace')!r}"
        except (OSError, ValueError) as e:
            last = str(e)
        if time.monotonic() >= deadline:
            raise Failed(f"no matching UDP reply within {budget:.0f}s; last: {last}")
        time.sleep(1.0)


def check_udp_repeat(ctx: TrafficContext, entry: Mapping[str, Any]) -> None:
    req = entry["request"]
    address, port = _address(ctx, entry), int(req["port"])
    payload = str(req.get("payload") or "gateway-api-conformance-udp-weight\n").encode()
    count = int(req.get("count") or 20)
    want = str((entry.get("expected") or {}).get("every_backend") or entry.get("backend") or "")
    deadline = time.monotonic() + ctx.timeouts.default_test_timeout
    last = ""
    while True:
        try:
            for _ in range(count):
                reply = ctx.pool.call(udp_exchange, address, port, payload, 2.0, 4096)
                pod = str(json.loads(reply).get("pod") or "")
                if not pod:
                    raise OSError("reply has no pod")
                if backend_of(pod) != want:
                    raise Failed(f"reply from {pod!r}, want only {want}")
            return
        except (OSError, ValueError) as e:
            last = str(e)
        if time.monotonic() >= deadline:
            raise Failed(f"never {count} replies in a row from {want}; last: {last}")
        time.sleep(1.0)


def check_dns(ctx: TrafficContext, entry: Mapping[str, Any]) -> None:
    req = entry["request"]
    address, port = _address(ctx, entry), int(req["port"])
    question = req.get("dns_question") or {}
    qtype = {"A": 1, "AAAA": 28}.get(str(question.get("type") or "A"), 1)
    deadline = time.monotonic() + ctx.timeouts.default_test_timeout
    while True:
        try:
            ctx.pool.call(dns_query, address, port, str(question.get("name")), qtype, 2.0)
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise Failed(f"no DNS answer within the budget: {e}") from e
        time.sleep(1.0)


def check_tls_rejected(ctx: TrafficContext, entry: Mapping[str, Any]) -> None:
    req = entry["request"]
    address, port = _address(ctx, entry), int(req["port"])
    opts = TLSOptions(sni=req.get("sni"))
    deadline = time.monotonic() + ctx.timeouts.max_time_to_consistency
    last = ""
    while True:
        try:
            last = ctx.pool.call(tls_dial, address, port, ctx.timeouts.request_timeout, opts)
            if last == "rejected":
                return
        except OSError as e:
            last = str(e)
        if time.monotonic() >= deadline:
            raise Failed(f"TLS dial never rejected within the budget; last: {last}")
        time.sleep(1.0)


def check_websocket(ctx: TrafficContext, entry: Mapping[str, Any]) -> None:
    """AwaitConvergence like HTTP: the text and the binary frame echoed, 3 times in a row."""
    req = entry["request"]
    address, port = _address(ctx, entry), int(req.get("port") or 80)
    host = req.get("host") or (address if port == 80 else f"{address}:{port}")
    origin = str(req.get("origin") or "ws://gateway/").replace("<go test name>", "websocket")
    expected = entry.get("expected") or {}
    text = str(expected.get("text_frame_echo") or "Websocket Support!").encode()
    binary = bytes(expected.get("binary_frame_echo") or [1, 2, 3, 4, 5, 6, 7])
    want = [(0x1, text), (0x2, binary)]

    def attempt() -> str | None:
        try:
            got = ctx.pool.call(
                websocket_echo, address, port, str(host), str(req.get("path") or "/ws"),
                origin, want, ctx.timeouts.request_timeout,
            )  # fmt: skip
        except OSError as e:
            return f"WebSocket failed: {e}"
        return None if got == want else f"echoed {got!r}, want {want!r}"

    eventually(ctx, attempt)


def _seconds(text: Any, default: float) -> float:
    m = re.match(r"(\d+(?:\.\d+)?)\s*s\b", str(text or ""))
    return float(m.group(1)) if m else default


CHECKS: dict[str, Callable[[TrafficContext, Mapping[str, Any]], None]] = {
    "eventually-consistent": check_eventually_consistent,
    "consistent-failure": check_consistent_failure,
    "tls-request-fails-once": check_tls_request_fails_once,
    "weighted-distribution": check_weighted,
    "eventually-consistent+mirror-log": check_mirror_log,
    "eventually-consistent+mirror-percentage": check_mirror_percentage,
    "tcp-echo": check_tcp_echo,
    "tcp-echo-repeat": check_tcp_repeat,
    "tcp-connect": check_tcp_connect,
    "udp-echo": check_udp_echo,
    "udp-echo-repeat": check_udp_repeat,
    "dns-query": check_dns,
    "tls-connection-rejected": check_tls_rejected,
    "websocket-echo": check_websocket,
}


def check(ctx: TrafficContext, entry: Mapping[str, Any]) -> str | None:
    """Run one traffic expectation; None if it passed, else why not."""
    name = str(entry.get("check") or "")
    scheme = str((entry.get("request") or {}).get("scheme") or "")
    if scheme.startswith("grpc"):
        return "not reproducible here: the lab client does not speak gRPC"
    fn = CHECKS.get(name)
    if fn is None:
        return f"unknown traffic check {name!r}; nothing judged it"
    try:
        fn(ctx, entry)
    except Failed as e:
        return str(e)
    return None
