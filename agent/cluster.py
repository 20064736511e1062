"""Cluster mode of `nodegate run`: the API server is the source, one agent writes status.

Started by `nodegate run` without `--config` (see agent.cli). Wires the kube source,
the reconcile loop (this node's datapaths) and the status writer (Lease holder only).
The DaemonSet probes the agent's one HTTP endpoint (agent.health, --metrics-address):

- GET /healthz: 200 while the reconcile loop runs, or while it waits for the first
  complete list;
- GET /readyz: 200 once every served kind has been listed and this node's datapaths
  applied the resulting configuration (a readiness gate this module adds).

Invariants:
- Nothing is translated or applied before the first complete list of every served
  kind: an empty or partial store must never replace what the datapaths (and their
  pinned maps) are serving.
- Every flag has an environment variable (NODEGATE_<FLAG>, or the Kubernetes
  conventional POD_NAMESPACE / NODE_NAME), so the DaemonSet configures by env.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from agent import metrics
from agent.health import LIVENESS
from agent.reconcile import Datapath, Reconciler
from agent.sources.kube import ApiError, KubeClient, KubeSource
from agent.statuswriter import StatusWriter
from agent.store import Store
from agent.translate import TranslateOptions

log = logging.getLogger("nodegate.cluster")


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def add_arguments(run: argparse.ArgumentParser) -> None:
    g = run.add_argument_group(
        "cluster mode (no --config: in a Pod, or with --kubeconfig)",
    )
    g.add_argument(
        "--kubeconfig",
        default=os.environ.get("NODEGATE_KUBECONFIG") or None,
        metavar="PATH",
        help="kubeconfig to use (default: the in-cluster ServiceAccount; env NODEGATE_KUBECONFIG)",
    )
    g.add_argument(
        "--namespace",
        default=_env("POD_NAMESPACE", "nodegate"),
        help="namespace of the Leases (default: $POD_NAMESPACE or nodegate)",
    )
    g.add_argument(
        "--lease-duration",
        type=float,
        default=float(_env("NODEGATE_LEASE_DURATION", "15")),
        metavar="SECONDS",
        help="status-writer and node Lease duration (default 15; env NODEGATE_LEASE_DURATION)",
    )
    g.add_argument(
        "--status-interval",
        type=float,
        default=float(_env("NODEGATE_STATUS_INTERVAL", "2")),
        metavar="SECONDS",
        help="seconds between election/status rounds (default 2; env NODEGATE_STATUS_INTERVAL)",
    )
    g.add_argument(
        "--rediscover-interval",
        type=float,
        default=float(_env("NODEGATE_REDISCOVER_INTERVAL", "30")),
        metavar="SECONDS",
        help="seconds between looks for kinds not served yet, e.g. a CRD installed later "
        "(default 30; env NODEGATE_REDISCOVER_INTERVAL)",
    )
    g.add_argument(
        "--reference-interval",
        type=float,
        default=float(_env("NODEGATE_REFERENCE_INTERVAL", "10")),
        metavar="SECONDS",
        help="seconds between reads of referenced Secrets/ConfigMaps "
        "(default 10; env NODEGATE_REFERENCE_INTERVAL)",
    )


def run(
    args: argparse.Namespace,
    options: TranslateOptions,
    datapaths: Sequence[Datapath],
) -> int:
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG") or None
    if kubeconfig is None and not KubeClient.in_cluster():
        print(
            "nodegate: no --config (standalone) and no cluster: give --kubeconfig PATH, "
            "or run in a Pod",
            file=sys.stderr,
        )
        return 2
    try:
        client = KubeClient(kubeconfig)
    except Exception as e:
        print(f"nodegate: cannot load the cluster configuration: {e}", file=sys.stderr)
        return 2
    store = Store()
    source = KubeSource(
        client,
        store,
        rediscover=args.rediscover_interval,
        reference_interval=args.reference_interval,
    )
    writer = StatusWriter(
        client,
        source,
        namespace=args.namespace,
        node=options.node_name,
        controller=options.controller_name,
        lease_duration=args.lease_duration,
        retry=args.status_interval,
    )
    metrics.AGENT.gate("the first complete list of every served kind", source.synced)
    reconciler = Reconciler(
        source=source,
        store=store,
        options=options,
        datapaths=datapaths,
        debounce=args.debounce,
        interval=args.interval,
        on_status=writer.set_desired,
        on_applied=writer.set_applied,
    )
    log.info(
        "cluster mode: %s, node %s, controller %s, leases in namespace %s",
        client.host,
        options.node_name,
        options.controller_name,
        args.namespace,
    )
    source.start()
    writer_stop = threading.Event()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        waited = 0.0
        while not stop.is_set() and not source.synced():
            LIVENESS.tick()  # waiting for the list is not a wedged loop
            if waited >= 10 and waited % 30 < 0.5:
                log.info("waiting for the first complete list of every kind: %s", source.scan())
            await asyncio.sleep(0.5)
            waited += 0.5
        if stop.is_set():
            return
        log.info("listed every served kind (%d objects); serving", len(store.snapshot()))
        thread = threading.Thread(target=writer.run, args=(writer_stop,), name="status")
        thread.start()
        try:
            await reconciler.run(stop)
        finally:
            writer_stop.set()
            writer.wake()
            await loop.run_in_executor(None, thread.join)

    try:
        asyncio.run(main())
    except ApiError as e:
        log.error("%s", e)
        return 1
    finally:
        source.stop()
    log.info("stopped")
    return 0
