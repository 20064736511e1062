"""The conformance runner, end to end in the lab, and its comparison rules.

Kernel tests share one runner (lab + base world + `nodegate run`):

- the whole case set: every case is passed or skipped naming the features the
  GatewayClass does not claim; none fails (when the datapaths land and claim
  features, their cases run here unchanged);
- the base world as a cluster would show it: every endpoint of every base
  Service answers from the client host as the pod it is (name, namespace);
- the traffic checks themselves, aimed straight at backends (what the gateway
  address would be), so the loops and comparisons are exercised on real
  sockets whatever the datapaths claim, including checks that must fail;
- the status expectations of the status-only cases, judged on the *running*
  agent's status file (translation exists whatever the datapaths claim).

The rest are table tests of CompareRoundTrip, redirects and the report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lab.conformance import traffic
from lab.conformance.cases import Case, load_suite
from lab.conformance.client import NetnsPool
from lab.conformance.report import FAILED, PASSED, PROFILES, SKIPPED, CaseResult, Report, from_json
from lab.conformance.runner import Runner, RunnerOptions
from lab.conformance.traffic import Timeouts, compare_http
from lab.conformance.wire import (
    HTTPResponse,
    dns_query,
    go_hostname_match,
    http_request,
    tcp_conversation,
)
from lab.echo.podname import backend_of

SUITE = load_suite()
INFRA = "gateway-conformance-infra"
# Features the translation itself branches on: status-only cases needing them are judged
# only when the running agent claims them.
TRANSLATION_GATED = frozenset({"TLSRouteModeTerminate", "TLSRouteModeMixed", "GRPCRoute"})


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    options = RunnerOptions(parallel=4, status_scale=0.25, log=lambda line: None)
    with Runner(options) as r:
        yield r


# --------------------------------------------------------------------------
# end to end


@pytest.mark.kernel
def test_whole_suite_is_passed_or_skipped_for_unclaimed_features(
    runner: Runner, tmp_path: Path
) -> None:
    report = runner.run_all()
    assert [r.name for r in report.results] == [c.name for c in SUITE.cases]
    failed = [f"{r.name}: {r.reason}" for r in report.results if r.outcome == FAILED]
    assert not failed, "cases of claimed features failed:\n" + "\n".join(failed)
    for r in report.results:
        if r.outcome == SKIPPED:
            missing = r.reason.removeprefix("features not claimed: ").split(", ")
            assert r.reason.startswith("features not claimed: "), r
            assert (
                missing and not set(missing) & runner.claimed and set(missing) <= set(r.features)
            ), r
    assert report.ok
    path = tmp_path / "conformance.json"
    report.write_json(path)
    data = json.loads(path.read_text())
    assert data["claimed_features"] == sorted(runner.claimed)
    assert from_json(data).as_json() == report.as_json()
    t = data["totals"]
    assert t["passed"] + t["failed"] + t["skipped"] == len(SUITE.cases)
    assert set(data["profiles"]) == {p.name for p in PROFILES}
    assert data["features"]["Gateway"]["skipped"] + data["features"]["Gateway"]["passed"] == len(
        SUITE.cases
    )


@pytest.mark.kernel
def test_every_base_endpoint_answers_as_its_pod(runner: Runner) -> None:
    assert runner.cluster is not None and runner.pool is not None
    pods = runner.cluster.pods
    checked = 0
    for ref, obj in runner.objects().items():
        if ref.kind != "EndpointSlice" or not obj.get("endpoints"):
            continue
        for ep in obj["endpoints"]:
            pod = pods[ep["targetRef"]["name"]]
            env = {e["name"]: e.get("value") for e in pod.container.get("env") or ()}
            address = ep["addresses"][0]
            assert address == pod.address
            if "coredns" in str(pod.container.get("image")):
                reply = runner.pool.call(dns_query, address, 53, "foo.bar.com.", 1, 2.0)
                assert reply[3] & 0x0F == 0
            elif env.get("TCP_ECHO_SERVER"):
                answers = runner.pool.call(tcp_conversation, address, 3000, 5.0, None)
                test = json.loads(answers["TEST"])
                assert (test["pod"], test["namespace"]) == (pod.name, pod.namespace)
            else:
                r = runner.pool.call(
                    http_request, address, 3000, "GET", "/p", [("Host", "x")], 5.0, None
                )
                body = json.loads(r.body)
                assert (body["pod"], body["namespace"]) == (pod.name, pod.namespace), body
                assert body["pod"].startswith(pod.deployment + "-")
            checked += 1
    # infra v1 v2 v3, tls-backend x2 + app tls-backend, app v1 v2, web, tcp-backend, coredns
    assert checked == len(pods) >= 17


@dataclass
class Direct:
    """A TrafficContext whose every "gateway" is one backend pod, to exercise the checks."""

    runner: Runner
    address: str
    timeouts: Timeouts

    @property
    def pool(self) -> NetnsPool:
        assert self.runner.pool is not None
        return self.runner.pool

    def gateway_address(self, gateway: str) -> str | None:
        return self.address

    def find_object(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.runner.find_object(kind, namespace, name)

    def mirror_logs(self, namespace: str, service: str) -> list[Path]:
        return self.runner.mirror_logs(namespace, service)


def _http(path: str = "/", **over: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "t",
        "gateway": f"{INFRA}/x",
        "check": "eventually-consistent",
        "request": {"scheme": "http", "port": 3000, "host": None, "path": path, "method": "GET",
                    "headers": {"X-A": "1"}, "protocol": "HTTP", "follow_redirects": True},
        "expected_request": {"derived_from_request": True, "host": None, "path": path, "method": "GET",
                             "headers": {"X-A": "1"}, "absent_headers": []},
        "response": {"status": [200], "absent_headers": []},
        "backend": "infra-backend-v1",
        "namespace": INFRA,
    }  # fmt: skip
    entry.update(over)
    return entry


@pytest.mark.kernel
def test_traffic_checks_on_real_backends(runner: Runner) -> None:
    assert runner.cluster is not None
    fast = Timeouts(
        max_time_to_consistency=3.0,
        request_timeout=3.0,
        default_test_timeout=3.0,
        failure_interval=0.5,
    )
    pod = lambda dep: next(p for p in runner.cluster.pods.values() if p.deployment == dep)  # noqa: E731
    v1 = Direct(runner, pod("infra-backend-v1").address, fast)

    assert traffic.check(v1, _http("/a?b=c")) is None
    wrong = traffic.check(v1, _http(backend="infra-backend-v2"))
    assert wrong is not None and "infra-backend-v2" in wrong and "3 passes in a row" in wrong
    bad_ns = traffic.check(v1, _http(namespace=""))
    assert bad_ns is not None and "namespace" in bad_ns
    assert traffic.check(v1, _http("/status/503", response={"status": [503]}, backend=None)) is None
    set_hdr = _http(
        backend_set_response_headers={"X-Out": "v"},
        response={"status": [200], "headers": {"X-Out": "v"}},
    )
    assert traffic.check(v1, set_hdr) is None
    # 200 where every answer must fail: fails at once.
    failure = traffic.check(v1, _http(check="consistent-failure"))
    assert failure is not None and "200" in failure
    assert traffic.check(v1, _http("/status/502", check="consistent-failure")) is None

    one = {"infra-backend-v1": 1.0, "infra-backend-v2": 0.0}
    dist = {"total_requests": 40, "concurrency": 10, "tolerance": 0.05, "max_attempts": 2}
    assert (
        traffic.check(
            v1,
            _http(
                check="weighted-distribution",
                backend=None,
                distribution={**dist, "expected_weights": one},
            ),
        )
        is None
    )
    half = {"infra-backend-v1": 0.5, "infra-backend-v2": 0.5}
    skewed = traffic.check(
        v1,
        _http(
            check="weighted-distribution",
            backend=None,
            distribution={**dist, "expected_weights": half},
        ),
    )
    assert skewed is not None and "2 attempts failed" in skewed

    mirrored = _http(
        "/mirror",
        check="eventually-consistent+mirror-log",
        mirrored_to=[{"name": "infra-backend-v1", "namespace": INFRA}],
    )
    assert traffic.check(v1, mirrored) is None, "v1's own log has the request"
    not_mirrored = _http(
        "/mirror",
        check="eventually-consistent+mirror-log",
        mirrored_to=[{"name": "infra-backend-v2", "namespace": INFRA}],
    )
    msg = traffic.check(v1, not_mirrored)
    assert msg is not None and "never logged" in msg

    tls = Direct(runner, pod("tls-backend").address, fast)
    https = _http(
        "/tls",
        request={"scheme": "https", "port": 8443, "host": "abc.example.com", "path": "/tls", "method": "GET", "headers": {},
                 "protocol": "HTTPS", "sni": "abc.example.com", "trust_ca": f"{INFRA}/tls-checks-ca-certificate (ConfigMap key ca.crt)"},
        expected_request={"host": "abc.example.com", "path": "/tls", "method": "GET", "headers": {}, "sni": "abc.example.com"},
        backend="tls-backend",
    )  # fmt: skip
    assert traffic.check(tls, https) is None
    untrusted = {
        **https,
        "request": {**https["request"], "trust_ca": f"{INFRA}/tls-validity-checks-certificate"},
    }
    msg = traffic.check(tls, untrusted)
    assert msg is not None and "request failed" in msg

    tcp = Direct(runner, pod("tcp-backend").address, fast)
    echo: dict[str, Any] = {"gateway": "g", "check": "tcp-echo", "request": {"scheme": "tcp", "port": 3000},
            "expected": {"welcome": "Gateway API Test TCP Server\n", "PING": "PONG", "IS_TLS": "false",
                         "TEST.namespace": INFRA, "TEST.pod_prefix": "tcp-backend-"}}  # fmt: skip
    assert traffic.check(tcp, echo) is None
    other = {**echo, "expected": {**echo["expected"], "TEST.pod_prefix": "tcp-other-"}}
    msg = traffic.check(tcp, other)
    assert msg is not None and "tcp-other-" in msg
    repeat = {"gateway": "g", "check": "tcp-echo-repeat", "request": {"scheme": "tcp", "port": 3000, "count": 5},
              "expected": {"every_pod_prefix": "tcp-backend-"}}  # fmt: skip
    assert traffic.check(tcp, repeat) is None
    assert (
        traffic.check(
            tcp,
            {"gateway": "g", "check": "tcp-connect", "request": {"scheme": "tcp", "port": 3000}},
        )
        is None
    )

    dns = Direct(runner, pod("coredns").address, fast)
    query = {
        "gateway": "g",
        "check": "dns-query",
        "request": {
            "scheme": "udp",
            "port": 53,
            "dns_question": {"name": "foo.bar.com.", "type": "A"},
        },
    }
    assert traffic.check(dns, query) is None

    grpc = {
        "gateway": "g",
        "check": "eventually-consistent",
        "request": {"scheme": "grpc+h2c", "port": 80},
    }
    assert "not reproducible" in str(traffic.check(v1, grpc))
    assert "unknown traffic check" in str(traffic.check(v1, {"check": "teleport", "request": {}}))


def _status_only_cases() -> list[Any]:
    return [pytest.param(c, id=c.name) for c in SUITE.cases if c.kind == "status-only"]


@pytest.mark.kernel
@pytest.mark.parametrize("case", _status_only_cases())
def test_status_only_case_on_the_running_agent(runner: Runner, case: Case) -> None:
    gated = sorted(set(case.features) & TRANSLATION_GATED - runner.claimed)
    if gated:
        # Judged with the claim: the translation answers differently without it.
        # Not a skip: the test asserts the runner would skip it too.
        decided = runner.decide(case)
        assert decided is not None and decided.outcome == SKIPPED, decided
        return
    result = runner.run_case(case, status_only=True)
    assert result.outcome == PASSED, result.reason


# --------------------------------------------------------------------------
# comparison rules (echo-backend.md section 9, README "cases.json format")


def _json_response(status: int = 200, **body: Any) -> HTTPResponse:
    base = {
        "path": "/",
        "method": "GET",
        "host": "h",
        "namespace": INFRA,
        "pod": "infra-backend-v1-abcdefghjk-bcdfg",
        "headers": {"X-A": ["1"]},
    }
    extra = body.pop("response_headers", [])
    base.update(body)
    headers = [("Content-Type", "application/json"), *extra]
    return HTTPResponse(status, headers, json.dumps(base).encode())


@pytest.mark.parametrize(
    ("entry", "response", "problem"),
    [
        (_http(), _json_response(), None),
        (_http(), _json_response(404), "status 404"),
        (_http(response={"status": [504]}), _json_response(408), None),
        (_http(response={"status": [408]}), HTTPResponse(504), None),
        (_http(), _json_response(path="/x"), "path"),
        (_http(), _json_response(method="POST"), "method"),
        (_http(namespace=""), _json_response(), "namespace"),
        (_http(namespace="", backend=None, expected_request={"path": ""}), HTTPResponse(200, [("Content-Type", "text/plain")]), None),
        (_http(backend="infra-backend-v2"), _json_response(), "pod"),
        (_http(expected_request={"path": "/", "headers": {"X-A": "1,2"}}), _json_response(headers={"X-A": ["1", "2"]}), None),
        (_http(expected_request={"path": "/", "headers": {"X-A": "1"}}), _json_response(headers={"X-A": ["2"]}), "X-A"),
        (_http(expected_request={"path": "/", "absent_headers": ["X-B"]}), _json_response(headers={"X-B": ["1"]}), "absent"),
        (_http(expected_request={"path": "/", "host": "a.com"}), _json_response(host="b.com"), "host"),
        (_http(response={"status": [200], "headers": {"X-R": "a, b"}, "ignore_whitespace_in_header_values": True}),
         _json_response(response_headers=[("X-R", "a,b")]), None),
        (_http(response={"status": [200], "valid_header_values": {"X-R": ["a", "b"]}}), _json_response(response_headers=[("X-R", "c")]), "one of"),
        (_http(response={"status": [302], "redirect": {"scheme": "http", "host": "e.org", "port": None, "path": "/p"}}),
         HTTPResponse(302, [("Location", "http://e.org:80/p")]), None),
        (_http(response={"status": [302], "redirect": {"scheme": "https", "host": None, "port": None, "path": "/p"}}),
         HTTPResponse(302, [("Location", "https://e.org:8443/p")]), "port"),
        (_http(response={"status": [301], "redirect": {"scheme": "http", "host": None, "port": 8080, "path": "/"}}),
         HTTPResponse(301, [("Location", "http://e.org:8080/")]), None),
    ],
)  # fmt: skip
def test_compare_round_trip(
    entry: dict[str, Any], response: HTTPResponse, problem: str | None
) -> None:
    got = compare_http(entry, response)
    if problem is None:
        assert got is None
    else:
        assert got is not None and problem in got


def test_go_hostname_rules() -> None:
    assert go_hostname_match("*.org", "https-listener.org")
    assert go_hostname_match("abc.example.com", "ABC.example.com")
    assert not go_hostname_match("*.org", "a.b.org")
    assert not go_hostname_match("*.example.com", "example.com")


def test_report_totals_by_profile_and_feature() -> None:
    report = Report(("Gateway", "HTTPRoute"))
    report.results = [
        CaseResult("A", PASSED, features=("Gateway", "HTTPRoute")),
        CaseResult(
            "B", SKIPPED, "features not claimed: TCPRoute", features=("Gateway", "TCPRoute")
        ),
        CaseResult("C", FAILED, "x", features=("Gateway",)),
    ]
    profiles = report.by_profile()
    assert (profiles["GATEWAY-HTTP"].passed, profiles["GATEWAY-HTTP"].failed) == (1, 1)
    assert (profiles["GATEWAY-TCP"].skipped, profiles["GATEWAY-TCP"].failed) == (1, 1)
    assert profiles["GATEWAY-UDP"].failed == 1 and profiles["GATEWAY-UDP"].passed == 0
    assert report.by_feature()["Gateway"].passed == 1 and not report.ok
    text = "\n".join(report.lines())
    assert "FAIL C: x" in text and "SKIP B: features not claimed: TCPRoute" in text


def test_profiles_attribute_cases_as_features_md() -> None:
    by_name = {c.name: c for c in SUITE.cases}
    http = next(p for p in PROFILES if p.name == "GATEWAY-HTTP")
    tls = next(p for p in PROFILES if p.name == "GATEWAY-TLS")
    if "HTTPRouteDisallowedKind" in by_name:  # needs HTTPRoute and TLSRoute: in no profile
        feats = by_name["HTTPRouteDisallowedKind"].features
        assert not any(p.covers(feats) for p in PROFILES)
    assert http.covers(("Gateway", "HTTPRoute", "BackendTLSPolicy"))
    assert tls.covers(("Gateway", "TLSRoute", "TLSRouteModeMixed"))
    assert backend_of("infra-backend-v1-abcdefghjk-bcdfg") == "infra-backend-v1"
