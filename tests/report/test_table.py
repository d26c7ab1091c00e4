"""gsprune.report.table on synthetic run records: one row per run, broken records
skipped with a message, curve labels, and the optional record blocks (metric details,
dense details, baseline, outputs) flattened into columns."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
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


SIGNATURE = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"


def test_a_remeasured_latency_says_when_and_at_which_commit(make_record, frame) -> None:
    timed_again = make_record("r1")
    timed_again["latency"]["cpu"]["remeasured"] = {
        "created": "2026-12-03T17:00:00+00:00",
        "git_commit": "8a29307",
    }
    df = frame([timed_again, make_record("r2")]).set_index("run_id")
    assert df.loc["r1", "remeasured_cpu"] == "2026-12-03T17:00:00+00:00 8a29307"
    assert pd.isna(df.loc["r2", "remeasured_cpu"])
    assert "remeasured_cpu" not in frame([make_record("r3")]).columns


def test_optional_record_blocks_become_columns(make_record, frame, speech_record) -> None:
    translation = make_record(
        "t1",
        task="translation",
        metric_name="bleu",
        metric=24.0,
        details={"chrf": 48.1, "bleu_signature": SIGNATURE, "sizes": [3, 4]},
        baseline={"name": "copy-source", "value": 2.1, "chrf": 20.5},
        outputs={"hyp.en": "records/t1.hyp.en"},
    )
    old = make_record("i1")  # written before the optional blocks existed: still valid
    df = frame([speech_record("s1", 20.0), translation, old])

    flat = [
        "details.bleu_signature",
        "details.chrf",
        "details.sizes",
        "details.test_sets.real",
        "details.test_sets.synthetic",
        "details.wer.real",
        "details.wer.synthetic",
        "dense_details.wer.real",
        "dense_details.wer.synthetic",
        "baseline.chrf",
        "baseline.wer.real",
        "baseline.wer.synthetic",
    ]
    backend = ["latency_cpu", "latency_cpu_measured", "latency_cpu_dense", "speedup_cpu"]
    backend += ["unit_cpu", "setting_cpu"]
    outputs = ["outputs.hyp.en", "outputs.transcripts.tsv"]
    assert list(df.columns) == [
        *report.RUN_COLUMNS,
        *flat,
        *backend,
        "layers_cpu",
        *outputs,
        *report.TAIL_COLUMNS,
    ]
    rows = df.set_index("run_id")
    s1, t1, i1 = rows.loc["s1"], rows.loc["t1"], rows.loc["i1"]
    assert (s1["details.wer.synthetic"], s1["details.wer.real"]) == (18.0, 30.0)
    assert s1["dense_details.wer.real"] == 21.5 and s1["details.test_sets.real"] == 120
    assert (s1["baseline"], s1["baseline_value"], s1["baseline.wer.real"]) == (
        "most-frequent",
        98.0,
        99.0,
    )
    assert s1["outputs.transcripts.tsv"] == "records/s1.transcripts.tsv"
    assert t1["details.chrf"] == 48.1 and t1["details.bleu_signature"] == SIGNATURE
    assert t1["details.sizes"] == "[3, 4]"  # lists as JSON text
    assert (t1["baseline"], t1["baseline_value"], t1["baseline.chrf"]) == ("copy-source", 2.1, 20.5)
    assert t1["outputs.hyp.en"] == "records/t1.hyp.en"
    assert pd.isna(i1["baseline"]) and math.isnan(i1["baseline_value"])
    assert math.isnan(i1["details.chrf"]) and pd.isna(i1["outputs.hyp.en"])


def test_scored_sets_and_their_views(make_record, frame, speech_record) -> None:
    df = frame(
        [
            speech_record("s1", 20.0),
            speech_record("s2", 14.0, target=0.9),
            make_record(
                "d",
                pattern="dense",
                target=0.0,
                metric=11.5,
                task="speech",
                metric_name="wer",
                higher_is_better=False,
                details={"wer": {"synthetic": 9.5, "real": 21.5}},
            ),
        ]
    )
    assert report.scored_sets(df) == ["real", "synthetic"]
    view = report.scored_set_view(df, "real").set_index("run_id")
    assert set(view["metric"]) == {"wer on real"} and not view["higher_is_better"].any()
    assert view["metric_value"].to_dict() == {"d": 21.5, "s1": 30.0, "s2": 24.0}
    assert view.loc["s1", "dense_metric"] == 21.5 and view.loc["s1", "baseline_value"] == 99.0
    assert math.isnan(view.loc["d", "dense_metric"])  # the dense run recorded no dense details
    # a metric without per-set scores, or sets under another key, has none
    translation = make_record("t", metric_name="bleu", details={"chrf": 48.1, "wer": {"a": 1}})
    assert report.scored_sets(frame([translation])) == []
    # a set scored in no run of this task is not a set of it
    only_image = frame([make_record("i", details={"top1": {"a": None}})])
    assert report.scored_sets(only_image) == []


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("details", 3, "field metric.details is 3, expected a mapping"),
        ("baseline", "copy", "field metric.baseline is 'copy', expected a mapping"),
        ("outputs", ["hyp.en"], "field outputs is ['hyp.en'], expected a mapping"),
    ],
)
def test_malformed_optional_blocks_skip_the_record(
    tmp_path: Path, make_record, where: str, value: Any, message: str
) -> None:
    record = make_record("bad")
    (record if where == "outputs" else record["metric"])[where] = value
    write_record(tmp_path / "bad.json", record)
    write_record(tmp_path / "good.json", make_record("good", baseline=None, details=None))
    df, skipped = report.load_records([tmp_path])
    assert list(df["run_id"]) == ["good"]
    assert skipped == [f"skipped {tmp_path / 'bad.json'}: {message}"]


def test_record_paths_are_shown_relative_to_the_working_directory(tmp_path, monkeypatch):
    from gsprune.report.table import _shown_path

    monkeypatch.chdir(tmp_path)
    inside = tmp_path / "results" / "records" / "abc.json"
    assert _shown_path(inside) == "results/records/abc.json"
    elsewhere = tmp_path.parent / "other" / "abc.json"
    assert _shown_path(elsewhere) == str(elsewhere)
