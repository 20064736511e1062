"""The store: the current objects, by key, handed out as immutable snapshots.

Sources (the YAML folder, the API server watch) apply and delete objects; the
reconcile loop takes a snapshot and translates it. A snapshot never changes
after it is taken, so translation needs no locks. Objects that fail
validation are refused at the door (InvalidObject) and the previous good
version, if any, stays.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from agent.model import InvalidObject, K8sObject, ObjectKey, parse

__all__ = ["InvalidObject", "Snapshot", "Store"]

T = TypeVar("T", bound=K8sObject)


class Snapshot:
    """An immutable view of every object at one moment, with typed lookups."""

    def __init__(
        self,
        typed: Mapping[ObjectKey, K8sObject],
        raw: Mapping[ObjectKey, Mapping[str, Any]],
        version: int,
    ):
        self._typed = MappingProxyType(dict(typed))
        self._raw = MappingProxyType(dict(raw))
        self.version = version
        self._by_type: dict[type[K8sObject], tuple[K8sObject, ...]] = {}

    def __len__(self) -> int:
        return len(self._typed)

    def __contains__(self, key: object) -> bool:
        return key in self._typed

    def get(self, key: ObjectKey) -> K8sObject | None:
        return self._typed.get(key)

    def get_typed(self, cls: type[T], namespace: str, name: str) -> T | None:
        """The object of model `cls` at namespace/name, whichever of the model's kinds it is."""
        for kind in cls.KINDS:
            obj = self._typed.get(ObjectKey(cls.GROUP, kind, namespace, name))
            if isinstance(obj, cls):
                return obj
        return None

    def of_type(self, cls: type[T]) -> tuple[T, ...]:
        """Every object of model `cls`, in key order (deterministic)."""
        cached = self._by_type.get(cls)
        if cached is None:
            cached = tuple(o for _, o in sorted(self._typed.items()) if isinstance(o, cls))
            self._by_type[cls] = cached
        return cached  # type: ignore[return-value]

    def keys(self) -> Iterator[ObjectKey]:
        return iter(sorted(self._typed))

    def raw(self, key: ObjectKey) -> Mapping[str, Any] | None:
        return self._raw.get(key)

    def objects(self) -> Iterator[dict[str, Any]]:
        """Copies of the stored wire objects (metadata as the source filled it), in key order."""
        for key in sorted(self._raw):
            yield copy.deepcopy(dict(self._raw[key]))


class Store:
    """Current objects by key. Thread-safe; every change bumps `version`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._typed: dict[ObjectKey, K8sObject] = {}
        self._raw: dict[ObjectKey, dict[str, Any]] = {}
        self._version = 0
        self._snapshot: Snapshot | None = None

    @property
    def version(self) -> int:
        return self._version

    def apply(self, obj: Mapping[str, Any]) -> bool:
        """Add or replace an object. Returns whether anything changed. Raises InvalidObject."""
        typed = parse(obj)
        key = ObjectKey.of(obj)
        with self._lock:
            if self._raw.get(key) == obj:
                return False
            self._typed[key] = typed
            self._raw[key] = copy.deepcopy(dict(obj))
            self._changed()
        return True

    def delete(self, key: ObjectKey) -> bool:
        with self._lock:
            if key not in self._typed:
                return False
            del self._typed[key]
            del self._raw[key]
            self._changed()
        return True

    def get_raw(self, key: ObjectKey) -> dict[str, Any] | None:
        with self._lock:
            raw = self._raw.get(key)
            return copy.deepcopy(raw) if raw is not None else None

    def key_set(self) -> set[ObjectKey]:
        with self._lock:
            return set(self._typed)

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._snapshot is None:
                self._snapshot = Snapshot(self._typed, self._raw, self._version)
            return self._snapshot

    def _changed(self) -> None:
        self._version += 1
        self._snapshot = None
