"""gsprune.report.table on synthetic run records: one row per run, broken records
skipped with a message, curve labels, and the optional record blocks (metric details,
dense details, baseline, outputs) flattened into columns."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from gsprune import report
from gsprune.records import SCHEMA, write_record


def test_load_records_builds_one_row_per_run_and_names_skipped_files(sweep_dir: Path) -> None:
    df, skipped = report.load_records([sweep_dir])

    assert len(df) == 10
    assert sorted(df["label"].unique()) == ["block 1x8", "dense", "gs V=8", "unstructured"]
    assert report.backends(df) == ["cpu", "model"]
    for column in ["run_id", "task", "scale", "pattern", "target_sparsity", "achieved_sparsity"]:
        assert column in df.columns
    for column in ["metric", "metric_value", "higher_is_better", "dense_metric"]:
        assert column in df.columns
    for column in ["latency_cpu", "latency_cpu_dense", "speedup_cpu", "unit_cpu", "created"]:
        assert column in df.columns
    row = df.set_index("run_id").loc["gs-0.7"]
    assert (row["task"], row["scale"], row["pattern"]) == ("image", "embedded", "gs")
    assert (row["metric"], row["metric_value"], row["dense_metric"]) == ("top1", 91.0, 92.0)
    assert row["latency_cpu"] == 0.7 and row["latency_cpu_dense"] == 2.0
    assert row["speedup_cpu"] == pytest.approx(2.0 / 0.7)
    assert row["latency_model"] == pytest.approx(30.0) and row["unit_model"] == "steps"
    assert row["setting_cpu"] == "batch 1, 2 threads" and row["setting_model"] == "H(8,8)"
    assert row["git_commit"] == "abc123"

    assert len(skipped) == 2, skipped
    broken = next(s for s in skipped if "broken.json" in s)
    missing = next(s for s in skipped if "missing.json" in s)
    assert broken.startswith(f"skipped {sweep_dir / 'broken.json'}: not readable JSON")
    assert missing == f"skipped {sweep_dir / 'sub' / 'missing.json'}: missing field metric.value"


def test_load_records_skips_wrong_schema_bad_values_and_duplicate_run_ids(
    tmp_path: Path, make_record
) -> None:
    write_record(tmp_path / "a.json", make_record("same"))
    write_record(tmp_path / "b.json", make_record("same"))
    write_record(tmp_path / "c.json", make_record("old") | {"schema": 0})
    write_record(tmp_path / "d.json", make_record("nan", metric=math.nan))

    df, skipped = report.load_records([tmp_path, tmp_path / "a.json"])  # a.json read once

    assert list(df["run_id"]) == ["same"]
    assert skipped == [
        f"skipped {tmp_path / 'b.json'}: duplicate run_id same (already read from "
        f"{tmp_path / 'a.json'})",
        f"skipped {tmp_path / 'c.json'}: schema 0, this reporter reads {SCHEMA}",
        f"skipped {tmp_path / 'd.json'}: field metric.value is nan, expected a finite number",
    ]


@pytest.mark.parametrize(
    ("name", "params", "label"),
    [
        ("gs", {"V": 8, "B": None, "band_k": "uniform"}, "gs V=8"),
        ("gs", {"V": 8, "B": 8}, "gs V=8"),
        ("gs_scatter", {"V": 16, "B": 32, "band_k": "free"}, "gs_scatter V=16 B=32 band_k=free"),
        ("block", {"R": 1, "C": 8}, "block 1x8"),
        ("nm", {"N": 2, "M": 4}, "nm 2:4"),
        ("bank_balanced", {"B": 8}, "bank_balanced B=8"),
        ("unstructured", {"scope": "layer"}, "unstructured"),
        ("row_balanced", {}, "row_balanced"),
        ("dense", None, "dense"),
    ],
)
def test_pattern_label(name: str, params: dict[str, Any] | None, label: str) -> None:
    assert report.pattern_label(name, params) == label


def test_curve_names_the_settings_that_vary_between_runs_of_a_task(make_record, frame) -> None:
    gmp = make_record("a", params={"V": 8})
    same = frame([gmp, make_record("b", params={"V": 8}, target=0.9)])
    assert set(same["curve"]) == {"gs V=8"}
    mixed = frame([gmp, make_record("b", params={"V": 8}, prune="oneshot")])
    assert set(mixed["curve"]) == {"gs V=8 (prune.method=gmp)", "gs V=8 (prune.method=oneshot)"}
    short, long = make_record("c", params={"V": 8}), make_record("d", params={"V": 8})
    short["config"] = {"task": {"finetune": {"epochs": 1}}, "sparsity": 0.5, "force": False}
    long["config"] = {"task": {"finetune": {"epochs": 2}}, "sparsity": 0.9, "force": True}
    assert set(frame([short, long])["curve"]) == {
        "gs V=8 (task.finetune.epochs=1)",
        "gs V=8 (task.finetune.epochs=2)",
    }
