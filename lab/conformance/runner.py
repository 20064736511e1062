"""The conformance runner: the upstream cases replayed against a running `nodegate run` in the lab.

    with Runner(RunnerOptions()) as runner:
        report = runner.run_all()

Setup, as upstream's suite does it: the lab comes up (lab.netns), the base
world (our GatewayClass, the base manifest, the generated certificates) is
applied through the cluster emulation (lab.cluster), `nodegate run` starts in
the gateway node's namespace on that config folder, and the GatewayClass must
become Accepted (180 s); its status.supportedFeatures is what we claim.

Per case (cases.json order): skipped, naming the missing features, unless all
its features are claimed; otherwise its manifests are applied (upstream's
substitutions: lab.conformance.cases), each phase's edits made
(lab.conformance.phases), each phase's status expectations polled against the
agent's status file with upstream's timeouts, then its traffic expectations
judged from the client host (lab.conformance.traffic). The case's objects and
pods are removed afterwards; the base world lives for the whole run.

Before judging status the runner waits for the agent to have read the folder:
it writes a sync marker (a GatewayClass of ours with a fresh name) after the
case's files and waits for the marker's status, which a scan can only produce
after reading every file written before it.

Invariants: a claimed feature's case either passes every expectation or
fails with the first one that did not hold; nothing is counted as passed
without being judged, except where upstream itself returns early (the
"...NotSupported" twins).
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab import certs
from lab.cluster import Applied, Cluster
from lab.conformance.cases import (
    Case,
    Ref,
    Substitutions,
    Suite,
    gateway_class_under_test,
    invalid_address_values,
    load_manifest,
    load_suite,
)
from lab.conformance.client import NetnsPool
from lab.conformance.phases import PhaseContext, PhaseEditError, UnknownPhase, resolve
from lab.conformance.report import FAILED, PASSED, SKIPPED, CaseResult, Report, missing_features
from lab.conformance.status_checks import (
    Address,
    CheckContext,
    StatusExpectation,
    World,
    evaluate,
)
from lab.conformance.traffic import Timeouts
from lab.conformance.traffic import check as check_traffic
from lab.netns import Lab

ADDRESS_POOL = "198.18.1.0/24"
GATEWAY_CLASS = "nodegate"
CONTROLLER = "nodegate.dev/gateway-controller"
ENV_AGENT_ARGS = "NODEGATE_AGENT_ARGS"  # extra `nodegate run` flags, shell-quoted
SYNC_TIMEOUT = 30.0
POLL = 0.1

# Upstream's per-helper timeouts (README "How the upstream suite waits"), by check type.
STATUS_TIMEOUTS: dict[str, float] = {
    "gateway-has-address": 180.0,
    "gateway-condition": 180.0,
    "listenerset-condition": 180.0,
    "gatewayclass-accepted": 180.0,
    "gatewayclass-accepted-any": 180.0,
    "namespaces-ready": 300.0,
}
DEFAULT_STATUS_TIMEOUT = 60.0
SLOW_POLL_CHECKS = {"route-no-accepted-parents": 1.0}

_SKIP_WHEN_UNCLAIMED = re.compile(
    r"Returns immediately \(counted as pass\) unless the implementation also claims the (\w+)"
)


def substitutions() -> Substitutions:
    """The class under test and address pools: usable inside the agent's pool, unusable outside."""
    return Substitutions(
        gateway_class=GATEWAY_CLASS,
        controller_name=CONTROLLER,
        usable_addresses=(Address("IPAddress", "198.18.1.254"),),
        unusable_addresses=(Address("IPAddress", "198.19.255.254"),),
    )


@dataclass
class RunnerOptions:
    cases: Sequence[str] = ()  # names; empty: all
    parallel: int = 1
    suite_dir: Path | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    status_scale: float = 1.0  # multiplies status timeouts (tests shorten them)
    agent_args: Sequence[str] = ()
    log: Callable[[str], None] = print
    keep_state: bool = False


