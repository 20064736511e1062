"""Gateway addresses on the node: the node that serves a Gateway answers for its address.

Applied like a datapath, before the others: every address a NodeConfig serves on
(HTTP ports and L4 listeners) that is not already local is added to the gateway
interface as a /32 (/128), so the kernel answers ARP/ND for it and the proxy can
bind it; addresses this agent added earlier and no longer serves are removed.
Addresses it did not add are never touched. Uses `ip` (iproute2) so that only
bpf.netlink imports pyroute2.
"""

from __future__ import annotations

import ipaddress
import logging
import subprocess

from agent.node import GATEWAY_ADDRESS_LABEL, ip_addresses
from agent.nodeconfig import NodeConfig

log = logging.getLogger(__name__)

# Marks the addresses this agent owns, so a restart can find them again.
LABEL_SUFFIX = GATEWAY_ADDRESS_LABEL


class AddressManager:
    name = "addresses"

    def __init__(self, interface: str) -> None:
        self.interface = interface
        self._added: set[str] = set()  # IPv6 addresses carry no label: remembered here

    def apply(self, config: NodeConfig, generation: int) -> None:
        wanted = {p.address for p in config.http} | {x.address for x in config.l4}
        wanted = {a for a in wanted if not ipaddress.ip_address(a).is_unspecified}
        local, ours = self._addresses()
        for address in sorted(wanted - local):
            self._ip("add", address)
            self._added.add(address)
            log.info("gateway address %s added to %s", address, self.interface)
        for address in sorted(ours - wanted):
            self._ip("del", address)
            self._added.discard(address)
            log.info("gateway address %s removed from %s", address, self.interface)

    def cleanup(self) -> list[str]:
        """Remove every address this agent added to the interface; returns them."""
        removed = sorted(self._addresses()[1])
        for address in removed:
            self._ip("del", address)
        return removed

    def _label(self) -> str:
        # Address labels are limited to 15 characters, like interface names.
        return self.interface[: 15 - len(LABEL_SUFFIX)] + LABEL_SUFFIX

    def _addresses(self) -> tuple[set[str], set[str]]:
        """(every local address in this namespace, the ones this agent added)."""
        local: set[str] = set()
        ours: set[str] = set()
        for link in ip_addresses():
            for a in link.get("addr_info", []):
                local.add(a["local"])
                if link.get("ifname") == self.interface and a.get("label") == self._label():
                    ours.add(a["local"])
        return local, ours | (self._added & local)

    def _ip(self, verb: str, address: str) -> None:
        ip = ipaddress.ip_address(address)
        argv = ["ip", "address", verb, f"{ip}/{ip.max_prefixlen}", "dev", self.interface]
        if ip.version == 4:
            argv += ["label", self._label()]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        if result.returncode != 0:
            raise RuntimeError(
                f"ip address {verb} {address} on {self.interface}: {result.stderr.strip()}"
            )
