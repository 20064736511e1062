"""l7's compiled modules: the check that refuses a build of other sources, and (under
`make test`, NODEGATE_L7_NATIVE=required) that the tests ran the compiled request path."""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

from l7 import native

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _package(tmp: Path, sources: dict[str, bytes]) -> Path:
    pkg = tmp / "l7"
    pkg.mkdir()
    for name in native.MODULES:
        (pkg / f"{name}.py").write_bytes(sources.get(name, f"# {name}\n".encode()))
    return pkg


def _built(pkg: Path) -> None:
    """What a build leaves: an extension module per source, the group's library, the digest."""
    for name in native.MODULES:
        (pkg / f"{name}{SUFFIX}").write_bytes(b"\x7fELF")
    (pkg / f"{native.LIBRARY}{SUFFIX}").write_bytes(b"\x7fELF")
    (pkg / native.DIGEST_FILE).write_text(native.sources_digest(pkg) + "\n")


@pytest.mark.parametrize(
    ("case", "stale"),
    [
        ("no extension modules", False),
        ("built from these sources", False),
        ("a source edited since", True),
        ("no digest", True),
        ("a digest of nothing", True),
        ("a stray extension module, no digest", True),
    ],
)
def test_stale_builds_are_refused(tmp_path: Path, case: str, stale: bool) -> None:
    pkg = _package(tmp_path, {})
    if case != "no extension modules":
        _built(pkg)
    if case == "a source edited since":
        (pkg / "proxy.py").write_text("# proxy, edited\n")
    elif case == "no digest":
        (pkg / native.DIGEST_FILE).unlink()
    elif case == "a digest of nothing":
        (pkg / native.DIGEST_FILE).write_text("\n")
    elif case == "a stray extension module, no digest":
        for p in native.extension_files(pkg)[1:]:
            p.unlink()
        (pkg / native.DIGEST_FILE).unlink()
    assert (native.stale_reason(pkg) is not None) is stale
    if stale:
        with pytest.raises(ImportError, match=r"build_native\.py"):
            native.check(pkg)
    else:
        native.check(pkg)


def test_the_digest_covers_every_module_and_its_name(tmp_path: Path) -> None:
    base = _package(tmp_path, {})
    digest = native.sources_digest(base)
    for name in native.MODULES:
        path = base / f"{name}.py"
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        assert native.sources_digest(base) != digest, name
        path.write_bytes(original)
    assert native.sources_digest(base) == digest


def test_importing_l7_with_a_stale_build_fails_with_what_to_do(tmp_path: Path) -> None:
    """In a fresh interpreter (l7 is imported here already): a copy of l7 whose extension
    module (a stand-in) no longer matches its sources."""
    src = Path(native.__file__).parent
    pkg = tmp_path / "l7"
    pkg.mkdir()
    for path in src.glob("*.py"):
        (pkg / path.name).write_bytes(path.read_bytes())
    (pkg / f"h1head{SUFFIX}").write_bytes(b"not a library")
    (pkg / native.DIGEST_FILE).write_text("0" * 64 + "\n")
    run = subprocess.run(
        [sys.executable, "-c", "import l7"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "ImportError: l7: the extension modules were built from other sources" in run.stderr
    assert "make setup" in run.stderr


def test_the_request_path_runs_as_built() -> None:
    """Each compiled module is imported from its extension module exactly when one is in
    place; under `make test` (NODEGATE_L7_NATIVE=required) all of them must be."""
    required = os.environ.get("NODEGATE_L7_NATIVE") == "required"
    present = {p.name.split(".")[0] for p in native.extension_files()}
    for name in native.MODULES:
        importlib.import_module(f"l7.{name}")
        assert native.compiled(name) is (name in present), name
        if required:
            assert native.compiled(name), f"l7.{name} was not compiled (make setup builds it)"
