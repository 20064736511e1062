"""`python -m lab.conformance` (`make conformance`): replay the upstream cases against nodegate.

    python -m lab.conformance [--cases NAME,...] [--report out/conformance.json] [--parallel N]

Exit status: 0 when no case of a claimed feature failed; 1 otherwise; 2 when
the run could not start (lab, agent, GatewayClass never Accepted).
Cases come from NODEGATE_CONFORMANCE_DIR (default ../shared/conformance).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lab.conformance.runner import Runner, RunnerOptions


def main(argv: Sequence[str] | None = None) -> int:
    if os.geteuid() != 0:
        print("lab.conformance: needs root (network namespaces)", file=sys.stderr)
        return 2
    p = argparse.ArgumentParser(prog="python -m lab.conformance")
    p.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    p.add_argument("--report", type=Path, default=Path("out/conformance.json"))
    p.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="run up to N cases at once among those upstream marks parallel",
    )
    p.add_argument("--keep-state", action="store_true", help="keep the config folder and logs")
    args = p.parse_args(argv)
    options = RunnerOptions(
        cases=[c.strip() for c in args.cases.split(",") if c.strip()],
        parallel=max(1, args.parallel),
        keep_state=args.keep_state,
        log=lambda line: print(line, flush=True),
    )
    try:
        with Runner(options) as runner:
            report = runner.run_all()
    except (RuntimeError, KeyError, OSError) as e:
        print(f"lab.conformance: {e}", file=sys.stderr)
        return 2
    print()
    for line in report.lines():
        print(line)
    report.write_json(args.report)
    print(f"report written to {args.report}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
