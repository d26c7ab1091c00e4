"""gsprune.report.plots: the figures of one task, read back from their matplotlib objects
(axis labels, tolerance band, Pareto staircase, dense and baseline lines)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gsprune import report


def test_plots_of_a_lower_is_better_task(tmp_path: Path, points, png_magic) -> None:
    df = points({"A": [(3.0, 10.0), (2.0, 12.0), (1.0, 14.0)], "dense": [(8.0, 10.0)]}, False)
    paths = [
        report.plot_accuracy_latency(df, "cpu", tmp_path / "lat.png", tolerance=1.0),
        report.plot_accuracy_sparsity(df, tmp_path / "sp.png"),
        report.plot_layer_speedup(df, "cpu", tmp_path / "layers.png"),
    ]
    for path in paths:
        assert path is not None and path.read_bytes().startswith(png_magic)
    assert report.plot_layer_speedup(df, "cpu", tmp_path / "none.png", sparsity=0.9) is None
    two_tasks = pd.concat([df, df.assign(task="speech")])
    with pytest.raises(ValueError, match="a figure shows one task; got 2"):
        report.plot_accuracy_sparsity(two_tasks, tmp_path / "x.png")


def _line(ax, label: str):
    (line,) = [line for line in ax.get_lines() if line.get_label() == label]
    return line


def test_accuracy_latency_figure_follows_the_metric_direction(hand_sweep, kind) -> None:
    baseline = {"name": "trivial", "value": kind.of(20.0)}  # within reach of the curves
    ax = report.accuracy_latency_figure(hand_sweep(baseline=baseline), "cpu", 1.0).axes[0]

    direction = "higher" if kind.higher_is_better else "lower"
    assert ax.get_ylabel() == f"{kind.name} ({direction} is better)"
    assert ax.get_title() == f"{kind.task}: {kind.name} vs latency, cpu backend"
    # the band counted as equal to dense: WER 11.5..12.5 (above dense), BLEU 25.5..26.5 (below)
    op = "-" if kind.higher_is_better else "+"
    (band,) = [p for p in ax.patches if p.get_label() == f"dense {op} 1"]
    band_levels = sorted([band.get_y(), band.get_y() + band.get_height()])
    assert band_levels == sorted([kind.of(11.5), kind.of(12.5)])
    # the Pareto staircase goes through the front A4 A3 A1 A0 dense, best metric last
    front = _line(ax, "Pareto front")
    assert front.get_drawstyle() == "steps-post"
    assert list(front.get_xdata()) == [1.0, 2.0, 3.0, 4.0, 8.0]
    assert list(front.get_ydata()) == [kind.of(w) for w in (18, 14, 13, 12, 11.5)]
    line = _line(ax, f"baseline trivial: {kind.of(20.0):g}")
    assert line.get_linestyle() == ":" and list(line.get_ydata()) == [kind.of(20.0)] * 2
    assert [(t.get_text(), t.get_position()[1]) for t in ax.texts if t.get_text() == "trivial"] == [
        ("trivial", kind.of(20.0))
    ]
    low, high = ax.get_ylim()
    assert low < min(kind.of(20.0), kind.of(11.5)) and max(kind.of(20.0), kind.of(11.5)) < high


def test_a_far_baseline_keeps_the_curves_readable(hand_sweep, kind) -> None:
    # a most-frequent-transcript WER of 98 / a copy-source BLEU of 2: far outside the curves
    far = 98.0 if not kind.higher_is_better else 2.0
    df = hand_sweep(baseline={"name": "trivial", "value": far})
    where = "below" if kind.higher_is_better else "above"
    for fig in (report.accuracy_latency_figure(df, "cpu"), report.accuracy_sparsity_figure(df)):
        ax = fig.axes[0]
        assert _line(ax, f"baseline trivial: {far:g} ({where} the axis)").get_linestyle() == ":"
        low, high = ax.get_ylim()
        assert low > 2.0 and high < 98.0  # the axis keeps to the curves (WER 11.5..18)


def test_a_band_wider_than_the_curves_does_not_stretch_the_axis(hand_sweep, kind) -> None:
    # a dense BLEU of 0.6 with a tolerance of 1 would reach below zero: the band is cut
    df = hand_sweep()
    plain = report.accuracy_latency_figure(df, "cpu").axes[0].get_ylim()
    ax = report.accuracy_latency_figure(df, "cpu", 100.0).axes[0]
    op = "-" if kind.higher_is_better else "+"
    (band,) = [p for p in ax.patches if p.get_label() == f"dense {op} 100"]
    assert abs(band.get_height()) == pytest.approx(100.0)
    assert ax.get_ylim() == pytest.approx(plain)


def test_accuracy_sparsity_figure_of_a_lower_is_better_task(points) -> None:
    df = points(
        {"A": [(3.0, 13.0), (2.0, 14.0), (1.0, 18.0)], "dense": [(8.0, 11.5)]},
        False,
        metric_name="wer",
        baseline={"name": "most-frequent", "value": 16.0},
    )
    ax = report.accuracy_sparsity_figure(df).axes[0]
    assert ax.get_ylabel() == "wer (lower is better)"
    assert list(_line(ax, "A").get_ydata()) == [13.0, 14.0, 18.0]  # by sparsity 0.5, 0.6, 0.7
    assert list(_line(ax, "dense").get_ydata()) == [11.5, 11.5]
    assert list(_line(ax, "baseline most-frequent: 16").get_ydata()) == [16.0, 16.0]
