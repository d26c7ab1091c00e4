"""gsprune.report.ratios: Pareto fronts, equal-metric latency ratios and headline speedups,
worked out by hand for higher-is-better (top-1, BLEU) and lower-is-better (WER) metrics."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from gsprune import report


def test_pareto_front_exact_set(points) -> None:
    df = points(
        {
            "A": [(3.0, 89.0), (2.0, 90.0), (1.0, 80.0)],
            "B": [(2.5, 91.0), (1.5, 85.0)],
            "C": [(2.0, 88.0), (1.5, 85.0)],  # C1 ties B1 exactly: both stay
            "dense": [(4.0, 92.0)],
        }
    )
    front = report.pareto_front(df, "cpu")
    assert list(front["run_id"]) == ["A2", "B1", "C1", "A1", "B0", "dense0"]


def test_pareto_front_honours_lower_is_better(points) -> None:
    df = points({"A": [(3.0, 16.0), (2.0, 15.0), (1.0, 20.0)]}, higher_is_better=False)
    assert list(report.pareto_front(df, "cpu")["run_id"]) == ["A2", "A1"]


def ratio_of(table: pd.DataFrame, pattern: str, reference: str) -> dict[float, float]:
    rows = table[(table["pattern"] == pattern) & (table["reference"] == reference)]
    return dict(zip(rows["metric_level"], rows["ratio"], strict=True))


def test_equal_accuracy_ratio_linear_case(points) -> None:
    df = points(
        {
            "A": [(3.0, 94.0), (2.0, 92.0), (1.0, 90.0)],
            "B": [(6.0, 94.0), (4.0, 92.0), (2.0, 90.0)],
        }
    )
    table = report.equal_accuracy_ratios(df, "cpu")
    assert list(table.columns) == report.RATIO_COLUMNS
    assert ratio_of(table, "A", "B") == {90.0: 0.5, 92.0: 0.5, 94.0: 0.5}
    assert ratio_of(table, "B", "A") == {90.0: 2.0, 92.0: 2.0, 94.0: 2.0}
    # dense (8 ms, top1 92 from the records) reaches every level up to 92
    assert ratio_of(table, "A", "dense") == {90.0: 1 / 8, 92.0: 2 / 8}


def test_equal_accuracy_ratio_interpolates_on_the_upper_envelope(points) -> None:
    # A's 2.5 ms point is slower and worse than its 2 ms point: the envelope drops it.
    # Levels: every envelope point of A or B in [90, 94]. At 92, A interpolates between
    # (90, 1 ms) and (93, 2 ms): 5/3 ms, B measured 4 ms; at 93, B is 5 ms between 4 and 6.
    df = points(
        {
            "A": [(3.0, 94.0), (2.5, 91.0), (2.0, 93.0), (1.0, 90.0)],
            "B": [(6.0, 94.0), (4.0, 92.0), (2.0, 90.0), (1.5, 89.0)],
        }
    )
    table = report.equal_accuracy_ratios(df, "cpu", references=["B"])
    assert set(table["reference"]) == {"B"}
    expected = {90.0: 0.5, 92.0: 5 / 12, 93.0: 0.4, 94.0: 0.5}
    assert ratio_of(table, "A", "B") == pytest.approx(expected)


def test_headline_numbers(points) -> None:
    df = points(
        {
            "A": [(3.0, 94.0), (2.0, 92.0), (1.0, 90.0)],  # reaches 91 between 1 and 2 ms
            "C": [(5.0, 90.0), (4.0, 88.0)],  # never within 1 of dense
            "D": [(7.0, 95.0), (6.0, 93.0)],  # always within: its fastest point counts
            "dense": [(8.0, 92.0)],
        }
    )
    heads = report.headline(df, "cpu", tolerance=1.0).set_index("pattern")
    assert heads.loc["A", "level"] == 91.0 and heads.loc["A", "dense_latency"] == 8.0
    assert heads.loc["A", "latency"] == pytest.approx(1.5)
    assert heads.loc["A", "speedup"] == pytest.approx(8 / 1.5)
    assert bool(heads.loc["A", "interpolated"]) is True
    assert math.isnan(heads.loc["C", "speedup"]) and heads.loc["C", "best_metric"] == 90.0
    assert heads.loc["D", "speedup"] == pytest.approx(8 / 6) and not heads.loc["D", "interpolated"]
    texts = [report.headline_text(row, 1.0) for _, row in heads.reset_index().iterrows()]
    assert texts == [
        "A: 5.33x faster than dense at equal top1 (91 = dense 92 - 1)",
        "C: never within 1 of dense top1 (91 = dense 92 - 1; best 90)",
        "D: 1.33x faster than dense at equal top1 (91 = dense 92 - 1)",
    ]


def test_headline_lower_is_better(points) -> None:
    df = points({"A": [(3.0, 10.0), (2.0, 12.0), (1.0, 14.0)], "dense": [(8.0, 10.0)]}, False)
    row = report.headline(df, "cpu", tolerance=1.0).iloc[0]
    assert row["level"] == 11.0 and row["latency"] == pytest.approx(2.5)
    assert report.headline_text(row, 1.0) == (
        "A: 3.20x faster than dense at equal top1 (11 = dense 10 + 1)"
    )
    with pytest.raises(ValueError, match="tolerance -1"):
        report.headline(df, "cpu", tolerance=-1)
