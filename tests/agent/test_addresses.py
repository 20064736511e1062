"""Gateway addresses appear on the gateway node's interface and go again, in a real namespace."""

from __future__ import annotations

import sys
import textwrap

import pytest

from lab.netns import Lab

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from agent.addresses import AddressManager
    from agent.nodeconfig import HTTPPort, L4Listener, NodeConfig, Ref
    gw = Ref(kind="Gateway", namespace="ns", name="g")
    addresses = sys.argv[2:]
    config = NodeConfig(
        http=tuple(HTTPPort(address=a, port=80, tls=False, listeners=()) for a in addresses[:1]),
        l4=tuple(L4Listener(ref=gw, gateway=gw, protocol="UDP", address=a, port=53) for a in addresses[1:]),
    )
    AddressManager(sys.argv[1]).apply(config, 1)
    """
)


@pytest.mark.kernel
def test_addresses_follow_the_node_config() -> None:
    with Lab(backends=0) as lab:
        gw = lab.gateway
        iface = gw.client_link.name

        def apply(*addresses: str) -> None:
            gw.check_output([sys.executable, "-c", SCRIPT, iface, *addresses])

        def on_iface() -> set[str]:
            out = gw.check_output(["ip", "-4", "-o", "address", "show", "dev", iface])
            return {line.split()[3] for line in out.splitlines()}

        own = f"{gw.address}/24"
        apply("198.18.1.10", "198.18.1.11")
        assert on_iface() == {own, "198.18.1.10/32", "198.18.1.11/32"}
        # The client reaches the new address through the gateway node's link.
        assert lab.client.ping("198.18.1.10")
        # They are the Gateways' addresses, not the node's own.
        node = gw.check_output(
            [
                sys.executable,
                "-c",
                "from agent.node import node_addresses; print(*node_addresses())",
            ]
        )
        assert str(gw.address) in node.split() and "198.18.1.10" not in node.split()

        apply("198.18.1.11")
        assert on_iface() == {own, "198.18.1.11/32"}

        # An address someone else put there is left alone, even when no longer served.
        gw.ip("address", "add", "198.18.1.12/32", "dev", iface)
        apply()
        assert on_iface() == {own, "198.18.1.12/32"}
