"""The cluster source: list and watch the API server into the same Store the file source feeds.

The only module that imports `kubernetes` (and only for loading a kubeconfig or the
in-cluster configuration and its TLS setup); requests go through urllib3 directly so
that a watch is a plain stream of JSON lines this module controls.

Invariants:
- One watcher thread per kind, following the kopf/client-go model: list (paginated)
  -> watch from the list's resourceVersion -> on 410 Gone relist -> on any other
  failure reconnect after a capped, jittered backoff. A relist replaces every
  object of its kind in the store (objects deleted while disconnected go away).
- Discovery decides which group/version serves each kind (the Gateway API kinds
  in both channels and every version, EndpointSlice in discovery.k8s.io v1 or
  v1beta1). A kind that is not served (CRD missing) is reported once and looked
  for again every `rediscover` seconds; it is never fatal.
- Objects enter the store in the file source's wire shape: apiVersion and kind
  set, status and managedFields removed, EndpointSlice converted to v1, the
  Namespace name label present. An object that changed only in status or
  resourceVersion does not touch the store (writing status must not retrigger
  translation).
- Secrets and ConfigMaps are never listed: only the ones a Gateway, ListenerSet or
  policy references are read, one GET each (RBAC grants `get` only).
- The store is never emptied because the API server is unreachable: the last
  good objects stay and the agent keeps serving them.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client import rest as k8s_rest

from agent import metrics
from agent.model import EXPERIMENTAL_GROUP, GATEWAY_GROUP, InvalidObject, ObjectKey
from agent.model.registry import MODELS
from agent.store import Store

log = logging.getLogger(__name__)

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DISCOVERY_GROUP = "discovery.k8s.io"
# Kinds read by reference only (one GET each), never listed.
REFERENCED_KINDS = frozenset({("", "Secret"), ("", "ConfigMap")})
WATCHED_KINDS = tuple(sorted(k for k in MODELS if k not in REFERENCED_KINDS))
_GROUPS = ("", DISCOVERY_GROUP, GATEWAY_GROUP, EXPERIMENTAL_GROUP)


class ApiError(Exception):
    """A failed API request: `status` is the HTTP status, 0 when the server was not reached."""

    def __init__(self, status: int, message: str, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.body = dict(body or {})


class KubeClient:
    """JSON requests and watch streams against one API server, authenticated as configured."""

    def __init__(self, kubeconfig: str | None = None) -> None:
        cfg = k8s_client.Configuration()
        if kubeconfig:
            k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        else:
            k8s_config.load_incluster_config(client_configuration=cfg)
        cfg.connection_pool_maxsize = 48
        self._cfg = cfg
        self._pool = k8s_rest.RESTClientObject(cfg).pool_manager
        self.host = cfg.host.rstrip("/")

    @staticmethod
    def in_cluster() -> bool:
        return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "nodegate"}
        auths = cast(dict[str, dict[str, Any]], self._cfg.auth_settings())
        for auth in auths.values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[str(auth["key"])] = str(auth["value"])
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _url(self, path: str, query: Mapping[str, Any] | None) -> str:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        return self.host + path + (f"?{urlencode(q)}" if q else "")

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        try:
            resp = self._pool.request(
                method,
                self._url(path, query),
                body=data,
                headers=self._headers(content_type if data is not None else None),
                timeout=urllib3.Timeout(connect=10.0, read=timeout),
                retries=False,
            )
        except urllib3.exceptions.HTTPError as e:
            raise ApiError(0, f"{method} {path}: {e}") from None
        payload = _json(resp.data)
        if resp.status >= 400:
            raise ApiError(
                resp.status, f"{method} {path}: {payload.get('message', resp.reason)}", payload
            )
        return payload

    def stream(
        self, path: str, query: Mapping[str, Any], timeout: float, opened: _Holder | None = None
    ) -> Iterator[dict[str, Any]]:
        """The events of a watch request, one dict per line, until the server ends it."""
        try:
            resp = self._pool.request(
                "GET",
                self._url(path, query),
                headers=self._headers(None),
                timeout=urllib3.Timeout(connect=10.0, read=timeout),
                retries=False,
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as e:
            raise ApiError(0, f"watch {path}: {e}") from None
        if opened is not None:
            opened.value = resp
        try:
            if resp.status >= 400:
                payload = _json(resp.read())
                raise ApiError(
                    resp.status, f"watch {path}: {payload.get('message', resp.reason)}", payload
                )
            buffer = b""
            try:
                for chunk in resp.stream(amt=None, decode_content=True):
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            yield _json(line)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
                raise ApiError(0, f"watch {path} broke: {e}") from None
        finally:
            if opened is not None:
                opened.value = None
            resp.release_conn()


class _Holder:
    """The response a watcher is reading, so that stop() can close it from another thread."""

    value: Any = None


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {"message": data[:200].decode(errors="replace")}
    return value if isinstance(value, dict) else {}


# --- discovery ------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """Where the API server serves one kind."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str = "", name: str = "", subresource: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace and self.namespaced:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if subresource:
            base += f"/{subresource}"
        return base


