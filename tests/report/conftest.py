"""Shared helpers for tests/report, handed to the tests as fixtures (the project's habit;
they work under pytest's importlib import mode): synthetic run records in the schema of
gsprune.records, the run table of such records, and a small sweep on disk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gsprune import report
from gsprune.records import SCHEMA, write_record

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _make_record(
    run_id: str,
    *,
    pattern: str = "gs",
    params: dict[str, Any] | None = None,
    target: float = 0.5,
    achieved: float | None = None,
    metric: float = 90.0,
    latency: dict[str, tuple[float, float]] | None = None,
    task: str = "image",
    scale: str = "embedded",
    metric_name: str = "top1",
    higher_is_better: bool = True,
    dense_value: float = 92.0,
    prune: str = "gmp",
    details: dict[str, Any] | None = None,
    dense_details: dict[str, Any] | None = None,
    baseline: dict[str, Any] | None = None,
    outputs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A run record in the schema of gsprune.records; ``latency`` maps backend ->
    (sparse, dense) totals, split 1:3 over two layers fc1 and fc2. The optional blocks
    (``details``, ``dense_details``, ``baseline`` under "metric", ``outputs``) are left
    out when None, as in records written before they existed."""
    latency = {"cpu": (1.0, 2.0)} if latency is None else latency
    achieved = target if achieved is None else achieved
    measured = {}
    for backend, (sparse, dense) in latency.items():
        measured[backend] = {
            "unit": "steps" if backend == "model" else "ms",
            "sparse": sparse,
            "dense": dense,
            "speedup": dense / sparse,
            "settings": {"V": 8, "B": 8} if backend == "model" else {"batch": 1, "threads": 2},
            "layers": {
                name: {
                    "sparse": sparse * share,
                    "dense": dense * dense_share,
                    "speedup": dense * dense_share / (sparse * share),
                    "sparse_spread": 0.0,
                    "dense_spread": 0.0,
                }
                for name, share, dense_share in (("fc1", 0.25, 0.5), ("fc2", 0.75, 0.5))
            },
        }
    record = {
        "schema": SCHEMA,
        "run_id": run_id,
        "config_hash": run_id,
        "config": {},
        "task": {"name": task, "scale": scale, "model": "m", "dataset": "d"},
        "pattern": {"name": pattern, "params": params or {}, "format": pattern},
        "prune": {"method": prune, "score": "magnitude"},
        "sparsity": {
            "target": target,
            "achieved": achieved,
            "feasible": True,
            "layers": {"fc1": {"achieved": achieved}, "fc2": {"achieved": achieved}},
        },
        "metric": {
            "name": metric_name,
            "value": metric,
            "higher_is_better": higher_is_better,
            "dense_value": dense_value,
        },
        "latency": measured,
        "machine": {},
        "versions": {},
        "git_commit": "abc123",
        "wall_time_s": 1.0,
        "created": "2026-11-29T06:00:00+00:00",
    }
    blocks = {"details": details, "dense_details": dense_details, "baseline": baseline}
    record["metric"].update({k: v for k, v in blocks.items() if v is not None})
    if outputs is not None:
        record["outputs"] = outputs
    return record


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    return report.runs_frame([report.record_row(r) for r in records])


def _points(
    curve_points: dict[str, list[tuple[float, float]]],
    higher_is_better: bool = True,
    **common: Any,
) -> pd.DataFrame:
    """The run table of records for {run_id prefix: [(cpu latency, metric), ...]}, sparsity
    rising along the list, dense latency 8; the prefix "dense" makes dense-pattern runs.
    ``common`` goes to every record (metric_name, dense_value, baseline, ...)."""
    records = []
    for prefix, pts in curve_points.items():
        for i, (lat, value) in enumerate(pts):
            records.append(
                _make_record(
                    f"{prefix}{i}",
                    pattern="dense" if prefix == "dense" else prefix,
                    target=0.0 if prefix == "dense" else 0.5 + 0.1 * i,
                    metric=value,
                    latency={"cpu": (lat, 8.0)},
                    higher_is_better=higher_is_better,
                    **common,
                )
            )
    return _frame(records)


@pytest.fixture(scope="session")
def make_record() -> Callable[..., dict[str, Any]]:
    """``make_record(run_id, **fields)``: one synthetic run record (see ``_make_record``)."""
    return _make_record


@pytest.fixture(scope="session")
def frame() -> Callable[[list[dict[str, Any]]], pd.DataFrame]:
    """``frame(records)``: the run table of records, as the reporter builds it."""
    return _frame


@pytest.fixture(scope="session")
def points() -> Callable[..., pd.DataFrame]:
    """``points({prefix: [(latency, metric), ...]}, higher_is_better, **fields)``: see
    ``_points``."""
    return _points


@pytest.fixture(scope="session")
def png_magic() -> bytes:
    return PNG_MAGIC


SWEEP = [  # (pattern, params, [(sparsity, top1, cpu ms)])
    ("gs", {"V": 8, "B": None}, [(0.5, 91.5, 1.0), (0.7, 91.0, 0.7), (0.9, 89.0, 0.4)]),
    ("block", {"R": 1, "C": 8}, [(0.5, 91.0, 1.1), (0.7, 89.5, 0.8), (0.9, 86.0, 0.45)]),
    ("unstructured", {"scope": "layer"}, [(0.5, 91.8, 1.6), (0.7, 91.4, 1.3), (0.9, 90.0, 0.9)]),
]


