"""Cluster mode against a real kube-apiserver: statuses, generations, restarts, 410, CRDs, one writer."""

from __future__ import annotations

import copy
import ipaddress
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from agent.sources.files import FileSource
from agent.store import Store
from agent.translate import TranslateOptions, translate
from lab import certs
from lab.conformance.cases import Substitutions, gateway_class_under_test, load_manifest
from tests.kube.support import (
    CRDS,
    LATE_CRD,
    Agent,
    Api,
    ApiError,
    Cluster,
    condition,
    gateway,
    http,
    object_path,
    route,
    service,
    slice_,
    status_of,
    wait_for,
)

BASE = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "conformance"
    / "manifests"
    / "manifests.yaml"
)
G = "gateway.networking.k8s.io/v1"
POOL = "198.18.128.0/24"


def accepted_route(api: Api, obj: dict[str, Any], gen: int = 1) -> bool:
    parents = status_of(api, obj).get("parents") or []
    return bool(parents) and all(
        condition(p, "Accepted")["status"] == "True"
        and condition(p, "ResolvedRefs")["status"] == "True"
        and condition(p, "Accepted")["observedGeneration"] == gen
        for p in parents
    )


def normalised(status: Any) -> Any:
    """Status without timestamps, and without the Programmed message (the holder's words)."""
    if isinstance(status, dict):
        out = {k: normalised(v) for k, v in status.items() if k != "lastTransitionTime"}
        if out.get("type") == "Programmed":
            out.pop("message", None)
        return out
    if isinstance(status, list):
        return [normalised(v) for v in status]
    return status


# --- statuses ---------------------------------------------------------------------------


