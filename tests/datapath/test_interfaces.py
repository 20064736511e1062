"""Interfaces that appear after start get the programs at the next apply (pods come and go,
and replies from a new backend arrive through its interface); gone ones are forgotten."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from lab.netns import Lab
from tests.datapath.conftest import pin_dir_for

REPO = Path(__file__).resolve().parents[2]

CODE = textwrap.dedent(
    """
    import json, subprocess, sys
    from agent.nodeconfig import NodeConfig
    from bpf.datapath import L4Datapath, cleanup
    pin = sys.argv[1]
    dp = L4Datapath(mode="tc", pin_dir=pin)
    dp.start()
    try:
        seen = {"start": sorted(dp.attached)}
        subprocess.run(["ip", "link", "add", "ngnew0", "type", "veth", "peer", "name", "ngnew1"], check=True)
        for name in ("ngnew0", "ngnew1"):
            subprocess.run(["ip", "link", "set", name, "up"], check=True)
        dp.apply(NodeConfig(), 1)
        seen["added"] = sorted(dp.attached)
        seen["filter"] = subprocess.run(
            ["tc", "filter", "show", "dev", "ngnew0", "ingress"], capture_output=True, text=True
        ).stdout
        subprocess.run(["ip", "link", "del", "ngnew0"], check=True)
        dp.apply(NodeConfig(), 2)
        seen["removed"] = sorted(dp.attached)
    finally:
        dp.stop()
        cleanup(pin)
    print(json.dumps(seen))
    """
)


@pytest.mark.kernel
def test_new_interfaces_are_attached_at_the_next_apply(lab: Lab, pin_root: None) -> None:
    out = lab.gateway.check_output(
        [sys.executable, "-c", CODE, pin_dir_for("ifaces")], timeout=180, cwd=REPO
    )
    seen = json.loads(out.strip().splitlines()[-1])
    assert "ngnew0" not in seen["start"] and len(seen["start"]) == 2
    assert set(seen["added"]) == set(seen["start"]) | {"ngnew0", "ngnew1"}
    assert "direct-action" in seen["filter"]
    assert seen["removed"] == seen["start"]
