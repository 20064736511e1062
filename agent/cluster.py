"""Cluster mode of `nodegate run`: the API server is the source, one agent writes status.

Started by `nodegate run` without `--config` (see agent.cli). Wires the kube source,
the reconcile loop (this node's datapaths), the status writer (Lease holder only)
and the health endpoints the DaemonSet probes:

- GET /healthz: 200 while the reconcile loop runs (it polled its source recently);
- GET /readyz: 200 once every served kind has been listed and this node's datapaths
  applied the resulting configuration.

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
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent.model import ObjectKey
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
    g.add_argument(
        "--health-port",
        type=int,
        default=int(_env("NODEGATE_HEALTH_PORT", "9541")),
        metavar="PORT",
        help="port of /healthz and /readyz on all addresses, 0 for none "
        "(default 9541; env NODEGATE_HEALTH_PORT)",
    )


class Health:
    """What the probes report, updated by the loop."""

    def __init__(self, source: KubeSource, stale_after: float) -> None:
        self.source = source
        self.stale_after = stale_after
        self.last_tick = time.monotonic()
        self.applied = False

    def live(self) -> bool:
        return time.monotonic() - self.last_tick < self.stale_after

    def ready(self) -> bool:
        return self.live() and self.applied and self.source.synced()

    def serve(self, port: int) -> ThreadingHTTPServer:
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ok = {"/healthz": health.live, "/readyz": health.ready}.get(self.path)
                code = 404 if ok is None else 200 if ok() else 503
                body = {200: b"ok\n", 503: b"not ok\n", 404: b"not found\n"}[code]
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("", port), Handler)
        threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
        return server


class _TickingSource:
    """The Reconciler's source: the kube source's problems, and a liveness tick."""

    def __init__(self, source: KubeSource, health: Health) -> None:
        self.source = source
        self.health = health

    def scan(self) -> list[str]:
        self.health.last_tick = time.monotonic()
        return self.source.scan()


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
    health = Health(source, stale_after=max(30.0, 20 * args.interval))

    def applied(generation: int, statuses: Mapping[ObjectKey, dict[str, Any]]) -> None:
        health.applied = True
        writer.set_applied(generation, statuses)

    reconciler = Reconciler(
        source=_TickingSource(source, health),
        store=store,
        options=options,
        datapaths=datapaths,
        debounce=args.debounce,
        interval=args.interval,
        on_status=writer.set_desired,
        on_applied=applied,
    )
    server = health.serve(args.health_port) if args.health_port else None
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
            health.last_tick = time.monotonic()
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
        if server is not None:
            server.shutdown()
    log.info("stopped")
    return 0
