"""``gsprune-report``: run records -> one table, Markdown summary, figures, equal-accuracy ratios.

Usage::

    gsprune-report results/ [more dirs or record files] [--out DIR]
                   [--backend cpu [--backend model]] [--tolerance 1.0] [--sparsity 0.9]

It gathers every run record below the given paths (a ``*.json`` file whose
content has a ``"schema"`` field; other JSON files, e.g. benchmark tables, are
ignored), names every broken record it skips on stderr, and writes under
``--out`` (default ``<first dir>/report``):

- ``runs.csv``: one row per run (see ``RUN_COLUMNS`` and the per-backend
  ``latency_<b>``, ``latency_<b>_dense``, ``speedup_<b>``, ``unit_<b>``,
  ``setting_<b>`` columns);
- ``layers.csv``: one row per (run, backend, pruned layer) with its latencies;
- ``summary.md``: per task, the runs table and, per latency backend, the
  headline speedups, the Pareto front and the equal-accuracy latency ratios;
- ``figures/<task>_<backend>_accuracy_latency.png``,
  ``figures/<task>_<backend>_layer_speedup.png`` and
  ``figures/<task>_accuracy_sparsity.png`` (accuracy against sparsity does not
  depend on a latency backend, so it is drawn once per task).

A *task* here is the pair (task name, scale): runs of the embedded and the
paper-scale model are never mixed in a curve; a task's figure files are named
``<task>-<scale>_...`` only when both scales are present.

A *curve* is one pattern with its parameters (``label``, e.g. ``gs V=8``); when
the runs of a task differ in any other setting (their *recipe*: the
resolved config without pattern, sparsity and run-only keys, plus the pruning
method and score), the curve label also names the differing settings
(``gs V=8 (prune.method=oneshot)``) so that runs made differently never share
a curve. Runs of the ``dense`` pattern are not a curve: they, and the
dense baseline every run measures, form the dense reference point.

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
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from gsprune.records import RUN_ONLY_KEYS, SCHEMA

RUN_COLUMNS = [
    "run_id",
    "task",
    "scale",
    "pattern",
    "label",
    "prune",
    "curve",
    "target_sparsity",
    "achieved_sparsity",
    "feasible",
    "metric",
    "metric_value",
    "higher_is_better",
    "dense_metric",
]
TAIL_COLUMNS = ["created", "git_commit", "path"]
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
    "level",
    "best_metric",
    "latency",
    "dense_latency",
    "speedup",
    "interpolated",
]
LOG_SCALE_SPAN = 5.0  # a latency axis spanning more than this factor is drawn in log scale
FIGURE_DPI = 150


class ReportError(ValueError):
    """Bad input to the reporter (no records, unknown backend, ...): exit code 2, no traceback."""


class BrokenRecord(ValueError):
    """One record file that cannot be used; the message says why."""


# ---------------------------------------------------------------------------------------------
# Records -> table


FieldPath = str | tuple[str, ...]  # "metric.value", or a tuple when a key holds dots (layers)


def _field(record: dict[str, Any], path: FieldPath) -> Any:
    """Value at ``path`` in a nested dict; BrokenRecord("missing field a.b") when missing/null."""
    keys = path.split(".") if isinstance(path, str) else path
    node: Any = record
    for key in keys:
        if not isinstance(node, dict) or node.get(key) is None:
            raise BrokenRecord(f"missing field {'.'.join(keys)}")
        node = node[key]
    return node


def _number(record: dict[str, Any], path: FieldPath) -> float:
    """A finite number at ``path``; BrokenRecord naming the field and value otherwise."""
    value = _field(record, path)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        name = path if isinstance(path, str) else ".".join(path)
        raise BrokenRecord(f"field {name} is {value!r}, expected a finite number")
    return float(value)


def _optional_number(record: dict[str, Any], path: FieldPath) -> float:
    try:
        return _number(record, path)
    except BrokenRecord:
        return math.nan


def _gs_label(name: str, params: dict[str, Any]) -> str:
    v, b, band_k = params.get("V"), params.get("B"), params.get("band_k")
    text = f"{name} V={v}"
    if b is not None and b != v:
        text += f" B={b}"
    if band_k not in (None, "uniform"):
        text += f" band_k={band_k}"
    return text


def _nm_label(name: str, params: dict[str, Any]) -> str:
    n, m = params.get("N", params.get("n")), params.get("M", params.get("m"))
    return f"{name} {n}:{m}"


def _block_label(name: str, params: dict[str, Any]) -> str:
    return f"{name} {params.get('R')}x{params.get('C')}"


def _unstructured_label(name: str, params: dict[str, Any]) -> str:
    scope = params.get("scope")
    return name if scope in (None, "layer") else f"{name} {scope}"


_LABELS: dict[str, Callable[[str, dict[str, Any]], str]] = {
    "gs": _gs_label,
    "gs_scatter": _gs_label,
    "gs_free": _gs_label,
    "nm": _nm_label,
    "block": _block_label,
    "unstructured": _unstructured_label,
    "dense": lambda name, params: name,
    "row_balanced": lambda name, params: name,
}


def pattern_label(name: str, params: dict[str, Any] | None) -> str:
    """Compact curve label: ``gs V=8``, ``gs V=8 B=16``, ``block 1x8``, ``nm 2:4``,
    ``bank_balanced B=8``; an unknown pattern shows all its non-null params as k=v."""
    params = params or {}
    if name in _LABELS:
        return _LABELS[name](name, params)
    text = " ".join(f"{k}={v}" for k, v in sorted(params.items()) if v is not None)
    return f"{name} {text}" if text else name


def _setting_label(settings: dict[str, Any]) -> str:
    """The measurement settings shared by all patterns: ``H(8,8)``, ``batch 1, 2 threads``."""
    parts = []
    if settings.get("V") is not None:
        parts.append(f"H({settings['V']},{settings.get('B') or settings['V']})")
    if settings.get("batch") is not None:
        parts.append(f"batch {settings['batch']}")
    if settings.get("threads") is not None:
        threads = settings["threads"]
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    return ", ".join(parts)


def _layer_latencies(record: dict[str, Any], backend: str) -> dict[str, dict[str, float]]:
    layers = record["latency"][backend].get("layers") or {}
    if not isinstance(layers, dict):
        raise BrokenRecord(f"field latency.{backend}.layers is not a mapping")
    out = {}
    for layer in layers:
        prefix = ("latency", backend, "layers", layer)
        sparse, dense = _number(record, (*prefix, "sparse")), _number(record, (*prefix, "dense"))
        out[layer] = {
            "sparse": sparse,
            "dense": dense,
            "speedup": dense / sparse if sparse > 0 else math.nan,
            "achieved": _optional_number(record, ("sparsity", "layers", layer, "achieved")),
        }
    return out


# Config keys that are not part of a run's recipe: what a curve sweeps, and run-only keys.
RECIPE_EXCLUDED = ("pattern", "sparsity", "hydra", *RUN_ONLY_KEYS)


def _flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    if not isinstance(tree, dict):
        return {prefix: tree if isinstance(tree, str) else json.dumps(tree, sort_keys=True)}
    flat: dict[str, str] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def recipe(record: dict[str, Any]) -> dict[str, str]:
    """Everything that shaped a run besides its pattern and sparsity, as dotted keys.

    The flattened ``config`` without ``RECIPE_EXCLUDED``, plus the record's
    ``prune`` block as ``prune.*`` (strings as they are, other values as JSON text).
    """
    config = {k: v for k, v in (record.get("config") or {}).items() if k not in RECIPE_EXCLUDED}
    return {**_flatten(config), **_flatten({"prune": record.get("prune") or {}})}


def record_row(record: dict[str, Any]) -> dict[str, Any]:
    """Flatten one run record (schema of ``gsprune.records``) into one table row.

    Raises BrokenRecord("missing field metric.value", ...) when a required field
    is absent or not a finite number. Per latency backend ``b`` the row has
    ``latency_b`` (sum over pruned layers of the sparse kernel), ``latency_b_dense``,
    ``speedup_b`` (= dense / sparse), ``unit_b``, ``setting_b`` and ``layers_b``
    (dict layer -> {sparse, dense, speedup, achieved}; not written to runs.csv).
    """
    pattern = str(_field(record, "pattern.name"))  # also checks that "pattern" is a mapping
    params = record["pattern"].get("params") or {}
    if not isinstance(params, dict):
        raise BrokenRecord("field pattern.params is not a mapping of parameter -> value")
    prune = record.get("prune") or {}
    row: dict[str, Any] = {
        "run_id": str(_field(record, "run_id")),
        "task": str(_field(record, "task.name")),
        "scale": str(record["task"].get("scale") or ""),
        "pattern": pattern,
        "label": pattern_label(pattern, params),
        "prune": " ".join(str(prune[k]) for k in ("method", "score") if prune.get(k)),
        "recipe": recipe(record),
        "target_sparsity": _number(record, "sparsity.target"),
        "achieved_sparsity": _number(record, "sparsity.achieved"),
        "feasible": bool(record["sparsity"].get("feasible", True)),
        "metric": str(_field(record, "metric.name")),
        "metric_value": _number(record, "metric.value"),
        "higher_is_better": _field(record, "metric.higher_is_better"),
        "dense_metric": _optional_number(record, "metric.dense_value"),
        "created": record.get("created"),
        "git_commit": record.get("git_commit"),
    }
    if not isinstance(row["higher_is_better"], bool):
        raise BrokenRecord(
            f"field metric.higher_is_better is {row['higher_is_better']!r}, expected true/false"
        )
    latency = record.get("latency") or {}
    if not isinstance(latency, dict):
        raise BrokenRecord("field latency is not a mapping of backend -> measurement")
    for backend in latency:
        sparse = _number(record, ("latency", backend, "sparse"))
        dense = _number(record, ("latency", backend, "dense"))
        row[f"latency_{backend}"] = sparse
        row[f"latency_{backend}_dense"] = dense
        row[f"speedup_{backend}"] = dense / sparse if sparse > 0 else math.nan
        row[f"unit_{backend}"] = str(_field(record, ("latency", backend, "unit")))
        row[f"setting_{backend}"] = _setting_label(latency[backend].get("settings") or {})
        row[f"layers_{backend}"] = _layer_latencies(record, backend)
    return row


def _backend_columns(backend: str) -> list[str]:
    return [
        f"latency_{backend}",
        f"latency_{backend}_dense",
        f"speedup_{backend}",
        f"unit_{backend}",
        f"setting_{backend}",
        f"layers_{backend}",
    ]


def backends(df: pd.DataFrame) -> list[str]:
    """Latency backends present in the table, sorted (from its ``unit_<b>`` columns)."""
    return sorted(c[len("unit_") :] for c in df.columns if c.startswith("unit_"))


def runs_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows from ``record_row`` -> the run table, sorted by task, scale, curve, target sparsity.

    Adds ``curve``: the label, plus the recipe settings (see ``recipe``) that
    differ between the runs of the same task, when any do.
    """
    df = pd.DataFrame(list(rows))
    for column in RUN_COLUMNS + TAIL_COLUMNS:
        if column not in df.columns:
            df[column] = pd.Series(dtype=object)
    if "recipe" not in df.columns:
        df["recipe"] = [{} for _ in range(len(df))]
    df["curve"] = df["label"]
    for _, group in df.groupby(["task", "scale"]):
        recipes = list(group["recipe"])
        keys = sorted({key for r in recipes for key in r})
        varied = [key for key in keys if len({r.get(key) for r in recipes}) > 1]
        if varied:
            for index, r in zip(group.index, recipes, strict=True):
                named = ", ".join(f"{key}={r.get(key, 'unset')}" for key in varied)
                df.loc[index, "curve"] = f"{df.loc[index, 'label']} ({named})"
    per_backend = [column for b in backends(df) for column in _backend_columns(b)]
    df = df[RUN_COLUMNS + per_backend + TAIL_COLUMNS]
    return df.sort_values(["task", "scale", "curve", "target_sparsity", "run_id"]).reset_index(
        drop=True
    )


