"""Run records -> the run table and the per-layer table.

``load_records`` gathers every run record below the given paths (a ``*.json``
file whose content has a ``"schema"`` field; other JSON files, e.g. benchmark
tables, are ignored) and names every broken record it skips; ``rows.record_row``
flattens one record into one row of the run table (``runs.csv``), ``runs_frame``
assembles the rows (curves, drift-corrected latency: ``correct_drift``) and
``layer_table`` unrolls the per-layer latencies (``layers.csv``).

A *task* here is the pair (task name, scale): runs of the embedded and the
paper-scale model are never mixed in a curve; a task is shown as
``<task>-<scale>`` only when both scales are present (``_groups``).

A *curve* is one pattern with its parameters (``label``, e.g. ``gs V=8``); when
the runs of a task differ in any other setting (their *recipe*: the
resolved config without pattern, sparsity and run-only keys, plus the pruning
method and score), the curve label also names the differing settings
(``gs V=8 (prune.method=oneshot)``) so that runs made differently never share
a curve. Runs of the ``dense`` pattern are not a curve: they, and the
dense baseline every run measures, form the dense reference point.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gsprune.records import SCHEMA
from gsprune.report.rows import BrokenRecord, record_row

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
    "baseline",
    "baseline_value",
]
# Optional record blocks flattened into columns ``<prefix>.<dotted key>`` (see ``record_row``),
# in this order after RUN_COLUMNS, except outputs, which come after the latency columns.
FLAT_PREFIXES = ("details", "dense_details", "baseline", "outputs")
TAIL_COLUMNS = ["created", "git_commit", "path"]


class ReportError(ValueError):
    """Bad input to the reporter (no records, unknown backend, ...): exit code 2, no traceback."""


def _shown_path(file: Path) -> str:
    """``file`` relative to the working directory when it lies below it (tables that get
    committed then hold no absolute machine paths), else as given."""
    try:
        return Path(file).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(file)


def _backend_columns(backend: str) -> list[str]:
    return [
        f"latency_{backend}",
        f"latency_{backend}_measured",
        f"latency_{backend}_dense",
        f"speedup_{backend}",
        f"unit_{backend}",
        f"setting_{backend}",
        f"layers_{backend}",
    ]


def backends(df: pd.DataFrame) -> list[str]:
    """Latency backends present in the table, sorted (from its ``unit_<b>`` columns)."""
    return sorted(c[len("unit_") :] for c in df.columns if c.startswith("unit_"))


def _prefixed(df: pd.DataFrame, prefix: str) -> list[str]:
    """The flattened columns of one optional block (``details.*``, ...), sorted."""
    return sorted(c for c in df.columns if c.startswith(f"{prefix}."))


def runs_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows from ``record_row`` -> the run table, sorted by task, scale, curve, target sparsity.

    Adds ``curve``: the label, plus the recipe settings (see ``recipe``) that
    differ between the runs of the same task, when any do; and makes every
    ``latency_<b>`` drift-corrected (``correct_drift``), the time each run
    measured kept as ``latency_<b>_measured``.
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
    correct_drift(df)
    per_backend = [column for b in backends(df) for column in _backend_columns(b)]
    per_backend += [f"remeasured_{b}" for b in backends(df) if f"remeasured_{b}" in df.columns]
    flat = [c for p in FLAT_PREFIXES[:-1] for c in _prefixed(df, p)]
    df = df[RUN_COLUMNS + flat + per_backend + _prefixed(df, "outputs") + TAIL_COLUMNS]
    return df.sort_values(["task", "scale", "curve", "target_sparsity", "run_id"]).reset_index(
        drop=True
    )


def correct_drift(df: pd.DataFrame) -> None:
    """Put every run's sparse latency on one dense time per task, in place.

    Each run times its sparse layers and the dense ones in interleaved rounds
    (``gsprune.latency.timing``), so its ``speedup_<b>`` holds even when the
    host's speed drifts between runs (on the shared 2-core hosts it moved 10%
    between the cells of one sweep, enough to reorder close patterns at equal
    accuracy); the absolute times do not. So ``latency_<b>`` becomes the dense
    latency of the task's runs with the same latency setting (the median of
    their ``latency_<b>_dense``; one setting: the dense reference point of
    ``ratios``) divided by the run's speedup, and the measured time moves to
    ``latency_<b>_measured``. Runs timed with other settings (threads, batch)
    keep their own dense time, so the difference between settings stays. A
    deterministic backend (the H(V, B) step model) is left unchanged by it.
    """
    for backend in backends(df):
        column, dense = f"latency_{backend}", f"latency_{backend}_dense"
        df[f"{column}_measured"] = df[column]
        same = ["task", "scale", f"setting_{backend}"]
        reference = df.groupby(same)[dense].transform("median")
        valid = df[dense] > 0
        df[column] = (df[column] * reference / df[dense]).where(valid, df[column])


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
        row["path"] = _shown_path(file)
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


def _dense_metric(sub: pd.DataFrame) -> float:
    """A task's dense metric: the median of its dense-pattern runs, else the median of the
    dense value every run records; NaN when neither is known."""
    dense_runs = sub.loc[sub["pattern"] == "dense", "metric_value"]
    return float(dense_runs.median() if len(dense_runs) else sub["dense_metric"].median())


def _baseline(sub: pd.DataFrame) -> tuple[str, float] | None:
    """(name, value) of a task's trivial baseline: the median of the runs' baseline values,
    named by their baseline names; None when no run records one."""
    known = sub[sub["baseline_value"].notna()]
    if not len(known):
        return None
    names = " / ".join(dict.fromkeys(known["baseline"].dropna().astype(str))) or "baseline"
    return names, float(known["baseline_value"].median())


def scored_sets(sub: pd.DataFrame) -> list[str]:
    """Names of a task's separately scored test sets: the keys ``s`` of the columns
    ``details.<metric>.<s>`` (e.g. ``details.wer.real``) with a number in some run, sorted."""
    block = f"details.{sub['metric'].iloc[0]}"
    return [
        column[len(block) + 1 :]
        for column in _prefixed(sub, block)
        if "." not in column[len(block) + 1 :]
        and pd.to_numeric(sub[column], errors="coerce").notna().any()
    ]


def scored_set_view(sub: pd.DataFrame, name: str) -> pd.DataFrame:
    """A task's runs scored on test set ``name`` alone, shaped like the run table:
    ``metric_value``, ``dense_metric`` and ``baseline_value`` come from
    ``details.<metric>.<name>``, ``dense_details.<metric>.<name>`` and
    ``baseline.<metric>.<name>`` (NaN when absent); ``metric`` becomes
    ``"<metric> on <name>"``. Runs without a score on that set are left out."""
    metric = sub["metric"].iloc[0]
    view = sub.copy()
    for column, block in (
        ("metric_value", "details"),
        ("dense_metric", "dense_details"),
        ("baseline_value", "baseline"),
    ):
        source = f"{block}.{metric}.{name}"
        values = sub[source] if source in sub.columns else math.nan
        view[column] = pd.to_numeric(values, errors="coerce")
    view["metric"] = f"{metric} on {name}"
    return view[view["metric_value"].notna()]


def _pattern_curves(sub: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """(curve label, its runs) for every non-dense curve, in label order."""
    yield from sub[sub["pattern"] != "dense"].groupby("curve", sort=True)


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
