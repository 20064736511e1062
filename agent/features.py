"""What this build of nodegate claims, as Gateway API SupportedFeature names.

A feature is claimed only while its datapath is attached and only when the
shared conformance cases that need it pass in the lab (`make conformance`);
the GatewayClass lists exactly the union of what the attached datapaths
claim, so a node without a datapath claims nothing for it. Add a name here
in the same commit that shows its cases passing.
"""

from __future__ import annotations

from collections.abc import Iterable

# Core features every datapath brings with it: Gateways, and ReferenceGrant for
# cross-namespace references (both are translation, checked by the status test).
_CORE = frozenset({"Gateway", "ReferenceGrant"})

CLAIMS: dict[str, frozenset[str]] = {
    "l7": _CORE | frozenset(),
    "l4": _CORE | frozenset(),
}


def claimed(datapaths: Iterable[str]) -> frozenset[str]:
    """The features a set of attached datapaths (by name) lets nodegate claim."""
    out: frozenset[str] = frozenset()
    for name in datapaths:
        out |= CLAIMS.get(name, frozenset())
    return out
