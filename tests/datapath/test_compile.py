"""Compiling: the generated source maps back to the real files, and a
compile error names the file and line it comes from."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bpf.bpffs import ensure_pin_dir
from bpf.compile import ENTRY, SOURCE_DIR, CompileError, compile_datapath, generate_source
from bpf.options import Options
from tests.datapath.conftest import pin_dir_for

SMALL = dict(max_services=2, max_backends=2, maglev_size=7, ct_size=64)


def test_generated_source_inlines_every_lib_header_with_line_markers() -> None:
    text = generate_source()
    headers = sorted(p.name for p in (SOURCE_DIR / "lib").glob("*.h"))
    for h in headers:
        assert f'#line 1 "{SOURCE_DIR / "lib" / h}"' in text, h
    assert not re.search(r'^\s*#\s*include\s+"', text, re.M), "no local include is left to bcc"
    assert f'#line 1 "{ENTRY}"' in text


@pytest.mark.kernel
def test_a_compile_error_names_the_real_file_and_line(tmp_path: Path, pin_root: None) -> None:
    src = tmp_path / "bpf"
    shutil.copytree(SOURCE_DIR / "lib", src / "lib")
    shutil.copy(ENTRY, src / "nodegate.c")
    stats = src / "lib" / "stats.h"
    lines = stats.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "s->new_flows++" in line)
    lines[at] = "\t\ts->new_flows += no_such_thing;"
    stats.write_text("\n".join(lines) + "\n")
    opt = Options(pin_dir=pin_dir_for("compile"), **SMALL)  # type: ignore[arg-type]
    ensure_pin_dir(opt.pin_dir)
    with pytest.raises(CompileError) as e:
        compile_datapath(opt.cflags(), entry=src / "nodegate.c")
    assert f"{stats}:{at + 1}:" in str(e.value)
    assert "no_such_thing" in str(e.value)
