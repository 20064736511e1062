"""Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted.

maglev_table(names, weights, size) fills `size` slots (a prime) with
backend indexes. Each backend walks its own permutation of the slots
(offset and skip from two hashes of its name) and claims the next free one
on its turns; turns come in proportion to weight (katran's weighted
variant: a backend takes a turn whenever its accumulated weight reaches
the largest weight). Hence:

- slot shares follow weights (within about one slot per backend per round);
- weight 0 gets no slot at all, so no new flow;
- a backend's slots depend on its name, not its position, and adding or
  removing one backend moves few slots of the others (minimal disruption).

Pure: no I/O. The BPF side indexes the table with hash(5-tuple) % size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from fractions import Fraction
from math import gcd, lcm


def _hashes(name: str) -> tuple[int, int]:
    d = hashlib.blake2b(name.encode(), digest_size=16).digest()
    return int.from_bytes(d[:8], "little"), int.from_bytes(d[8:], "little")


def integer_weights(weights: Sequence[Fraction | int]) -> list[int]:
    """The smallest integers in the same proportions (0 stays 0)."""
    fr = [Fraction(w) for w in weights]
    if any(w < 0 for w in fr):
        raise ValueError(f"negative weight in {weights}")
    den = lcm(*(w.denominator for w in fr)) if fr else 1
    ints = [int(w * den) for w in fr]
    g = 0
    for w in ints:
        g = gcd(g, w)
    return [w // g for w in ints] if g else ints


def maglev_table(names: Sequence[str], weights: Sequence[Fraction | int], size: int) -> list[int]:
    """Slot -> index into names; [] when no backend has weight > 0."""
    if len(names) != len(weights):
        raise ValueError("names and weights differ in length")
    if len(set(names)) != len(names):
        raise ValueError(f"backend names must be unique: {names}")
    if size < 2:
        raise ValueError(f"table size {size} is too small")
    w = integer_weights(weights)
    # Turns go in name order, so the table does not depend on list order.
    live = sorted((i for i, x in enumerate(w) if x > 0), key=lambda i: names[i])
    if not live:
        return []
    if len(live) > size:
        raise ValueError(f"{len(live)} backends do not fit a table of {size}")
    perms = {}
    for i in live:
        h1, h2 = _hashes(names[i])
        perms[i] = (h1 % size, h2 % (size - 1) + 1)
    nxt = dict.fromkeys(live, 0)
    cum = dict.fromkeys(live, 0)
    top = max(w[i] for i in live)
    table = [-1] * size
    filled = 0
    while True:
        for i in live:
            cum[i] += w[i]
            if cum[i] < top:
                continue
            cum[i] -= top
            offset, skip = perms[i]
            while True:
                slot = (offset + nxt[i] * skip) % size
                nxt[i] += 1
                if table[slot] < 0:
                    break
            table[slot] = i
            filled += 1
            if filled == size:
                return table
