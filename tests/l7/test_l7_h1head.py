"""h1head's readers against h11's own (`maybe_read_from_IDLE_client`,
`maybe_read_from_SEND_RESPONSE_server`, with nodegate's obs-fold hardening): the same
verdict (incomplete, refused with which status hint, or read), the same event and the
same bytes left in the buffer, for a table of heads and every one-byte mutation of a few."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h11
import pytest
from h11._readers import maybe_read_from_IDLE_client, maybe_read_from_SEND_RESPONSE_server
from h11._receivebuffer import ReceiveBuffer

from l7.h1head import read_request, read_response
from l7.limits import install_h11_hardening

install_h11_hardening()


def outcome(reader: Callable[[ReceiveBuffer], Any], data: bytes) -> tuple[Any, ...]:
    buf = ReceiveBuffer()
    buf += data
    try:
        event = reader(buf)
    except h11.LocalProtocolError as exc:
        return ("refused", exc.error_status_hint)
    if event is None:
        return ("incomplete", bytes(buf))
    fields: list[Any] = [(type(event).__name__, event.headers._full_items, event.http_version)]
    if type(event) is h11.Request:
        fields.append((event.method, event.target))
    else:
        fields.append((event.status_code, event.reason))
    return ("read", fields, bytes(buf))


def same(ours: Callable[[ReceiveBuffer], Any], theirs: Callable[[ReceiveBuffer], Any]) -> Any:
    def check(data: bytes) -> tuple[Any, ...]:
        got = outcome(ours, data)
        assert got == outcome(theirs, data), data
        return got

    return check


same_request = same(read_request, maybe_read_from_IDLE_client)
same_response = same(read_response, maybe_read_from_SEND_RESPONSE_server)

REQUESTS = [
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "read"),
    (b"GET /x?y=1 HTTP/1.1\r\nHost: a:80\r\nX-A: b c\r\nX-Empty:\r\nX-Ws:  v \r\n\r\nrest", "read"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "read"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", "read"),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING: Chunked\r\n\r\n", "read"),
    (b"GET / HTTP/1.0\r\n\r\n", "read"),
    (b"GET / HTTP/1.1\nHost: a\n\n", "read"),  # bare LF line ends, as h11 takes them
    (b"GET / HTTP/1.1\r\nHost: a\r\nX-Obs: \xff\xfe\r\n\r\n", "read"),  # obs-text
    (b"GET / HTTP/1.1\r\nHost: a\r\n", "incomplete"),
    (b"", "incomplete"),
    (b"\x16\x03\x01", "refused"),
    (b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "refused"),
    (b"GET / HTTP/1.1\r\n\r\n", "refused"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "refused"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", "refused"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", "refused"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX : a\r\n\r\n", "refused"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n", "refused"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "refused"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "refused"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "refused"),
    (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "refused"),
    (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", "refused"),
    (b"G\x7fT / HTTP/1.1\r\nHost: a\r\n\r\n", "refused"),
]
RESPONSES = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", "read"),
    (b"HTTP/1.1 200\r\nServer: x\r\n\r\n", "read"),  # no reason phrase
    (b"HTTP/1.1 204 \r\n\r\n", "read"),
    (b"HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "read"),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", "read"),
    (b"HTTP/1.1 404 Not \xffound\r\nContent-Length: 0\r\n\r\n", "read"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "incomplete"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "refused"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "refused"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     "refused"),
    (b"HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\n\r\n", "refused"),
    (b"HTTP/2 200 OK\r\n\r\n", "refused"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "verdict"), REQUESTS)
def test_request_heads(data: bytes, verdict: str) -> None:
    assert same_request(data)[0] == verdict


@pytest.mark.parametrize(("data", "verdict"), RESPONSES)
def test_response_heads(data: bytes, verdict: str) -> None:
    assert same_response(data)[0] == verdict


def test_status_hints_of_refusals() -> None:
    assert outcome(read_request, REQUESTS[-4][0]) == ("refused", 501)  # Transfer-Encoding gzip
    assert outcome(read_request, REQUESTS[12][0]) == ("refused", 400)  # no Host


BYTES = b"\r\n \t:,\x00\x7f\x80aA0/;"


def mutations(data: bytes) -> list[bytes]:
    """Every single-byte replacement by one of BYTES, deletion and insertion."""
    out = []
    for i in range(len(data)):
        out.append(data[:i] + data[i + 1 :])
        for b in BYTES:
            out.append(data[:i] + bytes([b]) + data[i + 1 :])
            out.append(data[:i] + bytes([b]) + data[i:])
    return out


SEEDS_REQUEST = [
    b"GET /a?b HTTP/1.1\r\nHost: h\r\nX-A: b c\r\n\r\n",
    b"GET / HTTP/1.1\nHost: h\nX: y\n\nGET",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
]
SEEDS_RESPONSE = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-A: b\r\n\r\n",
    b"HTTP/1.1 204 \r\nX: \t\r\n\nrest",
    b"HTTP/1.1 101 Switching\r\nTransfer-Encoding: chunked\r\n\r\n",
]


@pytest.mark.parametrize("seed", SEEDS_REQUEST)
def test_every_mutation_of_a_request_head(seed: bytes) -> None:
    verdicts = {same_request(m)[0] for m in mutations(seed)}
    assert verdicts == {"read", "refused", "incomplete"}


@pytest.mark.parametrize("seed", SEEDS_RESPONSE)
def test_every_mutation_of_a_response_head(seed: bytes) -> None:
    verdicts = {same_response(m)[0] for m in mutations(seed)}
    assert verdicts == {"read", "refused", "incomplete"}


@pytest.mark.parametrize("octet", range(256))
def test_every_octet_in_a_field(octet: int) -> None:
    """Each byte value in a field's name, inside, at either end of and alone as its value:
    the field-line scan accepts exactly what h11's `header_field` regex does."""
    o = bytes([octet])
    for line in (
        b"X" + o + b"A: v",
        b"X-A: a" + o + b"b",
        b"X-A:" + o + b"b",
        b"X-A: a" + o,
        b"X-A:" + o,
        b"X-A: a " + o + b" b",
    ):
        same_request(b"GET / HTTP/1.1\r\nHost: h\r\n" + line + b"\r\n\r\n")
        same_response(b"HTTP/1.1 200 OK\r\n" + line + b"\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize(
    ("reader", "theirs", "data"),
    [
        (read_request, maybe_read_from_IDLE_client, SEEDS_REQUEST[0] + b"GET / HT"),
        (read_request, maybe_read_from_IDLE_client, SEEDS_REQUEST[1]),
        (read_response, maybe_read_from_SEND_RESPONSE_server, SEEDS_RESPONSE[0] + b"0123"),
        (read_response, maybe_read_from_SEND_RESPONSE_server, SEEDS_RESPONSE[1]),
    ],
)
def test_a_head_arriving_byte_by_byte(
    reader: Callable[[ReceiveBuffer], Any], theirs: Callable[[ReceiveBuffer], Any], data: bytes
) -> None:
    """Both readers resume their search where it stopped and agree at every byte."""
    ours_buf, theirs_buf = ReceiveBuffer(), ReceiveBuffer()
    got: list[Any] = []
    for i in range(len(data)):
        ours_buf += data[i : i + 1]
        theirs_buf += data[i : i + 1]
        a, b = reader(ours_buf), theirs(theirs_buf)
        assert (a is None) == (b is None)
        if a is not None:
            assert (type(a), a.headers._full_items) == (type(b), b.headers._full_items)
            got.append(a)
        assert bytes(ours_buf) == bytes(theirs_buf)
    assert len(got) == 1


def test_remembered_lines_read_as_fresh_ones() -> None:
    """A head read again (its lines remembered) reads as it did the first time, and the
    tables of lines stay bounded; a long line is never remembered."""
    from l7 import h1head

    h1head._LINES.clear()
    h1head._FIRST.clear()
    head = b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\nX-A:  b \r\n\r\n"
    first = outcome(read_request, head)
    assert (len(h1head._LINES), len(h1head._FIRST)) == (3, 1)
    assert outcome(read_request, head) == first == outcome(maybe_read_from_IDLE_client, head)
    for i in range(h1head._LINES_MAX + 10):
        outcome(read_request, b"GET /%d HTTP/1.1\r\nHost: h\r\nX-%d: v\r\n\r\n" % (i, i))
    assert len(h1head._LINES) <= h1head._LINES_MAX
    assert len(h1head._FIRST) <= h1head._LINES_MAX
    status = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert outcome(read_response, status) == outcome(read_response, status)
    long = b"X-Long: " + b"v" * h1head._LINE_LONGEST
    same_request(b"GET / HTTP/1.1\r\nHost: h\r\n" + long + b"\r\n\r\n")
    assert long + b"\r" not in h1head._LINES
