"""Figures (matplotlib): metric against latency and against sparsity, per-layer speedups.

Per task (see ``table._groups``): ``<task>_<backend>_accuracy_latency.png``,
``<task>_<backend>_layer_speedup.png`` and ``<task>_accuracy_sparsity.png``
(accuracy against sparsity does not depend on a latency backend, so it is drawn
once per task). A task scored on several test sets (``table.scored_sets``, e.g.
speech's ``details.wer.real``) also gets ``<task>_accuracy_sparsity_<set>.png``
and ``<task>_<backend>_accuracy_latency_<set>.png`` per set. Every figure shows
one task; a curve keeps its colour and marker in all of a task's figures.

The metric axis is the metric itself, labelled with its direction ("wer (lower is
better)"); the tolerance band and the Pareto staircase follow the direction, so
for a lower-is-better metric the band lies above the dense line and the
staircase falls with latency. The trivial baseline (``metric.baseline`` of the
records) is a dotted line named in the legend.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from gsprune.report.ratios import Tolerance, _dense_reference, pareto_front, tolerance_for
from gsprune.report.table import (
    ReportError,
    _baseline,
    _dense_metric,
    _finite,
    _fmt,
    _groups,
    _pattern_curves,
    _sign,
    layer_table,
    scored_set_view,
    scored_sets,
)

LOG_SCALE_SPAN = 5.0  # a latency axis spanning more than this factor is drawn in log scale
FIGURE_DPI = 150


def _styles(sub: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """(colour, marker) per non-dense curve of a task, the same in all of its figures."""
    markers = "osD^vP<>Xph"
    labels = sorted(set(sub.loc[sub["pattern"] != "dense", "curve"]))
    return {label: (f"C{i % 10}", markers[i % len(markers)]) for i, label in enumerate(labels)}


def _latency_axis_label(sub: pd.DataFrame, backend: str) -> str:
    """e.g. "latency of pruned layers (ms, cpu, batch 1, 2 threads)" or
    "H(8,8) steps of pruned layers (model backend)"."""
    runs = _finite(sub, backend)
    units = sorted(runs[f"unit_{backend}"].dropna().unique())
    settings = sorted(runs[f"setting_{backend}"].dropna().unique())
    unit = "/".join(units)
    setting = settings[0] if len(settings) == 1 else "mixed settings: " + "; ".join(settings)
    if unit == "steps":
        return f"{setting} steps of pruned layers ({backend} backend)"
    return f"latency of pruned layers ({', '.join(p for p in (unit, backend, setting) if p)})"


def _metric_axis_label(sub: pd.DataFrame) -> str:
    direction = "higher" if _sign(sub) > 0 else "lower"
    return f"{sub['metric'].iloc[0]} ({direction} is better)"


def _single_group(df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    groups = list(_groups(df))
    if len(groups) != 1:
        raise ReportError(
            f"a figure shows one task; got {len(groups)} ({[name for name, _ in groups]}); "
            "select one task's rows first"
        )
    return groups[0]


def _log_scale_if_wide(ax: Axes, which: str, values: Iterable[float]) -> None:
    """Log scale on axis ``which`` ("x" or "y") when the positive ``values`` span more than
    LOG_SCALE_SPAN, ticks as plain numbers (0.4, 2, 100 rather than 4x10^-1); minor ticks
    2, 3, 5 x 10^k are labelled too when the axis spans less than about 1.5 decades."""
    positive = [v for v in values if math.isfinite(v) and v > 0]
    if not positive or max(positive) <= LOG_SCALE_SPAN * min(positive):
        return
    axis = ax.xaxis if which == "x" else ax.yaxis
    getattr(ax, f"set_{which}scale")("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(plain)
    if max(positive) < 30 * min(positive):
        leading = FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "235" else "")
        axis.set_minor_formatter(leading)
    else:
        axis.set_minor_formatter(NullFormatter())


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=FIGURE_DPI)
    return path


def _draw_baseline(ax: Axes, sub: pd.DataFrame) -> None:
    """The task's baseline as a dotted line, named on the line and, with its value, in the
    legend. A baseline more than the plotted span away from everything else drawn would
    squash the curves into a sliver (a copy-source BLEU of 2 under curves at 25, say), so
    then the axis keeps its range and the legend says where the line is."""
    baseline = _baseline(sub)
    if baseline is None:
        return
    name, value = baseline
    low, high = ax.get_ylim()  # autoscaled to what is drawn so far
    span = high - low
    where = "below" if value < low - span else "above" if value > high + span else ""
    label = f"baseline {name}: {_fmt(value)}" + (f" ({where} the axis)" if where else "")
    ax.axhline(value, linestyle=":", color="k", linewidth=1.5, label=label)
    if where:
        ax.set_ylim(low, high)
    else:  # named on the line too, at the right edge, so it reads without the legend
        edge = ax.get_yaxis_transform()  # x in axes fraction, y in data
        ax.text(0.99, value, name, transform=edge, ha="right", va="bottom", fontsize=7)


def accuracy_latency_figure(
    df: pd.DataFrame, backend: str, tolerance: float | None = None
) -> Figure:
    """Metric against latency for one task: a curve per pattern (points sorted by latency,
    annotated with achieved sparsity), the Pareto front as a staircase with ringed points,
    the dense reference as a star and a dashed line, the tolerance band (levels counted as
    equal to dense: dense - tolerance .. dense, or dense .. dense + tolerance for a
    lower-is-better metric) when given, and the baseline as a dotted line."""
    task, sub = _single_group(df)
    runs, column = _finite(sub, backend), f"latency_{backend}"
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.add_subplot()
    styles = _styles(sub)
    for curve, points in _pattern_curves(runs):
        points = points.sort_values(column)
        colour, marker = styles[curve]
        ax.plot(points[column], points["metric_value"], marker=marker, color=colour, label=curve)
        for x, y, s in zip(
            points[column], points["metric_value"], points["achieved_sparsity"], strict=True
        ):
            ax.annotate(
                f"{100 * s:.0f}%",
                (x, y),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=colour,
            )
    front = pareto_front(runs, backend) if len(runs) else runs
    if len(front):
        ax.step(
            front[column],
            front["metric_value"],
            where="post",
            color="black",
            alpha=0.35,
            linewidth=3,
            label="Pareto front",
        )
        ax.scatter(front[column], front["metric_value"], s=140, facecolors="none", edgecolors="k")
    dense = _dense_reference(sub, backend)
    x_values = list(runs[column])
    if dense is not None:
        metric, latency = dense
        x_values.append(latency)
        ax.scatter([latency], [metric], marker="*", s=220, color="k", zorder=5, label="dense")
        ax.axhline(metric, linestyle="--", color="grey", linewidth=0.8)
    _draw_baseline(ax, sub)
    if dense is not None and tolerance:  # shade the levels counted as equal to dense
        # The band is cut at the axis that the runs set: one point of BLEU under a dense
        # 0.6 would otherwise stretch the axis to levels no run reached (below zero).
        low, high = ax.get_ylim()
        band = f"dense {'-' if _sign(sub) > 0 else '+'} {tolerance:g}"
        ax.axhspan(
            dense[0] - _sign(sub) * tolerance, dense[0], color="grey", alpha=0.15, label=band
        )
        ax.set_ylim(low, high)
    _log_scale_if_wide(ax, "x", x_values)
    ax.set_xlabel(_latency_axis_label(sub, backend))
    ax.set_ylabel(_metric_axis_label(sub))
    ax.set_title(f"{task}: {sub['metric'].iloc[0]} vs latency, {backend} backend")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_accuracy_latency(
    df: pd.DataFrame, backend: str, path: str | os.PathLike, tolerance: float | None = None
) -> Path:
    """``accuracy_latency_figure`` saved as a PNG at ``path``."""
    return _save(accuracy_latency_figure(df, backend, tolerance), path)


def accuracy_sparsity_figure(df: pd.DataFrame) -> Figure:
    """Metric against achieved sparsity for one task, a curve per pattern, dense as a dashed
    line, the baseline as a dotted one."""
    task, sub = _single_group(df)
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.add_subplot()
    styles = _styles(sub)
    for curve, points in _pattern_curves(sub):
        points = points.sort_values("achieved_sparsity")
        colour, marker = styles[curve]
        ax.plot(
            points["achieved_sparsity"],
            points["metric_value"],
            marker=marker,
            color=colour,
            label=curve,
        )
    dense_metric = _dense_metric(sub)
    if math.isfinite(dense_metric):
        ax.axhline(dense_metric, linestyle="--", color="k", linewidth=1, label="dense")
    _draw_baseline(ax, sub)
    ax.set_xlabel("achieved sparsity of pruned layers (fraction of zero weights)")
    ax.set_ylabel(_metric_axis_label(sub))
    ax.set_title(f"{task}: {sub['metric'].iloc[0]} vs sparsity")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_accuracy_sparsity(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """``accuracy_sparsity_figure`` saved as a PNG at ``path``."""
    return _save(accuracy_sparsity_figure(df), path)


def plot_layer_speedup(
    df: pd.DataFrame, backend: str, path: str | os.PathLike, sparsity: float | None = None
) -> Path | None:
    """Per-layer speedup over dense at one target sparsity (default: the highest of the
    task's pruned runs), grouped bars: layers on x, a bar per pattern (median over
    repeated runs). Returns None when no pruned run has that sparsity."""
    task, sub = _single_group(df)
    runs = _finite(sub[sub["pattern"] != "dense"], backend)
    if not len(runs):
        return None
    chosen = runs["target_sparsity"].max() if sparsity is None else sparsity
    runs = runs[np.isclose(runs["target_sparsity"], chosen)]
    layers = layer_table(runs, backend)
    if not len(layers):
        return None
    table = layers.pivot_table(index="layer", columns="curve", values="speedup", aggfunc="median")
    table = table.reindex(list(dict.fromkeys(layers["layer"])))  # pivot sorted; keep record order
    styles = _styles(sub)
    width = 0.8 / len(table.columns)
    fig = Figure(figsize=(min(24, max(8, 2 + 0.2 * table.size)), 5.5))
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot()
    x = np.arange(len(table))
    for i, curve in enumerate(table.columns):
        offset = (i - (len(table.columns) - 1) / 2) * width
        ax.bar(x + offset, table[curve], width, color=styles[curve][0], label=curve)
    ax.axhline(1.0, color="k", linewidth=0.8, linestyle="--")
    _log_scale_if_wide(ax, "y", table.to_numpy(float).ravel())
    ax.set_xticks(x, table.index, rotation=90 if len(table) > 6 else 0, fontsize=8)
    ax.set_xlabel("pruned layer")
    ax.set_ylabel(f"speedup over dense ({backend}, dense / sparse)")
    ax.set_title(f"{task}: per-layer speedup at target sparsity {chosen:g}, {backend}")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _file_part(name: str) -> str:
    """``name`` made safe for a file name (letters, digits, ``._-``; anything else ``-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def draw_figures(
    df: pd.DataFrame,
    out: str | os.PathLike,
    backend_names: Sequence[str],
    tolerance: Tolerance = None,
    sparsity: float | None = None,
) -> list[Path]:
    """All figures for all tasks under ``out``; returns the files written. Each task's
    tolerance band is ``tolerance_for(its metric, tolerance)``."""
    out = Path(out)
    written: list[Path | None] = []
    for task, sub in _groups(df):
        tol = tolerance_for(sub["metric"].iloc[0], tolerance)
        views = [("", sub)] + [
            (f"_{_file_part(s)}", scored_set_view(sub, s)) for s in scored_sets(sub)
        ]
        for suffix, view in views:
            path = out / f"{task}_accuracy_sparsity{suffix}.png"
            written.append(plot_accuracy_sparsity(view, path))
        for b in backend_names:
            if not len(_finite(sub, b)):
                continue
            for suffix, view in views:
                path = out / f"{task}_{b}_accuracy_latency{suffix}.png"
                written.append(plot_accuracy_latency(view, b, path, tol))
            path = out / f"{task}_{b}_layer_speedup.png"
            written.append(plot_layer_speedup(sub, b, path, sparsity))
            if written[-1] is None:
                print(
                    f"{task}, {b}: no pruned run with per-layer latencies at target sparsity "
                    f"{sparsity}; {path.name} not drawn",
                    file=sys.stderr,
                )
    return [p for p in written if p is not None]
