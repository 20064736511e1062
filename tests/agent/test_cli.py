"""The `nodegate` command as a user runs it: real processes on real folders."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

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
NODEGATE = [sys.executable, "-m", "agent.cli"]
POOL = ["--address-pool", "198.18.128.0/24"]


def nodegate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NODEGATE, *args], capture_output=True, text=True, timeout=60)


def test_status_prints_every_status_as_yaml(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(CLASS + "---" + GATEWAY % 80)
    out = nodegate("status", "--config", str(tmp_path), *POOL)
    assert out.returncode == 0, out.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(out.stdout)}
    assert set(docs) == {"GatewayClass", "Gateway"}
    gw = docs["Gateway"]
    assert gw["metadata"] == {"name": "g", "namespace": "infra", "generation": 1}
    accepted = next(c for c in gw["status"]["conditions"] if c["type"] == "Accepted")
    assert (
        accepted["status"] == "True"
        and accepted["observedGeneration"] == 1
        and accepted["lastTransitionTime"]
    )
    assert gw["status"]["addresses"][0]["value"].startswith("198.18.128.")


def test_status_fails_clearly_on_input_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(CLASS + "---" + GATEWAY % 80)
    (tmp_path / "b.yaml").write_text("kind: [broken\n")
    out = nodegate("status", "--config", str(tmp_path), *POOL)
    assert out.returncode == 1
    assert "b.yaml: cannot read YAML" in out.stderr
    assert "Traceback" not in out.stderr
    assert any(d["kind"] == "Gateway" for d in yaml.safe_load_all(out.stdout))

    missing = nodegate("status", "--config", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "not a folder" in missing.stderr


class Lines:
    """A process's stderr, line by line, read by a thread (a pipe's buffer hides lines from select)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        self.queue: queue.Queue[str | None] = queue.Queue()
        stream = proc.stderr

        def pump() -> None:
            for line in stream:
                self.queue.put(line)
            self.queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        seen = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {timeout}s; got:\n{''.join(seen)}")


def test_run_follows_edits_and_stops_on_sigterm(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    status_file = tmp_path / "out" / "status.yaml"
    (cfg / "a.yaml").write_text(CLASS + "---" + GATEWAY % 80)
    proc = subprocess.Popen(
        [
            *NODEGATE,
            "run",
            "--config",
            str(cfg),
            *POOL,
            "--interval",
            "0.1",
            "--debounce",
            "0.1",
            "--status-file",
            str(status_file),
            "--datapaths",
            "none",
            "--metrics-address",
            "",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = Lines(proc)
    try:
        line = lines.wait_for("would serve")
        assert "generation 1" in line and "1 HTTP port(s)" in line
        lines.wait_for(":80 hosts=")
        docs = {d["kind"]: d for d in yaml.safe_load_all(status_file.read_text())}
        assert docs["Gateway"]["metadata"]["generation"] == 1
        first = docs["Gateway"]["status"]["conditions"][0]
        (cfg / "a.yaml").write_text(CLASS + "---" + GATEWAY % 8080)
        assert "generation 2" in lines.wait_for("would serve")
        lines.wait_for(":8080 hosts=")
        docs = {d["kind"]: d for d in yaml.safe_load_all(status_file.read_text())}
        again = docs["Gateway"]["status"]["conditions"][0]
        # A new generation; the condition did not change status, so it keeps its transition time.
        assert (again["observedGeneration"], again["lastTransitionTime"]) == (
            2,
            first["lastTransitionTime"],
        )
        (cfg / "b.yaml").write_text("kind: [broken\n")
        lines.wait_for("b.yaml: cannot read YAML")
        (cfg / "a.yaml").unlink()
        line = lines.wait_for("would serve")
        assert "generation 3" in line and "0 HTTP port(s)" in line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
