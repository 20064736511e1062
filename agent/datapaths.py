"""Building the datapaths `nodegate run` attaches, from its flags, in the order they must start.

The L4 datapath compiles its eBPF programs with bcc, which changes the process's
working directory while it compiles: it starts first, before the agent runs any
thread (the asyncio loop's executor included). The L7 datapath's workers are
separate processes and start after.
"""

from __future__ import annotations

import argparse
import logging

from agent.addresses import AddressManager
from agent.features import claimed
from agent.reconcile import Datapath, LoggingDatapath

log = logging.getLogger(__name__)

KNOWN = ("l4", "l7")


def add_arguments(run: argparse.ArgumentParser) -> None:
    g = run.add_argument_group("datapaths")
    g.add_argument(
        "--datapaths",
        default="l4,l7",
        help="datapaths to attach: l4 (eBPF TCP/UDP), l7 (HTTP proxy); 'none': translate only",
    )
    g.add_argument(
        "--l4-mode",
        default="auto",
        choices=["auto", "xdp", "xdp-generic", "tc"],
        help="where the L4 programs attach",
    )
    g.add_argument(
        "--l4-interfaces",
        default="",
        help="comma-separated interfaces for L4 (default: every non-loopback one)",
    )
    g.add_argument(
        "--snat-ports",
        default="61000-65000",
        help="source ports the L4 datapath reserves for its NAT",
    )
    g.add_argument(
        "--l4-tcp-timeout",
        type=float,
        default=3600.0,
        help="seconds an idle TCP flow keeps its backend",
    )
    g.add_argument(
        "--l4-tcp-fin-timeout", type=float, default=10.0, help="seconds a TCP flow lives after FIN"
    )
    g.add_argument(
        "--l4-udp-timeout",
        type=float,
        default=30.0,
        help="seconds an idle UDP flow keeps its backend",
    )
    g.add_argument(
        "--l4-ct-size",
        type=int,
        default=131072,
        help="connection-tracking entries (changing it needs `nodegate cleanup`)",
    )
    g.add_argument("--l4-max-services", type=int, default=64, help="L4 listeners the maps hold")
    g.add_argument(
        "--l4-max-backends", type=int, default=256, help="backend endpoints the maps hold"
    )
    g.add_argument(
        "--l4-maglev-size", type=int, default=16381, help="Maglev table size per listener (a prime)"
    )
    g.add_argument(
        "--l4-ct-sample-interval",
        type=float,
        default=10.0,
        help="seconds between walks of conntrack for its occupancy metrics",
    )
    g.add_argument(
        "--bpf-pin-dir", default="/sys/fs/bpf/nodegate", help="where the eBPF maps are pinned"
    )
    g.add_argument(
        "--l7-workers", type=int, default=None, help="L7 worker processes (default: one per core)"
    )
    g.add_argument(
        "--access-log",
        action="store_true",
        help="L7: one JSON line per request on stderr (gateway, listener, route, backend, status)",
    )


def _names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip() and n.strip() != "none"]
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise SystemExit(
            f"nodegate: unknown datapath(s) {', '.join(unknown)} (known: {', '.join(KNOWN)})"
        )
    return names


def start(args: argparse.Namespace) -> tuple[list[Datapath], frozenset[str]]:
    """Start the datapaths the flags ask for. Returns them, in apply order, and the features
    they claim."""
    names = _names(args.datapaths)
    datapaths: list[Datapath] = []
    if args.gateway_interface:
        datapaths.append(AddressManager(args.gateway_interface))
    if "l4" in names:
        from bpf.datapath import L4Datapath

        low, _, high = args.snat_ports.partition("-")
        l4 = L4Datapath(
            interfaces=[i for i in args.l4_interfaces.split(",") if i] or None,
            mode=args.l4_mode,
            snat_ports=(int(low), int(high or low)),
            tcp_timeout=args.l4_tcp_timeout,
            tcp_fin_timeout=args.l4_tcp_fin_timeout,
            udp_timeout=args.l4_udp_timeout,
            ct_size=args.l4_ct_size,
            max_services=args.l4_max_services,
            max_backends=args.l4_max_backends,
            maglev_size=args.l4_maglev_size,
            pin_dir=args.bpf_pin_dir,
            ct_sample_interval=args.l4_ct_sample_interval,
        )
        l4.start()
        log.info(
            "l4 datapath attached: %s",
            ", ".join(f"{i}={m}" for i, m in l4.attached.items()) or "no interface",
        )
        datapaths.append(l4)
    if "l7" in names:
        from l7.engine import L7Datapath

        l7 = L7Datapath(workers=args.l7_workers, access_log=args.access_log)
        l7.start()
        log.info("l7 datapath started: %d worker(s)", l7.count)
        datapaths.append(l7)
    if "l4" in names:
        l4.start_sampler()  # a thread: only once bcc has compiled
    if not names:
        datapaths.append(LoggingDatapath())
    return datapaths, claimed(names)


def stop(datapaths: list[Datapath]) -> None:
    """Stop what runs in processes of ours (L7 workers). The L4 programs and pinned maps stay,
    so an agent restart keeps established flows; `nodegate cleanup` removes them."""
    for d in datapaths:
        stopper = getattr(d, "stop", None)
        if stopper is not None and d.name != "l4":
            try:
                stopper()
            except Exception:
                log.exception("stopping datapath %s", d.name)
