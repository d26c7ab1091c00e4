"""Run records -> the run table and the per-layer table.

``load_records`` gathers every run record below the given paths (a ``*.json``
file whose content has a ``"schema"`` field; other JSON files, e.g. benchmark
tables, are ignored) and names every broken record it skips; ``record_row``
flattens one record into one row of the run table (``runs.csv``) and
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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
    "baseline",
    "baseline_value",
]
# Optional record blocks flattened into columns ``<prefix>.<dotted key>`` (see ``record_row``),
# in this order after RUN_COLUMNS, except outputs, which come after the latency columns.
FLAT_PREFIXES = ("details", "dense_details", "baseline", "outputs")
TAIL_COLUMNS = ["created", "git_commit", "path"]


class ReportError(ValueError):
    """Bad input to the reporter (no records, unknown backend, ...): exit code 2, no traceback."""


class BrokenRecord(ValueError):
    """One record file that cannot be used; the message says why."""


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


def _text(value: Any) -> str:
    """Strings as they are, anything else as JSON text."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _cell(value: Any) -> Any:
    """Strings, numbers, booleans and null as they are (CSV cells); lists as JSON text."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return _text(value)


def _flatten(tree: Any, prefix: str = "", leaf: Callable[[Any], Any] = _text) -> dict[str, Any]:
    """Nested mappings -> {"a.b.c": leaf(value)}; an empty mapping adds nothing."""
    if not isinstance(tree, dict):
        return {prefix: leaf(tree)}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key), leaf))
    return flat


def _optional_block(record: dict[str, Any], path: FieldPath) -> dict[str, Any]:
    """The mapping at ``path`` (parents known to be mappings); {} when absent or null,
    BrokenRecord when it is something else."""
    keys = path.split(".") if isinstance(path, str) else path
    node: Any = record
    for key in keys:
        node = node.get(key)
        if node is None:
            return {}
    if not isinstance(node, dict):
        raise BrokenRecord(f"field {'.'.join(keys)} is {node!r:.80}, expected a mapping")
    return node


def recipe(record: dict[str, Any]) -> dict[str, str]:
    """Everything that shaped a run besides its pattern and sparsity, as dotted keys.

    The flattened ``config`` without ``RECIPE_EXCLUDED``, plus the record's
    ``prune`` block as ``prune.*`` (strings as they are, other values as JSON text).
    """
    config = {k: v for k, v in (record.get("config") or {}).items() if k not in RECIPE_EXCLUDED}
    return {**_flatten(config), **_flatten({"prune": record.get("prune") or {}})}


def _shown_path(file: Path) -> str:
    """``file`` relative to the working directory when it lies below it (tables that get
    committed then hold no absolute machine paths), else as given."""
    try:
        return Path(file).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(file)


def record_row(record: dict[str, Any]) -> dict[str, Any]:
    """Flatten one run record (schema of ``gsprune.records``) into one table row.

    Raises BrokenRecord("missing field metric.value", ...) when a required field
    is absent or not a finite number. Per latency backend ``b`` the row has
    ``latency_b`` (sum over pruned layers of the sparse kernel), ``latency_b_dense``,
    ``speedup_b`` (= dense / sparse), ``unit_b``, ``setting_b`` and ``layers_b``
    (dict layer -> {sparse, dense, speedup, achieved}; not written to runs.csv).

    Optional blocks (records without them stay valid): ``metric.details`` and
    ``metric.dense_details`` become ``details.<key>`` and ``dense_details.<key>``
    (nested keys dotted: ``details.wer.real``; numbers and strings kept as they are),
    ``metric.baseline`` ({"name", "value", ...}) becomes ``baseline`` (its name),
    ``baseline_value`` and ``baseline.<key>`` for its other keys, and ``outputs``
    ({file suffix: path relative to the results directory}) becomes ``outputs.<suffix>``.
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
        "baseline": None,
        "baseline_value": _optional_number(record, "metric.baseline.value"),
        "created": record.get("created"),
        "git_commit": record.get("git_commit"),
    }
    if not isinstance(row["higher_is_better"], bool):
        raise BrokenRecord(
            f"field metric.higher_is_better is {row['higher_is_better']!r}, expected true/false"
        )
    for block in ("details", "dense_details"):
        row.update(_flatten(_optional_block(record, ("metric", block)), block, _cell))
    baseline = dict(_optional_block(record, "metric.baseline"))
    if baseline.get("name") is not None:
        row["baseline"] = str(baseline["name"])
    for key in ("name", "value"):
        baseline.pop(key, None)
    row.update(_flatten(baseline, "baseline", _cell))
    outputs = _optional_block(record, "outputs")
    row.update({f"outputs.{suffix}": _cell(path) for suffix, path in outputs.items()})
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
    accuracy); the absolute times do not. So ``latency_<b>`` becomes the
    task's dense latency (the median of ``latency_<b>_dense`` over the task's
    runs, as the dense reference point of ``ratios``) divided by the run's
    speedup, and the measured time moves to ``latency_<b>_measured``. A
    deterministic backend (the H(V, B) step model) is left unchanged by it.
    """
    for backend in backends(df):
        column, dense = f"latency_{backend}", f"latency_{backend}_dense"
        df[f"{column}_measured"] = df[column]
        reference = df.groupby(["task", "scale"])[dense].transform("median")
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
