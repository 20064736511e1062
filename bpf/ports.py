"""The full-NAT source port range, kept from the kernel's own sockets.

net.ipv4.ip_local_reserved_ports (per network namespace) stops the
kernel from handing those ports to its own sockets as ephemeral ports, so
a node's own connection never collides with a NATed flow. The value is a
list like "8080,61000-65000"; we add and remove one range and keep the
rest as it was.
"""

from __future__ import annotations

SYSCTL = "/proc/sys/net/ipv4/ip_local_reserved_ports"


def parse(text: str) -> set[int]:
    ports: set[int] = set()
    for part in text.replace("\n", "").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        ports.update(range(int(lo), int(hi or lo) + 1))
    return ports


def format_ports(ports: set[int]) -> str:
    out = []
    run: list[int] = []
    for p in sorted(ports):
        if run and p == run[-1] + 1:
            run.append(p)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [p]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def read(path: str = SYSCTL) -> set[int]:
    with open(path) as f:
        return parse(f.read())


def write(ports: set[int], path: str = SYSCTL) -> None:
    with open(path, "w") as f:
        f.write(format_ports(ports) + "\n")


def reserve(lo: int, hi: int, path: str = SYSCTL) -> bool:
    """Adds [lo, hi]; False if it was all reserved already (then it is not ours)."""
    have = read(path)
    want = set(range(lo, hi + 1))
    if want <= have:
        return False
    write(have | want, path)
    return True


def release(lo: int, hi: int, path: str = SYSCTL) -> None:
    write(read(path) - set(range(lo, hi + 1)), path)
