"""One run record -> one row of the run table (``record_row``).

A record (schema of ``gsprune.records``) is flattened: its pattern gets a
label (``pattern_label``: ``gs V=8``, ``block 1x8``), its config without
pattern, sparsity and run-only keys becomes its *recipe* (``recipe``; runs of
one task whose recipes differ are drawn as separate curves), its optional
blocks become dotted columns, and its latency per backend becomes the
``latency_<b>``, ``speedup_<b>``, ... columns. A missing or non-finite required
field raises ``BrokenRecord`` naming it; ``table.load_records`` skips that
record with the message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from gsprune.records import RUN_ONLY_KEYS


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


def record_row(record: dict[str, Any]) -> dict[str, Any]:
    """Flatten one run record (schema of ``gsprune.records``) into one table row.

    Raises BrokenRecord("missing field metric.value", ...) when a required field
    is absent or not a finite number. Per latency backend ``b`` the row has
    ``latency_b`` (sum over pruned layers of the sparse kernel), ``latency_b_dense``,
    ``speedup_b`` (= dense / sparse), ``unit_b``, ``setting_b`` and ``layers_b``
    (dict layer -> {sparse, dense, speedup, achieved}; not written to runs.csv), and
    ``remeasured_b`` ("<time> <commit>") where ``gsprune-remeasure`` re-timed it.

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
        remeasured = latency[backend].get("remeasured")
        if isinstance(remeasured, dict):  # re-timed by gsprune-remeasure: when and at which commit
            row[f"remeasured_{backend}"] = (
                f"{remeasured.get('created')} {remeasured.get('git_commit')}"
            )
    return row
