"""The request path's modules compiled to C by mypyc, and the check that what is compiled
is what the sources say.

The modules named in MODULES are plain typed Python and run as such; built with mypyc
(`scripts/build_native.py`, which `make setup` runs whenever their sources changed) they
also exist as extension modules beside their sources in l7/, which Python imports in
preference to the .py files. Compiled, the request path costs ~40% less CPU
(bench.l7.inprocess: 16.5 -> 9.5 µs per request): calls between these modules become C
calls and attribute reads of their classes struct reads.

An extension module built from older sources would run code that is no longer there,
silently: the build writes DIGEST_FILE, the sha256 of the sources it compiled, and
importing l7 (`check()`, from l7/__init__.py) refuses to go on when extension modules are
present and their digest is not the current sources' one.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent

# The modules every request runs through, in the order they import each other (leaves
# first). Compiled together: calls from one to another are direct C calls.
MODULES = (
    "h1head",
    "h1body",
    "h1client",
    "h1server",
    "stats",
    "tick",
    "filters",
    "router",
    "upstream",
    "exchange",
    "proxy",
    "server",
)

# Where the build records what it compiled (next to the extension modules).
DIGEST_FILE = "native.digest"
# mypyc's shared library for the group (its runtime and the modules' code), in l7/, and
# the name of its module there.
GROUP = "l7._native"
LIBRARY = GROUP.rsplit(".", 1)[1] + "__mypyc"


def sources_digest(package: Path = PACKAGE) -> str:
    """sha256 over the compiled modules' names and sources, in MODULES order."""
    h = hashlib.sha256()
    for name in MODULES:
        h.update(name.encode() + b"\0")
        h.update((package / f"{name}.py").read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def extension_files(package: Path = PACKAGE) -> list[Path]:
    """The extension modules in `package` (ours or stale ones)."""
    return sorted(
        {p for suffix in importlib.machinery.EXTENSION_SUFFIXES for p in package.glob(f"*{suffix}")}
    )


def compiled(module: str) -> bool:
    """Whether l7.<module> was imported from an extension module."""
    mod = sys.modules.get(f"l7.{module}")
    origin = getattr(mod, "__file__", None) or ""
    return origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def stale_reason(package: Path = PACKAGE) -> str | None:
    """Why the extension modules in `package` must not be imported, or None when there are
    none or they were built from the current sources."""
    if not extension_files(package):
        return None
    stamp = package / DIGEST_FILE
    try:
        built = stamp.read_text().strip()
    except OSError:
        return f"{stamp} is missing: the extension modules beside it are of an unknown build"
    try:
        current = sources_digest(package)
    except OSError as exc:
        return f"cannot read the sources the extension modules were built from: {exc}"
    if built != current:
        return "the extension modules were built from other sources than the ones in place"
    return None


def check(package: Path = PACKAGE) -> None:
    """Refuse to import l7 with extension modules built from other sources."""
    reason = stale_reason(package)
    if reason is not None:
        raise ImportError(
            f"l7: {reason} ({package}). Rebuild them with `make setup` (or "
            "`python scripts/build_native.py`), or remove them with "
            "`python scripts/build_native.py --clean` to run the sources uncompiled."
        )
