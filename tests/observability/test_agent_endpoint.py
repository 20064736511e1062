"""`nodegate run` serves /metrics, /healthz and /readyz, and logs one JSON object per line.

A real agent process on a folder of YAML, translate only (`--datapaths none`), its endpoint
on a loopback port the kernel picks (read back from its log).
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.observability.support import parse, sample, select

CLASS = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: ng}
spec: {controllerName: nodegate.dev/gateway-controller}
"""
GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: g, namespace: infra}
spec:
  gatewayClassName: ng
  listeners: [{name: http, port: %d, protocol: HTTP}]
"""
ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ok, namespace: infra}
spec:
  parentRefs: [{name: g}]
  rules: [{matches: [{path: {type: PathPrefix, value: /}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: no-listener, namespace: infra}
spec:
  parentRefs: [{name: g, sectionName: nope}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: no-backend, namespace: infra}
spec:
  parentRefs: [{name: g}]
  rules: [{backendRefs: [{name: missing, port: 80}]}]
"""
WAIT = 30.0


class Agent:
    def __init__(self, cfg: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent.cli",
                "run",
                "--config",
                str(cfg),
                "--address-pool",
                "198.18.128.0/24",
                "--interval",
                "0.1",
                "--debounce",
                "0.1",
                "--datapaths",
                "none",
                "--metrics-address",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        stream = self.proc.stderr
        assert stream is not None

        def pump() -> None:
            for line in stream:
                self.lines.put(line)
            self.lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for_line(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + WAIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            m = re.search(pattern, line)
            if m:
                return m
        raise AssertionError(f"no line matching {pattern!r}; got:\n{''.join(self.seen)}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Agent, Path]]:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "a.yaml").write_text(CLASS + "---" + GATEWAY % 80 + "---" + ROUTES)
    a = Agent(cfg)
    try:
        yield a, cfg
    finally:
        a.stop()


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_until(what: str, fn: object) -> None:
    assert callable(fn)
    deadline = time.monotonic() + WAIT
    while not fn():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_the_endpoint_follows_the_loop(agent: tuple[Agent, Path]) -> None:
    a, cfg = agent
    port = int(a.wait_for_line(r"on http://127\.0\.0\.1:(\d+)")[1])
    assert get(port, "/healthz") == (200, "alive\n")
    wait_until("/readyz", lambda: get(port, "/readyz")[0] == 200)
    assert get(port, "/readyz")[1] == "generation 1 applied\n"
    got = parse(get(port, "/metrics")[1])
    assert got[sample("nodegate_config_generation")] == 1
    assert select(got, "nodegate_config_applied_generation") == {
        sample("nodegate_config_applied_generation", datapath="log"): 1
    }
    assert select(got, "nodegate_objects") == {
        sample("nodegate_objects", kind="GatewayClass"): 1,
        sample("nodegate_objects", kind="Gateway"): 1,
        sample("nodegate_objects", kind="HTTPRoute"): 3,
    }
    assert select(got, "nodegate_invalid_objects") == {
        sample("nodegate_invalid_objects", kind="HTTPRoute"): 2
    }
    assert got[sample("nodegate_translate_duration_seconds_count")] >= 1
    assert got[sample("nodegate_apply_duration_seconds_count", datapath="log")] == 1

    (cfg / "a.yaml").write_text(CLASS + "---" + GATEWAY % 8080)

    def second() -> bool:
        now = parse(get(port, "/metrics")[1])
        return now[sample("nodegate_config_applied_generation", datapath="log")] == 2

    wait_until("generation 2 applied", second)
    got = parse(get(port, "/metrics")[1])
    assert got[sample("nodegate_config_generation")] == 2
    assert select(got, "nodegate_objects", kind="HTTPRoute") == {}
    assert select(got, "nodegate_invalid_objects") == {}
    assert got[sample("nodegate_apply_duration_seconds_count", datapath="log")] == 2

    a.stop()
    assert a.proc.returncode == 0
    for line in a.seen + [x for x in iter(a.lines.get, None)]:
        event = json.loads(line)
        assert {"ts", "level", "logger", "msg"} <= set(event), line