def _record_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Every ``*.json`` below the given directories (or the files themselves), each once."""
    seen: dict[Path, None] = {}
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(path.rglob("*.json"))
        elif path.is_file():
            found = [path]
        else:
            raise ReportError(
                f"{str(given)!r} is neither a directory nor a file; pass the directories "
                "that hold run records (e.g. results/) or record files"
            )
        for file in found:
            seen.setdefault(file.resolve(), None)
    return list(seen)


def load_records(paths: Sequence[str | os.PathLike]) -> tuple[pd.DataFrame, list[str]]:
    """Gather the run records below ``paths`` into the run table.

    Returns ``(df, skipped)``: ``df`` has one row per usable record (columns as
    in ``runs_frame``) and a ``path`` column; ``skipped`` has one message per
    broken record file ("skipped results/x.json: missing field metric.value"):
    unreadable JSON, a wrong schema, a missing or malformed required field, or
    a run_id already read from another file. JSON files without a ``"schema"``
    field are not records and are ignored silently. Raises ReportError when a
    path does not exist.
    """
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    first_file: dict[str, Path] = {}
    for file in _record_files(paths):
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:  # ValueError covers JSON and UTF-8 decoding
            skipped.append(f"skipped {file}: not readable JSON ({err})")
            continue
        if not isinstance(record, dict) or "schema" not in record:
            continue  # some other JSON file (a benchmark table, say), not a run record
        try:
            if record["schema"] != SCHEMA:
                raise BrokenRecord(f"schema {record['schema']!r}, this reporter reads {SCHEMA}")
            row = record_row(record)
        except BrokenRecord as err:
            skipped.append(f"skipped {file}: {err}")
            continue
        if row["run_id"] in first_file:
            skipped.append(
                f"skipped {file}: duplicate run_id {row['run_id']} "
                f"(already read from {first_file[row['run_id']]})"
            )
            continue
        first_file[row["run_id"]] = file
        row["path"] = str(file)
        rows.append(row)
    if not rows:
        return runs_frame([]), skipped
    return runs_frame(rows), skipped


def layer_table(df: pd.DataFrame, backend: str) -> pd.DataFrame:
    """Long table of per-layer latencies: one row per (run, pruned layer) for ``backend``.

    Columns: run_id, task, scale, curve, target_sparsity, achieved_sparsity (of
    the run), layer, layer_sparsity, sparse, dense, speedup.
    """
    columns = ["run_id", "task", "scale", "curve", "target_sparsity", "achieved_sparsity"]
    rows = []
    for _, run in df[df[f"latency_{backend}"].notna()].iterrows():
        for layer, values in run[f"layers_{backend}"].items():
            rows.append(
                {c: run[c] for c in columns}
                | {"layer": layer, "layer_sparsity": values["achieved"]}
                | {k: values[k] for k in ("sparse", "dense", "speedup")}
            )
    names = columns + ["layer", "layer_sparsity", "sparse", "dense", "speedup"]
    return pd.DataFrame(rows, columns=names)


# ---------------------------------------------------------------------------------------------
# Tasks, curves, envelopes


def _groups(df: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """Yield (task name for display, its rows) per (task, scale), named ``task-scale`` only
    when the task has runs at several scales."""
    scales = df.groupby("task")["scale"].nunique()
    for (task, scale), sub in df.groupby(["task", "scale"], sort=True):
        name = f"{task}-{scale}" if scales[task] > 1 else str(task)
        metrics = sub[["metric", "higher_is_better"]].drop_duplicates()
        if len(metrics) > 1:
            raise ReportError(
                f"task {name!r} mixes metrics {sorted(map(tuple, metrics.values.tolist()))}; "
                "every run of one task must report the same metric and direction"
            )
        yield name, sub


def _sign(sub: pd.DataFrame) -> float:
    """+1 when the task's metric is higher-is-better, else -1 (maps metric -> 'goodness')."""
    return 1.0 if bool(sub["higher_is_better"].iloc[0]) else -1.0