def test_base_manifests_get_the_statuses_translation_gives(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The upstream base manifests created through the API get, on the server, the statuses the
    same objects get from the file source: translation cannot tell the sources apart."""
    subs = Substitutions(gateway_class=cluster.name, controller_name=cluster.controller)
    objects = [gateway_class_under_test(subs), *load_manifest(BASE, subs)]
    namespaces = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    objects += [
        o for o in certs.generated_objects() if o["metadata"].get("namespace") in namespaces
    ]
    for obj in objects:
        cluster.api.create(copy.deepcopy(obj))
    # Each Gateway takes its own address from the pool (on the node's addresses alone, Gateways
    # sharing a port conflict), as the conformance suite is run.
    agent = cluster.agent("node-a", "198.18.0.1", extra=("--address-pool", POOL))

    folder = tmp_path / "world"
    folder.mkdir()
    (folder / "all.yaml").write_text(yaml.safe_dump_all(objects))
    store = Store()
    assert FileSource(folder, store).scan() == []
    options = TranslateOptions(
        controller_name=cluster.controller,
        node_name="node-a",
        node_addresses=("198.18.0.1",),
        address_pools=(POOL,),
    )
    expected = translate(store.snapshot(), options).statuses
    gateways = [k for k in expected if k.kind == "Gateway"]
    assert len(gateways) == 4 and any(k.kind == "GatewayClass" for k in expected)

    def server_status(key: Any) -> dict[str, Any]:
        obj = {
            "apiVersion": G,
            "kind": key.kind,
            "metadata": {"name": key.name, "namespace": key.namespace},
        }
        return status_of(cluster.api, obj)

    def all_written() -> bool:
        return all(normalised(server_status(k)) == normalised(v) for k, v in expected.items())

    try:
        wait_for(all_written, "every status as translation gives it", 90)
    except AssertionError:
        for k, v in expected.items():
            got = normalised(server_status(k))
            if got != normalised(v):
                print(f"{k}:\n  expected {normalised(v)}\n  got      {got}")
        raise
    for key in gateways:
        st = server_status(key)
        assert condition(st, "Accepted")["status"] == "True"
        assert condition(st, "Programmed")["status"] == "True", st
        assert [a["type"] for a in st["addresses"]] == ["IPAddress"]
        assert ipaddress.ip_address(st["addresses"][0]["value"]) in ipaddress.ip_network(POOL)
    assert len({server_status(k)["addresses"][0]["value"] for k in gateways}) == 4
    https = server_status(
        next(k for k in gateways if k.name == "same-namespace-with-https-listener")
    )
    resolved = [condition(listener, "ResolvedRefs")["status"] for listener in https["listeners"]]
    assert "True" in resolved, "a certificate Secret was read by reference"
    assert "status of" in agent.log()


def test_an_edit_is_reflected_in_observed_generation(cluster: Cluster) -> None:
    ns = cluster.namespace(f"{cluster.name}-edit")
    cluster.api.create(cluster.gateway_class())
    gw = cluster.api.create(gateway(ns, cluster.name, http()))
    cluster.api.create(service(ns))
    cluster.api.create(slice_(ns))
    r = cluster.api.create(route(ns))
    cluster.agent("node-a", "198.18.0.1")
    first = wait_for(
        lambda: (
            (st := status_of(cluster.api, gw)).get("conditions")
            and condition(st, "Programmed")["status"] == "True"
            and st
        ),
        "Gateway programmed",
    )
    assert condition(first, "Accepted")["observedGeneration"] == 1
    wait_for(lambda: accepted_route(cluster.api, r), "HTTPRoute accepted")
    time.sleep(1.1)  # lastTransitionTime has one-second resolution: make a rewrite visible

    current = cluster.api.read(gw)
    current["spec"]["listeners"].append(http("second", 8081))
    assert cluster.api.replace(current)["metadata"]["generation"] == 2

    def regenerated() -> dict[str, Any] | None:
        st = status_of(cluster.api, gw)
        ok = (
            all(c["observedGeneration"] == 2 for c in st["conditions"])
            and len(st["listeners"]) == 2
        )
        return st if ok and condition(st, "Programmed")["status"] == "True" else None

    second = wait_for(regenerated, "conditions at observedGeneration 2")
    # Accepted stayed True: its lastTransitionTime is kept. (Programmed may have passed through
    # Pending while the node applied generation 2, so its time may move.)
    kept = condition(first, "Accepted")["lastTransitionTime"]
    assert condition(second, "Accepted")["lastTransitionTime"] == kept
    listener = next(x for x in second["listeners"] if x["name"] == "http")
    was = condition(first["listeners"][0], "Accepted")["lastTransitionTime"]
    assert condition(listener, "Accepted")["lastTransitionTime"] == was
    assert {listener["name"] for listener in second["listeners"]} == {"http", "second"}


# --- one writer -----------------------------------------------------------------------


def holder(cluster: Cluster) -> str:
    lease = cluster.api.get(
        f"/apis/coordination.k8s.io/v1/namespaces/{cluster.lease_namespace}/leases/nodegate-status-writer"
    )
    return str(lease["spec"].get("holderIdentity") or "")


def status_managers(api: Api, obj: dict[str, Any]) -> set[str]:
    managed = api.read(obj)["metadata"].get("managedFields") or []
    return {
        m["manager"]
        for m in managed
        if m["manager"].startswith("nodegate@") and "f:status" in m.get("fieldsV1", {})
    }


def test_one_writer_and_takeover_when_it_is_killed(cluster: Cluster) -> None:
    ns = cluster.namespace(f"{cluster.name}-ha")
    cluster.api.create(cluster.gateway_class())
    gw = cluster.api.create(gateway(ns, cluster.name, http()))
    agents = {
        "node-a": cluster.agent("node-a", "198.18.0.1"),
        "node-b": cluster.agent("node-b", "198.18.0.2"),
    }

    def both_serving() -> bool:
        st = status_of(cluster.api, gw)
        return (
            bool(st.get("conditions"))
            and condition(st, "Programmed")["status"] == "True"
            and [a["value"] for a in st["addresses"]] == ["198.18.0.1", "198.18.0.2"]
        )

    wait_for(both_serving, "Gateway programmed on both nodes' addresses")
    first = holder(cluster).split("_")[0]
    other = "node-b" if first == "node-a" else "node-a"
    assert first in agents
    assert status_managers(cluster.api, gw) == {f"nodegate@{first}"}
    assert "written" in agents[first].log()
    assert "written" not in agents[other].log()

    agents[first].stop(signal.SIGKILL)
    current = cluster.api.read(gw)
    current["spec"]["listeners"].append(http("second", 8081))
    cluster.api.replace(current)
    survivor = "198.18.0.1" if other == "node-a" else "198.18.0.2"

    def taken_over() -> bool:
        st = status_of(cluster.api, gw)
        return (
            condition(st, "Programmed")["status"] == "True"
            and condition(st, "Programmed")["observedGeneration"] == 2
            and [a["value"] for a in st["addresses"]] == [survivor]
        )

    wait_for(taken_over, "the other agent writing generation 2, served on its address only")
    assert holder(cluster).split("_")[0] == other
    assert f"nodegate@{other}" in status_managers(cluster.api, gw)
    assert "acquired the status-writer lease" in agents[other].log()


def test_programmed_waits_for_every_live_node(cluster: Cluster) -> None:
    """A node that has not applied the Gateway's generation holds Programmed at Pending; it is
    Programmed once that node reports it, and a node that stops renewing no longer counts."""
    ns = cluster.namespace(f"{cluster.name}-gate")
    cluster.api.create(cluster.gateway_class())
    gw = cluster.api.create(gateway(ns, cluster.name, http()))
    leases = f"/apis/coordination.k8s.io/v1/namespaces/{cluster.lease_namespace}/leases"
    report: dict[str, Any] = {"generation": 1, "gateways": {}}
    stop = threading.Event()

    def ghost_node() -> None:
        """Another node's agent, as its Lease shows it: renewed every half second."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "nodegate-node-ghost", "labels": {"nodegate.dev/lease": "node"}},
            "spec": {"holderIdentity": "ghost", "leaseDurationSeconds": 3},
        }
        while not stop.is_set():
            import json

            body["metadata"]["annotations"] = {"nodegate.dev/applied": json.dumps(report)}
            body["spec"]["renewTime"] = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
            try:
                current = cluster.api.get(f"{leases}/nodegate-node-ghost")
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                cluster.api.req("PUT", f"{leases}/nodegate-node-ghost", body)
            except ApiError as e:
                if e.status != 404:
                    raise
                body["metadata"].pop("resourceVersion", None)
                cluster.api.req("POST", leases, body)
            stop.wait(0.5)

    ghost = threading.Thread(target=ghost_node, daemon=True)
    ghost.start()
    try:
        agent = cluster.agent("node-a", "198.18.0.1")

        def programmed() -> tuple[str, str, list[str]] | None:
            st = status_of(cluster.api, gw)
            if not st.get("conditions") or condition(st, "Accepted")["status"] != "True":
                return None
            c = condition(st, "Programmed")
            return c["status"], c["reason"], [a["value"] for a in st.get("addresses", [])]

        # node-a applied generation 1 (its address is listed), the ghost did not.
        wait_for(
            lambda: programmed() == ("False", "Pending", ["198.18.0.1"]),
            "Programmed Pending, served on node-a only",
        )
        message = condition(status_of(cluster.api, gw), "Programmed")["message"]
        assert "waiting for 1 of 2 node(s)" in message and "ghost" in message

        report["gateways"] = {
            f"{ns}/g": {"generation": 1, "programmed": True, "addresses": ["198.18.0.9"]}
        }
        wait_for(
            lambda: programmed() == ("True", "Programmed", ["198.18.0.1", "198.18.0.9"]),
            "Programmed on both nodes",
        )
    finally:
        stop.set()
        ghost.join(timeout=10)
    wait_for(
        lambda: programmed() == ("True", "Programmed", ["198.18.0.1"]), "the silent node dropped"
    )
    assert agent.proc.poll() is None


