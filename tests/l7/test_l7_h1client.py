"""The backend side's response parser (h11's readers without its state machine), as data:
bytes in, events and reuse decisions out."""

from __future__ import annotations

from typing import Any

import h11
import pytest

from l7.filters import outgoing_request_headers
from l7.h1client import (
    HEAD,
    NEED_DATA,
    BackendClosed,
    ProtocolError,
    ResponseParser,
    request_wire,
    serialize_request,
)
from l7.h1head import request_in
from l7.limits import install_h11_hardening

install_h11_hardening()


def events(
    data: bytes, method: bytes = b"GET", upgrade: bool = False, eof: bool = False
) -> tuple[list[Any], ResponseParser]:
    p = ResponseParser()
    p.start(method, upgrade)
    p.feed(data)
    if eof:
        p.feed_eof()
    out: list[Any] = []
    while True:
        e = p.next_event()
        if e is NEED_DATA:
            return out, p
        out.append(e)
        if type(e) is h11.EndOfMessage or (
            type(e) is h11.InformationalResponse and e.status_code == 101
        ):
            return out, p


def kinds(evs: list[Any]) -> list[str]:
    return [type(e).__name__ for e in evs]


FRAMING = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", b"GET", False,
         ["Response", "Data", "EndOfMessage"], b"abc", True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"GET", False,
         ["Response", "EndOfMessage"], b"", True),
        # HEAD: no body whatever Content-Length says (RFC 9110, 9.3.2).
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", b"HEAD", False,
         ["Response", "EndOfMessage"], b"", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", b"GET",
         False, ["Response", "Data", "EndOfMessage"], b"abc", True),
        # No framing: the body runs to the close, and the connection cannot be reused.
        (b"HTTP/1.1 200 OK\r\n\r\nto the end", b"GET", True,
         ["Response", "Data", "EndOfMessage"], b"to the end", False),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", b"GET", False,
         ["Response", "Data", "EndOfMessage"], b"x", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", b"GET", False,
         ["Response", "Data", "EndOfMessage"], b"x", False),
        # Bytes after the response: nobody asked for them, so no reuse.
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n", b"GET", False,
         ["Response", "Data", "EndOfMessage"], b"x", False),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b"POST",
         False, ["InformationalResponse", "Response", "EndOfMessage"], b"", True),
]  # fmt: skip


@pytest.mark.parametrize(("data", "method", "eof", "expected", "body", "reusable"), FRAMING)
def test_framing_and_reuse(
    data: bytes, method: bytes, eof: bool, expected: list[str], body: bytes, reusable: bool
) -> None:
    evs, p = events(data, method, eof=eof)
    assert kinds(evs) == expected
    assert b"".join(bytes(e.data) for e in evs if type(e) is h11.Data) == body
    assert p.reusable() is reusable


REFUSED = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n",  # obs-fold
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"garbage\r\n\r\n",
    # 101 to a request that proposed no upgrade (RFC 9110, 15.2.2).
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
]


