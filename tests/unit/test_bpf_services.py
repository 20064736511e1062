"""NodeConfig.l4 -> service rows and tables (bpf.services), table-driven."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import pytest

from agent.nodeconfig import Backend, Endpoint, L4Listener, Ref
from bpf.services import plan_services

GW = Ref(kind="Gateway", namespace="ns", name="gw", section="l")


def be(name: str, weight: int, *addrs: str, invalid: str = "", port: int = 3000) -> Backend:
    return Backend(
        ref=Ref(kind="Service", namespace="ns", name=name),
        weight=weight,
        endpoints=tuple(Endpoint(address=a, port=port) for a in addrs),
        invalid=invalid,
    )


def lst(
    *backends: Backend, proto: str = "TCP", addr: str = "198.18.1.1", port: int = 9300
) -> L4Listener:
    return L4Listener(
        ref=GW, gateway=GW, protocol=proto, address=addr, port=port, backends=backends
    )  # type: ignore[arg-type]


def plan(*listeners: L4Listener, size: int = 1021):  # type: ignore[no-untyped-def]
    return plan_services(tuple(listeners), lambda a: "198.19.0.1", size, 16, 8)


def row_shares(s) -> dict[str, float]:  # type: ignore[no-untyped-def]
    c = Counter(s.table)
    return {r.name: c[i] / len(s.table) for i, r in enumerate(s.rows)}


CASES = [
    # description, listener, expected rows (name, invalid, weight), reject
    ("one endpoint", lst(be("a", 1, "10.0.0.1")), [("10.0.0.1:3000", False, 1)], False),
    (
        "weight shared by endpoints",
        lst(be("a", 70, "10.0.0.1", "10.0.0.2"), be("b", 30, "10.0.0.3")),
        [("10.0.0.1:3000", False, 35), ("10.0.0.2:3000", False, 35), ("10.0.0.3:3000", False, 30)],
        False,
    ),
    (
        "invalid backendRef keeps its share, flagged",
        lst(be("a", 1, "10.0.0.1"), be("gone", 1, invalid="BackendNotFound")),
        [("10.0.0.1:3000", False, 1), ("invalid:Service ns/gone", True, 1)],
        False,
    ),
    (
        "a valid backendRef without ready endpoints is rejected like an invalid one",
        lst(be("empty", 1)),
        [("invalid:Service ns/empty", True, 1)],
        False,
    ),
    ("no backendRefs: reject everything", lst(), [], True),
    (
        "only weight 0: reject everything",
        lst(be("a", 0, "10.0.0.1")),
        [("10.0.0.1:3000", False, 0)],
        True,
    ),
    (
        "an endpoint of the other family is left out",
        lst(be("a", 1, "10.0.0.1", "2001:db8::1")),
        [("10.0.0.1:3000", False, 1)],
        False,
    ),
]


@pytest.mark.parametrize(("desc", "listener", "rows", "reject"), CASES, ids=[c[0] for c in CASES])
def test_rows(
    desc: str, listener: L4Listener, rows: list[tuple[str, bool, int]], reject: bool
) -> None:
    (s,) = plan(listener).services
    assert [(r.name, r.invalid, r.weight) for r in s.rows] == [
        (n, i, Fraction(w)) for n, i, w in rows
    ]
    assert s.reject is reject
    assert s.key == ("198.18.1.1", 9300, 6)


def test_table_shares_follow_backend_weights() -> None:
    (s,) = plan(
        lst(be("a", 70, "10.0.0.1", "10.0.0.2"), be("b", 30, "10.0.0.3"), be("c", 0, "10.0.0.4"))
    ).services
    got = row_shares(s)
    assert abs(got["10.0.0.1:3000"] - 0.35) < 0.01
    assert abs(got["10.0.0.3:3000"] - 0.30) < 0.01
    assert got["10.0.0.4:3000"] == 0


def test_keys_protocols_wildcard_and_ipv6() -> None:
    p = plan(
        lst(be("a", 1, "10.0.0.1"), proto="UDP", addr="0.0.0.0", port=5300),
        lst(be("a", 1, "10.0.0.1"), be("b", 1, "2001:db8:0:0::7"), addr="2001:db8::5"),
        lst(be("a", 1, "2001:db8::7"), addr="::"),
    )
    assert [s.key for s in p.services] == [
        ("0.0.0.0", 5300, 17),
        ("2001:db8::5", 9300, 6),
        ("::", 9300, 6),
    ]
    assert [(r.name, r.invalid) for r in p.services[1].rows] == [
        ("invalid:Service ns/a", True),  # its only endpoint is IPv4
        ("[2001:db8::7]:3000", False),
    ]
    assert any("not IPv6 like the listener" in x for x in p.skipped)


def test_snat_source_and_unroutable_endpoint() -> None:
    p = plan_services(
        (lst(be("a", 1, "10.0.0.1", "10.9.9.9")),),
        lambda a: None if a.startswith("10.9.") else "198.19.0.1",
        1021,
        16,
        8,
    )
    (s,) = p.services
    assert [(r.name, r.invalid, r.snat_address) for r in s.rows] == [
        ("10.0.0.1:3000", False, "198.19.0.1"),
        ("unroutable:10.9.9.9:3000", True, "0.0.0.0"),
    ]
    assert any("no route" in x for x in p.skipped)


def test_limits_raise() -> None:
    many = lst(be("a", 1, *[f"10.0.1.{i}" for i in range(17)]))
    with pytest.raises(ValueError, match="max_backends"):
        plan(many)
    with pytest.raises(ValueError, match="max_services"):
        plan(*[lst(be("a", 1, "10.0.0.1"), port=9000 + i) for i in range(9)])


def test_same_config_same_tables() -> None:
    a = plan(lst(be("a", 1, "10.0.0.1", "10.0.0.2")))
    b = plan(lst(be("a", 1, "10.0.0.1", "10.0.0.2")))
    assert a.services[0].same_datapath(b.services[0])