# --- the watch ------------------------------------------------------------------------


def generations(agent: Agent) -> int:
    return len(re.findall(r"-> NodeConfig generation", agent.log()))


def test_watch_survives_apiserver_restart_and_410(cluster: Cluster) -> None:
    """The API server goes away and etcd is compacted meanwhile: the agent keeps its
    configuration, its resumed Service watch gets 410 Gone and relists, and it keeps working."""
    ns = cluster.namespace(f"{cluster.name}-restart")
    cluster.api.create(cluster.gateway_class())
    gw = cluster.api.create(gateway(ns, cluster.name, http()))
    cluster.api.create(service(ns))
    cluster.api.create(slice_(ns))
    r = cluster.api.create(route(ns))
    agent = cluster.agent("node-a", "198.18.0.1")
    wait_for(lambda: accepted_route(cluster.api, r), "HTTPRoute accepted with its backend resolved")
    applied = generations(agent)
    # Other kinds move etcd's revision past the Service watch's resourceVersion.
    for i in range(3):
        cluster.api.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"bump-{i}", "namespace": ns},
            }
        )

    argv = cluster.server.stop_apiserver()
    try:
        revision = int(cluster.server.etcd("kv/range", {"key": "AA=="})["header"]["revision"])
        cluster.server.etcd("kv/compaction", {"revision": revision, "physical": True})
        time.sleep(2)  # the agent's watches fail and back off while the server is away
        assert agent.proc.poll() is None, agent.log()[-3000:]
        assert generations(agent) == applied, (
            "the agent replaced its configuration while the server was away"
        )
    finally:
        cluster.server.start_apiserver(argv)

    wait_for(
        lambda: re.search(r"Service: resourceVersion \d+ is gone \(410\); relisting", agent.log()),
        "a relist after 410 Gone",
    )
    assert generations(agent) == applied, "a relist of the same objects changed the configuration"
    restarts = re.search(
        r'nodegate_watch_restarts_total\{kind="Service",reason="expired"\} (\d+)', agent.metrics()
    )
    assert restarts is not None and int(restarts.group(1)) >= 1, "the 410 relist is counted"
    writes = re.search(r'nodegate_status_writes_total\{kind="HTTPRoute"\} (\d+)', agent.metrics())
    assert writes is not None and int(writes.group(1)) >= 1, "status writes are counted"

    svc = cluster.api.read(service(ns))
    svc["spec"]["ports"] = [{"port": 81, "protocol": "TCP"}]
    cluster.api.replace(svc)  # port 80 is gone: the route's backend no longer resolves
    wait_for(
        lambda: (
            condition(status_of(cluster.api, r)["parents"][0], "ResolvedRefs")["status"] == "False"
        ),
        "the Service change seen after the restart",
    )
    current = cluster.api.read(gw)
    current["spec"]["listeners"].append(http("second", 8081))
    cluster.api.replace(current)
    wait_for(
        lambda: condition(status_of(cluster.api, gw), "Accepted")["observedGeneration"] == 2,
        "generation 2 written",
    )


