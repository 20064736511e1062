"""Structured logs: one line per event, JSON or key=value, with levels.

    configure("json", "info")      # nodegate run --log-format json --log-level info
    log.info("applied", extra={"generation": 7, "datapath": "l4"})

JSON: {"ts": "2025-01-02T03:04:05.678Z", "level": "info", "logger": "agent.reconcile",
"msg": "...", <extra fields>, "exc": "<traceback>"}.
key=value (logfmt): ts=... level=info logger=agent.reconcile msg="..." key=value ...

Invariants:
- Every record is exactly one line: newlines in messages, field values and tracebacks
  are escaped (JSON escapes them; logfmt values are quoted with backslash escapes), so a
  log shipper never splits an event.
- Fields passed with `extra=` come out as fields of their own, after the standard ones, in
  the order given; values that are not JSON types are written as their str().
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

FORMATS = ("kv", "json")
LEVELS = ("debug", "info", "warning", "error")

# LogRecord's own attributes: everything else in record.__dict__ came from `extra=`.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


def _timestamp(created: float) -> str:
    t = time.gmtime(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(created % 1 * 1000):03d}Z"


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The event as ordered fields: ts, level, logger, msg, extras, exc."""
    out: dict[str, Any] = {
        "ts": _timestamp(record.created),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for k, v in record.__dict__.items():
        if k not in _STANDARD and not k.startswith("_"):
            out[k] = v
    if record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    elif record.exc_text:
        out["exc"] = record.exc_text
    if record.stack_info:
        out["stack"] = record.stack_info
    return out


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(fields(record), default=str, ensure_ascii=False)


def _kv_value(v: Any) -> str:
    s = v if isinstance(v, str) else str(v)
    if s and not any(c in s for c in ' "=\\') and s.isprintable():
        return s
    return json.dumps(s, ensure_ascii=False)  # quoted, with \n \" \\ escaped


class KVFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_kv_value(v)}" for k, v in fields(record).items())


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JSONFormatter()
    if fmt == "kv":
        return KVFormatter()
    raise ValueError(f"log format {fmt!r}: want one of {FORMATS}")


def configure(fmt: str = "kv", level: str = "info", stream: TextIO | None = None) -> None:
    """Send every logger's records to `stream` (stderr) as `fmt`, from `level` up."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: want one of {LEVELS}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
