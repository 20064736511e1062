"""Writing status to the cluster: one writer (the Lease holder), only real changes.

Every agent:
- translates the same objects and programs its own node;
- once its datapaths have applied a NodeConfig, publishes on its node Lease which
  Gateway generations it serves and on which addresses (`node_report`).

The holder of the status-writer Lease additionally:
- gates each Gateway's Programmed condition on the live nodes' reports: Programmed
  stays False (reason Pending) until every live node has applied the Gateway's
  current generation, and status.addresses lists the addresses the serving nodes
  really serve it on (`aggregate`);
- writes each status through the status subresource (GET, compare, PUT with the
  resourceVersion read; a 409 is retried with a fresh read), only when it differs
  from what the server holds; lastTransitionTime is kept while a condition's status
  is unchanged (agent.status.stamp against the server's status);
- leaves other controllers' entries in Route `parents` and policy `ancestors`
  alone, and removes its own entries from objects it no longer has status for.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from agent import metrics
from agent.leader import LeaseLock, NodeLease, NodeReports, Trouble
from agent.model import EXPERIMENTAL_GROUP, GATEWAY_GROUP, ObjectKey
from agent.sources.kube import ApiError, KubeClient, KubeSource
from agent.status import now, stamp

log = logging.getLogger(__name__)

LEASE_NAME = "nodegate-status-writer"
_LISTS_BY_CONTROLLER = ("parents", "ancestors")


# --- pure parts -----------------------------------------------------------------------


def _condition(status: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    for c in status.get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


def node_report(generation: int, statuses: Mapping[ObjectKey, Mapping[str, Any]]) -> dict[str, Any]:
    """What this node applied: per Gateway, its generation, whether served, on which addresses."""
    gateways: dict[str, Any] = {}
    for key, status in statuses.items():
        if (key.group, key.kind) != (GATEWAY_GROUP, "Gateway"):
            continue
        cond = _condition(status, "Programmed") or _condition(status, "Accepted") or {}
        programmed = cond.get("type") == "Programmed" and cond.get("status") == "True"
        gateways[f"{key.namespace}/{key.name}"] = {
            "generation": cond.get("observedGeneration"),
            "programmed": programmed,
            "addresses": [
                a["value"] for a in status.get("addresses") or [] if a.get("type") == "IPAddress"
            ]
            if programmed
            else [],
        }
    return {"generation": generation, "gateways": gateways}


def _address_order(value: str) -> tuple[int, int, str]:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return (9, 0, value)
    return (ip.version, int(ip), value)


def _pending(status: dict[str, Any], message: str) -> None:
    for holder in [status, *(status.get("listeners") or [])]:
        for c in holder.get("conditions") or []:
            if c.get("type") == "Programmed" and c.get("status") == "True":
                c.update(status="False", reason="Pending", message=message)


def aggregate(
    desired: Mapping[ObjectKey, Mapping[str, Any]], reports: Mapping[str, Mapping[str, Any]]
) -> dict[ObjectKey, dict[str, Any]]:
    """The statuses to write: `desired` with each Gateway's Programmed condition and addresses
    decided by the live nodes' reports (node name -> node_report())."""
    out: dict[ObjectKey, dict[str, Any]] = {}
    for key, status in desired.items():
        st = copy.deepcopy(dict(status))
        out[key] = st
        if (key.group, key.kind) != (GATEWAY_GROUP, "Gateway"):
            continue
        cond = _condition(st, "Programmed")
        if cond is None or cond.get("status") != "True":
            continue
        generation = cond.get("observedGeneration")
        name = f"{key.namespace}/{key.name}"
        entries = {n: (r.get("gateways") or {}).get(name) for n, r in reports.items()}
        waiting = sorted(
            n for n, e in entries.items() if not e or e.get("generation") != generation
        )
        serving = sorted(n for n, e in entries.items() if e and e.get("programmed"))
        addresses = sorted(
            {a for n in serving for a in entries[n]["addresses"]},  # type: ignore[index]
            key=_address_order,
        )
        st["addresses"] = [{"type": "IPAddress", "value": a} for a in addresses]
        if waiting:
            _pending(
                st,
                f"waiting for {len(waiting)} of {len(entries)} node(s) to apply generation "
                f"{generation}: {', '.join(waiting[:5])}{'...' if len(waiting) > 5 else ''}",
            )
        elif not serving:
            _pending(st, "no node serves this Gateway")
        else:
            for c in st["conditions"]:
                if c["type"] == "Programmed":
                    c["message"] = (
                        f"generation {generation} applied on {len(serving)} node(s); "
                        f"served on {', '.join(addresses)}"
                    )
    return out


def merge_foreign(
    existing: Mapping[str, Any], desired: Mapping[str, Any], controller: str
) -> dict[str, Any]:
    """`desired`, keeping the entries of other controllers in parents/ancestors (first, in the
    server's order): "implementations MUST NOT modify entries of other controllers"."""
    out = copy.deepcopy(dict(desired))
    for field in _LISTS_BY_CONTROLLER:
        if field not in existing and field not in desired:
            continue
        foreign = [e for e in existing.get(field) or [] if e.get("controllerName") != controller]
        out[field] = copy.deepcopy(foreign) + list(out.get(field) or [])
    return out


def _ours(status: Mapping[str, Any], controller: str) -> bool:
    return any(
        e.get("controllerName") == controller
        for field in _LISTS_BY_CONTROLLER
        for e in status.get(field) or []
    )


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# --- the writer -----------------------------------------------------------------------


