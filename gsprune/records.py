"""Run records: one JSON file per run, written atomically (DESIGN §8).

A record is a plain dict (schema version ``SCHEMA``)::

    {
      "schema": 1,
      "run_id": str,                 # = config_hash; the file is <records_dir>/<run_id>.json
      "config_hash": str,            # sha256 of the resolved config minus run-only keys
      "config": {...},               # the full resolved Hydra config
      "task": {"name": "image", "scale": "embedded", "model": str, "dataset": str},
      "pattern": {"name": "gs", "params": {"V": 8, "B": 8, ...}, "format": "gs"},
      "prune": {"method": "gmp", "score": "magnitude", ...},
      "amp": bool,                   # task.amp resolved: trained and scored under bfloat16
      "sparsity": {
        "target": 0.9,
        "achieved": 0.9,             # over all pruned layers, from the exported formats
        "feasible": true,            # false when a layer could not reach the target exactly
        "layers": {name: {"shape": [M, K], "achieved": float, "nnz": int,
                           "format": str, "nbytes": int, "dense_nbytes": int}},
      },
      "metric": {"name": "top1", "value": float, "higher_is_better": true,
                 "dense_value": float},
      "model": {"file": "models/<run_id>.pt", "bytes": int, "sha256": str} | null,
                                     # the pruned model (gsprune.models); null: keep_model=false
      "dense": {"cache": "cache/dense/<key>.pt",
                "init": {"source": str, "path": str, "sha256": str} | null},
      "latency": {                   # one entry per backend that was measured
        "cpu":   {"unit": "ms", "sparse": float, "dense": float, "speedup": float,
                  "settings": {"batch": int, "threads": int, "kernel": str, ...},
                  "layers": {name: {"sparse": float, "dense": float, "speedup": float,
                                    "sparse_spread": float, "dense_spread": float}}},
        "model": {"unit": "steps", "sparse": int, "dense": int, "speedup": float,
                  "settings": {"V": int, "B": int}, "layers": {...}},
      },
      "machine": {...}, "versions": {...}, "git_commit": str,
      "wall_time_s": float, "created": "2026-11-29T06:00:00+00:00",
    }

``sparse``/``dense`` are sums over the pruned layers; ``speedup = dense / sparse``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gsprune.atomic import atomic_write

SCHEMA = 1
# Config keys that change how a run is executed but not what it computes: left out
# of config_hash (and so of the run id), and of the report's recipe of a run.
# keep_model only decides whether the pruned model is also written: a sweep rerun
# with another value skips the finished cells instead of recomputing them.
RUN_ONLY_KEYS = ("force", "results_dir", "threads", "keep_model")


def record_path(records_dir: str | os.PathLike, run_id: str) -> Path:
    return Path(records_dir) / f"{run_id}.json"


def write_record(path: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write ``record`` as JSON to ``path`` atomically.

    The JSON goes to a temporary file in the same directory, is flushed and
    fsynced, then renamed over ``path``: a reader (or a crash) sees either the
    old file or the complete new one, never a partial file. On any error
    (a full disk, say) the temporary file is removed and the old record stays.
    """
    text = json.dumps(record, indent=2, sort_keys=True, allow_nan=True) + "\n"
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """Load one record; raises ValueError naming the file when it is not a record."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON run record ({err})") from err
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a gsprune run record of schema {SCHEMA}")
    return record