def discover(client: KubeClient) -> dict[tuple[str, str], Resource]:
    """The resource serving each kind nodegate reads: the group's preferred version first."""
    found: dict[tuple[str, str], Resource] = {}
    wanted = {k for k in MODELS}
    for group in _GROUPS:
        if group:
            try:
                info = client.request("GET", f"/apis/{group}")
            except ApiError as e:
                if e.status == 404:
                    continue
                raise
            preferred = (info.get("preferredVersion") or {}).get("version", "")
            versions = [v["version"] for v in info.get("versions", [])]
            versions.sort(key=lambda v: v != preferred)
        else:
            versions = ["v1"]
        for version in versions:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                listing = client.request("GET", path)
            except ApiError as e:
                if e.status == 404:
                    continue
                raise
            for r in listing.get("resources", []):
                key = (group, r.get("kind", ""))
                name = r.get("name", "")
                if key not in wanted or key in found or "/" in name:
                    continue
                found[key] = Resource(group, version, key[1], name, bool(r.get("namespaced")))
    return found


# --- wire shape -----------------------------------------------------------------------


def to_store_shape(resource: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as the file source would have put it in the store."""
    out = {k: v for k, v in obj.items() if k != "status"}
    out["apiVersion"] = resource.api_version
    out["kind"] = resource.kind
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    if resource.kind == "Namespace" and resource.group == "":
        meta["labels"] = {**(meta.get("labels") or {}), NAMESPACE_NAME_LABEL: meta.get("name", "")}
    out["metadata"] = meta
    if resource.group == DISCOVERY_GROUP and resource.version == "v1beta1":
        out = endpoint_slice_v1(out)
    return out


def endpoint_slice_v1(obj: Mapping[str, Any]) -> dict[str, Any]:
    """discovery.k8s.io/v1beta1 -> v1: topology's hostname and zone become nodeName and zone."""
    out = dict(obj)
    out["apiVersion"] = f"{DISCOVERY_GROUP}/v1"
    endpoints = []
    for ep in obj.get("endpoints") or []:
        e = {k: v for k, v in ep.items() if k != "topology"}
        topology = ep.get("topology") or {}
        host = topology.get("kubernetes.io/hostname")
        zone = topology.get("topology.kubernetes.io/zone")
        if host and not e.get("nodeName"):
            e["nodeName"] = host
        if zone:
            e["zone"] = zone
        endpoints.append(e)
    out["endpoints"] = endpoints
    return out


def _without_version(obj: Mapping[str, Any] | None) -> Any:
    if obj is None:
        return None
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    return {**obj, "metadata": meta}


def referenced(objects: Iterator[Mapping[str, Any]]) -> set[ObjectKey]:
    """The Secrets and ConfigMaps that certificate references name (certificateRefs,
    caCertificateRefs, clientCertificateRef, at any depth of the spec)."""
    refs: set[ObjectKey] = set()

    def walk(value: Any, namespace: str, in_ref: bool) -> None:
        if isinstance(value, dict):
            if in_ref and "name" in value:
                group = value.get("group") or ""
                kind = value.get("kind") or "Secret"
                if group == "" and kind in ("Secret", "ConfigMap"):
                    ns = value.get("namespace") or namespace
                    refs.add(ObjectKey("", kind, ns, str(value["name"])))
                return
            for k, v in value.items():
                walk(v, namespace, k.endswith(("ertificateRefs", "ertificateRef")))
        elif isinstance(value, list):
            for item in value:
                walk(item, namespace, in_ref)

    for obj in objects:
        meta = obj.get("metadata") or {}
        walk(obj.get("spec"), str(meta.get("namespace") or ""), False)
    return refs


# --- the source -----------------------------------------------------------------------


class Backoff:
    """Capped exponential backoff with full jitter."""

    def __init__(self, base: float = 0.5, cap: float = 30.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    def next(self) -> float:
        delay = min(self.cap, self.base * 2**self.attempt)
        self.attempt += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


class Gone(Exception):
    """410: the resourceVersion is too old; relist."""


class Missing(Exception):
    """404 on the collection: the kind is no longer served."""


class Watcher:
    """List then watch one kind into the store, forever (until stopped or the kind goes away)."""

    def __init__(self, source: KubeSource, resource: Resource) -> None:
        self.source = source
        self.resource = resource
        self.resource_version: str | None = None
        self.relists = 0
        self.listed = threading.Event()
        self.missing = False
        self._stop = threading.Event()
        self._open = _Holder()
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{resource.kind}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.reconnect()

    def reconnect(self) -> None:
        """Drop the current watch connection; the watcher resumes from its resourceVersion."""
        resp = self._open.value
        if resp is not None:
            try:
                resp.shutdown() if hasattr(resp, "shutdown") else resp.close()
            except Exception:  # a connection already gone is fine
                log.debug("closing the %s watch", self.resource.kind, exc_info=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        backoff = Backoff(cap=self.source.backoff_cap)
        kind = self.resource.kind
        missing_since: float | None = None
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._list()
                missing_since = None
                self._watch()
                backoff.reset()
                if not self._stop.is_set():
                    metrics.watch_restarted(kind, "closed")
            except Gone:
                log.info(
                    "%s: resourceVersion %s is gone (410); relisting", kind, self.resource_version
                )
                metrics.watch_restarted(kind, "expired")
                self.resource_version = None
            except Missing:
                now = time.monotonic()
                missing_since = missing_since if missing_since is not None else now
                if now - missing_since >= self.source.missing_grace:
                    self.source._kind_missing(self)
                    return
                self._stop.wait(backoff.next())
                continue
            except ApiError as e:
                if self._stop.is_set():  # stop() closed the connection
                    return
                if e.status in (401, 403) and not self.listed.is_set():
                    # Not allowed to read this kind: do not hold the agent back (it serves
                    # without these objects); the problem is reported and retried.
                    self.listed.set()
                delay = backoff.next()
                metrics.watch_restarted(kind, "error")
                self.source._problem(f"watching {kind}: {e}; retrying in {delay:.1f}s")
                self._stop.wait(delay)
            except Exception:  # a bug must not end the watch: log it and start over
                delay = backoff.next()
                metrics.watch_restarted(kind, "error")
                log.exception("watching %s failed; relisting in %.1fs", kind, delay)
                self.resource_version = None
                self._stop.wait(delay)

    def _list(self) -> None:
        items: list[dict[str, Any]] = []
        cont: str | None = None
        while True:
            try:
                page = self.source.client.request(
                    "GET", self.resource.path(), {"limit": 500, "continue": cont}
                )
            except ApiError as e:
                if e.status == 404:
                    raise Missing from None
                if e.status == 410:  # the continue token expired: start the list over
                    items, cont = [], None
                    continue
                raise
            items.extend(page.get("items") or [])
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                break
        self.source._replace(self.resource, items)
        self.resource_version = str((page.get("metadata") or {}).get("resourceVersion") or "")
        self.relists += 1
        self.listed.set()

    def _watch(self) -> None:
        timeout = random.randint(240, 300)
        query = {
            "watch": "1",
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout,
        }
        try:
            for event in self.source.client.stream(
                self.resource.path(), query, timeout + 30, self._open
            ):
                if self._stop.is_set():
                    return
                self._event(event)
        except ApiError as e:
            if e.status == 410:
                raise Gone from None
            if e.status == 404:
                raise Missing from None
            raise

    def _event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = int(obj.get("code") or 0)
            if code == 410:
                raise Gone
            raise ApiError(code, f"watch {self.resource.kind}: {obj.get('message', obj)}", obj)
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED"):
            self.source._upsert(self.resource, obj)
        elif kind == "DELETED":
            self.source._remove(self.resource, obj)
        if rv:
            self.resource_version = str(rv)


class KubeSource:
    """Every kind nodegate reads, kept in the store from the API server. Threads; `scan()`
    only reports the current problems (the Reconciler's source protocol)."""

    def __init__(
        self,
        client: KubeClient,
        store: Store,
        rediscover: float = 30.0,
        reference_interval: float = 10.0,
        backoff_cap: float = 30.0,
        missing_grace: float = 10.0,
    ) -> None:
        self.client = client
        self.missing_grace = missing_grace
        self.store = store
        self.rediscover = rediscover
        self.reference_interval = reference_interval
        self.backoff_cap = backoff_cap
        self.watchers: dict[tuple[str, str], Watcher] = {}
        self.resources: dict[tuple[str, str], Resource] = {}
        self.discovered = threading.Event()
        self._lock = threading.Lock()
        self._statuses: dict[ObjectKey, dict[str, Any]] = {}
        self._problems: dict[str, float] = {}
        self._reported_missing: set[tuple[str, str]] = set()
        self._invalid: dict[ObjectKey, str] = {}
        self._refs: set[ObjectKey] = set()
        self._ref_versions: dict[ObjectKey, str] = {}
        self._refs_changed = threading.Event()
        self._refs_synced = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle

    def start(self) -> None:
        for target, name in ((self._discover_loop, "discover"), (self._reference_loop, "refs")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._refs_changed.set()
        with self._lock:
            watchers = list(self.watchers.values())
        for w in watchers:
            w.stop()

    def synced(self) -> bool:
        """Discovery ran, every served kind has been listed at least once, and the Secrets and
        ConfigMaps those objects reference have been read (no translation before that: a
        certificate not read yet would look missing)."""
        return self._kinds_listed() and self._refs_synced.is_set()

    def _kinds_listed(self) -> bool:
        with self._lock:
            watchers = list(self.watchers.values())
        return self.discovered.is_set() and all(w.listed.is_set() for w in watchers)

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            if self.synced():
                return True
            self._stop.wait(0.1)
        return self.synced()

    def scan(self) -> list[str]:
        """The problems of the last minute (each already logged when it happened)."""
        horizon = time.monotonic() - 60
        with self._lock:
            return sorted(p for p, t in self._problems.items() if t >= horizon)

    def resource(self, group: str, kind: str) -> Resource | None:
        with self._lock:
            return self.resources.get((group, kind))

    def observed_status(self, key: ObjectKey) -> dict[str, Any] | None:
        """The status the object carries on the server, as last seen (None: not seen)."""
        with self._lock:
            status = self._statuses.get(key)
            return json.loads(json.dumps(status)) if status is not None else None

    def observed_keys(self) -> list[ObjectKey]:
        with self._lock:
            return list(self._statuses)

    def note_status(self, key: ObjectKey, status: Mapping[str, Any]) -> None:
        """Record a status just written (the watch event may come later)."""
        with self._lock:
            if key in self._statuses:
                self._statuses[key] = dict(status)

    # -- discovery

    def _discover_loop(self) -> None:
        backoff = Backoff(cap=self.backoff_cap)
        while not self._stop.is_set():
            try:
                found = discover(self.client)
            except ApiError as e:
                delay = backoff.next()
                self._problem(f"discovery: {e}; retrying in {delay:.1f}s")
                self._stop.wait(delay)
                continue
            backoff.reset()
            self._reconcile_watchers(found)
            self.discovered.set()
            self._stop.wait(self.rediscover)

    def _reconcile_watchers(self, found: Mapping[tuple[str, str], Resource]) -> None:
        for key in WATCHED_KINDS:
            res = found.get(key)
            with self._lock:
                current = self.watchers.get(key)
            if res is None:
                if key not in self._reported_missing:
                    self._reported_missing.add(key)
                    self._problem(
                        f"{key[1]}.{key[0] or 'core'} is not served by the API server "
                        f"(CRD not installed?); looking again every {self.rediscover:g}s"
                    )
                # A running watcher stays: discovery can miss a CRD's group for a moment (an API
                # server starting up). If the kind is really gone, the watcher's own list gets
                # 404s for MISSING_GRACE seconds and removes its objects (_kind_missing).
                continue
            if current is not None and current.resource == res and current.alive:
                continue
            if current is not None:
                current.stop()
            if key in self._reported_missing:
                self._reported_missing.discard(key)
                log.info(
                    "%s.%s is served now (%s); watching it", key[1], key[0] or "core", res.version
                )
            w = Watcher(self, res)
            with self._lock:
                self.watchers[key] = w
                self.resources[key] = res
            w.start()
        with self._lock:
            for key in REFERENCED_KINDS:
                if key in found:
                    self.resources[key] = found[key]

    def _kind_missing(self, watcher: Watcher) -> None:
        key = (watcher.resource.group, watcher.resource.kind)
        log.warning("%s is no longer served; its objects are removed", watcher.resource.kind)
        self._replace_kind(key, ())
        with self._lock:
            if self.watchers.get(key) is watcher:
                del self.watchers[key]
            self._reported_missing.discard(key)

    # -- store updates (called from watcher threads)

    def _upsert(self, resource: Resource, obj: Mapping[str, Any]) -> None:
        shaped = to_store_shape(resource, obj)
        key = ObjectKey.of(shaped)
        with self._lock:
            self._statuses[key] = dict(obj.get("status") or {})
        if _without_version(self.store.get_raw(key)) == _without_version(shaped):
            return
        try:
            changed = self.store.apply(shaped)
        except InvalidObject as e:
            rv = str((obj.get("metadata") or {}).get("resourceVersion"))
            if self._invalid.get(key) != rv:
                self._invalid[key] = rv
                self._problem(f"{e} (resourceVersion {rv}; the previous version stays in force)")
            return
        self._invalid.pop(key, None)
        if changed and resource.group in (GATEWAY_GROUP, EXPERIMENTAL_GROUP):
            self._refs_changed.set()

    def _remove(self, resource: Resource, obj: Mapping[str, Any]) -> None:
        key = ObjectKey.of(to_store_shape(resource, obj))
        with self._lock:
            self._statuses.pop(key, None)
        self._invalid.pop(key, None)
        if self.store.delete(key) and resource.group in (GATEWAY_GROUP, EXPERIMENTAL_GROUP):
            self._refs_changed.set()

    def _replace(self, resource: Resource, items: Sequence[Mapping[str, Any]]) -> None:
        keep: set[ObjectKey] = set()
        for item in items:
            self._upsert(resource, item)
            keep.add(ObjectKey.of(to_store_shape(resource, item)))
        self._replace_kind((resource.group, resource.kind), keep)

    def _replace_kind(self, kind: tuple[str, str], keep: Any) -> None:
        keep = set(keep)
        for key in self.store.key_set():
            if (key.group, key.kind) == kind and key not in keep:
                self.store.delete(key)
                with self._lock:
                    self._statuses.pop(key, None)
        self._refs_changed.set()

    # -- referenced Secrets and ConfigMaps

    def _reference_loop(self) -> None:
        while not self._stop.is_set():
            self._refs_changed.clear()
            listed = self._kinds_listed()
            try:
                self.poll_references()
            except Exception:
                log.exception("reading referenced Secrets/ConfigMaps failed")
            if listed:
                self._refs_synced.set()
                if not self._kinds_listed():  # a kind appeared meanwhile: poll once more
                    self._refs_changed.set()
            self._refs_changed.wait(self.reference_interval)

    def poll_references(self) -> None:
        """Bring the referenced Secrets and ConfigMaps in the store up to date."""
        snapshot = self.store.snapshot()
        sources = (
            o
            for o in snapshot.objects()
            if ObjectKey.of(o).group in (GATEWAY_GROUP, EXPERIMENTAL_GROUP)
        )
        wanted = referenced(sources)
        for key in sorted(wanted):
            res = self.resource(key.group, key.kind) or Resource(
                "", "v1", key.kind, key.kind.lower() + "s", True
            )
            try:
                obj = self.client.request("GET", res.path(key.namespace, key.name))
            except ApiError as e:
                if e.status == 404:
                    self.store.delete(key)
                    self._ref_versions.pop(key, None)
                else:
                    self._problem(f"reading {key}: {e}")
                continue
            rv = str((obj.get("metadata") or {}).get("resourceVersion"))
            if self._ref_versions.get(key) == rv:
                continue
            try:
                self.store.apply(to_store_shape(res, obj))
                self._ref_versions[key] = rv
            except InvalidObject as e:
                self._problem(str(e))
        for key in self._refs - wanted:
            self.store.delete(key)
            self._ref_versions.pop(key, None)
        self._refs = wanted

    # -- problems

    def _problem(self, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._problems = {p: t for p, t in self._problems.items() if t >= now - 60}
            self._problems[message] = now
        log.warning("%s", message)
