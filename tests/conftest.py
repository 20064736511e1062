"""Suite-wide rules: a skipped test is a failure.

nodegate's tests never skip: a kernel test whose kernel, bcc or headers are
missing must fail, not vanish from the count (CI runs them as root). Expected
failures (strict xfail, with the reason) are the one way to record a known gap.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped tests count as failures in nodegate ({reason})"
