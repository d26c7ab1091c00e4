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


# The hand-worked sweep of conftest (WER_SWEEP), in WER and mirrored into BLEU = 38 - WER:
# every expected level below is written in WER and mapped with kind.of.


def test_pareto_front_follows_the_metric_direction(hand_sweep, kind) -> None:
    df = hand_sweep()
    # dominated: A2 (by A3), B0 (by A0: faster, equal metric), B1 (by A1, A3), B2 (by A4, A3)
    assert list(report.pareto_front(df, "cpu")["run_id"]) == ["A4", "A3", "A1", "A0", "dense0"]
    assert list(report.pareto_front(df, "cpu")["metric_value"]) == [
        kind.of(w) for w in (18, 14, 13, 12, 11.5)
    ]


def test_equal_metric_ratios_follow_the_metric_direction(hand_sweep, kind) -> None:
    table = report.equal_accuracy_ratios(hand_sweep(), "cpu")
    # Levels both envelopes reach: WER 12..18. At WER 13, B lies between (4 ms, 14) and
    # (6 ms, 12): 5 ms, against A's 3 ms.
    expected = {18: 1 / 2, 14: 2 / 4, 13: 3 / 5, 12: 4 / 6}
    assert ratio_of(table, "A", "B") == pytest.approx({kind.of(w): r for w, r in expected.items()})
    # dense (8 ms, WER 11.5) reaches every level no better than its own
    expected = {18: 1 / 8, 14: 2 / 8, 13: 3 / 8, 12: 4 / 8}
    assert ratio_of(table, "A", "dense") == {kind.of(w): r for w, r in expected.items()}
    expected = {18: 2 / 8, 14: 4 / 8, 12: 6 / 8}
    assert ratio_of(table, "B", "dense") == {kind.of(w): r for w, r in expected.items()}


def test_headline_follows_the_metric_direction(hand_sweep, kind) -> None:
    extra = {
        "C": [(5.0, 13.0), (4.5, 15.0)],  # best WER 13: never within 1 of dense 11.5
        "D": [(7.0, 11.0), (6.0, 12.0)],  # always within: its fastest point counts
    }
    heads = report.headline(hand_sweep(extra), "cpu").set_index("pattern")  # default: 1 point
    assert list(heads["tolerance"]) == [1.0] * 4
    assert set(heads["level"]) == {kind.of(12.5)} and set(heads["dense_metric"]) == {kind.of(11.5)}
    # WER 12.5 on A lies between (3 ms, 13) and (4 ms, 12): 3.5 ms; on B between (4, 14)
    # and (6, 12): 5.5 ms
    assert heads.loc["A", "latency"] == pytest.approx(3.5)
    assert heads.loc["A", "speedup"] == pytest.approx(8 / 3.5)
    assert heads.loc["B", "latency"] == pytest.approx(5.5)
    assert bool(heads.loc["A", "interpolated"]) and bool(heads.loc["B", "interpolated"])
    assert math.isnan(heads.loc["C", "speedup"]) and heads.loc["C", "best_metric"] == kind.of(13)
    assert heads.loc["D", "latency"] == 6.0 and not heads.loc["D", "interpolated"]
    assert list(heads["best_metric"]) == [kind.of(w) for w in (12, 12, 13, 11)]
    op = "-" if kind.higher_is_better else "+"
    level, dense = f"{kind.of(12.5):g}", f"{kind.of(11.5):g}"  # 12.5, 11.5 or 25.5, 26.5
    assert report.headline_text(heads.reset_index().iloc[0]) == (
        f"A: 2.29x faster than dense at equal {kind.name} ({level} = dense {dense} {op} 1)"
    )
    assert report.headline_text(heads.reset_index().iloc[2]) == (
        f"C: never within 1 of dense {kind.name} ({level} = dense {dense} {op} 1; "
        f"best {kind.of(13):g})"
    )
    # 3 points: WER 14.5 on A lies between (1 ms, 18) and (2 ms, 14): 1.875 ms; on B
    # between (2, 18) and (4, 14): 3.75 ms; on C between (4.5, 15) and (5, 13): 4.625 ms
    heads = report.headline(hand_sweep(extra), "cpu", {kind.name.upper(): 3}).set_index("pattern")
    assert heads.loc["A", "level"] == kind.of(14.5) and heads.loc["A", "tolerance"] == 3.0
    assert heads.loc["A", "latency"] == pytest.approx(1.875)
    assert heads.loc["B", "latency"] == pytest.approx(3.75)
    assert heads.loc["C", "latency"] == pytest.approx(4.625) and heads.loc[
        "C", "best_metric"
    ] == kind.of(13)