def _finite(sub: pd.DataFrame, backend: str) -> pd.DataFrame:
    column = f"latency_{backend}"
    return sub[sub[column].notna()] if column in sub.columns else sub.iloc[0:0]


def _pattern_curves(sub: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """(curve label, its runs) for every non-dense curve, in label order."""
    yield from sub[sub["pattern"] != "dense"].groupby("curve", sort=True)


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
    dense_runs = sub.loc[sub["pattern"] == "dense", "metric_value"]
    metric = dense_runs.median() if len(dense_runs) else sub["dense_metric"].median()
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


# ---------------------------------------------------------------------------------------------
# Pareto front, equal-accuracy ratios, headline


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


def _check_tolerance(tolerance: float) -> None:
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ReportError(
            f"tolerance {tolerance!r} is not accepted; give a finite number >= 0 in the "
            "metric's own units (e.g. 1.0 for one point of top-1 in percent)"
        )


def headline(df: pd.DataFrame, backend: str, tolerance: float = 1.0) -> pd.DataFrame:
    """Per task and curve: the best speedup over dense while within ``tolerance`` of dense.

    The level is dense metric - tolerance (+ for lower-is-better metrics), in the
    metric's own units. The latency is the curve's envelope latency at that
    level, interpolated between the two envelope points around it
    (``interpolated`` True), or the curve's fastest point when even that one is
    within tolerance. A curve that never reaches the level gets NaN latency and
    speedup. Columns: see HEADLINE_COLUMNS; speedup = dense_latency / latency.
    """
    _check_tolerance(tolerance)
    rows = []
    for task, sub in _groups(df):
        sign, envelopes = _sign(sub), _envelopes(sub, backend)
        dense = envelopes.pop("dense", None)
        if dense is None:
            continue
        level = dense.good[0] - tolerance
        for pattern, env in envelopes.items():
            lat = env.latency_at(max(level, env.floor))
            rows.append(
                [
                    task,
                    pattern,
                    sub["metric"].iloc[0],
                    sign * dense.good[0],
                    sign * level,
                    sign * env.good[-1],
                    lat,
                    dense.latency[0],
                    dense.latency[0] / lat,
                    bool(env.floor < level < env.good[-1] and level not in env.good),
                ]
            )
    return pd.DataFrame(rows, columns=HEADLINE_COLUMNS)


def headline_text(row: pd.Series, tolerance: float) -> str:
    """``gs V=8: 2.40x faster than dense at equal top1 (91.1 = dense 92.1 - 1)``."""
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


# ---------------------------------------------------------------------------------------------
# Figures


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


def plot_accuracy_latency(
    df: pd.DataFrame, backend: str, path: str | os.PathLike, tolerance: float | None = None
) -> Path:
    """Metric against latency for one task: a curve per pattern (points sorted by latency,
    annotated with achieved sparsity), the Pareto front as a staircase with ringed points,
    the dense reference as a star and a dashed line, the tolerance band when given."""
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
        if tolerance:  # shade the levels counted as equal to dense by the headline
            level = metric - _sign(sub) * tolerance
            band = f"dense {'-' if _sign(sub) > 0 else '+'} {tolerance:g}"
            ax.axhspan(level, metric, color="grey", alpha=0.15, label=band)
    _log_scale_if_wide(ax, "x", x_values)
    ax.set_xlabel(_latency_axis_label(sub, backend))
    ax.set_ylabel(_metric_axis_label(sub))
    ax.set_title(f"{task}: {sub['metric'].iloc[0]} vs latency, {backend} backend")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def plot_accuracy_sparsity(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Metric against achieved sparsity for one task, a curve per pattern, dense as a line."""
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
    dense = sub.loc[sub["pattern"] == "dense", "metric_value"]
    dense_metric = dense.median() if len(dense) else sub["dense_metric"].median()
    if math.isfinite(dense_metric):
        ax.axhline(dense_metric, linestyle="--", color="k", linewidth=1, label="dense")
    ax.set_xlabel("achieved sparsity of pruned layers (fraction of zero weights)")
    ax.set_ylabel(_metric_axis_label(sub))
    ax.set_title(f"{task}: {sub['metric'].iloc[0]} vs sparsity")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


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


def draw_figures(
    df: pd.DataFrame,
    out: str | os.PathLike,
    backend_names: Sequence[str],
    tolerance: float | None = None,
    sparsity: float | None = None,
) -> list[Path]:
    """All figures for all tasks under ``out``; returns the files written."""
    out = Path(out)
    written: list[Path | None] = []
    for task, sub in _groups(df):
        written.append(plot_accuracy_sparsity(sub, out / f"{task}_accuracy_sparsity.png"))
        for b in backend_names:
            if not len(_finite(sub, b)):
                continue
            path = out / f"{task}_{b}_accuracy_latency.png"
            written.append(plot_accuracy_latency(sub, b, path, tolerance))
            path = out / f"{task}_{b}_layer_speedup.png"
            written.append(plot_layer_speedup(sub, b, path, sparsity))
            if written[-1] is None:
                print(
                    f"{task}, {b}: no pruned run with per-layer latencies at target sparsity "
                    f"{sparsity}; {path.name} not drawn",
                    file=sys.stderr,
                )
    return [p for p in written if p is not None]


# ---------------------------------------------------------------------------------------------
# Tables and the command


def _fmt(value: Any) -> str:
    """Compact cell text: 4 significant digits, whole numbers for values >= 1000."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, int | np.integer):
        return str(value)
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            return "" if math.isnan(value) else str(value)
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return "" if value is None else str(value)


def markdown_table(df: pd.DataFrame) -> str:
    """GitHub Markdown table of ``df`` with compact numbers; '|' inside cells escaped."""
    header = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def _text_table(df: pd.DataFrame) -> str:
    cells = [[str(c) for c in df.columns]] + [[_fmt(v) for v in r] for r in df.itertuples(False)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(df.columns))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells
    )


def _runs_view(sub: pd.DataFrame, backend_names: Sequence[str]) -> pd.DataFrame:
    columns = ["curve", "target_sparsity", "achieved_sparsity", "metric_value"]
    for b in backend_names:
        columns += [f"latency_{b}", f"speedup_{b}"]
    view = sub[columns + ["run_id"]].rename(columns={"metric_value": sub["metric"].iloc[0]})
    return view.rename(columns={"curve": "pattern"})


def _figure_links(figures: Sequence[Path], prefix: str, out: Path) -> list[str]:
    return [
        f"![{fig.stem}]({fig.relative_to(out).as_posix()})"
        for fig in figures
        if fig.name.startswith(prefix)
    ]


def _backend_section(
    task: str,
    sub: pd.DataFrame,
    backend: str,
    tolerance: float,
    heads: pd.DataFrame,
    ratios: pd.DataFrame,
    figures: Sequence[Path],
    out: Path,
) -> list[str]:
    """Markdown blocks for one task and backend: headline, Pareto front, ratios, figures."""
    metric = sub["metric"].iloc[0]
    lines = [f"### {task}, {backend} backend: {_latency_axis_label(sub, backend)}"]
    if len(heads):
        lines.append("\n".join(f"- {headline_text(row, tolerance)}" for _, row in heads.iterrows()))
    front = pareto_front(sub, backend)
    front = front[["curve", "achieved_sparsity", "metric_value", f"latency_{backend}"]]
    front = front.rename(columns={"curve": "pattern", "metric_value": metric})
    lines.append("Pareto front:\n\n" + markdown_table(front))
    if len(ratios):
        table = markdown_table(ratios.drop(columns="task"))
        lines.append(f"Latency ratio at equal {metric}:\n\n" + table)
    return lines + _figure_links(figures, f"{task}_{backend}_", out)


def summary_markdown(
    df: pd.DataFrame,
    backend_names: Sequence[str],
    tolerance: float,
    headlines: dict[str, pd.DataFrame],
    ratios: dict[str, pd.DataFrame],
    skipped: Sequence[str] = (),
    figures: Sequence[Path] = (),
    out: Path = Path("."),
) -> str:
    """The Markdown report: per task its runs, then per backend the headline speedups
    (``headlines[b]`` from ``headline``), the Pareto front, the equal-accuracy ratios
    (``ratios[b]`` from ``equal_accuracy_ratios``) and the figures (linked relative to
    ``out``)."""
    lines = [f"# gsprune report\n\n{len(df)} runs, {df['task'].nunique()} task(s)."]
    if skipped:
        lines.append("Skipped record files:\n\n" + "\n".join(f"- {s}" for s in skipped))
    for task, sub in _groups(df):
        present = [b for b in backend_names if len(_finite(sub, b))]
        lines.append(f"## {task}: {_metric_axis_label(sub)}")
        lines.append(markdown_table(_runs_view(sub, present)))
        lines += _figure_links(figures, f"{task}_accuracy_sparsity", out)
        for b in present:
            heads, pairs = headlines[b], ratios[b]
            heads, pairs = heads[heads["task"] == task], pairs[pairs["task"] == task]
            lines += _backend_section(task, sub, b, tolerance, heads, pairs, figures, out)
    return "\n\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gsprune-report",
        description="Gather gsprune run records into a table, a Markdown summary and figures.",
    )
    parser.add_argument("paths", nargs="+", help="directories holding run records (or records)")
    parser.add_argument("--out", help="output directory (default: <first dir>/report)")
    parser.add_argument(
        "--backend",
        action="append",
        help="a latency backend to report, repeatable (default: every backend present)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        help="headline: metric distance from dense still counted as equal (metric units)",
    )
    parser.add_argument(
        "--sparsity",
        type=float,
        help="target sparsity of the per-layer speedup figure (default: highest present)",
    )
    return parser


