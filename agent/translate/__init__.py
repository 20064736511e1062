"""The pure translation: a snapshot of objects -> NodeConfig + the status of every object.

No I/O, no clock, no randomness: the same snapshot and options give the same
result, field for field. Steps, each in its own module:

1. GatewayClasses of our controllerName are accepted (status.py);
2. their Gateways and the ListenerSets attached to them: addresses, listener
   validity, references and conflicts (listeners.py, certs.py);
3. policies that change backends: BackendTLSPolicy, XBackendTrafficPolicy (policies.py);
4. routes: parentRefs -> listeners, backendRefs -> endpoints (routes.py,
   backends.py, http.py, hostnames.py);
5. the NodeConfig from what is valid (build.py), and every status.

Objects of other controllers get no status from us: their keys are absent from
`statuses`, and a status writer must leave them alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.model import GATEWAY_GROUP, GatewayClass, ObjectKey
from agent.nodeconfig import Backend, NodeConfig
from agent.store import Snapshot
from agent.translate.build import build_node_config
from agent.translate.context import DEFAULT_CONTROLLER, Context, TranslateOptions
from agent.translate.listeners import accepted_classes, evaluate_gateways
from agent.translate.policies import evaluate_policies, policy_statuses
from agent.translate.routes import evaluate_routes
from agent.translate.status import gateway_class_status, gateway_status, listener_set_status

__all__ = ["DEFAULT_CONTROLLER", "TranslateOptions", "TranslateResult", "translate"]


@dataclass(frozen=True)
class TranslateResult:
    node_config: NodeConfig
    # The `status` each object of ours should carry, in wire form (camelCase), by object key.
    statuses: Mapping[ObjectKey, dict[str, Any]]


def translate(snapshot: Snapshot, options: TranslateOptions | None = None) -> TranslateResult:
    options = options or TranslateOptions()
    ctx = Context(snapshot=snapshot, options=options)
    statuses: dict[ObjectKey, dict[str, Any]] = {}

    classes = accepted_classes(ctx)
    class_ok = {name: gc.spec.parameters_ref is None for name, gc in classes.items()}
    for name, gc in classes.items():
        statuses[_key(gc)] = gateway_class_status(gc, class_ok[name], options.features)

    gateways = evaluate_gateways(ctx, classes, class_ok)
    policies = evaluate_policies(ctx)

    def decorate(backend: Backend) -> Backend:
        return policies.decorate(ctx, backend)

    routes = evaluate_routes(ctx, gateways, decorate)

    for gw_state in gateways.values():
        statuses[_key(gw_state.obj)] = gateway_status(gw_state)
        for ls_state in gw_state.listener_sets:
            statuses[_key(ls_state.obj)] = listener_set_status(ls_state)
    used: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for result in routes:
        statuses[_key(result.route)] = {"parents": result.parents}
        for backend in result.backends:
            if backend.ref.kind == "Service":
                used[(backend.ref.namespace, backend.ref.name)] |= result.gateways
    for (kind, ns, name), status in policy_statuses(ctx, policies, used).items():
        group = GATEWAY_GROUP if kind == "BackendTLSPolicy" else "gateway.networking.x-k8s.io"
        statuses[ObjectKey(group, kind, ns, name)] = status

    node_config = build_node_config(options.node_name, gateways, routes)
    return TranslateResult(node_config=node_config, statuses=dict(sorted(statuses.items())))


def _key(obj: GatewayClass | Any) -> ObjectKey:
    return obj.key
