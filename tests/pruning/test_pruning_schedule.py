"""The cubic sparsity schedule of Zhu & Gupta and the pruning event steps."""

from __future__ import annotations

import pytest

from gsprune.pruning import cubic_sparsity, pruning_steps


def test_endpoints_and_outside_the_window():
    for step in (0, 5, 10):
        assert cubic_sparsity(step, 10, 110, 0.1, 0.9) == 0.1
    for step in (110, 111, 10_000):
        assert cubic_sparsity(step, 10, 110, 0.1, 0.9) == 0.9


@pytest.mark.parametrize(
    ("step", "initial", "expected"),
    [
        (50, 0.0, 0.8 - 0.8 * 0.5**3),  # 0.7: half way, 7/8 of the rise done
        (25, 0.0, 0.8 - 0.8 * 0.75**3),  # 0.4625
        (75, 0.0, 0.8 - 0.8 * 0.25**3),  # 0.7875
        (50, 0.2, 0.8 - 0.6 * 0.5**3),  # 0.725
    ],
)
def test_hand_values(step, initial, expected):
    assert cubic_sparsity(step, 0, 100, initial, 0.8) == pytest.approx(expected, abs=1e-12)


def test_monotone_and_front_loaded():
    values = [cubic_sparsity(t, 0, 1000, 0.0, 0.95) for t in range(0, 1001, 10)]
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    rises = [b - a for a, b in zip(values, values[1:], strict=False)]
    assert rises[0] > rises[len(rises) // 2] > rises[-1] >= 0  # steep early, flat late


def test_one_shot_window():
    assert cubic_sparsity(4, 5, 5, 0.0, 0.9) == 0.0
    assert cubic_sparsity(5, 5, 5, 0.0, 0.9) == 0.9


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 0, 10, 0.5, 0.3), "initial sparsity 0.5 exceeds"),
        ((0, 0, 10, 0.0, 1.0), "outside"),
        ((0, 10, 5, 0.0, 0.5), "begin=10, end=5"),
        ((0, -1, 5, 0.0, 0.5), "begin=-1"),
    ],
)
def test_bad_schedule_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        cubic_sparsity(*args)


@pytest.mark.parametrize(
    ("begin", "end", "events", "expected"),
    [
        (0, 100, 5, [0, 25, 50, 75, 100]),
        (10, 20, 3, [10, 15, 20]),
        (0, 10, 1, [10]),
        (0, 0, 1, [0]),
        (3, 6, 4, [3, 4, 5, 6]),
        (0, 10, 4, [0, 3, 7, 10]),
    ],
)
def test_pruning_steps(begin, end, events, expected):
    steps = pruning_steps(begin, end, events)
    assert steps == expected
    assert steps[-1] == end and len(set(steps)) == events


@pytest.mark.parametrize(
    ("args", "match"),
    [((0, 10, 0), "events=0"), ((0, 3, 5), "do not fit"), ((5, 2, 2), "begin=5, end=2")],
)
def test_bad_pruning_steps(args, match):
    with pytest.raises(ValueError, match=match):
        pruning_steps(*args)
