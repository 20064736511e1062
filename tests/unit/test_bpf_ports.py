"""ip_local_reserved_ports bookkeeping (bpf.ports) on a scratch file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpf import ports


@pytest.mark.parametrize(
    ("text", "want"),
    [("", set()), ("\n", set()), ("8080", {8080}), ("1-3,7", {1, 2, 3, 7}), ("5,6-7\n", {5, 6, 7})],
)
def test_parse(text: str, want: set[int]) -> None:
    assert ports.parse(text) == want


@pytest.mark.parametrize(
    ("given", "want"),
    [(set(), ""), ({1}, "1"), ({1, 2, 3, 7}, "1-3,7"), ({9, 10, 12, 13}, "9-10,12-13")],
)
def test_format(given: set[int], want: str) -> None:
    assert ports.format_ports(given) == want


def test_reserve_and_release_keep_the_rest(tmp_path: Path) -> None:
    f = tmp_path / "reserved"
    f.write_text("8080,9000-9001\n")
    assert ports.reserve(61000, 61003, str(f)) is True
    assert f.read_text().strip() == "8080,9000-9001,61000-61003"
    assert ports.reserve(61000, 61003, str(f)) is False  # already there: not ours
    ports.release(61000, 61003, str(f))
    assert f.read_text().strip() == "8080,9000-9001"
