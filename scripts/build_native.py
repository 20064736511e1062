"""Compile l7's request-path modules (l7/native.py's MODULES) with mypyc, in place.

    python scripts/build_native.py          build when the sources changed since the last build
    python scripts/build_native.py --force  build anyway
    python scripts/build_native.py --clean  remove the extension modules (run uncompiled)

Needs mypy (which brings mypyc), a C compiler and Python's headers (Debian: gcc,
python3-dev; `make setup` installs them). The extension modules and l7/native.digest
land beside the sources in l7/; C sources and objects go to build/native/ (git-ignored).
Takes ~40 s on two cores; a run that finds the build current takes milliseconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _load_native() -> ModuleType:
    """The checkout's l7/native.py, loaded by its path: importing the package l7 would run
    its check, which refuses stale extension modules, the very ones to rebuild here."""
    spec = importlib.util.spec_from_file_location("_l7_native", ROOT / "l7" / "native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


native = _load_native()
# The extension modules a build leaves in l7/: one per module and the group's library.
EXPECTED = {*native.MODULES, native.LIBRARY}


def clean() -> None:
    for path in native.extension_files():
        path.unlink()
    (native.PACKAGE / native.DIGEST_FILE).unlink(missing_ok=True)


def missing_tools() -> list[str]:
    """What the build needs and this machine lacks, as Debian packages to install."""
    out = []
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        out.append("mypy (pip install mypy; in .venv: make setup)")
    if shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]) is None:
        out.append("gcc")
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        out.append("python3-dev")
    return out


def build() -> None:
    from mypyc.build import mypycify
    from setuptools import setup  # type: ignore[import-untyped]

    sources = [f"l7/{name}.py" for name in native.MODULES]
    digest = native.sources_digest()
    clean()
    build_dir = ROOT / "build" / "native"
    build_dir.mkdir(parents=True, exist_ok=True)
    cwd = Path.cwd()
    os.chdir(ROOT)  # mypyc names modules by their paths from here
    try:
        extensions = mypycify(
            # pyproject.toml's mypy settings, but its overrides name modules this build
            # does not see, which mypy would report (and mypyc then stop at).
            ["--no-warn-unused-configs", *sources],
            opt_level="3",
            group_name=native.GROUP,
            target_dir=str(build_dir / "c"),
        )
        setup(
            name="nodegate-native",
            ext_modules=extensions,
            script_args=[
                "--quiet",
                "build_ext",
                "--inplace",
                "--build-temp",
                str(build_dir / "obj"),
            ],
        )
    finally:
        os.chdir(cwd)
    missing = EXPECTED - {p.name.split(".")[0] for p in native.extension_files()}
    if missing:
        raise SystemExit(f"build_native: error: the build made no {', '.join(sorted(missing))}")
    (native.PACKAGE / native.DIGEST_FILE).write_text(digest + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="build even if current")
    parser.add_argument("--clean", action="store_true", help="remove the extension modules")
    args = parser.parse_args(argv)
    if args.clean:
        clean()
        print("build_native: l7 runs uncompiled", file=sys.stderr)
        return 0
    built = {p.name.split(".")[0] for p in native.extension_files()}
    if not args.force and native.stale_reason() is None and built >= EXPECTED:
        return 0
    lacking = missing_tools()
    if lacking:
        print(
            "build_native: error: compiling l7 needs " + ", ".join(lacking) + " (Debian "
            "packages but mypy; `make setup` installs all of them); or run l7 uncompiled",
            file=sys.stderr,
        )
        return 1
    print(f"build_native: compiling {len(native.MODULES)} l7 modules with mypyc", file=sys.stderr)
    build()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
