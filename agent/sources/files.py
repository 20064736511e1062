"""The standalone source: every *.yaml / *.yml under a folder, as `kubectl apply -R -f DIR` sees it.

It behaves like an API server where status depends on it:
- metadata.generation starts at 1 and rises when anything but metadata and
  status changes (the spec, for the kinds nodegate reads);
- metadata.uid and creationTimestamp are filled in when absent and stay the
  same across rescans while the object exists (the uid is derived from the
  object's identity, so it is also the same after an agent restart);
- Namespaces carry the label kubernetes.io/metadata.name, as the API server adds;
- namespaced objects without a namespace go to "default".

A file that stops parsing keeps its last good objects (and the error is
reported), so a half-saved edit never takes a configuration down. Kinds that
nodegate does not read (Deployments, ...) are ignored.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.model import InvalidObject, ObjectKey
from agent.model.registry import CLUSTER_SCOPED, MODELS
from agent.store import Store

log = logging.getLogger(__name__)

_RECENT_NS = 2_000_000_000
_UID_NAMESPACE = uuid.UUID("6f1c4c1e-4a8e-4a52-9a43-6e6f64656761")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Meta:
    uid: str
    created: str
    generation: int
    spec_digest: str
    raw_digest: str
    resource_version: int = 0


@dataclass
class _FileState:
    stamp: tuple[int, int, int, int]
    digest: str
    docs: list[tuple[ObjectKey, dict[str, Any]]] = field(default_factory=list)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _spec_part(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What an API server compares to decide a generation bump: all but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion")}


class FileSource:
    """Reads a folder of YAML into a Store. Call `scan()` whenever the folder may have changed."""

    def __init__(
        self,
        root: Path,
        store: Store,
        clock: Callable[[], str] = _now,
        exclude: tuple[Path, ...] = (),
    ) -> None:
        self.root = Path(root)
        # Files never read as input (e.g. a status file written inside the folder).
        self._exclude = {p.resolve() for p in exclude}
        self.store = store
        self._clock = clock
        self._files: dict[Path, _FileState] = {}
        self._meta: dict[ObjectKey, _Meta] = {}
        self._resource_version = 0
        self._owned: set[ObjectKey] = set()

    def scan(self) -> list[str]:
        """Bring the store in line with the folder. Returns the problems found (also logged)."""
        errors: list[str] = []
        if not self.root.is_dir():
            msg = f"{self.root}: not a readable folder"
            log.error(msg)
            return [msg]
        seen: dict[ObjectKey, tuple[Path, dict[str, Any]]] = {}
        current_files = set(self._yaml_files())
        for path in sorted(current_files):
            for key, doc in self._read_file(path, errors):
                if key in seen:
                    other = seen[key][0]
                    errors.append(
                        f"{path}: {key} is also defined in {other}; using the one in {other}"
                    )
                    continue
                seen[key] = (path, doc)
        for gone in set(self._files) - current_files:
            del self._files[gone]

        for key, (path, doc) in seen.items():
            obj = self._with_metadata(key, doc)
            try:
                self.store.apply(obj)
            except InvalidObject as e:
                kept = " (the previous version stays in force)" if key in self._owned else ""
                errors.append(f"{path}: {e}{kept}")
                continue
            self._owned.add(key)
        for key in sorted(self._owned - set(seen)):
            self.store.delete(key)
            self._owned.discard(key)
            self._meta.pop(key, None)
        for problem in errors:
            log.error("%s", problem)
        return errors

    def _yaml_files(self) -> Iterator[Path]:
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            # Hidden entries are editor swap files or the ..data links of mounted ConfigMaps.
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                path = Path(dirpath) / name
                if (
                    not name.startswith(".")
                    and name.endswith((".yaml", ".yml"))
                    and path.resolve() not in self._exclude
                ):
                    yield path

    def _read_file(self, path: Path, errors: list[str]) -> list[tuple[ObjectKey, dict[str, Any]]]:
        try:
            st = path.stat()
        except OSError as e:
            errors.append(f"{path}: {e.strerror}")
            return []
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
        state = self._files.get(path)
        # A file written twice within one timestamp tick keeps its stamp: while the stamp is
        # recent, the content decides.
        recent = time.time_ns() - st.st_mtime_ns < _RECENT_NS
        if state is not None and state.stamp == stamp and not recent:
            return state.docs
        try:
            data = path.read_bytes()
        except OSError as e:
            errors.append(f"{path}: {e.strerror}")
            return state.docs if state is not None else []
        digest = hashlib.sha256(data).hexdigest()
        if state is not None and state.digest == digest:
            state.stamp = stamp
            return state.docs
        try:
            loaded = [d for d in yaml.safe_load_all(data.decode("utf-8")) if d is not None]
        except (UnicodeDecodeError, yaml.YAMLError) as e:
            kept = "; its previous objects stay in force" if state is not None else ""
            errors.append(f"{path}: cannot read YAML: {_one_line(e)}{kept}")
            return state.docs if state is not None else []
        docs: list[tuple[ObjectKey, dict[str, Any]]] = []
        for index, doc in enumerate(_expand_lists(loaded)):
            where = f"{path} (document {index + 1})"
            if not isinstance(doc, dict):
                errors.append(
                    f"{where}: not a Kubernetes object (a mapping with apiVersion and kind)"
                )
                continue
            if not doc.get("apiVersion") or not doc.get("kind"):
                errors.append(f"{where}: apiVersion and kind are required")
                continue
            key = ObjectKey.of(doc)
            if (key.group, key.kind) not in MODELS:
                log.debug("%s: ignoring %s (a kind nodegate does not read)", where, key)
                continue
            if not isinstance(doc.get("metadata"), dict) or not key.name:
                errors.append(f"{where}: metadata.name is required")
                continue
            if (key.group, key.kind) not in CLUSTER_SCOPED and not key.namespace:
                doc = copy.deepcopy(doc)
                doc["metadata"]["namespace"] = "default"
                key = ObjectKey.of(doc)
            docs.append((key, doc))
        self._files[path] = _FileState(stamp, digest, docs)
        return docs

    def _with_metadata(self, key: ObjectKey, doc: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(doc)
        obj.pop("status", None)
        meta = obj["metadata"]
        for server_field in ("generation", "resourceVersion"):
            meta.pop(server_field, None)
        if key.kind == "Namespace" and key.group == "":
            meta["labels"] = {**(meta.get("labels") or {}), NAMESPACE_NAME_LABEL: key.name}
        spec_digest = _digest(_spec_part(obj))
        raw_digest = _digest(obj)
        known = self._meta.get(key)
        if known is None:
            known = _Meta(
                uid=str(meta.get("uid") or uuid.uuid5(_UID_NAMESPACE, "/".join(key))),
                created=str(meta.get("creationTimestamp") or self._clock()),
                generation=1,
                spec_digest=spec_digest,
                raw_digest="",
            )
            self._meta[key] = known
        elif known.spec_digest != spec_digest:
            known.generation += 1
            known.spec_digest = spec_digest
        if known.raw_digest != raw_digest:
            self._resource_version += 1
            known.raw_digest = raw_digest
            known.resource_version = self._resource_version
        meta["uid"] = known.uid
        meta["creationTimestamp"] = known.created
        meta["generation"] = known.generation
        meta["resourceVersion"] = str(known.resource_version)
        return obj


def write_atomically(path: Path, text: str) -> None:
    """Write a file so that a reader, this source included, never sees half of it: write a
    temporary file beside it, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _expand_lists(docs: list[Any]) -> Iterator[Any]:
    """`kind: List` documents (kubectl's output) stand for their items."""
    for doc in docs:
        if (
            isinstance(doc, dict)
            and doc.get("kind") == "List"
            and isinstance(doc.get("items"), list)
        ):
            yield from doc["items"]
        else:
            yield doc


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