def report(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    backend_names: Sequence[str] | None = None,
    tolerance: float = 1.0,
    sparsity: float | None = None,
) -> dict[str, Any]:
    """Run the whole report; returns {"df", "skipped", "files", "headlines", "ratios"}.

    Raises ReportError for bad input (missing path, no records, unknown backend).
    """
    df, skipped = load_records(paths)
    for message in skipped:
        print(message, file=sys.stderr)
    if not len(df):
        searched = ", ".join(str(p) for p in paths)
        raise ReportError(
            f"no run records found under {searched} (looked for *.json files with a "
            f'"schema" field; {len(skipped)} skipped); run gsprune first or pass the directory '
            "that holds its records"
        )
    present = backends(df)
    chosen = list(backend_names) if backend_names else present
    unknown = [b for b in chosen if b not in present]
    if unknown:
        raise ReportError(
            f"--backend {' '.join(unknown)} not in the records; backends present: "
            f"{', '.join(present) or 'none'}"
        )
    if sparsity is not None and not 0 <= sparsity < 1:
        raise ReportError(f"--sparsity {sparsity!r} is outside [0, 1)")
    _check_tolerance(tolerance)
    # computed before anything is written: they also check that each task has one metric
    headlines = {b: headline(df, b, tolerance) for b in chosen}
    ratios = {b: equal_accuracy_ratios(df, b) for b in chosen}
    if out is None:
        first = Path(paths[0])
        out = (first if first.is_dir() else first.parent) / "report"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layer_columns = [c for c in df.columns if c.startswith("layers_")]
    files = [out / "runs.csv", out / "layers.csv", out / "summary.md"]
    df.drop(columns=layer_columns).to_csv(files[0], index=False)
    layers = [layer_table(df, b).assign(backend=b) for b in chosen]
    layers_df = pd.concat(layers) if layers else pd.DataFrame(columns=["backend"])
    layers_df.to_csv(files[1], index=False)
    figures = draw_figures(df, out / "figures", chosen, tolerance, sparsity)
    files[2].write_text(
        summary_markdown(df, chosen, tolerance, headlines, ratios, skipped, figures, out),
        encoding="utf-8",
    )
    return {
        "df": df,
        "skipped": skipped,
        "files": files + figures,
        "headlines": headlines,
        "ratios": ratios,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns 0, or 2 with a one-line error on bad input."""
    args = _parser().parse_args(argv)
    try:
        result = report(args.paths, args.out, args.backend, args.tolerance, args.sparsity)
    except ReportError as err:
        print(f"gsprune-report: error: {err}", file=sys.stderr)
        return 2
    df = result["df"]
    print(f"{len(df)} runs, {len(result['skipped'])} skipped")
    for b, heads in result["headlines"].items():
        for task, rows in heads.groupby("task", sort=True):
            print(f"\n{task}, {b} backend (tolerance {_fmt(args.tolerance)}):")
            for _, row in rows.iterrows():
                print(f"  {headline_text(row, args.tolerance)}")
        ratios = result["ratios"][b]
        if len(ratios):
            print(f"\nlatency ratio at equal metric, {b} backend:\n{_text_table(ratios)}")
    print("\nwrote:\n" + "\n".join(f"  {p}" for p in result["files"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
