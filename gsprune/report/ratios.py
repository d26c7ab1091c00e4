"""Monotone envelopes, Pareto fronts, equal-metric latency ratios and headline speedups.

Equal-accuracy comparison (the paper's claim, computed): along each curve the
latency needed to reach a metric level is read off the curve's *monotone upper
envelope*: the curve's points, sorted by latency, keeping only those that beat
every faster point (the curve's own Pareto front). On that envelope both the
metric and the latency strictly increase, so it is invertible, and the latency
at a level between two envelope points is interpolated linearly. When sparsity
order and latency order agree (the normal case) this is the upper envelope of
the curve sorted by sparsity; a noisy point that is slower and worse than a
sparser one is ignored instead of folding the curve back. Ratios between two
curves are given only inside the metric range both cover (no extrapolation).
The dense model is the sparsity-0 end of every curve: it reaches every level up
to its own metric at the dense latency.

Metric direction: all of this works on *goodness* = sign * metric (sign +1 for
higher-is-better metrics such as top-1 and BLEU, -1 for lower-is-better ones
such as WER), so "up to its own metric", "best" and "within tolerance" mean
"no worse than" in either direction; tables and figures show the metric itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gsprune.report.table import (
    ReportError,
    _dense_metric,
    _finite,
    _fmt,
    _groups,
    _pattern_curves,
    _sign,
)

RATIO_COLUMNS = [
    "task",
    "pattern",
    "reference",
    "metric_level",
    "latency",
    "reference_latency",
    "ratio",
]
HEADLINE_COLUMNS = [
    "task",
    "pattern",
    "metric",
    "dense_metric",
    "tolerance",
    "level",
    "best_metric",
    "latency",
    "dense_latency",
    "speedup",
    "interpolated",
]

# One point of each known metric in the units gsprune's tasks record it (top-1, top-5,
# BLEU, chrF, WER and CER all in percent): the headline's default tolerance, looked up by
# metric name (any case). A metric not listed gets one unit of itself.
METRIC_POINT = {"top1": 1.0, "top5": 1.0, "bleu": 1.0, "chrf": 1.0, "wer": 1.0, "cer": 1.0}

# A headline tolerance: one number for every task, a mapping metric name -> number (metrics
# not in it get their default), or None (every metric its default, METRIC_POINT).
Tolerance = float | Mapping[str, float] | None


@dataclass(frozen=True)
class Envelope:
    """Monotone upper envelope of (latency, metric) points, in 'goodness' = sign * metric.

    ``good`` and ``latency`` are float[n], both strictly increasing (n >= 1).
    ``floor`` is the lowest level the envelope speaks for: ``good[0]`` for a
    measured curve, ``-inf`` for the dense point (it reaches every lower level).
    """

    good: np.ndarray
    latency: np.ndarray
    floor: float

    @classmethod
    def of(cls, latency: Sequence[float], good: Sequence[float]) -> Envelope:
        """Keep the points that beat every point at lower or equal latency."""
        order = np.lexsort((-np.asarray(good, float), np.asarray(latency, float)))
        lat, val = np.asarray(latency, float)[order], np.asarray(good, float)[order]
        best = np.maximum.accumulate(val)
        keep = np.r_[True, val[1:] > best[:-1]]
        return cls(good=val[keep], latency=lat[keep], floor=float(val[keep][0]))

    def latency_at(self, level: float) -> float:
        """Lowest latency reaching at least ``level``, linear between envelope points;
        NaN above the best point or below ``floor``."""
        if level > self.good[-1] or level < self.floor:
            return math.nan
        return float(np.interp(level, self.good, self.latency))


def _dense_reference(sub: pd.DataFrame, backend: str) -> tuple[float, float] | None:
    """(dense metric, dense latency) of a task: the metric of its dense runs (median) or
    else the dense metric every run records; the latency is the median of the dense
    baseline every run measured. None when either is unknown."""
    metric = _dense_metric(sub)
    runs = _finite(sub, backend)
    latency = runs[f"latency_{backend}_dense"].median() if len(runs) else math.nan
    if not (math.isfinite(metric) and math.isfinite(latency)):
        return None
    return float(metric), float(latency)


def _envelopes(sub: pd.DataFrame, backend: str) -> dict[str, Envelope]:
    """Envelope per curve with measured latency, plus ``"dense"`` when the reference exists."""
    sign, runs = _sign(sub), _finite(sub, backend)
    out = {
        curve: Envelope.of(points[f"latency_{backend}"], sign * points["metric_value"])
        for curve, points in _pattern_curves(runs)
    }
    dense = _dense_reference(sub, backend)
    if dense is not None:
        out["dense"] = Envelope(np.array([sign * dense[0]]), np.array([dense[1]]), -math.inf)
    return out


def pareto_front(df: pd.DataFrame, backend: str) -> pd.DataFrame:
    """Non-dominated runs per task for ``backend``, sorted by task and latency.

    A run is dominated when another run of its task has latency <= and a metric
    at least as good (honouring ``higher_is_better``), one of them strictly.
    Runs without a latency for ``backend`` take no part. Equal points are all kept.
    """
    fronts = []
    for _, sub in _groups(df):
        runs = _finite(sub, backend)
        lat = runs[f"latency_{backend}"].to_numpy(float)
        good = _sign(sub) * runs["metric_value"].to_numpy(float)
        no_worse = (lat[None, :] <= lat[:, None]) & (good[None, :] >= good[:, None])
        better = (lat[None, :] < lat[:, None]) | (good[None, :] > good[:, None])
        dominated = (no_worse & better).any(axis=1)  # [i]: some j dominates i
        fronts.append(runs[~dominated].sort_values([f"latency_{backend}", "metric_value"]))
    if not fronts:
        return df.iloc[0:0]
    return pd.concat(fronts).reset_index(drop=True)


def equal_accuracy_ratios(
    df: pd.DataFrame, backend: str, references: Sequence[str] | None = None
) -> pd.DataFrame:
    """Latency of each curve over a reference's latency at equal metric, per task.

    For every ordered pair (pattern P, reference Q), Q = "dense" or another
    curve (``references`` restricts Q; default: dense and every curve), the
    metric levels compared are the envelope points of P and of Q that lie in
    the metric range both reach (see the module docstring: monotone upper
    envelope, linear interpolation, no extrapolation; dense covers every level
    up to its own metric). Columns: task, pattern, reference, metric_level,
    latency (of P), reference_latency, ratio = latency / reference_latency
    (< 1: P is faster at that metric).
    """
    rows = []
    for task, sub in _groups(df):
        sign, envelopes = _sign(sub), _envelopes(sub, backend)
        for pattern, env in envelopes.items():
            if pattern == "dense":
                continue
            for reference, ref in envelopes.items():
                if reference == pattern or (references is not None and reference not in references):
                    continue
                low, high = max(env.floor, ref.floor), min(env.good[-1], ref.good[-1])
                levels = np.unique(np.r_[env.good, ref.good])
                for level in levels[(levels >= low) & (levels <= high)]:
                    lat, ref_lat = env.latency_at(level), ref.latency_at(level)
                    rows.append([task, pattern, reference, sign * level, lat, ref_lat])
    out = pd.DataFrame(rows, columns=RATIO_COLUMNS[:-1])
    out["ratio"] = out["latency"] / out["reference_latency"]
    return out


def _check_tolerance(tolerance: Tolerance) -> None:
    given = tolerance.items() if isinstance(tolerance, Mapping) else [(None, tolerance)]
    for metric, value in given:
        if value is not None and (not math.isfinite(value) or value < 0):
            name = f"{value!r}" if metric is None else f"{metric}={value!r}"
            raise ReportError(
                f"tolerance {name} is not accepted; give a finite number >= 0 in the "
                "metric's own units (e.g. 1.0 for one point of top-1, BLEU or WER in percent)"
            )


def tolerance_for(metric: str, tolerance: Tolerance = None) -> float:
    """The headline tolerance of a task whose metric is ``metric``, in the metric's units:
    ``tolerance`` when it is a number, its entry for ``metric`` (any case) when it is a
    mapping, else one point of the metric (``METRIC_POINT``, 1.0 for a metric not listed)."""
    if isinstance(tolerance, Mapping):
        given = {str(k).lower(): v for k, v in tolerance.items()}
        tolerance = given.get(metric.lower())
    if tolerance is not None:
        return float(tolerance)
    return METRIC_POINT.get(metric.lower(), 1.0)


def headline(df: pd.DataFrame, backend: str, tolerance: Tolerance = None) -> pd.DataFrame:
    """Per task and curve: the best speedup over dense while within tolerance of dense.

    The task's tolerance is ``tolerance_for(metric, tolerance)``: by default one
    point of the task's metric. The level is dense metric - tolerance (+ for
    lower-is-better metrics), in the metric's own units. The latency is the
    curve's envelope latency at that level, interpolated between the two envelope
    points around it (``interpolated`` True), or the curve's fastest point when
    even that one is within tolerance. A curve that never reaches the level gets
    NaN latency and speedup. Columns: see HEADLINE_COLUMNS (``tolerance``: the one
    used for the row's task); speedup = dense_latency / latency.
    """
    _check_tolerance(tolerance)
    rows = []
    for task, sub in _groups(df):
        sign, envelopes = _sign(sub), _envelopes(sub, backend)
        dense = envelopes.pop("dense", None)
        if dense is None:
            continue
        metric = sub["metric"].iloc[0]
        tol = tolerance_for(metric, tolerance)
        level = dense.good[0] - tol
        for pattern, env in envelopes.items():
            lat = env.latency_at(max(level, env.floor))
            rows.append(
                [
                    task,
                    pattern,
                    metric,
                    sign * dense.good[0],
                    tol,
                    sign * level,
                    sign * env.good[-1],
                    lat,
                    dense.latency[0],
                    dense.latency[0] / lat,
                    bool(env.floor < level < env.good[-1] and level not in env.good),
                ]
            )
    return pd.DataFrame(rows, columns=HEADLINE_COLUMNS)


def headline_text(row: pd.Series, tolerance: float | None = None) -> str:
    """``gs V=8: 2.40x faster than dense at equal top1 (91.1 = dense 92.1 - 1)``, or for a
    lower-is-better metric ``... at equal wer (13.3 = dense 12.3 + 1)``; ``tolerance``
    defaults to the row's own."""
    tolerance = row["tolerance"] if tolerance is None else tolerance
    op = "-" if row["level"] <= row["dense_metric"] else "+"
    within = f"{_fmt(row['level'])} = dense {_fmt(row['dense_metric'])} {op} {_fmt(tolerance)}"
    if not math.isfinite(row["speedup"]):
        return (
            f"{row['pattern']}: never within {_fmt(tolerance)} of dense {row['metric']} "
            f"({within}; best {_fmt(row['best_metric'])})"
        )
    how = "faster" if row["speedup"] >= 1 else "slower"
    factor = row["speedup"] if row["speedup"] >= 1 else 1 / row["speedup"]
    return f"{row['pattern']}: {factor:.2f}x {how} than dense at equal {row['metric']} ({within})"
