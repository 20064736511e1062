"""The client side's request parser and response writer (h11's readers and writers without
its state machine), as data: bytes in, events, refusals and bytes out. Each case is also
run through `h11.Connection` in the server role, which the parser replaces: both must agree
on what is accepted, with which events, and on every byte written back."""

from __future__ import annotations

from typing import Any

import h11
import pytest

from l7.filters import outgoing_response_headers
from l7.h1head import Fields, _fields
from l7.h1server import (
    CONTINUE,
    NEED_DATA,
    NO_TRAILERS,
    ProtocolError,
    RequestParser,
    relayed_head,
    response_head,
    switch_head,
)
from l7.limits import Limits, install_h11_hardening

install_h11_hardening()

LIMITS = Limits(max_headers=20, max_header_bytes=1024, max_body_bytes=100)


def parse(data: bytes, eof: bool = False) -> tuple[list[Any], RequestParser]:
    """Events of the first request in `data` (up to its end, or until more is needed)."""
    p = RequestParser(LIMITS)
    p.feed(data)
    if eof:
        p.feed_eof()
    out: list[Any] = []
    while True:
        e = p.next_event()
        if e is NEED_DATA:
            return out, p
        out.append(e)
        if type(e) in (h11.EndOfMessage, h11.ConnectionClosed):
            return out, p