def write_sweep(root: Path) -> None:
    """3 patterns x 3 sparsities + dense (dense cpu latency 2 ms, top1 92), in nested dirs."""
    for pattern, params, pts in SWEEP:
        for sparsity, top1, ms in pts:
            run_id = f"{pattern}-{sparsity}"
            record = _make_record(
                run_id,
                pattern=pattern,
                params=params,
                target=sparsity,
                metric=top1,
                latency={"cpu": (ms, 2.0), "model": (100 * (1 - sparsity), 100)},
            )
            write_record(root / "sweep" / pattern / f"{run_id}.json", record)
    latency = {"cpu": (2.0, 2.0), "model": (100, 100)}
    dense = _make_record("dense", pattern="dense", target=0.0, metric=92.0, latency=latency)
    write_record(root / "dense.json", dense)


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """The image sweep of ``write_sweep`` under tmp/results, plus a record file that is not
    JSON, one without metric.value and a JSON file that is not a record."""
    root = tmp_path / "results"
    write_sweep(root)
    (root / "broken.json").write_text('{"schema": 1, "run_id": "x", "metric": {', encoding="utf-8")
    missing = _make_record("missing")
    del missing["metric"]["value"]
    write_record(root / "sub" / "missing.json", missing)
    (root / "bench.json").write_text('{"kernel": "gs", "ms": 1.0}', encoding="utf-8")
    return root


# A sweep worked out by hand on a lower-is-better metric: curve -> [(cpu ms, WER %)],
# sparsity rising along each list; dense: 8 ms, WER 11.5. A's 2.5 ms point is slower and
# worse than its 2 ms point, so A's envelope is (1, 18) (2, 14) (3, 13) (4, 12); B's
# envelope is all of B; the task's Pareto front is A4 A3 A1 A0 dense0.
WER_SWEEP = {
    "A": [(4.0, 12.0), (3.0, 13.0), (2.5, 14.5), (2.0, 14.0), (1.0, 18.0)],
    "B": [(6.0, 12.0), (4.0, 14.0), (2.0, 18.0)],
    "dense": [(8.0, 11.5)],
}


@dataclass(frozen=True)
class Kind:
    """A metric direction to run the hand-worked sweep in: WER itself (lower is better), or
    BLEU = 38 - WER (higher is better, the same sweep mirrored; every answer mirrors too)."""

    name: str
    higher_is_better: bool
    task: str

    def of(self, wer: float) -> float:
        """The metric value of a point whose WER is ``wer``."""
        return 38.0 - wer if self.higher_is_better else wer


@pytest.fixture(params=[Kind("wer", False, "speech"), Kind("bleu", True, "translation")])
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param


@pytest.fixture
def hand_sweep(kind: Kind) -> Callable[..., pd.DataFrame]:
    """``hand_sweep(extra={curve: [(ms, wer), ...]}, **fields)``: the run table of WER_SWEEP
    (plus ``extra`` curves) in ``kind``'s metric, ``fields`` going to every record."""

    def make(extra: dict[str, list[tuple[float, float]]] | None = None, **fields: Any):
        curves = {**WER_SWEEP, **(extra or {})}
        mapped = {c: [(ms, kind.of(wer)) for ms, wer in pts] for c, pts in curves.items()}
        common = {"metric_name": kind.name, "task": kind.task, "dense_value": kind.of(11.5)}
        return _points(mapped, kind.higher_is_better, **(common | fields))

    return make


def _speech_record(run_id: str, wer: float, **fields: Any) -> dict[str, Any]:
    """A speech run scored on two test sets (synthetic = WER - 2, real = WER + 10), with
    the dense scores, the most-frequent-transcript baseline and its transcripts file."""
    return _make_record(
        run_id,
        task="speech",
        metric_name="wer",
        higher_is_better=False,
        metric=wer,
        dense_value=11.5,
        details={
            "wer": {"synthetic": wer - 2, "real": wer + 10},
            "test_sets": {"synthetic": 200, "real": 120},
        },
        dense_details={"wer": {"synthetic": 9.5, "real": 21.5}},
        baseline={"name": "most-frequent", "value": 98.0, "wer": {"synthetic": 97.0, "real": 99.0}},
        outputs={"transcripts.tsv": f"records/{run_id}.transcripts.tsv"},
        **fields,
    )


@pytest.fixture(scope="session")
def speech_record() -> Callable[..., dict[str, Any]]:
    """``speech_record(run_id, wer, **fields)``: see ``_speech_record``."""
    return _speech_record


@pytest.fixture
def speech_dir(tmp_path: Path) -> Path:
    """WER_SWEEP as speech records (two test sets, dense details, baseline, outputs) under
    tmp/results/speech."""
    root = tmp_path / "results"
    for curve, pts in WER_SWEEP.items():
        for i, (ms, wer) in enumerate(pts):
            pattern, target = ("dense", 0.0) if curve == "dense" else (curve, 0.5 + 0.1 * i)
            run = f"{curve}{i}"
            record = _speech_record(
                run, wer, pattern=pattern, target=target, latency={"cpu": (ms, 8.0)}
            )
            write_record(root / "speech" / f"{run}.json", record)
    return root
