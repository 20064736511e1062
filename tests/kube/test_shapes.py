"""Cluster mode's pure parts: wire shapes, references, Programmed gating, foreign entries."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model import GATEWAY_GROUP, ObjectKey
from agent.sources.kube import (
    Backoff,
    Resource,
    endpoint_slice_v1,
    referenced,
    to_store_shape,
)
from agent.statuswriter import aggregate, merge_foreign, node_report

GW = ObjectKey(GATEWAY_GROUP, "Gateway", "infra", "g")
ROUTE = ObjectKey(GATEWAY_GROUP, "HTTPRoute", "infra", "r")


def cond(kind: str, status: str, reason: str, gen: int = 2) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": "",
        "observedGeneration": gen,
    }


def gateway_status(programmed: str = "True", gen: int = 2) -> dict[str, Any]:
    return {
        "addresses": [{"type": "IPAddress", "value": "198.18.0.1"}],
        "conditions": [
            cond("Accepted", "True", "Accepted", gen),
            cond(
                "Programmed", programmed, "Programmed" if programmed == "True" else "Invalid", gen
            ),
        ],
        "listeners": [
            {
                "name": "http",
                "attachedRoutes": 0,
                "supportedKinds": [],
                "conditions": [
                    cond("Accepted", "True", "Accepted", gen),
                    cond("Programmed", programmed, "Programmed", gen),
                ],
            }
        ],
    }


def report(gen: int | None, programmed: bool = True, *addresses: str) -> dict[str, Any]:
    gateways = (
        {}
        if gen is None
        else {
            "infra/g": {"generation": gen, "programmed": programmed, "addresses": list(addresses)}
        }
    )
    return {"generation": 7, "gateways": gateways}


def programmed_of(status: dict[str, Any]) -> tuple[str, str]:
    c = next(c for c in status["conditions"] if c["type"] == "Programmed")
    return c["status"], c["reason"]


@pytest.mark.parametrize(
    ("reports", "expected", "addresses"),
    [
        # every live node applied generation 2: Programmed, on the union of their addresses
        (
            {"a": report(2, True, "198.18.0.1"), "b": report(2, True, "198.18.0.2", "10.0.0.2")},
            ("True", "Programmed"),
            ["10.0.0.2", "198.18.0.1", "198.18.0.2"],
        ),
        # node b still runs generation 1: Pending, addresses of the nodes serving generation-any
        (
            {"a": report(2, True, "198.18.0.1"), "b": report(1, True, "198.18.0.2")},
            ("False", "Pending"),
            ["198.18.0.1", "198.18.0.2"],
        ),
        # node b has not applied anything with this Gateway yet
        (
            {"a": report(2, True, "198.18.0.1"), "b": report(None)},
            ("False", "Pending"),
            ["198.18.0.1"],
        ),
        # a node that applied it but cannot serve it does not hold it back; its address is absent
        (
            {"a": report(2, True, "198.18.0.1"), "b": report(2, False)},
            ("True", "Programmed"),
            ["198.18.0.1"],
        ),
        # no node serves it
        ({"a": report(2, False)}, ("False", "Pending"), []),
    ],
)
def test_programmed_waits_for_every_live_node(
    reports: dict[str, Any], expected: tuple[str, str], addresses: list[str]
) -> None:
    out = aggregate({GW: gateway_status()}, reports)[GW]
    assert programmed_of(out) == expected
    assert [a["value"] for a in out["addresses"]] == addresses
    listener = next(c for c in out["listeners"][0]["conditions"] if c["type"] == "Programmed")
    assert (listener["status"], listener["reason"]) == expected


def test_aggregate_leaves_unprogrammed_gateways_and_other_kinds_alone() -> None:
    bad = gateway_status("False")
    route = {"parents": [{"parentRef": {"name": "g"}, "controllerName": "c", "conditions": []}]}
    out = aggregate({GW: bad, ROUTE: route}, {"a": report(2, True, "198.18.0.9")})
    assert out[GW] == bad and out[ROUTE] == route


def test_node_report_lists_gateways_with_generation_and_addresses() -> None:
    statuses = {GW: gateway_status(gen=3), ROUTE: {"parents": []}}
    assert node_report(5, statuses) == {
        "generation": 5,
        "gateways": {"infra/g": {"generation": 3, "programmed": True, "addresses": ["198.18.0.1"]}},
    }
    assert node_report(5, {GW: gateway_status("False", 3)})["gateways"]["infra/g"] == {
        "generation": 3,
        "programmed": False,
        "addresses": [],
    }


def test_foreign_parent_entries_are_kept() -> None:
    theirs = {"parentRef": {"name": "x"}, "controllerName": "other.io/c", "conditions": []}
    old_ours = {"parentRef": {"name": "g"}, "controllerName": "me/c", "conditions": []}
    new_ours = {
        "parentRef": {"name": "g"},
        "controllerName": "me/c",
        "conditions": [{"type": "Accepted"}],
    }
    merged = merge_foreign({"parents": [old_ours, theirs]}, {"parents": [new_ours]}, "me/c")
    assert merged == {"parents": [theirs, new_ours]}
    # removing our entries (the route no longer has a parent of ours)
    assert merge_foreign({"parents": [old_ours, theirs]}, {"parents": []}, "me/c") == {
        "parents": [theirs]
    }
    # Gateway status (no per-controller lists) is replaced as a whole
    assert merge_foreign({"conditions": [1]}, {"conditions": [2]}, "me/c") == {"conditions": [2]}


def test_endpoint_slice_v1beta1_becomes_v1() -> None:
    beta = {
        "apiVersion": "discovery.k8s.io/v1beta1",
        "kind": "EndpointSlice",
        "metadata": {"name": "s-1", "namespace": "ns", "managedFields": [{"manager": "x"}]},
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": ["10.0.0.1"],
                "conditions": {"ready": True},
                "topology": {"kubernetes.io/hostname": "n1", "topology.kubernetes.io/zone": "z1"},
            },
            {"addresses": ["10.0.0.2"]},
        ],
        "ports": [{"port": 80}],
    }
    res = Resource("discovery.k8s.io", "v1beta1", "EndpointSlice", "endpointslices", True)
    shaped = to_store_shape(res, beta)
    assert shaped["apiVersion"] == "discovery.k8s.io/v1"
    assert shaped["endpoints"] == [
        {"addresses": ["10.0.0.1"], "conditions": {"ready": True}, "nodeName": "n1", "zone": "z1"},
        {"addresses": ["10.0.0.2"]},
    ]
    assert "managedFields" not in shaped["metadata"]
    # a v1 slice passes through unchanged but for apiVersion/kind
    v1 = endpoint_slice_v1(shaped)
    assert v1 == shaped


def test_store_shape_drops_status_and_labels_namespaces() -> None:
    ns = Resource("", "v1", "Namespace", "namespaces", False)
    shaped = to_store_shape(
        ns, {"metadata": {"name": "a", "labels": {"x": "y"}}, "status": {"phase": "Active"}}
    )
    assert shaped == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "a", "labels": {"x": "y", "kubernetes.io/metadata.name": "a"}},
    }


def test_referenced_secrets_and_configmaps() -> None:
    gateway = {
        "metadata": {"namespace": "infra", "name": "g"},
        "spec": {
            "listeners": [
                {
                    "name": "https",
                    "tls": {
                        "certificateRefs": [
                            {"name": "cert"},
                            {"name": "other", "namespace": "certs", "kind": "Secret", "group": ""},
                        ]
                    },
                },
                {
                    "name": "odd",
                    "tls": {
                        "certificateRefs": [{"name": "x", "group": "example.com", "kind": "Vault"}]
                    },
                },
            ],
            "tls": {"backend": {"clientCertificateRef": {"name": "client"}}},
        },
    }
    policy = {
        "metadata": {"namespace": "app", "name": "p"},
        "spec": {
            "validation": {"caCertificateRefs": [{"name": "ca", "kind": "ConfigMap", "group": ""}]}
        },
    }
    assert referenced(iter([gateway, policy])) == {
        ObjectKey("", "Secret", "infra", "cert"),
        ObjectKey("", "Secret", "certs", "other"),
        ObjectKey("", "Secret", "infra", "client"),
        ObjectKey("", "ConfigMap", "app", "ca"),
    }


def test_backoff_is_capped_and_jittered() -> None:
    b = Backoff(base=0.5, cap=4.0)
    delays = [b.next() for _ in range(10)]
    assert all(0.25 <= d <= 4.0 for d in delays)
    assert max(delays[5:]) > 1.0  # it grew
    b.reset()
    assert b.next() <= 0.5
