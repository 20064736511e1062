"""agent.logs: one line per event, JSON or key=value."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from agent.logs import configure


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def emit(fmt: str, level: str = "info") -> list[str]:
    out = io.StringIO()
    configure(fmt, level, stream=out)
    log = logging.getLogger("agent.test")
    log.debug("hidden unless debug")
    log.info("applied generation %d", 7, extra={"datapath": "l4", "objects": 3})
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception('failed "twice"\nreally')
    return out.getvalue().splitlines()


def test_json_one_object_per_line_with_extras_and_traceback(restore_root: None) -> None:
    lines = emit("json")
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert list(first) == ["ts", "level", "logger", "msg", "datapath", "objects"]
    assert first["level"] == "info" and first["logger"] == "agent.test"
    assert first["msg"] == "applied generation 7"
    assert first["datapath"] == "l4" and first["objects"] == 3
    assert first["ts"].endswith("Z") and first["ts"][10] == "T"
    assert second["level"] == "error" and second["msg"] == 'failed "twice"\nreally'
    assert second["exc"].startswith("Traceback") and "ValueError: bad\nvalue" in second["exc"]


def test_kv_quotes_what_would_break_the_line_or_the_pairs(restore_root: None) -> None:
    lines = emit("kv")
    assert len(lines) == 2
    assert lines[0].startswith("ts=")
    assert lines[0].endswith(
        ' level=info logger=agent.test msg="applied generation 7" datapath=l4 objects=3'
    )
    assert (
        ' level=error logger=agent.test msg="failed \\"twice\\"\\nreally" exc="Traceback'
        in lines[1]
    )
    assert 'ValueError: bad\\nvalue"' in lines[1]


def test_debug_level_lets_debug_through(restore_root: None) -> None:
    lines = emit("kv", "debug")
    assert len(lines) == 3 and lines[0].endswith('msg="hidden unless debug"')


def test_unknown_format_or_level_is_refused(restore_root: None) -> None:
    with pytest.raises(ValueError):
        configure("xml", "info")
    with pytest.raises(ValueError):
        configure("kv", "loud")