def test_a_crd_installed_later_is_picked_up(cluster: Cluster) -> None:
    ns = cluster.namespace(f"{cluster.name}-late")
    cluster.api.create(cluster.gateway_class())
    cluster.api.create(gateway(ns, cluster.name, {"name": "udp", "port": 5353, "protocol": "UDP"}))
    cluster.api.create(service(ns))
    cluster.api.create(slice_(ns))
    agent = cluster.agent("node-a", "198.18.0.1")
    missing = "UDPRoute.gateway.networking.k8s.io is not served by the API server"
    wait_for(lambda: missing in agent.log(), "the missing UDPRoute CRD reported")
    wait_for(lambda: "status of Gateway" in agent.log(), "the agent working without it")
    time.sleep(2.5)  # more rounds of discovery (every second): the report is not repeated

    cluster.api.install_crd(CRDS / "experimental" / LATE_CRD)
    udp = cluster.api.create(route(ns, "UDPRoute", "v1alpha2"))
    wait_for(lambda: accepted_route(cluster.api, udp), "the UDPRoute accepted")
    assert agent.log().count(missing) == 1
    assert "UDPRoute.gateway.networking.k8s.io is served now" in agent.log()
    assert agent.proc.poll() is None


def test_health_endpoints(cluster: Cluster) -> None:
    """The probes' /healthz and /readyz are the metrics endpoint's, gated in cluster mode
    on the first complete list: ready once listed and applied."""
    agent = cluster.agent("node-a", "198.18.0.1")

    def get(path: str) -> tuple[int, str]:
        url = f"http://{agent.metrics_address}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read().decode()
        except OSError:
            return 0, ""

    wait_for(lambda: get("/readyz")[0] == 200, "ready once listed and applied")
    assert get("/readyz")[1].startswith("generation ")
    assert get("/healthz") == (200, "alive\n")
    assert get("/nope")[0] == 404
    assert "listed every served kind" in agent.log()


def test_other_controllers_entries_are_kept_and_ours_removed_when_stale(cluster: Cluster) -> None:
    ns = cluster.namespace(f"{cluster.name}-foreign")
    cluster.api.create(cluster.gateway_class())
    other_class = {
        "apiVersion": G,
        "kind": "GatewayClass",
        "metadata": {"name": f"{cluster.name}-other"},
        "spec": {"controllerName": "example.com/other"},
    }
    cluster.api.create(other_class)
    cluster.api.create(gateway(ns, cluster.name, http()))
    cluster.api.create(gateway(ns, f"{cluster.name}-other", http(), name="g2"))
    r = cluster.api.create(route(ns))
    cluster.agent("node-a", "198.18.0.1")
    wait_for(lambda: status_of(cluster.api, r).get("parents"), "our parent entry")

    foreign = {
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "g2"},
        "controllerName": "example.com/other",
        "conditions": [
            {
                "type": "Accepted",
                "status": "True",
                "reason": "Accepted",
                "message": "theirs",
                "observedGeneration": 1,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }
    current = cluster.api.read(r)
    current["status"]["parents"].append(foreign)
    cluster.api.req("PUT", object_path(r) + "/status", current)

    current = cluster.api.read(r)
    current["spec"]["parentRefs"] = [{"name": "g2"}]  # no parent of ours any more
    cluster.api.replace(current)

    def only_theirs() -> bool:
        return status_of(cluster.api, r).get("parents") == [foreign]

    wait_for(only_theirs, "our stale entry removed, theirs kept")
