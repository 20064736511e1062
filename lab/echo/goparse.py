"""The Go standard-library parsers echo-basic's behaviour rests on, re-done in Python.

- `parse_duration`: time.ParseDuration, used by `delay=` and `delayRetry=`;
  its error text is what echo-basic returns in `{"message": ...}`.
- `parse_query`: url.ParseQuery, used by Request.FormValue / URL.Query.
- `clean_path`: net/http's cleanPath (path.Clean keeping a trailing slash),
  which ServeMux uses to decide whether to redirect.

Pure functions, no I/O. Go strings are bytes; here they are `str`, with
percent-decoded bytes read as UTF-8.
"""

from __future__ import annotations

import re

from lab.echo.gojson import go_string

_MAX_INT64 = (1 << 63) - 1

# Nanoseconds per unit, as in time.unitMap.
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # MICRO SIGN
    "\u03bcs": 1_000,  # GREEK SMALL LETTER MU
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}


class DurationError(ValueError):
    """time.ParseDuration's error; str() is Go's message, word for word."""


def _go_quote(text: str) -> str:
    # strconv.Quote for the printable text durations are made of.
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped)
    return f'"{escaped}"'


def _invalid(orig: str) -> DurationError:
    return DurationError("time: invalid duration " + _go_quote(orig))


def _leading_digits(s: str) -> tuple[str, str]:
    i = 0
    while i < len(s) and "0" <= s[i] <= "9":
        i += 1
    return s[:i], s[i:]


def parse_duration(orig: str) -> int:
    """Returns: the duration in nanoseconds. Raises DurationError like Go.

    Grammar: `[-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+`, or `0` alone, e.g. "1s",
    "500ms", "1h15m", "-1.5h".
    """
    s = orig
    neg = False
    if s and s[0] in "-+":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise _invalid(orig)
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise _invalid(orig)
        whole, s = _leading_digits(s)
        frac = ""
        if s.startswith("."):
            frac, s = _leading_digits(s[1:])
        if not whole and not frac:
            # "." alone: Go needs digits before or after the point.
            raise _invalid(orig)
        i = 0
        while i < len(s) and s[i] != "." and not ("0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise DurationError("time: missing unit in duration " + _go_quote(orig))
        unit_name, s = s[:i], s[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise DurationError(
                "time: unknown unit " + _go_quote(unit_name) + " in duration " + _go_quote(orig)
            )
        value = int(whole or "0")
        if value > _MAX_INT64 // unit:
            raise _invalid(orig)
        value *= unit
        if frac:
            # Go keeps at most the digits that fit in an int64 and scales in
            # float64; int(float) truncates toward zero the same way.
            value += int(int(frac) * (unit / 10 ** len(frac)))
        total += value
        if total > _MAX_INT64:
            raise _invalid(orig)
    return -total if neg else total


_HEX = "0123456789abcdefABCDEF"


def _unescape(text: str) -> str | None:
    # url.QueryUnescape: "+" is a space, "%" needs two hex digits.
    out = bytearray()
    raw = text.encode()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x25:  # "%"
            pair = raw[i + 1 : i + 3]
            if len(pair) < 2 or any(chr(b) not in _HEX for b in pair):
                return None
            out.append(int(pair, 16))
            i += 3
            continue
        out.append(0x20 if c == 0x2B else c)
        i += 1
    return go_string(bytes(out))


def parse_query(raw: str) -> dict[str, list[str]]:
    """Returns: url.ParseQuery(raw) without its error: bad pairs are skipped, as Go does."""
    values: dict[str, list[str]] = {}
    for pair in raw.split("&"):
        # Since Go 1.17 a ";" makes the pair invalid rather than a separator.
        if not pair or ";" in pair:
            continue
        key, _, value = pair.partition("=")
        key_text = _unescape(key)
        value_text = _unescape(value)
        if key_text is None or value_text is None:
            continue
        values.setdefault(key_text, []).append(value_text)
    return values


def _path_clean(p: str) -> str:
    # path.Clean for a rooted path: collapse "//", drop ".", resolve "..".
    out: list[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    return "/" + "/".join(out)


def clean_path(p: str) -> str:
    """Returns: net/http cleanPath(p): rooted, clean, trailing slash kept."""
    if not p:
        return "/"
    if not p.startswith("/"):
        p = "/" + p
    cleaned = _path_clean(p)
    if p.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


_DIGITS3 = re.compile(r"\d\d\d", re.ASCII)


def is_three_digits(text: str) -> bool:
    """Returns: whether text is exactly three ASCII digits (echo-basic's `\\d\\d\\d`)."""
    return _DIGITS3.fullmatch(text) is not None