@pytest.mark.parametrize("data", REFUSED)
def test_refuses_what_h11_refuses(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        events(data)


def test_a_head_over_the_limit_is_refused() -> None:
    with pytest.raises(ProtocolError):
        events(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 20000)


def test_close_before_a_head_and_mid_body() -> None:
    with pytest.raises(BackendClosed):
        events(b"", eof=True)
    with pytest.raises(ProtocolError):
        events(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", eof=True)
    with pytest.raises(ProtocolError):
        events(b"HTTP/1.1 20", eof=True)


def test_upgrade_hands_over_the_bytes_after_the_head() -> None:
    evs, p = events(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi", upgrade=True
    )
    assert kinds(evs) == ["InformationalResponse"]
    assert p.trailing() == b"\x81\x02hi"
    assert not p.reusable()


def test_body_in_pieces() -> None:
    p = ResponseParser()
    p.start(b"GET", False)
    p.feed(b"HTTP/1.1 200 OK\r\nContent-Le")
    assert p.next_event() is NEED_DATA
    p.feed(b"ngth: 4\r\n\r\nab")
    assert type(p.next_event()) is h11.Response
    assert bytes(p.next_event().data) == b"ab"
    assert p.next_event() is NEED_DATA
    p.feed(b"cd")
    assert bytes(p.next_event().data) == b"cd"
    assert type(p.next_event()) is h11.EndOfMessage
    assert p.reusable()


def test_serialized_request_is_what_h11_would_write() -> None:
    headers = [(b"host", b"h"), (b"x-a", b"1"), (b"content-length", b"2")]
    ours = serialize_request(b"POST", b"/p?q=1", headers, b"hi")
    conn = h11.Connection(h11.CLIENT)
    theirs = conn.send(h11.Request(method=b"POST", target=b"/p?q=1", headers=headers))
    theirs = (theirs or b"") + (conn.send(h11.Data(data=b"hi")) or b"")
    theirs += conn.send(h11.EndOfMessage()) or b""
    assert ours == theirs


WHOLE = (
    [(c[0], c[1]) for c in FRAMING]
    + [(d, b"GET") for d in REFUSED]
    + [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab", b"GET"),  # body still coming
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", b"GET"),  # head still coming
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b"HEAD"),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", b"GET"),
        (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", b"GET"),  # bare LF line ends
        (b"HTTP/1.1 200 OK\r\nConnection: keep-alive, x-a\r\nContent-Length: 2\r\n\r\nok", b"GET"),
        (b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"GET"),
    ]
)


@pytest.mark.parametrize(("data", "method"), WHOLE)
def test_whole_reads_what_the_events_read_or_nothing(data: bytes, method: bytes) -> None:
    """`whole()` takes a response only when it is a final one with a Content-Length body
    that is all of `data`, and then it reads what the events read and leaves the same
    reuse decision; otherwise it takes nothing."""
    p = ResponseParser()
    p.start(method, False)
    got = p.whole(data)
    try:
        evs, general = events(data, method)
    except ProtocolError:
        assert got is None
        return
    if got is None:
        assert (p.state, bytes(p.buf)) == (HEAD, b"")
        return
    response, _, body = got
    assert kinds(evs) == ["Response", *(["Data"] if body else []), "EndOfMessage"]
    first = evs[0]
    assert (response.status_code, response.reason, response.http_version) == (
        first.status_code,
        first.reason,
        first.http_version,
    )
    assert response.headers._full_items == first.headers._full_items
    assert body == b"".join(bytes(e.data) for e in evs if type(e) is h11.Data)
    assert p.reusable() is general.reusable()


def test_whole_takes_the_usual_answer() -> None:
    p = ResponseParser()
    p.start(b"GET", False)
    got = p.whole(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
    assert got is not None and got[2] == b"ok" and p.reusable()


WIRE_REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /x?y HTTP/1.1\r\nHost: a:8080\r\nUser-Agent: u\r\nAccept:  */* \r\n\r\n",
    b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nHost: a\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-a\r\nX-A: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nKeep-Alive: 5\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Client-Cert: forged\r\n\r\n",
]


@pytest.mark.parametrize("head", WIRE_REQUESTS)
def test_request_wire_is_the_composed_request(head: bytes) -> None:
    """A request head with nothing special is forwarded as its fields' wire forms: the
    bytes `serialize_request` writes for what `outgoing_request_headers` makes of it."""
    read = request_in(head)
    assert read is not None
    request, fields, _, _ = read
    host = b"a:8080" if b"a:8080" in head else b"a"
    headers, _ = outgoing_request_headers(fields.items, None, b"198.18.0.9", b"http", host)
    composed = serialize_request(request.method, request.target, headers, b"")
    if fields.special:
        return  # the proxy builds these field by field
    got = request_wire(request.method, request.target, host, fields.wires, b"198.18.0.9", b"http")
    assert got == composed


def test_which_requests_have_something_special() -> None:
    special = []
    for head in WIRE_REQUESTS:
        read = request_in(head)
        assert read is not None
        special.append(read[1].special)
    assert special == [False, False, False, True, True, True, True, True, True]


def test_every_field_the_proxy_owns_is_special() -> None:
    """The wire-form paths copy every field not marked special: each field the proxy
    drops or writes itself on a request (filters' _REQUEST_OWN, hop-by-hop included) must
    be one the head reader takes note of, so a head carrying it is never copied as is."""
    from l7 import filters, h1head

    for name in filters._REQUEST_OWN | filters.HOP_BY_HOP:
        assert name in h1head._WATCHED, name
        if name not in (b"host", b"content-length", b"connection"):
            value = b"chunked" if name == b"transfer-encoding" else b"x"
            head = b"GET / HTTP/1.1\r\nHost: a\r\n" + name + b": " + value + b"\r\n\r\n"
            read = request_in(head)
            assert read is not None and read[1].special, name
