"""The retry simulator's memory (echo-backend.md section 4, used by HTTPRouteRetry).

For each `uuid` it counts the attempts it has failed. An attempt fails while
that count is below `succeedAfter`; after that the request is echoed.
The count lives in this process only, which is why upstream runs
`infra-backend-v3` with one replica: a gateway's retries must land on the
process that remembers the earlier failures.

Invariant: at most MAX_TRACKED uuids are remembered, oldest forgotten first
(the suite uses a fresh uuid per probe, so old entries are never asked for
again; upstream keeps them all, we bound the memory of a long lab run).
"""

from __future__ import annotations

from collections import OrderedDict

MAX_TRACKED = 100_000


class RetrySimulator:
    def __init__(self, max_tracked: int = MAX_TRACKED) -> None:
        self._failures: OrderedDict[str, int] = OrderedDict()
        self._max_tracked = max_tracked

    def should_fail(self, uuid: str, succeed_after: int) -> bool:
        """Returns: whether this attempt fails; counts it if so."""
        failed = self._failures.get(uuid, 0)
        if failed >= succeed_after:
            return False
        self._failures[uuid] = failed + 1
        self._failures.move_to_end(uuid)
        while len(self._failures) > self._max_tracked:
            self._failures.popitem(last=False)
        return True
