"""Leases: one status writer per cluster, and each node's heartbeat with what it applied.

`LeaseLock` is client-go's leader election on a coordination.k8s.io/v1 Lease:
- the holder renews spec.renewTime every `retry` seconds; another candidate takes
  the lease only after it has seen the same record unchanged for
  `leaseDurationSeconds` of its own (monotonic) clock, so clock skew between
  nodes cannot cut a term short;
- every change is a PUT carrying the resourceVersion it read: two candidates
  racing for an expired lease cannot both win (one gets 409);
- a holder that cannot renew for `renew_deadline` seconds stops acting as holder
  before anyone else may take over (renew_deadline < duration);
- a holder that stops cleanly releases the lease (empty holderIdentity) so the
  next candidate takes over at once.

`NodeLease` is a per-node Lease (`nodegate-node-<node>`) renewed as a heartbeat;
its annotation carries the node's applied report (see agent.statuswriter).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

log = logging.getLogger(__name__)

LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
REPORT_ANNOTATION = "nodegate.dev/applied"
ROLE_LABEL = "nodegate.dev/lease"


class Client(Protocol):
    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> dict[str, Any]: ...


def micro_time(when: float | None = None) -> str:
    """metav1.MicroTime, as Lease times are written."""
    t = dt.datetime.fromtimestamp(time.time() if when is None else when, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Trouble:
    """Logs a repeating failure once (warning) and its end (info), not every round."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failing = False

    def failed(self, error: Exception) -> None:
        if not self.failing:
            log.warning("%s: %s (retrying quietly)", self.what, error)
        else:
            log.debug("%s: %s", self.what, error)
        self.failing = True

    def ok(self) -> None:
        if self.failing:
            log.info("%s: working again", self.what)
        self.failing = False


def _status_of(error: Exception) -> int:
    return int(getattr(error, "status", -1))


class LeaseLock:
    def __init__(
        self,
        client: Client,
        namespace: str,
        name: str,
        identity: str,
        duration: float = 15.0,
        renew_deadline: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew_deadline = renew_deadline
        self._clock = clock
        self._observed: tuple[Any, ...] | None = None  # (holder, renewTime, transitions)
        self._observed_at = 0.0
        self._renewed_at = -1e18
        self._leader = False
        self._trouble = Trouble(f"lease {namespace}/{name}")

    @property
    def is_leader(self) -> bool:
        """Holder now: renewed within renew_deadline (a holder that cannot renew stops early)."""
        return self._leader and self._clock() - self._renewed_at < self.renew_deadline

    @property
    def path(self) -> str:
        return LEASES.format(namespace=self.namespace) + f"/{self.name}"

    def try_acquire_or_renew(self) -> bool:
        """One round of the election; whether we hold the lease after it."""
        try:
            self._round()
            self._trouble.ok()
        except Exception as e:
            self._trouble.failed(e)
        leader = self.is_leader
        if leader != self._leader:
            self._set_leader(leader)
        return leader

    def _set_leader(self, leader: bool) -> None:
        if leader != self._leader:
            log.info(
                "%s the status-writer lease %s/%s (%s)",
                "acquired" if leader else "lost",
                self.namespace,
                self.name,
                self.identity,
            )
        self._leader = leader

    def _round(self) -> None:
        now = self._clock()
        try:
            lease = self.client.request("GET", self.path)
        except Exception as e:
            if _status_of(e) != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(acquire=True, transitions=0),
            }
            try:
                self.client.request("POST", LEASES.format(namespace=self.namespace), body=body)
            except Exception as e2:
                if _status_of(e2) == 409:  # someone else created it first
                    return
                raise
            self._renewed_at = now
            self._set_leader(True)
            return
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or self.duration)
        if holder and holder != self.identity and now - self._observed_at < duration:
            self._set_leader(False)
            return
        transitions = int(spec.get("leaseTransitions") or 0)
        mine = holder == self.identity
        lease["spec"] = {
            **spec,
            **self._spec(
                acquire=not mine,
                transitions=transitions if mine else transitions + 1,
            ),
        }
        if mine:
            lease["spec"]["acquireTime"] = spec.get("acquireTime") or micro_time()
        try:
            updated = self.client.request("PUT", self.path, body=lease)
        except Exception as e:
            if _status_of(e) == 409:  # lost a race (or our view was stale): next round
                self._set_leader(False)
                return
            raise
        s = updated.get("spec") or {}
        self._observed = (s.get("holderIdentity"), s.get("renewTime"), s.get("leaseTransitions"))
        self._observed_at = now
        self._renewed_at = now
        self._set_leader(True)

    def _spec(self, acquire: bool, transitions: int) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "renewTime": micro_time(),
            "leaseTransitions": transitions,
        }
        if acquire:
            spec["acquireTime"] = spec["renewTime"]
        return spec

    def release(self) -> None:
        """Give the lease up (only if we hold it), so another agent takes over now."""
        if not self._leader:
            return
        self._leader = False
        try:
            lease = self.client.request("GET", self.path)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["leaseDurationSeconds"] = 1
            self.client.request("PUT", self.path, body=lease)
            log.info("released the status-writer lease %s/%s", self.namespace, self.name)
        except Exception as e:
            log.warning("releasing lease %s/%s: %s", self.namespace, self.name, e)


