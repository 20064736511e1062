"""h11's Content-Length body reader, with fewer Python steps per body.

h11's `ContentLengthReader` builds each `Data` event through its constructor and a
new `EndOfMessage()` at the end, whose constructor normalizes an empty field list:
a few microseconds per message, for events that are immutable. This reader reads
the same bytes in the same pieces (all that is buffered, up to what remains of the
body), gives the whole buffer away instead of copying it when all of it is body,
builds `Data` as its constructor would, and ends every body with one shared
`EndOfMessage`. A body cut short by the close is h11's error (`read_eof`).
tests/l7/test_l7_h1body.py holds it to h11's reader, piece by piece.
"""

from __future__ import annotations

import h11
from h11._readers import ContentLengthReader as _H11ContentLengthReader
from h11._receivebuffer import ReceiveBuffer

END = h11.EndOfMessage()
_Data = h11.Data
_new = object.__new__
_set = object.__setattr__


class ContentLengthReader(_H11ContentLengthReader):
    __slots__ = ()

    def __call__(self, buf: ReceiveBuffer) -> h11.Data | h11.EndOfMessage | None:
        remaining = self._remaining
        if remaining == 0:
            return END
        data = buf._data
        n = len(data)
        if n == 0:
            return None
        if n <= remaining:
            buf._data = bytearray()  # all of it is body: handed over, not copied
            chunk = data
        else:
            chunk = data[:remaining]
            del data[:remaining]
        buf._next_line_search = buf._multiple_lines_search = 0
        self._remaining = remaining - len(chunk)
        event = _new(_Data)
        _set(event, "data", chunk)
        _set(event, "chunk_start", False)
        _set(event, "chunk_end", False)
        return event
