"""Status as written: wire documents for `nodegate status`, and condition timestamps.

Translation emits conditions without lastTransitionTime (it has no clock). This
module stamps them the way the API conventions ask: a condition keeps its
previous lastTransitionTime while its status is unchanged, and gets the current
time when it changes or first appears.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from agent.model import ObjectKey
from agent.sources.files import write_atomically
from agent.store import Snapshot


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(status: Any, previous: Any, when: str) -> Any:
    """A copy of `status` with lastTransitionTime on every condition (at any depth).

    `previous` is the status as last written (or None); conditions are matched by
    type within the same position of the structure (the same listener, parent or
    ancestor, matched by name or ref)."""
    if isinstance(status, dict):
        out: dict[str, Any] = {}
        for k, v in status.items():
            prev = previous.get(k) if isinstance(previous, dict) else None
            if k == "conditions" and isinstance(v, list):
                out[k] = _stamp_conditions(v, prev if isinstance(prev, list) else [], when)
            else:
                out[k] = stamp(v, prev, when)
        return out
    if isinstance(status, list):
        prev_items = previous if isinstance(previous, list) else []
        return [stamp(item, _counterpart(item, prev_items), when) for item in status]
    return status


def _identity(item: Any) -> Any:
    if isinstance(item, dict):
        for key in ("name", "parentRef", "ancestorRef"):
            if key in item:
                return (key, repr(item[key]), item.get("controllerName"))
    return None


def _counterpart(item: Any, previous: list[Any]) -> Any:
    ident = _identity(item)
    if ident is None:
        return None
    return next((p for p in previous if _identity(p) == ident), None)


def _stamp_conditions(
    conditions: list[dict[str, Any]], previous: list[Any], when: str
) -> list[dict[str, Any]]:
    prev = {c.get("type"): c for c in previous if isinstance(c, dict)}
    out = []
    for c in conditions:
        old = prev.get(c["type"])
        keep = (
            old is not None and old.get("status") == c["status"] and old.get("lastTransitionTime")
        )
        out.append({**c, "lastTransitionTime": old["lastTransitionTime"] if keep and old else when})
    return out


def documents(
    snapshot: Snapshot, statuses: Mapping[ObjectKey, dict[str, Any]], when: str | None
) -> Iterator[dict[str, Any]]:
    """Each object with a status, shaped as `kubectl get -o yaml` shows it (metadata trimmed).
    `when` stamps conditions that have no lastTransitionTime yet (None: leave them as they are)."""
    for key, status in statuses.items():
        raw = snapshot.raw(key)
        if raw is None:
            continue
        meta = raw.get("metadata", {})
        out_meta = {"name": key.name}
        if key.namespace:
            out_meta["namespace"] = key.namespace
        out_meta["generation"] = meta.get("generation", 0)
        yield {
            "apiVersion": raw.get("apiVersion"),
            "kind": key.kind,
            "metadata": out_meta,
            "status": stamp(status, None, when) if when is not None else status,
        }


def write_status_file(
    path: Path, snapshot: Snapshot, statuses: Mapping[ObjectKey, dict[str, Any]]
) -> None:
    """All statuses as multi-document YAML, replaced atomically (readers never see half a file)."""
    text = yaml.safe_dump_all(list(documents(snapshot, statuses, None)), sort_keys=False)
    write_atomically(path, text)