def test_tolerance_defaults_to_one_point_of_each_metric() -> None:
    assert report.METRIC_POINT["top1"] == report.METRIC_POINT["bleu"] == 1.0
    assert report.METRIC_POINT["wer"] == 1.0
    assert report.tolerance_for("wer") == 1.0
    assert report.tolerance_for("WER", {"wer": 2}) == 2.0
    assert report.tolerance_for("bleu", {"wer": 2}) == 1.0
    assert report.tolerance_for("top1", 0.5) == 0.5
    with pytest.raises(ValueError, match="tolerance wer=-1 is not accepted"):
        report.headline(pd.DataFrame(columns=report.RUN_COLUMNS), "cpu", {"wer": -1})


def test_latency_is_corrected_for_host_drift_between_runs(make_record, frame) -> None:
    # A and B reach 90 at the same sparsity; A's run was timed while the host ran at half
    # speed (dense 4 ms instead of 2): measured, A looks slower (1.0 against 0.6 ms), but
    # its speedup over the dense layers timed beside it is 4 against B's 3.33.
    records = [
        make_record("A", pattern="gs", params={"V": 8}, metric=90.0, latency={"cpu": (1.0, 4.0)}),
        make_record(
            "B", pattern="block", params={"R": 1, "C": 8}, metric=90.0, latency={"cpu": (0.6, 2.0)}
        ),
        make_record("C", pattern="unstructured", metric=90.0, latency={"cpu": (0.9, 3.0)}),
    ]
    df = frame(records).set_index("run_id")
    # The task's dense latency is the median of the runs' dense times: 3 ms.
    assert df.loc["A", "latency_cpu"] == pytest.approx(0.75)
    assert df.loc["B", "latency_cpu"] == pytest.approx(0.9)
    assert df.loc["C", "latency_cpu"] == pytest.approx(0.9)
    assert df.loc[["A", "B", "C"], "latency_cpu_measured"].tolist() == [1.0, 0.6, 0.9]
    ratios = report.equal_accuracy_ratios(df.reset_index(), "cpu")
    assert ratio_of(ratios, "gs V=8", "block 1x8") == {90.0: pytest.approx(0.75 / 0.9)}
    assert ratio_of(ratios, "gs V=8", "dense") == {90.0: pytest.approx(0.25)}


def test_drift_correction_keeps_the_difference_between_latency_settings(make_record, frame) -> None:
    # Two runs timed on one thread (dense 4 and 6 ms) and one on two threads (dense 2 ms):
    # each is put on the dense time of its own setting, so two threads stay faster.
    one, two = {"threads": 1, "batch": 1}, {"threads": 2, "batch": 1}
    records = []
    for run_id, setting, sparse, dense in (
        ("a", one, 1.0, 4.0),
        ("b", one, 2.0, 6.0),
        ("c", two, 0.5, 2.0),
    ):
        record = make_record(run_id, latency={"cpu": (sparse, dense)})
        record["latency"]["cpu"]["settings"] = setting
        records.append(record)
    df = frame(records).set_index("run_id")
    assert df.loc["a", "latency_cpu"] == pytest.approx(5.0 / 4.0)
    assert df.loc["b", "latency_cpu"] == pytest.approx(5.0 / 3.0)
    assert df.loc["c", "latency_cpu"] == pytest.approx(0.5)
