"""Client programs run inside the lab's client namespace (python -c).

Each prints one JSON line. They speak the conformance echo protocol
(lab.echo): a TCP banner then TEST -> JSON; a UDP datagram -> JSON.
"""

from __future__ import annotations

# argv: vip port count -> {"pods": {pod: n}, "refused": n}
TCP_SAMPLE = r"""
import collections, json, socket, sys
vip, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pods, refused = collections.Counter(), 0
for _ in range(count):
    try:
        s = socket.create_connection((vip, port), timeout=5)
    except ConnectionRefusedError:
        refused += 1
        continue
    f = s.makefile("rwb")
    assert f.readline() == b"Gateway API Test TCP Server\n"
    f.write(b"TEST\n"); f.flush()
    pods[json.loads(f.readline())["pod"]] += 1
    s.close()
print(json.dumps({"pods": pods, "refused": refused}))
"""

# argv: vip port count -> {"pods": {pod: n}, "silent": n}; every datagram
# from its own connected socket (a new flow), replies collected for 2 s.
UDP_SAMPLE = r"""
import collections, json, select, socket, sys, time
vip, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = []
family = socket.AF_INET6 if ":" in vip else socket.AF_INET
for _ in range(count):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.connect((vip, port))
    s.send(b"gateway-api-conformance-udp-echo")
    socks.append(s)
pods, pending, deadline = collections.Counter(), set(socks), time.monotonic() + 2
while pending and (left := deadline - time.monotonic()) > 0:
    ready, _, _ = select.select(list(pending), [], [], left)
    for s in ready:
        pending.discard(s)
        try:
            pods[json.loads(s.recv(2048))["pod"]] += 1
        except OSError:
            pass
print(json.dumps({"pods": pods, "silent": len(pending)}))
"""

# One long-lived TCP connection and one connected UDP socket; each "probe"
# line on stdin exchanges on both and prints what came back.
LONG_LIVED = r"""
import json, socket, sys
vip, tport, uport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = socket.create_connection((vip, tport), timeout=5)
f = t.makefile("rwb")
banner = f.readline()
f.write(b"TEST\n"); f.flush()
tpod = json.loads(f.readline())["pod"]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
u.connect((vip, uport))
print(json.dumps({"banner": banner.decode(), "tcp_pod": tpod, "udp_port": u.getsockname()[1]}), flush=True)
for line in sys.stdin:
    out = {}
    try:
        f.write(b"PING\n"); f.flush()
        out["tcp"] = f.readline().decode()
        f.write(b"TEST\n"); f.flush()
        out["tcp_pod"] = json.loads(f.readline())["pod"]
    except OSError as e:
        out["tcp_error"] = repr(e)
    try:
        u.send(b"gateway-api-conformance-udp-echo")
        out["udp_pod"] = json.loads(u.recv(2048))["pod"]
    except OSError as e:
        out["udp_error"] = repr(e)
    print(json.dumps(out), flush=True)
"""

# One datagram on a connected UDP socket: what the socket then reports.
UDP_ONE = r"""
import json, socket, sys
vip, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in vip else socket.AF_INET, socket.SOCK_DGRAM)
s.connect((vip, port))
s.settimeout(3)
s.send(b"is anybody there")
try:
    s.recv(2048)
    result = "answer"
except ConnectionRefusedError:
    result = "refused"
except TimeoutError:
    result = "timeout"
print(json.dumps({"result": result}))
"""