class StatusWriter:
    """Runs in its own thread: node report heartbeat, the election, and the holder's writes."""

    def __init__(
        self,
        client: KubeClient,
        source: KubeSource,
        namespace: str,
        node: str,
        controller: str,
        lease_duration: float = 15.0,
        retry: float = 2.0,
    ) -> None:
        self.client = client
        self.source = source
        self.node = node
        self.controller = controller
        self.retry = retry
        self.field_manager = f"nodegate@{node}"[:128]
        self.lock = LeaseLock(
            client,
            namespace,
            LEASE_NAME,
            identity=f"{node}_{uuid.uuid4().hex[:8]}",
            duration=lease_duration,
            renew_deadline=lease_duration * 2 / 3,
        )
        self.node_lease = NodeLease(client, namespace, node, duration=lease_duration)
        self.reports = NodeReports(client, namespace)
        self.writes = 0
        self._lock = threading.Lock()
        self._desired: dict[ObjectKey, dict[str, Any]] | None = None
        self._report: dict[str, Any] | None = None
        self._written: dict[ObjectKey, tuple[str, str]] = {}
        self._publish_trouble = Trouble("publishing this node's report")
        self._reports_trouble = Trouble("reading the nodes' reports")
        self._wake = threading.Event()  # a new translation or apply: start a round now

    # Reconciler hooks (called from the event loop's thread)

    def set_desired(self, statuses: Mapping[ObjectKey, dict[str, Any]]) -> None:
        with self._lock:
            self._desired = {k: copy.deepcopy(v) for k, v in statuses.items()}
        self._wake.set()

    def set_applied(self, generation: int, statuses: Mapping[ObjectKey, Mapping[str, Any]]) -> None:
        report = node_report(generation, statuses)
        with self._lock:
            self._report = report
        self._wake.set()

    # the loop

    def wake(self) -> None:
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Rounds until `stop` is set (call wake() after setting it); then release the Lease
        and delete this node's report."""
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("status writer round failed")
            self._wake.wait(self.retry)
            self._wake.clear()
        self.lock.release()
        self.node_lease.delete()

    def step(self) -> int:
        """One round; the number of statuses written."""
        with self._lock:
            report = copy.deepcopy(self._report)
            desired = self._desired
        if report is not None:
            try:
                self.node_lease.publish(report, time.monotonic())
                self._publish_trouble.ok()
            except Exception as e:
                self._publish_trouble.failed(e)
        if not self.lock.try_acquire_or_renew():
            return 0
        if desired is None or not self.source.synced():
            return 0
        try:
            reports = self.reports.live()
            self._reports_trouble.ok()
        except ApiError as e:
            self._reports_trouble.failed(e)
            return 0
        reports[self.node] = report or {}
        final = aggregate(desired, reports)
        written = 0
        for key, status in final.items():
            written += self._sync(key, status)
        for key in self.source.observed_keys():
            if key in final or key.group not in (GATEWAY_GROUP, EXPERIMENTAL_GROUP):
                continue
            observed = self.source.observed_status(key)
            if observed and _ours(observed, self.controller):
                fields: dict[str, Any] = {f: [] for f in _LISTS_BY_CONTROLLER if f in observed}
                written += self._sync(key, fields)
        for gone in set(self._written) - set(self.source.observed_keys()):
            del self._written[gone]  # deleted objects
        return written

    def _sync(self, key: ObjectKey, desired: Mapping[str, Any]) -> int:
        observed = self.source.observed_status(key)
        if observed is None:  # not (yet) seen by the watch: nothing to compare with
            return 0
        final = stamp(merge_foreign(observed, desired, self.controller), observed, now())
        if final == observed:
            return 0
        if self._written.get(key) == (_canon(final), _canon(observed)):
            return 0  # what we wrote, as the server normalised it
        return self._write(key, desired)

    def _write(self, key: ObjectKey, desired: Mapping[str, Any]) -> int:
        res = self.source.resource(key.group, key.kind)
        if res is None:
            return 0
        for _attempt in range(5):
            if not self.lock.is_leader:
                return 0
            try:
                obj = self.client.request("GET", res.path(key.namespace, key.name))
            except ApiError as e:
                if e.status != 404:
                    log.warning("reading %s for its status: %s", key, e)
                return 0
            existing = obj.get("status") or {}
            final = stamp(merge_foreign(existing, desired, self.controller), existing, now())
            if final == existing:
                self.source.note_status(key, existing)
                return 0
            obj["status"] = final
            try:
                updated = self.client.request(
                    "PUT",
                    res.path(key.namespace, key.name, "status"),
                    {"fieldManager": self.field_manager},
                    body=obj,
                )
            except ApiError as e:
                if e.status == 409:
                    metrics.status_conflict(key.kind)
                    continue  # changed since we read it: read again
                if e.status != 404:
                    metrics.status_write_failed(key.kind)
                    log.warning("writing the status of %s: %s", key, e)
                return 0
            server = updated.get("status") or {}
            self._written[key] = (_canon(final), _canon(server))
            self.source.note_status(key, server)
            self.writes += 1
            metrics.status_written(key.kind)
            log.info("status of %s written (generation %s)", key, obj["metadata"].get("generation"))
            return 1
        log.warning("status of %s: still conflicting after 5 attempts; next round", key)
        return 0
