"""Pruned-model files: what a finished run keeps, and ``load_run`` to use it again.

After fine-tuning, a run writes ``<results_dir>/models/<run_id>.pt``
(atomically, ``gsprune.checkpoints.save_atomic``; skipped with
``keep_model=false``) holding, as tensors and plain values only (it loads
with ``torch.load(weights_only=True)``)::

    {
      "key": run_id, "run_id": run_id,
      "config": {...},                  # the run's full resolved config (task config inside)
      "state_dict": {...},              # the model's weights, pruned weights exactly 0
      "masks": {name: bool[param shape]},            # keep-masks of the pruned weights
      "formats": {name: {"format": "gs", "fields": {...}}},   # each pruned layer's GEMM
    }                                    # view in its compact format (dataclass fields)

The run record names the file relative to the results dir with its size and
sha256 (``record["model"]``). ``load_run`` rebuilds the task and its model
from the file (``gsprune.tasks.build`` + ``Task.build_model``), loads the
weights, and returns the compact formats ready for ``gsprune.kernels.matmul``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gsprune import tasks
from gsprune.checkpoints import load_checked, save_atomic
from gsprune.formats import FORMATS, SparseFormat
from gsprune.records import read_record
from gsprune.tasks.base import Task
from gsprune.weights import file_sha256


@dataclass
class LoadedRun:
    """A finished run ready to use: ``model`` (eval mode, CPU), its ``task``, the run's
    ``record`` (None when only the model file was given and no record is beside it),
    the ``formats`` of the pruned layers by parameter name, and their ``masks``."""

    model: nn.Module
    task: Task
    record: dict[str, Any] | None
    formats: dict[str, SparseFormat]
    masks: dict[str, torch.Tensor]
    path: Path


def format_state(fmt: SparseFormat) -> dict[str, Any]:
    """A format as ``{"format": name, "fields": {field: value}}`` (tensors and plain values)."""
    return {"format": fmt.name, "fields": {f.name: getattr(fmt, f.name) for f in fields(fmt)}}


def format_from_state(state: dict[str, Any]) -> SparseFormat:
    """Inverse of ``format_state``."""
    return FORMATS.get(state["format"]).cls(**state["fields"])


def save_model(
    path: str | os.PathLike,
    run_id: str,
    config: dict[str, Any],
    model: nn.Module,
    masks: dict[str, torch.Tensor],
    formats: dict[str, SparseFormat],
) -> dict[str, Any]:
    """Write the pruned-model file atomically; return ``{"file", "bytes", "sha256"}``
    (``file`` as given; the runner makes it relative to the results dir)."""
    path = Path(path)
    save_atomic(
        {
            "key": run_id,
            "run_id": run_id,
            "config": config,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "masks": {name: mask.cpu() for name, mask in masks.items()},
            "formats": {name: format_state(fmt) for name, fmt in formats.items()},
        },
        path,
    )
    return {"file": str(path), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def load_run(record_or_path: dict[str, Any] | str | os.PathLike) -> LoadedRun:
    """Rebuild a finished run's pruned model.

    ``record_or_path``: a run record (dict), the path of a record
    (``results/records/<run_id>.json``) or of a model file
    (``results/models/<run_id>.pt``). Through a record the model file is
    found as ``record["model"]["file"]`` under the record's results dir (the
    directory above ``records/`` for a path, ``config.results_dir`` for a
    dict) and its sha256 is checked. Raises FileNotFoundError when the run
    kept no model (``keep_model=false``) or the file is gone, ValueError when
    it does not match the record.
    """
    record, path = _locate(record_or_path)
    run_id = record["run_id"] if record else path.stem
    state = load_checked(path, run_id)
    if record and file_sha256(path) != record["model"]["sha256"]:
        raise ValueError(
            f"{path}: its sha256 differs from the one in run {run_id}'s record (the file was "
            "changed or replaced); accepted: the model file written by that run"
        )
    task = tasks.build(state["config"]["task"])
    model = task.build_model()
    model.load_state_dict(state["state_dict"])
    model.eval()
    formats = {name: format_from_state(fmt) for name, fmt in state["formats"].items()}
    return LoadedRun(model, task, record, formats, dict(state["masks"]), path)


def _locate(record_or_path: dict[str, Any] | str | os.PathLike) -> tuple[dict | None, Path]:
    """``(record or None, model file)`` for what ``load_run`` accepts."""
    if isinstance(record_or_path, dict):
        record, results_dir = record_or_path, Path(record_or_path["config"]["results_dir"])
    else:
        given = Path(record_or_path)
        if given.suffix == ".pt":
            beside = given.parent.parent / "records" / f"{given.stem}.json"
            return (read_record(beside) if beside.exists() else None), given
        record, results_dir = read_record(given), given.parent.parent
    entry = record.get("model")
    if not entry:
        raise FileNotFoundError(
            f"run {record['run_id']} kept no model file (it ran with keep_model=false); "
            "rerun it with force=true keep_model=true to keep one"
        )
    path = results_dir / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"run {record['run_id']}: its model file {path} is missing")
    return record, path
