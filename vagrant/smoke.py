#!/usr/bin/env python3
"""Smoke test of the Vagrant lab: HTTP, TCP and UDP through the quickstart Gateway on every node.

Standard library only (it runs on the bare client VM). For each --address:
- HTTP  GET / on --http-port: 200 and a JSON echo from a pod named <--http-backend>*;
- TCP   on --tcp-port: the echo server's banner, then TEST -> JSON from <--tcp-backend>*;
- UDP   a datagram to --udp-port: a JSON echo of it from <--udp-backend>*.
Each check is retried until it passes or --deadline seconds have gone by (the cluster may
still be starting); exits 1 if any check never passed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import time
from collections.abc import Callable

BANNER = b"Gateway API Test TCP Server"


def check_http(address: str, port: int, backend: str, timeout: float) -> str:
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", "/smoke", headers={"Host": "smoke.nodegate.dev"})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise AssertionError(f"HTTP {resp.status}")
    pod = json.loads(body)["pod"]
    if not pod.startswith(backend):
        raise AssertionError(f"answered by {pod!r}, not a {backend}* pod")
    return pod


def _line(sock: socket.socket, buffer: bytearray) -> bytes:
    while b"\n" not in buffer:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError("connection closed before a full line")
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


def check_tcp(address: str, port: int, backend: str, timeout: float) -> str:
    with socket.create_connection((address, port), timeout=timeout) as sock:
        buffer = bytearray()
        banner = _line(sock, buffer)
        if banner.strip() != BANNER:
            raise AssertionError(f"banner {banner!r}")
        sock.sendall(b"TEST\n")
        pod = json.loads(_line(sock, buffer))["pod"]
    if not pod.startswith(backend):
        raise AssertionError(f"answered by {pod!r}, not a {backend}* pod")
    return pod


def check_udp(address: str, port: int, backend: str, timeout: float) -> str:
    payload = b"nodegate-smoke"
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(payload, (address, port))
        reply, _ = sock.recvfrom(2048)
    body = json.loads(reply)
    if body.get("request") != payload.decode():
        raise AssertionError(f"echoed {body.get('request')!r}")
    if not body["pod"].startswith(backend):
        raise AssertionError(f"answered by {body['pod']!r}, not a {backend}* pod")
    return str(body["pod"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--address", action="append", required=True, help="a node address (repeat)")
    p.add_argument("--http-port", type=int, default=80)
    p.add_argument("--tcp-port", type=int, default=9000)
    p.add_argument("--udp-port", type=int, default=5353)
    p.add_argument("--http-backend", default="echo-v", help="pod name prefix of HTTP backends")
    p.add_argument("--tcp-backend", default="tcp-echo-", help="pod name prefix of TCP backends")
    p.add_argument("--udp-backend", default="udp-echo-", help="pod name prefix of UDP backends")
    p.add_argument("--deadline", type=float, default=600.0, help="seconds before giving up")
    p.add_argument("--pause", type=float, default=5.0, help="seconds between attempts")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per attempt")
    args = p.parse_args(argv)

    checks: list[tuple[str, Callable[[], str]]] = []
    for a in args.address:
        checks += [
            (
                f"HTTP {a}:{args.http_port}",
                lambda a=a: check_http(a, args.http_port, args.http_backend, args.timeout),
            ),
            (
                f"TCP  {a}:{args.tcp_port}",
                lambda a=a: check_tcp(a, args.tcp_port, args.tcp_backend, args.timeout),
            ),
            (
                f"UDP  {a}:{args.udp_port}",
                lambda a=a: check_udp(a, args.udp_port, args.udp_backend, args.timeout),
            ),
        ]
    deadline = time.monotonic() + args.deadline
    failed = 0
    for name, check in checks:
        while True:
            try:
                print(f"ok    {name} -> {check()}", flush=True)
                break
            except (OSError, ValueError, KeyError, AssertionError, http.client.HTTPException) as e:
                if time.monotonic() + args.pause > deadline:
                    print(f"FAIL  {name}: {e}", flush=True)
                    failed += 1
                    break
                print(f"wait  {name}: {e}", flush=True)
                time.sleep(args.pause)
    print(f"{len(checks) - failed}/{len(checks)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
