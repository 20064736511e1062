"""The NodeConfig: listeners that are valid and served, with their routes compiled.

- L4: one L4Listener per (address, valid TCP/UDP listener). Several routes may
  attach to one listener; the oldest carries the traffic (the spec's tie-break:
  creation time, then namespace/name).
- HTTP: one HTTPPort per (address, port) shared by every valid HTTP/HTTPS
  listener bound there, listeners and their virtual hosts most specific
  hostname first; each virtual host's entries in the spec's match precedence.
An HTTPS listener without a single usable certificate is not served.
"""

from __future__ import annotations

from collections import defaultdict

from agent.model import HTTPRoute, TCPRoute, UDPRoute
from agent.nodeconfig import (
    Backend,
    HTTPEntry,
    HTTPListener,
    HTTPPort,
    HTTPRule,
    L4Listener,
    NodeConfig,
    Ref,
    VirtualHost,
)
from agent.translate.hostnames import specificity
from agent.translate.http import match_precedence, matches_of
from agent.translate.listeners import GatewayState, ListenerState
from agent.translate.routes import Attachment, RouteResult


def build_node_config(
    node: str, gateways: dict[tuple[str, str], GatewayState], routes: list[RouteResult]
) -> NodeConfig:
    by_listener: dict[int, list[tuple[Attachment, RouteResult]]] = defaultdict(list)
    for result in routes:  # oldest route first
        for att in result.attachments:
            by_listener[id(att.listener)].append((att, result))

    l4: list[L4Listener] = []
    http_ports: dict[tuple[str, int], list[tuple[ListenerState, HTTPListener]]] = defaultdict(list)
    for gw_state in gateways.values():
        if not gw_state.accepted or gw_state.not_programmed is not None:
            continue
        for item in gw_state.all_listeners():
            if not item.is_accepted:
                continue
            attached = by_listener.get(id(item), [])
            if item.protocol in ("TCP", "UDP"):
                l4.extend(_l4(item, gw_state, attached))
            elif item.protocol in ("HTTP", "HTTPS"):
                if item.protocol == "HTTPS" and not item.certificates:
                    continue
                listener = _http_listener(item, gw_state, attached)
                for address in gw_state.addresses:
                    http_ports[(address, item.spec.port)].append((item, listener))
    http = [
        HTTPPort(
            address=address,
            port=port,
            tls=items[0][0].protocol == "HTTPS",
            listeners=tuple(
                lst
                for _, lst in sorted(
                    items, key=lambda x: (specificity(x[1].hostname), str(x[1].ref))
                )
            ),
        )
        for (address, port), items in sorted(http_ports.items())
    ]
    l4.sort(key=lambda x: (x.address, x.port, x.protocol))
    return NodeConfig(node=node, l4=tuple(l4), http=tuple(http))


def _l4(
    item: ListenerState, gw_state: GatewayState, attached: list[tuple[Attachment, RouteResult]]
) -> list[L4Listener]:
    carrier = next((r for att, r in attached if isinstance(att.route, (TCPRoute, UDPRoute))), None)
    backends: tuple[Backend, ...] = ()
    route_ref = None
    if carrier is not None:
        rule = carrier.route.spec.rules[0] if carrier.route.spec.rules else None
        count = len(rule.backend_refs) if rule is not None else 0
        backends = tuple(carrier.backends[:count])
        route_ref = Ref(
            kind=carrier.route.kind, namespace=carrier.route.namespace, name=carrier.route.name
        )
    return [
        L4Listener(
            ref=item.owner_ref,
            gateway=gw_state.ref,
            protocol="TCP" if item.protocol == "TCP" else "UDP",
            address=address,
            port=item.spec.port,
            route=route_ref,
            backends=backends,
        )
        for address in gw_state.addresses
    ]


def _http_listener(
    item: ListenerState, gw_state: GatewayState, attached: list[tuple[Attachment, RouteResult]]
) -> HTTPListener:
    # hostname -> [(precedence key, match, rule)]
    per_host: dict[str, list[tuple[tuple[object, ...], HTTPEntry, HTTPRule]]] = defaultdict(list)
    for att, result in attached:
        route = att.route
        if not isinstance(route, HTTPRoute) or result.compiled is None:
            continue
        for rule_index, (spec_rule, rule) in enumerate(
            zip(route.spec.rules, result.compiled.rules, strict=True)
        ):
            for match_index, match in enumerate(matches_of(spec_rule)):
                key = match_precedence(match, route, rule_index, match_index)
                for hostname in att.hostnames:
                    per_host[hostname].append((key, HTTPEntry(match=match, rule=0), rule))
    vhosts = []
    for hostname in sorted(per_host, key=specificity):
        rules: list[HTTPRule] = []
        index: dict[int, int] = {}
        entries = []
        for _, entry, rule in sorted(per_host[hostname], key=lambda x: x[0]):
            if id(rule) not in index:
                index[id(rule)] = len(rules)
                rules.append(rule)
            entries.append(entry.model_copy(update={"rule": index[id(rule)]}))
        vhosts.append(VirtualHost(hostname=hostname, rules=tuple(rules), entries=tuple(entries)))
    return HTTPListener(
        ref=item.owner_ref,
        gateway=gw_state.ref,
        hostname=item.spec.hostname or "",
        certificates=tuple(item.certificates),
        client_validation=item.client_validation,
        backend_client_certificate=gw_state.client_certificate,
        virtual_hosts=tuple(vhosts),
    )