def h11_events(data: bytes, eof: bool = False) -> list[Any]:
    """What h11.Connection makes of the same bytes (raises h11.RemoteProtocolError)."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=LIMITS.max_header_bytes)
    conn.receive_data(data)
    if eof:
        conn.receive_data(b"")
    out: list[Any] = []
    while True:
        e = conn.next_event()
        if e is h11.NEED_DATA or e is h11.PAUSED:
            return out
        out.append(e)
        if type(e) in (h11.EndOfMessage, h11.ConnectionClosed):
            return out


def summary(events: list[Any]) -> list[Any]:
    out: list[Any] = []
    for e in events:
        if type(e) is h11.Request:
            out.append(("Request", e.method, e.target, e.http_version, list(e.headers)))
        elif type(e) is h11.Data:
            out.append(("Data", bytes(e.data)))
        else:
            out.append((type(e).__name__,))
    return out


GET = b"GET / HTTP/1.1\r\nHost: a\r\n"

# description, bytes, eof, keep-alive, expect 100-continue, upgrade proposed, body
ACCEPTED = [
    ("plain GET", GET + b"\r\n", False, True, False, False, b""),
    ("HTTP/1.0 without Host", b"GET / HTTP/1.0\r\n\r\n", False, False, False, False, b""),
    ("Connection: close", GET + b"Connection: close\r\n\r\n", False, False, False, False, b""),
    ("Connection: keep-alive, Close", GET + b"Connection: keep-alive, Close\r\n\r\n", False,
     False, False, False, b""),
    ("HTTP/1.0 asking for keep-alive", b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
     False, False, False, False, b""),
    ("Content-Length body", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
     False, True, False, False, b"hello"),
    ("Content-Length: 0", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", False,
     True, False, False, b""),
    ("repeated equal Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
     b"Content-Length: 2\r\n\r\nhi", False, True, False, False, b"hi"),
    ("chunked body with extension and trailer", b"POST / HTTP/1.1\r\nHost: a\r\n"
     b"Transfer-Encoding: Chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
     False, True, False, False, b"abcde"),
    ("Expect: 100-continue", b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
     b"Content-Length: 1\r\n\r\nx", False, True, True, False, b"x"),
    ("Expect in HTTP/1.0 is ignored", b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n"
     b"Content-Length: 1\r\n\r\nx", False, False, False, False, b"x"),
    ("WebSocket upgrade", GET + b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n", False,
     True, False, True, b""),
    ("empty Upgrade proposes nothing", GET + b"Upgrade: ,\r\n\r\n", False, True, False, False,
     b""),
    ("absolute-form target", b"GET http://a/x?y HTTP/1.1\r\nHost: a\r\n\r\n", False, True,
     False, False, b""),
    # h11 takes any one-digit version, and asks Host of HTTP/1.1 only.
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", False, True, False, False, b""),
    ("request then EOF", GET + b"\r\n", True, True, False, False, b""),
    ("exactly max_headers fields", GET + b"".join(b"X-%d: v\r\n" % i for i in range(19))
     + b"\r\n", False, True, False, False, b""),
    ("body at the limit", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n"
     + b"x" * 100, False, True, False, False, b"x" * 100),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "eof", "keep_alive", "expect", "upgrade", "body"),
    [c[1:] for c in ACCEPTED],
    ids=[c[0] for c in ACCEPTED],
)
def test_accepted_as_h11_accepts(
    data: bytes, eof: bool, keep_alive: bool, expect: bool, upgrade: bool, body: bytes
) -> None:
    evs, p = parse(data, eof)
    assert summary(evs) == summary(h11_events(data, eof))
    assert type(evs[0]) is h11.Request and type(evs[-1]) is h11.EndOfMessage
    assert b"".join(bytes(e.data) for e in evs if type(e) is h11.Data) == body
    assert (p.keep_alive, p.expect_continue, p.upgrade) == (keep_alive, expect, upgrade)
    assert p.method == evs[0].method and p.http_version == evs[0].http_version


# description, bytes, eof, status; h11 refuses these too unless `ours` (limits of our own)
REFUSED = [
    ("CL and TE", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: "
     b"chunked\r\n\r\n0\r\n\r\n", False, 400, True),
    ("TE and CL", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
     b"Content-Length: 5\r\n\r\n", False, 400, True),
    ("duplicate differing Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5"
     b"\r\nContent-Length: 6\r\n\r\nhello!", False, 400, False),
    ("Content-Length list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
     False, 400, False),
    ("signed Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
     False, 400, False),
    ("TE other than chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
     False, 501, False),
    ("two TE fields", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", False, 501, False),
    ("non-hex chunk size", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"zz\r\nhello\r\n0\r\n\r\n", False, 400, False),
    ("negative chunk size", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"-5\r\nhello\r\n", False, 400, False),
    ("chunk size over 64 bits", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked"
     b"\r\n\r\n1" + b"0" * 20 + b"\r\n", False, 400, False),
    ("chunk without its CRLF", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked"
     b"\r\n\r\n3\r\nabcXY0\r\n\r\n", False, 400, False),
    ("obs-fold", GET + b"X-F: a\r\n b\r\n\r\n", False, 400, False),
    ("obs-fold with tab", GET + b"X-F: a\r\n\tb\r\n\r\n", False, 400, False),
    ("bare CR in a field", GET + b"X-Bad: a\rb\r\n\r\n", False, 400, False),
    ("bare CR ending the request line", b"GET / HTTP/1.1\rHost: a\r\n\r\n", False, 400, False),
    ("space before the colon", GET + b"Transfer-Encoding : chunked\r\n\r\n", False, 400, False),
    ("no Host", b"GET / HTTP/1.1\r\n\r\n", False, 400, False),
    ("two Hosts", GET + b"Host: b\r\n\r\n", False, 400, False),
    ("leading blank line", b"\r\n" + GET + b"\r\n", False, 400, False),
    ("not HTTP", b"\x16\x03\x01\x02\x00\x01\x00", False, 400, False),
    ("bad request line", b"GET /\r\nHost: a\r\n\r\n", False, 400, False),
    ("head never ending in the limit", GET + b"X-Big: " + b"v" * 2000, False, 431, False),
    ("too many fields", GET + b"".join(b"X-%d: v\r\n" % i for i in range(20)) + b"\r\n", False,
     431, True),
    ("head over the limit in one piece", GET + b"X-Big: " + b"v" * 1010 + b"\r\n\r\n", False,
     431, True),
    ("declared body over the limit", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n"
     b"\r\n", False, 413, True),
    ("close mid-head", b"GET / HTTP/1.1\r\nHo", True, 400, False),
    ("close mid-body", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab", True, 400,
     False),
    ("close mid-chunk", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n"
     b"ab", True, 400, False),
    ("close mid chunk-size line", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked"
     b"\r\n\r\n5", True, 400, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "eof", "status", "ours"),
    [c[1:] for c in REFUSED],
    ids=[c[0] for c in REFUSED],
)
def test_refused_as_h11_refuses(data: bytes, eof: bool, status: int, ours: bool) -> None:
    with pytest.raises(ProtocolError) as exc:
        parse(data, eof)
    assert exc.value.status == status
    if ours:
        h11_events(data, eof)  # h11 alone accepts it: the refusal is nodegate's
    else:
        with pytest.raises(h11.RemoteProtocolError) as theirs:
            h11_events(data, eof)
        assert theirs.value.error_status_hint == status


def test_close_between_requests_is_no_error() -> None:
    evs, _ = parse(b"", eof=True)
    assert [type(e) for e in evs] == [h11.ConnectionClosed]
    evs, _ = parse(b"")
    assert evs == []


def test_pipelined_requests_wait_for_the_next_cycle() -> None:
    p = RequestParser(LIMITS)
    p.feed(GET + b"\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HT")
    assert type(p.next_event()) is h11.Request
    assert type(p.next_event()) is h11.EndOfMessage
    assert p.next_event() is NEED_DATA  # the next request waits for the response's end
    p.next_cycle()
    second = p.next_event()
    assert second.target == b"/2"
    assert type(p.next_event()) is h11.EndOfMessage
    p.next_cycle()
    assert p.next_event() is NEED_DATA  # the third is incomplete
    assert p.method is None


def test_body_in_pieces_and_head_in_pieces() -> None:
    p = RequestParser(LIMITS)
    p.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Le")
    assert p.next_event() is NEED_DATA
    p.feed(b"ngth: 4\r\n\r\nab")
    assert type(p.next_event()) is h11.Request
    assert bytes(p.next_event().data) == b"ab"
    assert p.next_event() is NEED_DATA
    p.feed(b"cd")
    assert bytes(p.next_event().data) == b"cd"
    assert type(p.next_event()) is h11.EndOfMessage


def test_switch_hands_over_the_bytes_after_the_request() -> None:
    p = RequestParser(LIMITS)
    p.feed(GET + b"Connection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x02hi")
    assert type(p.next_event()) is h11.Request
    assert type(p.next_event()) is h11.EndOfMessage
    assert p.upgrade
    assert p.trailing() == b"\x81\x02hi"


# --- responses ---

REQUESTS = {
    "GET": GET + b"\r\n",
    "HEAD": b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET close": GET + b"Connection: close\r\n\r\n",
    "GET 1.0": b"GET / HTTP/1.0\r\n\r\n",
    "HEAD 1.0": b"HEAD / HTTP/1.0\r\n\r\n",
    "CONNECT": b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
}
RESPONSES = {
    "length": (200, [(b"content-type", b"text/plain"), (b"content-length", b"5")], b"hello"),
    "length 0": (200, [(b"content-length", b"0")], b""),
    "no framing": (200, [(b"content-type", b"text/plain")], b"to the end"),
    "draining": (200, [(b"content-length", b"2"), (b"connection", b"close")], b"hi"),
    "keep-alive token": (200, [(b"connection", b"keep-alive"), (b"content-length", b"1")], b"x"),
    "length list": (200, [(b"content-length", b"3, 3")], b"abc"),
    "two equal lengths": (200, [(b"content-length", b"3"), (b"content-length", b"3")], b"abc"),
    "chunked set by a filter": (
        200,
        [(b"transfer-encoding", b"chunked"), (b"content-length", b"3")],
        b"abc",
    ),
    "204": (204, [(b"content-length", b"0")], b""),
    "204 without length": (204, [(b"x-a", b"1")], b""),
    "304 with length": (304, [(b"etag", b'"x"'), (b"content-length", b"99")], b""),
    "host field": (200, [(b"x-a", b"1"), (b"host", b"h"), (b"content-length", b"0")], b""),
    "404 of our own": (404, [(b"content-length", b"0")], b""),
    "redirect": (302, [(b"location", b"http://b/"), (b"content-length", b"0")], b""),
}
REFUSED_RESPONSES = {
    "differing lengths": (200, [(b"content-length", b"3"), (b"content-length", b"4")]),
    "gzip": (200, [(b"transfer-encoding", b"gzip")]),
    "1xx": (100, [(b"content-length", b"0")]),
}


def h11_answer(
    request: bytes, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[bytes, bool]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(request)
    while type(conn.next_event()) is not h11.EndOfMessage:
        pass
    out = conn.send(h11.Response(status_code=status, headers=headers, reason=b"R"))
    if body:
        out += conn.send(h11.Data(data=body))
    out += conn.send(h11.EndOfMessage())
    return out, conn.our_state is h11.DONE and conn.their_state is h11.DONE


def our_answer(
    request: bytes, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[bytes, bool]:
    _, p = parse(request)
    head, writer, keep_alive = response_head(
        status, b"R", headers, p.method, p.http_version, p.keep_alive
    )
    out = [head]
    if body:
        writer.send_data(body, out.append)
    writer.send_eom(NO_TRAILERS, out.append)
    return b"".join(out), keep_alive


@pytest.mark.parametrize("request_name", list(REQUESTS))
@pytest.mark.parametrize("response_name", list(RESPONSES))
def test_response_bytes_and_keep_alive_are_h11s(request_name: str, response_name: str) -> None:
    request = REQUESTS[request_name]
    status, headers, body = RESPONSES[response_name]
    if request_name.startswith("HEAD") or status in (204, 304):
        body = b""
    try:
        theirs = h11_answer(request, status, headers, body)
    except h11.LocalProtocolError:
        with pytest.raises(h11.LocalProtocolError):
            our_answer(request, status, headers, body)
        return
    assert our_answer(request, status, headers, body) == theirs


@pytest.mark.parametrize("response_name", list(REFUSED_RESPONSES))
def test_responses_h11_would_not_send_are_refused(response_name: str) -> None:
    status, headers = REFUSED_RESPONSES[response_name]
    with pytest.raises(h11.LocalProtocolError):
        h11_answer(REQUESTS["GET"], status, headers, b"")
    with pytest.raises(h11.LocalProtocolError):
        our_answer(REQUESTS["GET"], status, headers, b"")


def test_body_writers_refuse_too_much_or_too_little() -> None:
    _, writer, _ = response_head(200, b"OK", [(b"content-length", b"2")], b"GET", b"1.1", True)
    with pytest.raises(h11.LocalProtocolError):
        writer.send_data(b"abc", [].append)
    _, writer, _ = response_head(200, b"OK", [(b"content-length", b"2")], b"GET", b"1.1", True)
    writer.send_data(b"a", [].append)
    with pytest.raises(h11.LocalProtocolError):
        writer.send_eom(NO_TRAILERS, [].append)


def test_refusal_without_a_request_is_h11s() -> None:
    """What the gateway writes for a head it could not read (no request, no version)."""
    headers = [(b"content-length", b"0"), (b"connection", b"close")]
    head, _, keep_alive = response_head(400, b"Bad Request", headers, None, None, True)
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"\x00garbage\r\n\r\n")
    with pytest.raises(h11.RemoteProtocolError):
        conn.next_event()
    theirs = conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request"))
    assert (head, keep_alive) == (theirs, False)


def test_continue_and_switch_heads_are_h11s() -> None:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    while type(conn.next_event()) is not h11.EndOfMessage:
        pass
    assert conn.send(h11.InformationalResponse(status_code=100, headers=[])) == CONTINUE
    fields = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", b"x"),
    ]
    theirs = conn.send(
        h11.InformationalResponse(status_code=101, headers=fields, reason=b"Switching Protocols")
    )
    assert switch_head(fields) == theirs


WHOLE = (
    [(c[0], c[1], c[2]) for c in ACCEPTED]
    + [(c[0], c[1], c[2]) for c in REFUSED]
    + [
        ("pipelined", GET + b"\r\n" + GET + b"\r\n", False),
        ("head in two reads", GET, False),
        ("Content-Length: 0", GET + b"Content-Length: 0\r\n\r\n", False),
        ("bare LF lines", b"GET / HTTP/1.1\nHost: a\n\n", False),
        ("empty line first", b"\r\n" + GET + b"\r\n", False),
    ]
)


@pytest.mark.parametrize(
    ("data", "eof"), [c[1:] for c in WHOLE], ids=[f"{i}-{c[0]}" for i, c in enumerate(WHOLE)]
)
def test_whole_reads_what_the_events_read_or_nothing(data: bytes, eof: bool) -> None:
    """`whole()` takes a read only when it is one bodiless request's head (no 100-continue,
    no upgrade, nothing after it), and then the request and what the parser decided are
    those of the events; otherwise it takes nothing and the events say what happens."""
    p = RequestParser(LIMITS)
    if eof:
        p.feed_eof()
    got = p.whole(data)
    try:
        evs, general = parse(data, eof)
    except ProtocolError:
        assert got is None
        return
    if got is None:
        assert (p.state, p.method, bytes(p.buf)) == (RequestParser(LIMITS).state, None, b"")
        return
    assert [*summary([got]), ("EndOfMessage",)] == summary(evs)
    assert not bytes(general.buf)
    for attr in ("keep_alive", "expect_continue", "upgrade", "method", "http_version"):
        assert getattr(p, attr) == getattr(general, attr), attr
    assert p.next_event() is NEED_DATA  # as after EndOfMessage, until next_cycle()


def test_whole_takes_the_usual_request() -> None:
    p = RequestParser(LIMITS)
    assert p.whole(GET + b"User-Agent: x\r\nConnection: keep-alive\r\n\r\n") is not None


def _parsed(fields: list[tuple[bytes, bytes]]) -> Fields:
    """The fields as the head reader gives them (lines parsed and remembered)."""
    return _fields([n + b": " + v + b"\r" for n, v in fields])


RELAYED_FIELDS = [
    [(b"Content-Length", b"2")],
    [(b"Server", b"x"), (b"Content-Length", b"2"), (b"Connection", b"keep-alive")],
    [(b"Content-Length", b"2"), (b"Keep-Alive", b"timeout=5"), (b"Connection", b"Keep-Alive")],
    [(b"Connection", b"close"), (b"Content-Length", b"2"), (b"Set-Cookie", b"a=1")],
    [(b"Connection", b"x-hop, keep-alive"), (b"X-Hop", b"1"), (b"Content-Length", b"2")],
    [(b"Connection", b"keep-alive, "), (b"Content-Length", b"0")],
    [(b"Connection", b"KEEP-ALIVE ,keep-alive"), (b"X-B", b"y"), (b"Content-Length", b"1")],
    [(b"Host", b"h"), (b"Content-Length", b"2")],
    [(b"Proxy-Connection", b"x"), (b"Trailer", b"y"), (b"Upgrade", b"h2c")],
    [(b"X-A", b"1"), (b"X-A", b"2"), (b"Content-Length", b"2, 2"), (b"Content-Length", b"2")],
    [(b"TE", b"trailers"), (b"Content-Length", b"3")],
    [(b"Transfer-Encoding", b"chunked")],
    [(b"Expect", b"x"), (b"Content-Length", b"3")],
    [],
]


@pytest.mark.parametrize("fields", RELAYED_FIELDS)
@pytest.mark.parametrize("status", [200, 204, 304, 404, 599])
@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"CONNECT", None])
@pytest.mark.parametrize("keep_alive", [True, False])
def test_relayed_head_is_the_composed_head(
    fields: list[tuple[bytes, bytes]], status: int, method: bytes | None, keep_alive: bool
) -> None:
    """The relayed head equals outgoing_response_headers then response_head, whenever it
    gives one; it gives one for the usual response."""
    parsed = _parsed(fields)
    got = relayed_head(status, b"R", parsed, method, keep_alive)
    if got is None:
        return
    headers = outgoing_response_headers(parsed.items, (), [])
    head, _, stays = response_head(status, b"R", headers, method, b"1.1", keep_alive)
    assert got == head
    assert stays


def test_relayed_head_covers_the_usual_response() -> None:
    fields = _parsed(RELAYED_FIELDS[1])
    assert not fields.special
    assert relayed_head(200, b"OK", fields, b"GET", True) == (
        b"HTTP/1.1 200 OK\r\nserver: x\r\ncontent-length: 2\r\n\r\n"
    )
    special = _parsed(RELAYED_FIELDS[4])
    assert special.special
    assert relayed_head(200, b"OK", special, b"GET", True) is None
    assert relayed_head(200, b"OK", _parsed(RELAYED_FIELDS[10]), b"GET", True) == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n"
    )
