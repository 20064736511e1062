"""Finding kernel headers for bcc, or saying exactly what to install.

bcc 0.26 compiles against /lib/modules/$(uname -r)/build (it chdirs there,
so extra -I flags alone cannot replace it) or, failing that, the kernel's
own /sys/kernel/kheaders.tar.xz (CONFIG_IKHEADERS). Debian splits headers
into linux-headers-<ver>-<flavour> (build) and -common (source); when the
running kernel has none of its own, a Debian tree of another version works
for nodegate's programs (they use UAPI headers only) once /lib/modules
links to it, which is what `make setup` does.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path


class HeadersError(RuntimeError):
    """No usable kernel headers; the message says what to install."""


@dataclass(frozen=True)
class Headers:
    kind: str  # "build" (/lib/modules/.../build) or "kheaders"
    path: str


def _usable(build: Path) -> bool:
    return (build / "include").is_dir() or (build / "arch").is_dir()


def find_headers(release: str | None = None, root: str = "/") -> Headers:
    """The headers bcc will use, or HeadersError."""
    rel = release or platform.release()
    base = Path(root)
    build = base / "lib/modules" / rel / "build"
    if _usable(build):
        return Headers("build", os.path.realpath(build))
    kheaders = base / "sys/kernel/kheaders.tar.xz"
    if kheaders.exists():
        return Headers("kheaders", str(kheaders))
    raise HeadersError(_advice(rel, base, build))


def _advice(rel: str, base: Path, build: Path) -> str:
    trees = sorted((base / "usr/src").glob("linux-headers-*"))
    flavours = [t for t in trees if not t.name.endswith("-common")]
    lines = [f"no kernel headers for kernel {rel}: {build} does not exist"]
    if flavours:
        tree = flavours[-1]
        common = tree.parent / (tree.name.rsplit("-", 1)[0] + "-common")
        lines += [
            f"a Debian header tree is installed ({tree}); link it (nodegate's programs use",
            "UAPI headers only, so another version works):",
            f"  mkdir -p /lib/modules/{rel}",
            f"  ln -sfn {tree} /lib/modules/{rel}/build",
            f"  ln -sfn {common} /lib/modules/{rel}/source",
            "(`make setup` does this)",
        ]
    else:
        lines += [
            "install the headers of the running kernel:",
            f"  apt-get install linux-headers-{rel}",
            "or, when the distribution has no package for this kernel, Debian's generic ones,",
            "then link them under /lib/modules (`make setup` does both):",
            "  apt-get install linux-headers-amd64",
            "or build the kernel with CONFIG_IKHEADERS=m (modprobe kheaders)",
        ]
    return "\n".join(lines)
