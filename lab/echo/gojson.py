"""JSON bytes as Go's encoding/json writes them, so our echo bodies match echo-basic's.

Go differs from Python's json module in three ways that show on the wire:

- `<`, `>`, `&`, U+2028 and U+2029 inside strings are escaped as `\\u003c`,
  `\\u003e`, `\\u0026`, `\\u2028`, `\\u2029` (Marshal's HTML-safe default).
- Non-ASCII text is written as raw UTF-8, not `\\uXXXX`.
- A Go string is bytes; invalid UTF-8 becomes U+FFFD, one per bad byte
  (`utf8.DecodeRuneInString` returns width 1 for any invalid sequence).

Key order is the caller's: Go writes struct fields in declaration order and
map keys sorted, so callers pass dicts already in that order.
MarshalIndent(v, "", " ") has the same layout as json.dumps(indent=1).
"""

from __future__ import annotations

import codecs
import json
from typing import Any

_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_ESCAPE_TABLE = str.maketrans(_GO_ESCAPES)


def _replace_per_byte(exc: UnicodeError) -> tuple[str, int]:
    # Python's "replace" substitutes one U+FFFD per maximal invalid subpart;
    # Go substitutes one per byte.
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\ufffd" * (exc.end - exc.start), exc.end


codecs.register_error("nodegate-go-utf8", _replace_per_byte)


def go_string(raw: bytes) -> str:
    """Returns: the text Go's json.Marshal encodes for `string(raw)`."""
    return raw.decode("utf-8", errors="nodegate-go-utf8")


def marshal(value: Any) -> bytes:
    """Returns: compact JSON, like Go's json.Marshal."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Structural JSON never contains these characters, so translating the
    # whole document only touches string contents.
    return text.translate(_ESCAPE_TABLE).encode()


def marshal_indent(value: Any) -> bytes:
    """Returns: JSON indented by one space, like Go's json.MarshalIndent(v, "", " ")."""
    text = json.dumps(value, ensure_ascii=False, indent=1)
    return text.translate(_ESCAPE_TABLE).encode()
