"""Makes `lab` importable under a bare `pytest`, and registers the `kernel`
marker if the project configuration does not (yet)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def pytest_configure(config: pytest.Config) -> None:
    markers = config.getini("markers")
    if not any(line.split(":")[0].strip() == "kernel" for line in markers):
        config.addinivalue_line("markers", "kernel: needs root and network namespaces")