class StatusFile:
    """The agent's status file, parsed once per version."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._docs: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def docs(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                return {}
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                try:
                    loaded = list(yaml.safe_load_all(self.path.read_text(encoding="utf-8")))
                except (OSError, yaml.YAMLError):
                    return self._docs
                docs = {}
                for d in loaded:
                    if not d:
                        continue
                    meta = d.get("metadata") or {}
                    docs[
                        (
                            str(d.get("kind")),
                            str(meta.get("namespace") or ""),
                            str(meta.get("name")),
                        )
                    ] = d
                self._docs, self._stamp = docs, stamp
            return self._docs


class Runner:
    """The lab, the base world and the agent, for a run of cases."""

    def __init__(self, options: RunnerOptions | None = None) -> None:
        self.options = options or RunnerOptions()
        self.suite: Suite = load_suite(self.options.suite_dir)
        self.subs = substitutions()
        self.lab = Lab(backends=0)
        self.state = Path(tempfile.mkdtemp(prefix="nodegate-conformance-"))
        self.config = self.state / "config"
        self.status = StatusFile(self.state / "status.yaml")
        self.cluster: Cluster | None = None
        self.pool: NetnsPool | None = None
        self.agent: subprocess.Popen[Any] | None = None
        self.agent_log = self.state / "agent.log"
        self.claimed: frozenset[str] = frozenset()
        self.generated = certs.generated_objects()
        self._sync_lock = threading.Lock()
        self._sync_n = 0
        self._held: set[Ref] = set()
        self._held_cond = threading.Condition()
        self.timeouts = self.options.timeouts

    # -- life cycle ---------------------------------------------------------

    def __enter__(self) -> Runner:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        log = self.options.log
        self.lab.start()
        log(f"lab {self.lab.prefix} up; state in {self.state}")
        self.cluster = Cluster(self.lab, self.config, self.state / "cluster")
        base = [gateway_class_under_test(self.subs)]
        base += load_manifest(self.suite.manifest_path(self.suite.base_manifest), self.subs)
        base += self.generated
        self.cluster.apply(base)
        running = len(self.cluster.pods)
        log(f"base world applied: {running} pods running")
        for where, why in sorted(self.cluster.unavailable.items()):
            log(f"  not emulated: Deployment {where}: {why}")
        self.pool = NetnsPool(self.lab.client.netns, workers=24)
        self.start_agent()
        self.claimed = self.wait_for_class()
        log(
            f"GatewayClass {GATEWAY_CLASS} Accepted; supportedFeatures: "
            f"{', '.join(sorted(self.claimed)) or '(none)'}"
        )

    def start_agent(self) -> None:
        argv = [
            sys.executable, "-m", "agent.cli", "run",
            "--config", str(self.config),
            "--controller-name", CONTROLLER,
            "--address-pool", ADDRESS_POOL,
            "--gateway-interface", self.lab.gateway.client_link.name,
            "--status-file", str(self.status.path),
            "--interval", "0.2", "--debounce", "0.1",
            # The node's own addresses, given: discovery would also count Gateway addresses.
            "--node-address", str(self.lab.gateway.address),
            "--node-address", str(self.lab.gateway.backend_address),
            *self.options.agent_args,
            *shlex.split(os.environ.get(ENV_AGENT_ARGS, "")),
        ]  # fmt: skip
        with self.agent_log.open("ab") as out:
            self.agent = self.lab.gateway.run(argv, stdout=out, stderr=subprocess.STDOUT)

    def agent_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.agent_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_for_class(self) -> frozenset[str]:
        exp = StatusExpectation(
            check="gatewayclass-accepted", kind="GatewayClass", name=GATEWAY_CLASS
        )
        problem = self.poll_status(exp, self.check_context({}))
        if problem is not None:
            raise RuntimeError(f"suite setup: {problem}\nagent log:\n{self.agent_tail()}")
        doc = self.status.docs().get(("GatewayClass", "", GATEWAY_CLASS)) or {}
        features = (doc.get("status") or {}).get("supportedFeatures") or []
        return frozenset(str(f["name"] if isinstance(f, dict) else f) for f in features)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        if self.agent is not None and self.agent.poll() is None:
            self.agent.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.agent.wait(timeout=10)
        self.lab.close()
        if not self.options.keep_state:
            shutil.rmtree(self.state, ignore_errors=True)

    # -- the world as the checks see it -------------------------------------

    def objects(self) -> dict[Ref, dict[str, Any]]:
        assert self.cluster is not None
        return {Ref(*k): v for k, v in self.cluster.objects().items()}

    def status_world(self) -> World:
        """The folder's objects (annotations and all) with the agent's generation and status."""
        docs = self.status.docs()
        out = []
        for ref, obj in self.objects().items():
            doc = docs.get((ref.kind, ref.namespace, ref.name))
            if doc is not None:
                obj = copy.deepcopy(obj)
                obj.setdefault("metadata", {})["generation"] = (doc.get("metadata") or {}).get(
                    "generation", 0
                )
                obj["status"] = doc.get("status") or {}
            out.append(obj)
        return World(out)

    def check_context(self, world: Mapping[Ref, Mapping[str, Any]]) -> CheckContext:
        return CheckContext(
            controller_name=CONTROLLER,
            usable_addresses=self.subs.usable_addresses,
            unusable_addresses=self.subs.unusable_addresses,
            invalid_address_values=invalid_address_values(world),
        )

    def poll_status(self, exp: StatusExpectation, ctx: CheckContext) -> str | None:
        timeout = STATUS_TIMEOUTS.get(exp.check, DEFAULT_STATUS_TIMEOUT) * self.options.status_scale
        interval = SLOW_POLL_CHECKS.get(exp.check, POLL)
        deadline = time.monotonic() + timeout
        while True:
            if self.agent is not None and self.agent.poll() is not None:
                return f"the agent exited ({self.agent.returncode}):\n{self.agent_tail()}"
            result = evaluate(exp, self.status_world(), ctx)
            if result.passed:
                return None
            if time.monotonic() >= deadline:
                return f"{result} (after {timeout:.0f}s)"
            time.sleep(interval)

    def sync(self) -> None:
        """Wait until the agent has read everything written to the folder so far."""
        assert self.cluster is not None
        with self._sync_lock:
            self._sync_n += 1
            name = f"nodegate-lab-sync-{self._sync_n}"
            marker = {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "metadata": {"name": name},
                "spec": {"controllerName": CONTROLLER},
            }
            self.cluster.set_object(marker)
            if self._sync_n > 1:
                self.cluster.delete_object(
                    (
                        "gateway.networking.k8s.io",
                        "GatewayClass",
                        "",
                        f"nodegate-lab-sync-{self._sync_n - 1}",
                    )
                )
            deadline = time.monotonic() + SYNC_TIMEOUT
            while ("GatewayClass", "", name) not in self.status.docs():
                if self.agent is not None and self.agent.poll() is not None:
                    raise RuntimeError(f"the agent exited:\n{self.agent_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the agent did not pick up the config folder in {SYNC_TIMEOUT:.0f}s"
                    )
                time.sleep(0.05)

    # -- traffic context (lab.conformance.traffic.TrafficContext) -------------

    def gateway_address(self, gateway: str) -> str | None:
        ns, _, name = gateway.rpartition("/")
        doc = self.status.docs().get(("Gateway", ns, name)) or {}
        for a in (doc.get("status") or {}).get("addresses") or ():
            if a.get("value"):
                return str(a["value"])
        return None

    def find_object(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        for ref, obj in self.objects().items():
            if (ref.kind, ref.namespace, ref.name) == (kind, namespace, name):
                return obj
        return None

    def mirror_logs(self, namespace: str, service: str) -> list[Path]:
        assert self.cluster is not None
        pods = self.cluster.pods_labelled(namespace, {"app": service})
        return [p.log_path for p in pods if p.log_path is not None]

    # -- cases -------------------------------------------------------------

    def selected(self) -> list[Case]:
        if not self.options.cases:
            return list(self.suite.cases)
        wanted = list(self.options.cases)
        unknown = [n for n in wanted if n not in {c.name for c in self.suite.cases}]
        if unknown:
            raise KeyError(f"no such case(s): {', '.join(unknown)}")
        return [c for c in self.suite.cases if c.name in wanted]

    def decide(self, case: Case) -> CaseResult | None:
        """The result of a case upstream does not run (skipped, or returned early), else None."""
        missing = missing_features(case.features, self.claimed)
        base = CaseResult(
            case.name, SKIPPED, features=case.features, provisional=_provisional(case)
        )
        if missing:
            base.reason = f"features not claimed: {', '.join(missing)}"
            return base
        early = sorted(set(case.skipped_when_claimed) & self.claimed)
        unless = _SKIP_WHEN_UNCLAIMED.findall(str(case.raw.get("notes") or ""))
        early_unless = [f for f in unless if f not in self.claimed]
        if early or early_unless:
            base.outcome = PASSED
            why = (
                f"claims {', '.join(early)}"
                if early
                else f"does not claim {', '.join(early_unless)}"
            )
            base.reason = f"upstream returns at once (counted as passed): the implementation {why}"
            return base
        return None

    def run_all(self) -> Report:
        report = Report(tuple(sorted(self.claimed)), source=self.suite.source)
        cases = self.selected()
        results: dict[str, CaseResult] = {}
        to_run = []
        for case in cases:
            decided = self.decide(case)
            if decided is not None:
                results[case.name] = decided
            else:
                to_run.append(case)
        serial = [c for c in to_run if not (c.raw.get("parallel") and self.options.parallel > 1)]
        parallel = [c for c in to_run if c not in serial]
        for case in serial:
            results[case.name] = self._logged(case)
        if parallel:
            with ThreadPoolExecutor(max_workers=self.options.parallel) as ex:
                for case, result in zip(parallel, ex.map(self._logged, parallel), strict=True):
                    results[case.name] = result
        report.results = [results[c.name] for c in cases]
        return report

    def _logged(self, case: Case) -> CaseResult:
        result = self.run_case(case)
        mark = {PASSED: "PASS", FAILED: "FAIL", SKIPPED: "SKIP"}[result.outcome]
        reason = f": {result.reason}" if result.reason else ""
        self.options.log(f"{mark} {case.name} ({result.seconds:.1f}s){reason}")
        return result

    def run_case(self, case: Case, *, status_only: bool = False) -> CaseResult:
        """Apply, edit, judge, tear down. status_only: judge status expectations only (the
        translation), whatever is claimed."""
        started = time.monotonic()
        result = CaseResult(
            case.name, PASSED, features=case.features, provisional=_provisional(case)
        )
        try:
            problem = self._run_case(case, status_only)
        except Exception as e:  # a harness problem fails the case, never passes it
            problem = f"harness: {type(e).__name__}: {e}"
        if problem is not None:
            result.outcome, result.reason = FAILED, problem
        result.seconds = time.monotonic() - started
        return result

    @contextlib.contextmanager
    def _hold(self, refs: set[Ref]) -> Iterator[None]:
        """Keep cases that write the same objects from running at the same time."""
        with self._held_cond:
            self._held_cond.wait_for(lambda: not (refs & self._held))
            self._held |= refs
        try:
            yield
        finally:
            with self._held_cond:
                self._held -= refs
                self._held_cond.notify_all()

    def _run_case(self, case: Case, status_only: bool) -> str | None:
        assert self.cluster is not None
        objects: list[dict[str, Any]] = []
        for name in case.manifests:
            objects += load_manifest(self.suite.manifest_path(name), self.subs)
        refs = {Ref.of(o) for o in objects}
        with self._hold(refs):
            applied = self.cluster.apply(objects)
            restore: dict[Ref, dict[str, Any]] = {}
            try:
                return self._phases(case, applied, restore, status_only)
            finally:
                self._teardown(applied, restore)

    def _teardown(self, applied: Applied, restore: Mapping[Ref, dict[str, Any]]) -> None:
        assert self.cluster is not None
        self.cluster.remove(applied)
        for obj in restore.values():
            self.cluster.set_object(obj)
        self.cluster.sync_endpoints()

    def _phases(
        self,
        case: Case,
        applied: Applied,
        restore: dict[Ref, dict[str, Any]],
        status_only: bool,
    ) -> str | None:
        assert self.cluster is not None
        unavailable = self._unavailable_backends(case)
        fixup = PRE_TRAFFIC.get(case.name)
        if fixup is not None:
            fixup(self)
        phases = {p.number: p for p in case.phases}
        requests = list(case.raw.get("requests") or ())
        first = case.phase_numbers[0]
        for number in case.phase_numbers:
            phase = phases.get(number)
            if phase is not None:
                try:
                    edit = resolve(phase.before)
                except UnknownPhase as e:
                    return f"phase {number}: {e}"
                time.sleep(edit.wait_seconds)
                world = self.objects()
                before = copy.deepcopy(world)
                try:
                    edit.apply(world, PhaseContext(case, self.subs))
                except PhaseEditError as e:
                    return f"phase {number}: {e}"
                self._write_edit(before, world, applied, restore)
            self.sync()
            world_now = self.objects()
            ctx = self.check_context(world_now)
            for exp in case.expectations_for(number):
                problem = self.poll_status(exp, ctx)
                if problem is not None:
                    return f"{'[phase ' + str(number) + '] ' if case.phases else ''}{problem}"
            if status_only:
                continue
            for entry in requests:
                if int(entry.get("phase") or first) != number:
                    continue
                problem = check_traffic(self, entry)  # type: ignore[arg-type]
                if problem is not None:
                    if unavailable:
                        problem += f" (not emulated in the lab: {unavailable})"
                    return f"request {entry.get('name')!r}: {problem}"
        return None

    def _write_edit(
        self,
        before: Mapping[Ref, dict[str, Any]],
        after: Mapping[Ref, dict[str, Any]],
        applied: Applied,
        restore: dict[Ref, dict[str, Any]],
    ) -> None:
        assert self.cluster is not None
        for ref in set(before) - set(after):
            if ref not in applied.written and ref not in restore:
                restore[ref] = before[ref]
            self.cluster.delete_object(ref)
        new = [after[r] for r in after if r not in before]
        for ref in after:
            if ref in before and after[ref] != before[ref]:
                if ref not in applied.written and ref not in restore:
                    restore[ref] = before[ref]
                self.cluster.set_object(after[ref])
        if new:
            more = self.cluster.apply(new)
            applied.written += more.written
            applied.pods += more.pods
            applied.deployments += more.deployments

    def _unavailable_backends(self, case: Case) -> str:
        assert self.cluster is not None
        names = {str(r.get("backend") or "") for r in case.raw.get("requests") or ()}
        hits = [
            f"{k}: {v}" for k, v in self.cluster.unavailable.items() if k.split("/")[1] in names
        ]
        return "; ".join(hits)


def _provisional(case: Case) -> bool:
    return bool(case.raw.get("provisional"))


# --------------------------------------------------------------------------
# what upstream's Go code does to the cluster before a case's requests


def _fill_manual_endpoint_slices(runner: Runner) -> None:
    """HTTPRouteServiceTypes: the test copies infra-backend-v1's endpoints into the
    manifests' empty EndpointSlices (IPv4 ones get the pod IPs; the lab has no IPv6)."""
    assert runner.cluster is not None
    ns = "gateway-conformance-infra"
    pods = runner.cluster.pods_of_service(ns, "infra-backend-v1")
    for name in ("manual-endpointslices-ip4", "headless-manual-endpointslices-ip4"):
        obj = runner.find_object("EndpointSlice", ns, name)
        if obj is None:
            continue
        obj = copy.deepcopy(dict(obj))
        obj["endpoints"] = [
            {
                "addresses": [p.address],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "targetRef": {"kind": "Pod", "namespace": ns, "name": p.name},
            }
            for p in pods
        ]
        runner.cluster.set_object(obj)


PRE_TRAFFIC: dict[str, Callable[[Runner], None]] = {
    "HTTPRouteServiceTypes": _fill_manual_endpoint_slices,
}
