"""A real kube-apiserver (v1.20.2, from ../shared/kube-apiserver/) for the cluster-mode tests.

The session builds the server once (cached by the recipe; a few minutes the first
time) and starts one etcd + kube-apiserver. A missing or failing build fails the
tests: they never skip. Tokens: the recipe's admin token (system:masters) and a
ServiceAccount token for system:serviceaccount:nodegate:nodegate, mapped by a
static token file (1.20 has no token controller).

Agents run as real `nodegate run --kubeconfig ...` processes, each with its own
namespace for its Leases and its own controller name, so tests do not see each
other's agents.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.kube.support import CRDS, LATE_CRD, Api, Cluster, Server  # noqa: E402

KAS_DIR = REPO / ".." / "shared" / "kube-apiserver"
SA_USER = "system:serviceaccount:nodegate:nodegate"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kube: runs against a real kube-apiserver (built once from ../shared)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/kube/" in str(item.fspath) and item.get_closest_marker("kube") is None:
            item.add_marker(pytest.mark.kube)


@pytest.fixture(scope="session")
def kube_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    build = KAS_DIR / "build-kube-apiserver.sh"
    assert build.is_file(), f"{build} is missing: the kube tests need ../shared/kube-apiserver/"
    built = subprocess.run([str(build)], capture_output=True, text=True, timeout=3600)
    assert built.returncode == 0, f"building kube-apiserver failed:\n{built.stderr[-3000:]}"
    work = tmp_path_factory.mktemp("kas")
    admin_token, sa_token = secrets.token_hex(16), secrets.token_hex(16)
    tokens = work / "tokens.csv"
    tokens.write_text(
        f"{admin_token},nodegate-admin,1000,system:masters\n"
        f'{sa_token},{SA_USER},{uuid.uuid4()},"system:serviceaccounts,system:serviceaccounts:nodegate"\n'
    )
    env = {
        **os.environ,
        "NODEGATE_KAS_TOKEN": admin_token,
        # Services are watched straight from etcd (no watch cache), so that compacting etcd
        # makes a resumed Service watch fail with 410 Gone (test_cluster.py).
        "NODEGATE_KAS_EXTRA_ARGS": f"--token-auth-file={tokens} --watch-cache-sizes=services#0",
        "TMPDIR": str(work),
    }
    script = str(KAS_DIR / "test-apiserver.sh")
    started = subprocess.run(
        [script, "start"], capture_output=True, text=True, env=env, timeout=300
    )
    assert started.returncode == 0, f"starting kube-apiserver failed:\n{started.stderr[-3000:]}"
    kubeconfig = Path(started.stdout.strip().splitlines()[-1])
    folder = kubeconfig.parent
    values = {}
    for line in (folder / "env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, _, v = line.removeprefix("export ").partition("=")
            values[k] = v.strip("'\"")
    server = Server(
        dir=folder,
        kubeconfig=kubeconfig,
        admin=Api(values["NODEGATE_KAS_URL"], values["NODEGATE_KAS_CA"], admin_token),
        sa_token=sa_token,
        env=values,
    )
    try:
        for channel_file in sorted((CRDS / "experimental").glob("*.yaml")):
            if channel_file.name in ("kustomization.yaml", LATE_CRD) or "vap_" in channel_file.name:
                continue
            server.admin.install_crd(channel_file)
        yield server
    finally:
        subprocess.run([script, "stop", str(folder)], capture_output=True, timeout=120)


@pytest.fixture
def cluster(
    kube_server: Server, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    name = "t" + uuid.uuid4().hex[:8]
    c = Cluster(kube_server, tmp_path, name)
    c.namespace(c.lease_namespace)
    try:
        yield c
    finally:
        for a in c.agents:
            a.stop()
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            for i, a in enumerate(c.agents):
                print(f"--- agent {i} log ---\n{a.log()[-6000:]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
