"""Fixtures of the conformance status test, and its one-line verdict at the end of the session."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lab import certs  # noqa: E402
from lab.conformance.cases import Substitutions, Suite, load_suite  # noqa: E402


@dataclass
class StatusReport:
    """Per-case outcome of the status test, for the summary line."""

    passed: dict[str, bool] = field(default_factory=dict)
    # case name -> check types a status test cannot judge
    unsupported: dict[str, list[str]] = field(default_factory=dict)
    # case name -> claimed features that make upstream skip it (counted as passed)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def record(
        self, case: str, passed: bool, unsupported: list[str], skipped_for: list[str] | None = None
    ) -> None:
        self.passed[case] = passed
        if unsupported:
            self.unsupported[case] = unsupported
        if skipped_for:
            self.skipped[case] = skipped_for


REPORT_KEY = pytest.StashKey[StatusReport]()


@pytest.fixture(scope="session")
def status_report(request: pytest.FixtureRequest) -> StatusReport:
    return request.config.stash.setdefault(REPORT_KEY, StatusReport())


@pytest.fixture(scope="session")
def suite() -> Suite:
    return load_suite()


@pytest.fixture(scope="session")
def subs() -> Substitutions:
    return Substitutions()


@pytest.fixture(scope="session")
def generated(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The suite's generated Secrets/ConfigMaps, cached across runs in pytest's cache folder."""
    cache = request.config.cache
    cache_dir = cache.mkdir("nodegate-certs") if cache is not None else None
    return certs.generated_objects(cache_dir)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = config.stash.get(REPORT_KEY, None)
    if report is None or not report.passed:
        return
    ok = sum(report.passed.values())
    terminalreporter.write_line(f"status conformance: {ok}/{len(report.passed)} cases passed")
    if report.skipped:
        listed = ", ".join(f"{case} ({', '.join(f)})" for case, f in sorted(report.skipped.items()))
        terminalreporter.write_line(
            f"  passed without checks, as upstream skips them when a feature is claimed: {listed}"
        )
    if report.unsupported:
        listed = ", ".join(
            f"{case} ({', '.join(checks)})" for case, checks in sorted(report.unsupported.items())
        )
        terminalreporter.write_line(
            f"  not passed for lack of generated objects, whatever else holds: {listed}"
        )
    terminalreporter.write_line(
        "  namespaces-ready judges Gateways only: Pod readiness is out of scope for the status test"
    )
