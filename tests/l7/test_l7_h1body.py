"""h1body's Content-Length reader against h11's: the same events (type, bytes), the same
bytes left in the buffer after each, and the same error at a close mid-body, for bodies
arriving in pieces of every size, with and without bytes after the body."""

from __future__ import annotations

from typing import Any

import h11
import pytest
from h11._readers import ContentLengthReader as H11Reader
from h11._receivebuffer import ReceiveBuffer

from l7.h1body import END, ContentLengthReader


def run(reader: Any, pieces: list[bytes], close: bool) -> list[Any]:
    buf = ReceiveBuffer()
    out: list[Any] = []
    for piece in pieces:
        buf += piece
        while True:
            event = reader(buf)
            if event is None:
                break
            if type(event) is h11.Data:
                out.append(("data", bytes(event.data), event.chunk_start, event.chunk_end))
            else:
                out.append(("end", type(event).__name__, list(event.headers)))
            out.append(("left", bytes(buf)))
            if type(event) is h11.EndOfMessage:
                return out
    if close:
        try:
            reader.read_eof()
        except h11.RemoteProtocolError as exc:
            out.append(("error", str(exc)))
    return out


def cases() -> list[tuple[int, list[bytes]]]:
    out = []
    for length in (0, 1, 7, 64):
        body = bytes(range(65, 65 + length))
        for tail in (b"", b"NEXT"):
            data = body + tail
            for size in (1, 3, len(data) or 1):
                out.append((length, [data[i : i + size] for i in range(0, len(data), size)]))
        # Cut short: the close comes before the whole body.
        if length > 1:
            out.append((length, [body[: length // 2]]))
    return out


@pytest.mark.parametrize(("length", "pieces"), cases())
def test_same_events_as_h11(length: int, pieces: list[bytes]) -> None:
    ours = run(ContentLengthReader(length), pieces, close=True)
    theirs = run(H11Reader(length), pieces, close=True)
    assert ours == theirs


def test_one_end_event_for_every_body() -> None:
    buf = ReceiveBuffer()
    assert ContentLengthReader(0)(buf) is END
    assert ContentLengthReader(0)(buf) is END
