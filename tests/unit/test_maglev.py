"""Maglev tables: shares follow weights, weight 0 gets nothing, and a
change moves few slots. Pure: data in, data out."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import pytest

from bpf.maglev import integer_weights, maglev_table

M = 16381


def shares(names: list[str], weights: list[int], size: int = M) -> dict[str, float]:
    table = maglev_table(names, weights, size)
    c = Counter(table)
    return {names[i]: c[i] / size for i in range(len(names))}


@pytest.mark.parametrize(
    ("weights", "want"),
    [
        ([1, 1], [0.5, 0.5]),
        ([70, 30, 0], [0.7, 0.3, 0.0]),
        ([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4]),
        ([0, 5], [0.0, 1.0]),
        ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [0.1] * 10),
        ([1000, 1], [1000 / 1001, 1 / 1001]),
    ],
)
def test_shares_follow_weights(weights: list[int], want: list[float]) -> None:
    names = [f"10.0.0.{i}:80" for i in range(len(weights))]
    got = shares(names, weights)
    for n, w in zip(names, want, strict=True):
        assert abs(got[n] - w) < 0.005, (n, got[n], w)


def test_weight_zero_never_appears() -> None:
    table = maglev_table(["a", "b", "c"], [70, 30, 0], M)
    assert 2 not in table
    assert -1 not in table and len(table) == M


def test_no_weight_is_an_empty_table() -> None:
    assert maglev_table(["a", "b"], [0, 0], M) == []
    assert maglev_table([], [], M) == []


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        # (names, weights) before and after, and the names whose slots may move
        ((["a", "b", "c", "d"], [1, 1, 1, 1]), (["a", "b", "d"], [1, 1, 1]), {"c"}),
        ((["a", "b", "c"], [1, 1, 1]), (["a", "b", "c", "d"], [1, 1, 1, 1]), {"d"}),
        ((["a", "b", "c"], [1, 1, 1]), (["a", "b", "c"], [1, 1, 0]), {"c"}),
    ],
)
def test_a_change_moves_few_other_flows(
    before: tuple[list[str], list[int]], after: tuple[list[str], list[int]], changed: set[str]
) -> None:
    t0 = [before[0][i] for i in maglev_table(*before, M)]
    t1 = [after[0][i] for i in maglev_table(*after, M)]
    moved = sum(
        1 for x, y in zip(t0, t1, strict=True) if x != y and x not in changed and y not in changed
    )
    # Maglev's guarantee is "few", not "none": a couple of percent at most.
    assert moved / M < 0.02


def test_position_does_not_matter() -> None:
    a = maglev_table(["x", "y", "z"], [1, 2, 3], M)
    b = maglev_table(["z", "x", "y"], [3, 1, 2], M)
    assert [["x", "y", "z"][i] for i in a] == [["z", "x", "y"][i] for i in b]


@pytest.mark.parametrize(
    ("weights", "want"),
    [
        ([Fraction(1, 2), Fraction(1, 3)], [3, 2]),
        ([70, 30, 0], [7, 3, 0]),
        ([0, 0], [0, 0]),
        ([Fraction(35, 1), Fraction(15, 2), Fraction(15, 2)], [14, 3, 3]),
    ],
)
def test_integer_weights(weights: list[Fraction], want: list[int]) -> None:
    assert integer_weights(weights) == want


@pytest.mark.parametrize(
    ("names", "weights", "size"),
    [
        (["a", "a"], [1, 1], M),
        (["a"], [1, 2], M),
        (["a"], [-1], M),
        (["a", "b", "c"], [1, 1, 1], 2),
    ],
)
def test_bad_input_is_refused(names: list[str], weights: list[int], size: int) -> None:
    with pytest.raises(ValueError):
        maglev_table(names, weights, size)
