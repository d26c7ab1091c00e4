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
