"""Finding kernel headers (bpf.headers) in fake roots; the error says what to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpf.headers import HeadersError, find_headers

REL = "6.18.0-test"


def test_build_dir(tmp_path: Path) -> None:
    (tmp_path / f"lib/modules/{REL}/build/include").mkdir(parents=True)
    h = find_headers(REL, str(tmp_path))
    assert h.kind == "build" and h.path.endswith("build")


def test_kheaders(tmp_path: Path) -> None:
    (tmp_path / "sys/kernel").mkdir(parents=True)
    (tmp_path / "sys/kernel/kheaders.tar.xz").write_bytes(b"")
    assert find_headers(REL, str(tmp_path)).kind == "kheaders"


def test_debian_tree_present_says_how_to_link(tmp_path: Path) -> None:
    (tmp_path / "usr/src/linux-headers-6.1.0-9-amd64").mkdir(parents=True)
    (tmp_path / "usr/src/linux-headers-6.1.0-9-common").mkdir(parents=True)
    with pytest.raises(HeadersError) as e:
        find_headers(REL, str(tmp_path))
    msg = str(e.value)
    assert f"ln -sfn {tmp_path}/usr/src/linux-headers-6.1.0-9-amd64 /lib/modules/{REL}/build" in msg
    assert f"{tmp_path}/usr/src/linux-headers-6.1.0-9-common /lib/modules/{REL}/source" in msg


def test_nothing_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(HeadersError) as e:
        find_headers(REL, str(tmp_path))
    assert f"apt-get install linux-headers-{REL}" in str(e.value)
    assert "linux-headers-amd64" in str(e.value)
