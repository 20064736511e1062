"""Facts about the node the agent runs on: its name and its addresses."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import subprocess
from typing import Any

log = logging.getLogger(__name__)

# The label suffix of the Gateway addresses nodegate adds to an interface (agent.addresses).
GATEWAY_ADDRESS_LABEL = ":ng"


def node_name() -> str:
    return os.environ.get("NODE_NAME") or socket.gethostname()


def ip_addresses() -> list[dict[str, Any]]:
    """Every address of this network namespace, as `ip -json address show` lists them per link:
    [{"ifname": ..., "addr_info": [{"local": ..., "label": ...}, ...]}, ...]."""
    out = subprocess.run(
        ["ip", "-json", "address", "show"], capture_output=True, text=True, timeout=5, check=True
    ).stdout
    links: list[dict[str, Any]] = json.loads(out)
    return links


def node_addresses() -> tuple[str, ...]:
    """Global unicast addresses of this network namespace, IPv4 first."""
    try:
        links = ip_addresses()
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as e:
        log.warning("cannot list the node's addresses (%s); Gateways need an address pool", e)
        return ()
    found = []
    for link in links:
        for a in link.get("addr_info", []):
            if str(a.get("label", "")).endswith(GATEWAY_ADDRESS_LABEL):
                continue  # a Gateway's address that nodegate put here, not the node's own
            try:
                ip = ipaddress.ip_address(a.get("local", ""))
            except ValueError:
                continue
            if ip.is_loopback or ip.is_link_local or ip.is_multicast:
                continue
            found.append(ip)
    return tuple(str(ip) for ip in sorted(set(found), key=lambda i: (i.version, i)))
