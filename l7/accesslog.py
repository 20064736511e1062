"""The optional L7 access log: one JSON object per line, one line per request.

Fields: time (RFC 3339, UTC), gateway, listener, route, backend (the refs'
"namespace/name", the listener's name; "" where nothing was routed or no backend
answered), method, path (without the query), status, duration_ms (from the
complete request head to the end of the response) and bytes (of response body
sent). Unlike the stats, the log may carry the path: it is not a metric label.
A request refused before routing (malformed, over a limit) is counted in the
stats under route "" but has no line: its method and path are not to be trusted.

Lines are queued and written once per event-loop iteration, each batch in one
write() to the worker's log fd, so lines of several workers sharing a pipe or an
O_APPEND file never interleave mid-line (a batch is whole lines), and the request
path pays a dict and a json.dumps only when the log is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from typing import Any


class AccessLog:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lines: list[str] = []
        self.scheduled = False

    def write(self, **fields: Any) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        record = {"time": f"{stamp}.{int(now * 1000) % 1000:03d}Z", **fields}
        self.lines.append(json.dumps(record, separators=(",", ":")))
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if not self.lines:
            return
        data = ("\n".join(self.lines) + "\n").encode()
        self.lines.clear()
        with contextlib.suppress(OSError):  # a closed log must not fail requests
            while data:
                n = os.write(self.fd, data)
                data = data[n:]
