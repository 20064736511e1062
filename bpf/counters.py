"""What the datapath counts, summed over CPUs, for the metrics collector."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.nodeconfig import Ref

# The index of each name is NG_DROP_* in bpf/lib/consts.h.
DROP_REASONS = (
    "malformed",
    "invalid_backend",
    "rejected",
    "no_backend",
    "no_nat_port",
    "no_route",
    "conntrack",
)


@dataclass(frozen=True)
class ListenerCounters:
    ref: Ref | None
    protocol: str
    address: str
    port: int
    packets: int  # client -> backend
    bytes: int
    reply_packets: int  # backend -> client
    reply_bytes: int
    new_flows: int
    drops: dict[str, int] = field(default_factory=dict)
    maglev_generation: int = 0  # the NodeConfig generation that last wrote its Maglev table


@dataclass(frozen=True)
class L4Counters:
    listeners: list[ListenerCounters]
    unattributed_drops: dict[str, int]  # malformed packets no listener owns
    conntrack_flows: int  # live forward entries
    conntrack_entries: int  # live entries, both directions
    conntrack_capacity: int  # entries the LRU map holds (two per flow)
    # When the conntrack figures were sampled (time.monotonic()); 0 = not yet. A background
    # walk refreshes them, so reading counters costs nothing that grows with the flows.
    conntrack_sampled_at: float = 0.0
