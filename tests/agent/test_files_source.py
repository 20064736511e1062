"""The standalone file source against real files: API-server-like metadata, edits, deletions, bad input."""

from __future__ import annotations

import os
import time
from pathlib import Path

from agent.model import GATEWAY_GROUP, ObjectKey
from agent.sources.files import FileSource
from agent.store import Store

GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: g, namespace: infra}
spec:
  gatewayClassName: ng
  listeners: [{name: http, port: %d, protocol: HTTP}]
"""
KEY = ObjectKey(GATEWAY_GROUP, "Gateway", "infra", "g")


def write(path: Path, text: str) -> None:
    path.write_text(text)
    # Make every rewrite visible even within one mtime tick.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def meta(store: Store, key: ObjectKey = KEY) -> dict:
    raw = store.get_raw(key)
    assert raw is not None
    return raw["metadata"]


def test_metadata_filled_like_an_api_server(tmp_path: Path) -> None:
    write(tmp_path / "gw.yaml", GATEWAY % 80)
    store = Store()
    source = FileSource(tmp_path, store)
    assert source.scan() == []
    m = meta(store)
    assert m["generation"] == 1 and m["uid"] and m["creationTimestamp"].endswith("Z")
    uid, created = m["uid"], m["creationTimestamp"]

    # A metadata-only edit does not bump the generation; a spec edit does.
    write(
        tmp_path / "gw.yaml",
        (GATEWAY % 80).replace("namespace: infra}", "namespace: infra, labels: {a: b}}"),
    )
    source.scan()
    assert meta(store)["generation"] == 1
    write(tmp_path / "gw.yaml", GATEWAY % 8080)
    source.scan()
    m = meta(store)
    assert (m["generation"], m["uid"], m["creationTimestamp"]) == (2, uid, created)

    # Rescanning without a change changes nothing.
    version = store.version
    source.scan()
    assert store.version == version


def test_multi_document_files_subfolders_lists_and_ignored_kinds(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(
        tmp_path / "sub" / "all.yml",
        (GATEWAY % 80)
        + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
        + "---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: infra}}\n"
        + "- {apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: [{port: 80}]}}\n",
    )
    write(tmp_path / ".hidden.yaml", "this: [is not: read")
    store = Store()
    assert FileSource(tmp_path, store).scan() == []
    keys = {(k.kind, k.namespace, k.name) for k in store.key_set()}
    assert keys == {
        ("Gateway", "infra", "g"),
        ("Namespace", "", "infra"),
        ("Service", "default", "s"),
    }
    ns = store.get_raw(ObjectKey("", "Namespace", "", "infra"))
    assert ns is not None and ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "infra"


def test_deletion_of_a_document_and_of_a_file(tmp_path: Path) -> None:
    write(
        tmp_path / "a.yaml",
        (GATEWAY % 80) + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n",
    )
    store = Store()
    source = FileSource(tmp_path, store)
    source.scan()
    assert len(store.key_set()) == 2
    write(tmp_path / "a.yaml", GATEWAY % 80)
    source.scan()
    assert {k.kind for k in store.key_set()} == {"Gateway"}
    (tmp_path / "a.yaml").unlink()
    source.scan()
    assert store.key_set() == set()


def test_broken_yaml_keeps_the_last_good_objects(tmp_path: Path) -> None:
    write(tmp_path / "gw.yaml", GATEWAY % 80)
    store = Store()
    source = FileSource(tmp_path, store)
    source.scan()
    write(tmp_path / "gw.yaml", "apiVersion: [unclosed\n")
    errors = source.scan()
    assert len(errors) == 1 and "gw.yaml" in errors[0] and "previous objects stay" in errors[0]
    assert KEY in store.key_set()


def test_invalid_object_is_reported_by_field_and_the_previous_version_stays(tmp_path: Path) -> None:
    write(tmp_path / "gw.yaml", GATEWAY % 80)
    store = Store()
    source = FileSource(tmp_path, store)
    source.scan()
    write(tmp_path / "gw.yaml", GATEWAY % 70000)
    errors = source.scan()
    assert len(errors) == 1
    assert (
        "Gateway" in errors[0] and "infra/g" in errors[0] and "spec.listeners.0.port" in errors[0]
    )
    raw = store.get_raw(KEY)
    assert raw is not None and raw["spec"]["listeners"][0]["port"] == 80
    # Other objects in the folder still apply.
    write(tmp_path / "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n")
    source.scan()
    keys = store.key_set()
    assert ObjectKey("", "Namespace", "", "ok") in keys


def test_not_an_object_and_duplicates_are_reported(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "- just\n- a list\n---\nkind: Gateway\n")
    write(tmp_path / "b.yaml", GATEWAY % 80)
    write(tmp_path / "c.yaml", GATEWAY % 81)
    errors = FileSource(tmp_path, Store()).scan()
    text = "\n".join(errors)
    assert "a.yaml (document 1): not a Kubernetes object" in text
    assert "a.yaml (document 2): apiVersion and kind are required" in text
    assert "c.yaml" in text and "also defined in" in text


def test_creation_timestamps_order_objects_created_later(tmp_path: Path) -> None:
    clock = iter(["2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z"])
    store = Store()
    source = FileSource(tmp_path, store, clock=lambda: next(clock))
    write(tmp_path / "a.yaml", GATEWAY % 80)
    source.scan()
    write(tmp_path / "b.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: later}\n")
    time.sleep(0.01)
    source.scan()
    assert meta(store)["creationTimestamp"] == "2026-01-01T00:00:00Z"
    assert (
        meta(store, ObjectKey("", "Namespace", "", "later"))["creationTimestamp"]
        == "2026-01-01T00:00:05Z"
    )
