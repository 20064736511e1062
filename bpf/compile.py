"""Compiling the datapath with bcc. The only module that imports bcc.

The C lives in bpf/nodegate.c and bpf/lib/*.h. bcc rewrites map calls
(`ng_ct.lookup(...)`) only in its main file, so generate_source() inlines
our own headers into one text, with #line markers: a compile error names
the real file and line (bpf/lib/lb4.h:120), and so does the verifier log.
Configuration reaches the C as -D constants (bpf/options.py).

Map and program handles leave this module as plain fds and ctypes types
(built by bcc from the C structs, the one definition); nothing else in
nodegate touches a bcc object.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bcc import BPF

from bpf.headers import find_headers
from bpf.maps import MapHandle

SOURCE_DIR = Path(__file__).resolve().parent
ENTRY = SOURCE_DIR / "nodegate.c"
PROGRAMS = {"ng_xdp": BPF.XDP, "ng_tc": BPF.SCHED_CLS, "ng_pass": BPF.XDP}
MAPS = (
    "ng_svc",
    "ng_backends",
    "ng_maglev",
    "ng_ct",
    "ng_stats",
    "ng_params",
    "ng_svc6",
    "ng_backends6",
    "ng_ct6",
)

_LOCAL_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')


class CompileError(RuntimeError):
    """bcc could not compile or the verifier refused; the message has the diagnostics."""


@dataclass
class Compiled:
    """Loaded programs (fd by name) and maps; keeps the bcc module alive."""

    progs: dict[str, int]
    maps: dict[str, MapHandle]
    _bpf: Any = field(repr=False)

    def close(self) -> None:
        """Drops our references: attached programs and pinned maps stay."""
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None


def generate_source(entry: Path = ENTRY) -> str:
    """entry with its "lib/..." includes inlined, #line-marked; <system> includes stay."""
    out: list[str] = []
    seen: set[Path] = set()

    def emit(path: Path) -> None:
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            m = _LOCAL_INCLUDE.match(line)
            if not m:
                out.append(line)
                continue
            inc = (path.parent / m.group(1)).resolve()
            if not inc.exists():
                inc = (entry.parent / m.group(1)).resolve()
            if inc not in seen:
                seen.add(inc)
                out.append(f'#line 1 "{inc}"')
                emit(inc)
            out.append(f'#line {lineno + 1} "{path}"')

    out.append(f'#line 1 "{entry}"')
    emit(entry)
    return "\n".join(out) + "\n"


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Collects what libbcc and clang write on fd 2 (diagnostics, verifier logs)."""
    got: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield got
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            got.append(tmp.read().decode(errors="replace"))


def compile_datapath(
    cflags: list[str], programs: tuple[str, ...] = tuple(PROGRAMS), entry: Path = ENTRY
) -> Compiled:
    """Compiles entry (nodegate.c) with cflags, loads the programs; pinned
    maps are reopened (or created and pinned) by bcc. The pin directory must
    exist. Raises HeadersError or CompileError."""
    find_headers()  # a clear error before bcc's unclear one
    text = generate_source(entry)
    with _captured_stderr() as diag:
        try:
            b = BPF(text=text.encode(), cflags=list(cflags))
        except Exception as e:
            err: Exception | None = e
        else:
            err = None
    if err is not None:
        raise CompileError(f"bcc could not compile {entry}:\n{''.join(diag).strip()}") from err
    progs: dict[str, int] = {}
    try:
        for name in programs:
            with _captured_stderr() as diag:
                try:
                    fn = b.load_func(name.encode(), PROGRAMS[name])
                except Exception as e:
                    err = e
                else:
                    err = None
            if err is not None:
                log = "".join(diag).strip()
                raise CompileError(f"the kernel refused {name} ({entry}):\n{log[-6000:]}") from err
            progs[name] = fn.fd
        maps = {}
        for name in MAPS:
            t = b[name.encode()]
            percpu = name == "ng_stats"
            maps[name] = MapHandle(
                name=name,
                fd=t.map_fd,
                key_type=t.Key,
                # bcc's per-CPU Leaf is the per-CPU array; sLeaf is the C struct.
                leaf_type=t.sLeaf if percpu else t.Leaf,
                max_entries=t.max_entries,
                percpu=percpu,
            )
    except BaseException:
        b.cleanup()
        raise
    return Compiled(progs=progs, maps=maps, _bpf=b)
