"""deploy/ and vagrant/: the manifests, the image recipe, the lab's Vagrantfile and smoke test."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VAGRANT = REPO / "vagrant"
DEPLOY = REPO / "deploy"


def daemonset() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "daemonset.yaml").read_text()) if d]
    return next(d for d in docs if d["kind"] == "DaemonSet")


def test_vagrant_validate(tmp_path: Path) -> None:
    # No provider (VirtualBox, libvirt) is installed where the tests run: their blocks are
    # skipped; everything else in the Vagrantfile is checked.
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "VAGRANT_HOME": str(tmp_path / ".vagrant.d"),
        "VAGRANT_DOTFILE_PATH": str(tmp_path / ".vagrant"),  # not into the checkout
    }
    out = subprocess.run(
        ["vagrant", "validate", "--ignore-provider"],
        cwd=VAGRANT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "validated successfully" in out.stdout


def test_provisioning_scripts_exist_and_parse() -> None:
    named = re.findall(r'path: "(provision/[^"]+)"', (VAGRANT / "Vagrantfile").read_text())
    assert set(named) == {
        "provision/common.sh",
        "provision/server.sh",
        "provision/agent.sh",
        "provision/client.sh",
    }
    for script in sorted((VAGRANT / "provision").glob("*.sh")):
        out = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert out.returncode == 0, f"{script}: {out.stderr}"
    server = (VAGRANT / "provision" / "server.sh").read_text()
    for needed in (
        "deploy/Dockerfile",
        "deploy/daemonset.yaml",
        "examples/quickstart",
        "experimental-install.yaml",
    ):
        assert needed in server
    assert (REPO / "examples" / "quickstart").is_dir()


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def echo() -> Iterator[tuple[int, int, int]]:
    """lab.echo (the echo-basic protocol the quickstart backends speak) on three loopback ports."""
    ports = (
        _free_port(socket.SOCK_STREAM),
        _free_port(socket.SOCK_STREAM),
        _free_port(socket.SOCK_DGRAM),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lab.echo",
            "--bind",
            "127.0.0.1",
            "--pod",
            "echo-v1-7d9c-x2k7q",
            "--namespace",
            "quickstart",
            "--http-port",
            str(ports[0]),
            "--tcp-port",
            str(ports[1]),
            "--udp-port",
            str(ports[2]),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield ports
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def smoke(ports: tuple[int, int, int], *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(VAGRANT / "smoke.py"), "--address", "127.0.0.1",
            "--http-port", str(ports[0]), "--tcp-port", str(ports[1]), "--udp-port", str(ports[2]),
            "--pause", "0.2", "--timeout", "2", *extra]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_smoke_test_passes_through_echo_servers(echo: tuple[int, int, int]) -> None:
    out = smoke(
        echo,
        "--http-backend",
        "echo-v1-",
        "--tcp-backend",
        "echo-v1-",
        "--udp-backend",
        "echo-v1-",
        "--deadline",
        "60",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3/3 checks passed" in out.stdout
    assert all(f"ok    {k}" in out.stdout for k in ("HTTP", "TCP ", "UDP "))


def test_smoke_test_fails_on_the_wrong_backend(echo: tuple[int, int, int]) -> None:
    ok = smoke(
        echo,
        "--http-backend",
        "echo-v1-",
        "--tcp-backend",
        "echo-v1-",
        "--udp-backend",
        "echo-v1-",
        "--deadline",
        "60",
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr  # the servers are up
    out = smoke(
        echo,
        "--http-backend",
        "echo-v1-",
        "--tcp-backend",
        "tcp-echo-",
        "--udp-backend",
        "echo-v1-",
        "--deadline",
        "1",
    )
    assert out.returncode == 1
    assert "FAIL  TCP" in out.stdout and "2/3 checks passed" in out.stdout


def test_dockerfile_builds_what_the_daemonset_runs() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM debian:bookworm", text, re.M)
    assert "python3-bpfcc" in text
    copied = set(re.findall(r"^COPY (\S+) \./\S+$", text, re.M))
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    assert {p.rstrip("*") for p in packages} <= copied
    assert all((REPO / c).exists() for c in copied)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    container = daemonset()["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][0] in scripts
    assert container["image"] == "nodegate:dev"
    assert "-t nodegate:dev" in (VAGRANT / "provision" / "server.sh").read_text()


def test_daemonset_is_not_privileged_and_keeps_pinned_maps() -> None:
    ds = daemonset()
    pod = ds["spec"]["template"]["spec"]
    container = pod["containers"][0]
    sc = container["securityContext"]
    assert pod["hostNetwork"] is True
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) <= {
        "BPF",
        "NET_ADMIN",
        "PERFMON",
        "SYS_RESOURCE",
        "NET_BIND_SERVICE",
    }
    assert "SYS_ADMIN" not in sc["capabilities"]["add"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts["/sys/fs/bpf"]]["hostPath"]["path"] == "/sys/fs/bpf"
    assert (
        "hostPath" in volumes[mounts["/lib/modules"]] and "hostPath" in volumes[mounts["/usr/src"]]
    )
    env = {e["name"]: e.get("value") for e in container["env"]}
    port = int(env["NODEGATE_METRICS_ADDRESS"].rpartition(":")[2])  # one endpoint for all
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert ds["spec"]["updateStrategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    assert pod["serviceAccountName"] == "nodegate"
