"""README.md's feature list is the GatewayClass's: every claimed feature is named there
(in backticks, under "What works today"), and nothing else in that list is."""

from __future__ import annotations

import re
from pathlib import Path

from agent.features import CLAIMS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_exactly_the_claimed_features() -> None:
    text = README.read_text()
    section = text.split("## What works today", 1)[1].split("\nNot yet:", 1)[0]
    listed = set(re.findall(r"`([A-Za-z0-9]+)`", section))
    claimed = set().union(*CLAIMS.values())
    assert listed == claimed, (
        f"missing: {sorted(claimed - listed)}, not claimed: {sorted(listed - claimed)}"
    )
