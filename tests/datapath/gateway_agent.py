"""A stand-in for the agent on the lab's gateway node: runs L4Datapath.

    python -m tests.datapath.gateway_agent --netns NS --pin-dir DIR [--mode M] CONFIG.json

It enters the gateway's network namespace with setns(CLONE_NEWNET) only
(not `ip netns exec`, which would also give it a fresh mount namespace and
so a fresh /sys/fs/bpf, losing the pins between runs), starts the datapath,
applies CONFIG (a NodeConfig as JSON) and prints one JSON line. Then it
reads commands on stdin, one per line, answering each with a JSON line:

    apply FILE GEN   counters   exit

SIGKILL leaves programs and pinned maps in place, like the real agent's.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import dataclasses
import json
import os
import sys
from pathlib import Path

CLONE_NEWNET = 0x40000000


def enter_netns(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--netns", required=True)
    ap.add_argument("--pin-dir", required=True)
    ap.add_argument("--mode", default="tc")
    ap.add_argument("--udp-timeout", type=float, default=30.0)
    ap.add_argument("--tcp-timeout", type=float, default=3600.0)
    ap.add_argument("--tcp-fin-timeout", type=float, default=10.0)
    ap.add_argument("--maglev-size", type=int, default=16381)
    ap.add_argument("--generation", type=int, default=1)
    ap.add_argument("config")
    args = ap.parse_args(argv)
    enter_netns(args.netns)

    from agent.nodeconfig import NodeConfig
    from bpf.datapath import L4Datapath

    def load(path: str) -> NodeConfig:
        return NodeConfig.model_validate_json(Path(path).read_text())

    dp = L4Datapath(
        mode=args.mode,
        pin_dir=args.pin_dir,
        udp_timeout=args.udp_timeout,
        tcp_timeout=args.tcp_timeout,
        tcp_fin_timeout=args.tcp_fin_timeout,
        maglev_size=args.maglev_size,
    )
    dp.start()

    async def apply_in_loop(path: str, generation: int) -> None:
        # As the agent does: apply() is called from a running event loop.
        dp.apply(load(path), generation)

    asyncio.run(apply_in_loop(args.config, args.generation))

    def say(obj: object) -> None:
        print(json.dumps(obj, default=str), flush=True)

    say({"ready": True, "attached": dp.attached, "skipped": dp.skipped})
    for line in sys.stdin:
        cmd, *rest = line.split()
        try:
            if cmd == "apply":
                asyncio.run(apply_in_loop(rest[0], int(rest[1])))
                say({"ok": True})
            elif cmd == "counters":
                dp.sample_conntrack()
                say(dataclasses.asdict(dp.counters()) | {"ok": True})
            elif cmd == "exit":
                break
            else:
                say({"ok": False, "error": f"unknown command {cmd}"})
        except Exception as e:  # reported to the test, which decides
            say({"ok": False, "error": f"{type(e).__name__}: {e}"})
    dp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
