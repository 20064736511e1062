"""The `nodegate` command.

    nodegate status --config DIR   print every object's computed status as YAML
    nodegate run --config DIR      run the agent on a folder of YAML (standalone mode)
    nodegate run [--kubeconfig F]  cluster mode: watch the API server (in a Pod, or with a
                                   kubeconfig), write status as the Lease holder (agent.cluster)
    nodegate top [--url URL]       live per-listener rates from an agent's /metrics (agent.top)

Exit codes: 0 ok; 1 some input could not be read (the rest is still reported);
2 the command line or the folder itself is unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import faulthandler
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from agent import cluster, logs, metrics, top
from agent import datapaths as agent_datapaths
from agent.addresses import AddressManager
from agent.health import DEFAULT_ADDRESS, HealthServer, parse_address
from agent.model import ObjectKey
from agent.node import node_addresses, node_name
from agent.reconcile import Datapath, Reconciler
from agent.sources.files import FileSource
from agent.status import documents, now, write_status_file
from agent.store import Store
from agent.translate import DEFAULT_CONTROLLER, TranslateOptions, translate

log = logging.getLogger("nodegate")


def _options(args: argparse.Namespace) -> TranslateOptions:
    return TranslateOptions(
        controller_name=args.controller_name,
        node_name=args.node_name or node_name(),
        node_addresses=tuple(args.node_address) if args.node_address else node_addresses(),
        address_pools=tuple(args.address_pool),
    )


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a CIDR: {value!r}") from e


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an IP address: {value!r}") from e


def _address(value: str) -> str:
    if value:
        try:
            parse_address(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from e
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nodegate", description="Gateway API on this node: eBPF L4 and an HTTP proxy."
    )
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=None,
        help="folder of Gateway API YAML (standalone mode; `run` without it: cluster mode)",
    )
    common.add_argument(
        "--controller-name",
        default=DEFAULT_CONTROLLER,
        help=f"GatewayClass controllerName to serve (default {DEFAULT_CONTROLLER})",
    )
    common.add_argument(
        "--address-pool",
        type=_cidr,
        action="append",
        default=[],
        metavar="CIDR",
        help="addresses Gateways may take (repeatable)",
    )
    common.add_argument(
        "--node-address",
        type=_ip,
        action="append",
        default=[],
        metavar="IP",
        help="this node's addresses (default: discovered)",
    )
    common.add_argument(
        "--node-name", default="", help="this node's name (default: $NODE_NAME or the hostname)"
    )
    _log_arguments(common)
    sub.add_parser("status", parents=[common], help="print every object's computed status as YAML")
    run = sub.add_parser("run", parents=[common], help="run the agent")
    run.add_argument(
        "--interval", type=float, default=0.5, help="seconds between scans of the folder"
    )
    run.add_argument(
        "--debounce", type=float, default=0.2, help="quiet seconds before translating a change"
    )
    run.add_argument(
        "--gateway-interface",
        default="",
        metavar="IFACE",
        help="add each served Gateway address to this interface (removed when no longer served)",
    )
    run.add_argument(
        "--status-file",
        type=Path,
        default=None,
        help="write every object's status here as YAML (replaced atomically on each change)",
    )
    run.add_argument(
        "--metrics-address",
        default=os.environ.get("NODEGATE_METRICS_ADDRESS", DEFAULT_ADDRESS),
        type=_address,
        metavar="HOST:PORT",
        help=f"serve /metrics, /healthz and /readyz here, '' for none "
        f"(default {DEFAULT_ADDRESS}; env NODEGATE_METRICS_ADDRESS)",
    )
    cluster.add_arguments(run)
    agent_datapaths.add_arguments(run)
    cleanup = sub.add_parser(
        "cleanup",
        help="remove the eBPF programs, pinned maps, reserved ports and addresses nodegate made",
    )
    cleanup.add_argument(
        "--bpf-pin-dir", default="/sys/fs/bpf/nodegate", help="where the eBPF maps are pinned"
    )
    cleanup.add_argument(
        "--gateway-interface",
        default="",
        metavar="IFACE",
        help="also remove the Gateway addresses nodegate added to IFACE",
    )
    _log_arguments(cleanup)
    top.add_arguments(
        sub.add_parser("top", help="live per-listener rates of both datapaths, from /metrics")
    )
    return p


def _log_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", default="info", choices=logs.LEVELS)
    p.add_argument(
        "--log-format",
        default=os.environ.get("NODEGATE_LOG_FORMAT") or "kv",
        choices=logs.FORMATS,
        help="one line per event: key=value (logfmt) or JSON (default kv; env NODEGATE_LOG_FORMAT)",
    )


def cmd_status(args: argparse.Namespace) -> int:
    if args.config is None:
        print("nodegate: status needs --config DIR", file=sys.stderr)
        return 2
    if not args.config.is_dir():
        print(f"nodegate: {args.config}: not a folder", file=sys.stderr)
        return 2
    store = Store()
    errors = FileSource(args.config, store).scan()
    result = translate(store.snapshot(), _options(args))
    yaml.safe_dump_all(
        list(documents(store.snapshot(), result.statuses, now())), sys.stdout, sort_keys=False
    )
    if errors:
        print(f"nodegate: {len(errors)} problem(s) reading {args.config}:", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
        return 1
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if args.config is not None and not args.config.is_dir():
        print(f"nodegate: {args.config}: not a folder", file=sys.stderr)
        return 2
    store = Store()
    status_file: Path | None = args.status_file

    def write_status(statuses: Mapping[ObjectKey, dict[str, Any]]) -> None:
        if status_file is not None:
            write_status_file(status_file, store.snapshot(), statuses)

    try:
        datapaths, features = agent_datapaths.start(args)
    except Exception as e:
        print(f"nodegate: cannot start the datapaths: {e}", file=sys.stderr)
        return 2
    options = dataclasses.replace(_options(args), features=features)
    server = _serve_metrics(args.metrics_address, datapaths)
    if args.config is None:
        try:
            return cluster.run(args, options, datapaths)
        finally:
            agent_datapaths.stop(datapaths)
            if server is not None:
                server.close()
    reconciler = Reconciler(
        source=FileSource(args.config, store, exclude=(status_file,) if status_file else ()),
        store=store,
        options=options,
        datapaths=datapaths,
        debounce=args.debounce,
        interval=args.interval,
        on_status=write_status,
    )
    log.info("standalone mode: watching %s (controller %s)", args.config, args.controller_name)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await reconciler.run(stop)

    try:
        asyncio.run(main())
    finally:
        agent_datapaths.stop(datapaths)
        if server is not None:
            server.close()
    log.info("stopped")
    return 0


def _serve_metrics(address: str, datapaths: list[Datapath]) -> HealthServer | None:
    """The metrics endpoint, started after the datapaths (bcc compiles before any thread).
    An address that cannot be bound is logged, not fatal: the datapaths serve without it."""
    metrics.register_datapaths(datapaths)
    if not address:
        return None
    try:
        return HealthServer.start(address)
    except OSError as e:
        log.error("metrics endpoint %s: %s; running without it", address, e)
        return None


def cmd_cleanup(args: argparse.Namespace) -> int:
    from bpf.datapath import cleanup

    for item in cleanup(args.bpf_pin_dir):
        print(f"removed {item}")
    if args.gateway_interface:
        for address in AddressManager(args.gateway_interface).cleanup():
            print(f"removed address {address} from {args.gateway_interface}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # `kill -USR1 <pid>` prints every thread's stack to stderr: for a stuck agent.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if args.command != "top":
        logs.configure(args.log_format, args.log_level)
    try:
        if args.command == "cleanup":
            return cmd_cleanup(args)
        if args.command == "top":
            return top.main(args)
        return cmd_status(args) if args.command == "status" else cmd_run(args)
    except BrokenPipeError:  # `nodegate status | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