class NodeLease:
    """This node's heartbeat Lease, carrying its applied report in an annotation."""

    def __init__(self, client: Client, namespace: str, node: str, duration: float = 15.0) -> None:
        self.client = client
        self.namespace = namespace
        self.node = node
        self.name = node_lease_name(node)
        self.duration = duration
        self._sent: str | None = None
        self._sent_at = -1e18

    def publish(self, report: Mapping[str, Any], clock: float) -> bool:
        """Write the report if it changed or a heartbeat is due (a third of the duration)."""
        text = json.dumps(report, sort_keys=True, separators=(",", ":"))
        if text == self._sent and clock - self._sent_at < self.duration / 3:
            return False
        path = LEASES.format(namespace=self.namespace)
        spec = {
            "holderIdentity": self.node,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "renewTime": micro_time(),
        }
        meta = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {ROLE_LABEL: "node", "app.kubernetes.io/name": "nodegate"},
            "annotations": {REPORT_ANNOTATION: text},
        }
        try:
            current = self.client.request("GET", f"{path}/{self.name}")
        except Exception as e:
            if _status_of(e) != 404:
                raise
            self.client.request(
                "POST",
                path,
                body={
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": meta,
                    "spec": spec,
                },
            )
        else:
            current["metadata"].setdefault("labels", {}).update(meta["labels"])
            current["metadata"].setdefault("annotations", {}).update(meta["annotations"])
            current["spec"] = {**(current.get("spec") or {}), **spec}
            self.client.request("PUT", f"{path}/{self.name}", body=current)
        self._sent, self._sent_at = text, clock
        return True

    def delete(self) -> None:
        try:
            self.client.request("DELETE", LEASES.format(namespace=self.namespace) + f"/{self.name}")
        except Exception as e:
            if _status_of(e) != 404:
                log.warning("deleting node lease %s: %s", self.name, e)


def node_lease_name(node: str) -> str:
    return f"nodegate-node-{node}"[:253]


class NodeReports:
    """The live nodes' reports, as the holder sees them: a node is live while its Lease
    changes within its duration on our own clock (first sight: by its renewTime)."""

    def __init__(
        self, client: Client, namespace: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.namespace = namespace
        self._clock = clock
        self._seen: dict[str, tuple[str, float]] = {}  # lease name -> (resourceVersion, when seen)

    def live(self) -> dict[str, dict[str, Any]]:
        items = (
            self.client.request(
                "GET",
                LEASES.format(namespace=self.namespace),
                {"labelSelector": f"{ROLE_LABEL}=node"},
            ).get("items")
            or []
        )
        now = self._clock()
        out: dict[str, dict[str, Any]] = {}
        names = set()
        for lease in items:
            meta = lease.get("metadata") or {}
            spec = lease.get("spec") or {}
            name = meta.get("name", "")
            names.add(name)
            rv = meta.get("resourceVersion", "")
            duration = float(spec.get("leaseDurationSeconds") or 15)
            seen = self._seen.get(name)
            if seen is None:
                renewed = parse_time(spec.get("renewTime"))
                age = time.time() - renewed if renewed is not None else duration
                seen = (rv, now - max(0.0, age))
            elif seen[0] != rv:
                seen = (rv, now)
            self._seen[name] = seen
            if now - seen[1] >= duration:
                continue
            try:
                report = json.loads((meta.get("annotations") or {}).get(REPORT_ANNOTATION, "{}"))
            except ValueError:
                report = {}
            node = spec.get("holderIdentity") or name
            out[node] = report if isinstance(report, dict) else {}
        for gone in set(self._seen) - names:
            del self._seen[gone]
        return out
