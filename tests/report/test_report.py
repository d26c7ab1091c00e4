"""gsprune.report on synthetic run records: table, skipped files, Pareto front,
equal-accuracy ratios, headline, and the command (files written, errors)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gsprune import report
from gsprune.records import SCHEMA, write_record

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_record(
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
) -> dict[str, Any]:
    """A run record in the schema of gsprune.records; ``latency`` maps backend ->
    (sparse, dense) totals, split 1:3 over two layers fc1 and fc2."""
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
    return {
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


def frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    return report.runs_frame([report.record_row(r) for r in records])


SWEEP = [  # (pattern, params, [(sparsity, top1, cpu ms)])
    ("gs", {"V": 8, "B": None}, [(0.5, 91.5, 1.0), (0.7, 91.0, 0.7), (0.9, 89.0, 0.4)]),
    ("block", {"R": 1, "C": 8}, [(0.5, 91.0, 1.1), (0.7, 89.5, 0.8), (0.9, 86.0, 0.45)]),
    ("unstructured", {"scope": "layer"}, [(0.5, 91.8, 1.6), (0.7, 91.4, 1.3), (0.9, 90.0, 0.9)]),
]


def write_sweep(root: Path) -> None:
    """3 patterns x 3 sparsities + dense (dense cpu latency 2 ms, top1 92), in nested dirs."""
    for pattern, params, points in SWEEP:
        for sparsity, top1, ms in points:
            run_id = f"{pattern}-{sparsity}"
            record = make_record(
                run_id,
                pattern=pattern,
                params=params,
                target=sparsity,
                metric=top1,
                latency={"cpu": (ms, 2.0), "model": (100 * (1 - sparsity), 100)},
            )
            write_record(root / "sweep" / pattern / f"{run_id}.json", record)
    latency = {"cpu": (2.0, 2.0), "model": (100, 100)}
    dense = make_record("dense", pattern="dense", target=0.0, metric=92.0, latency=latency)
    write_record(root / "dense.json", dense)


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    write_sweep(root)
    (root / "broken.json").write_text('{"schema": 1, "run_id": "x", "metric": {', encoding="utf-8")
    missing = make_record("missing")
    del missing["metric"]["value"]
    write_record(root / "sub" / "missing.json", missing)
    (root / "bench.json").write_text('{"kernel": "gs", "ms": 1.0}', encoding="utf-8")
    return root


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


def test_load_records_skips_wrong_schema_bad_values_and_duplicate_run_ids(tmp_path: Path) -> None:
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


def test_curve_names_the_settings_that_vary_between_runs_of_a_task() -> None:
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


def points(
    curve_points: dict[str, list[tuple[float, float]]], higher_is_better: bool = True
) -> pd.DataFrame:
    """Records for {run_id prefix: [(latency, metric), ...]}, sparsity rising along the list;
    the prefix "dense" makes dense-pattern runs."""
    records = []
    for prefix, pts in curve_points.items():
        for i, (lat, value) in enumerate(pts):
            records.append(
                make_record(
                    f"{prefix}{i}",
                    pattern="dense" if prefix == "dense" else prefix,
                    target=0.0 if prefix == "dense" else 0.5 + 0.1 * i,
                    metric=value,
                    latency={"cpu": (lat, 8.0)},
                    higher_is_better=higher_is_better,
                )
            )
    return frame(records)


def test_pareto_front_exact_set() -> None:
    df = points(
        {
            "A": [(3.0, 89.0), (2.0, 90.0), (1.0, 80.0)],
            "B": [(2.5, 91.0), (1.5, 85.0)],
            "C": [(2.0, 88.0), (1.5, 85.0)],  # C1 ties B1 exactly: both stay
            "dense": [(4.0, 92.0)],
        }
    )
    front = report.pareto_front(df, "cpu")
    assert list(front["run_id"]) == ["A2", "B1", "C1", "A1", "B0", "dense0"]


def test_pareto_front_honours_lower_is_better() -> None:
    df = points({"A": [(3.0, 16.0), (2.0, 15.0), (1.0, 20.0)]}, higher_is_better=False)
    assert list(report.pareto_front(df, "cpu")["run_id"]) == ["A2", "A1"]


def ratio_of(table: pd.DataFrame, pattern: str, reference: str) -> dict[float, float]:
    rows = table[(table["pattern"] == pattern) & (table["reference"] == reference)]
    return dict(zip(rows["metric_level"], rows["ratio"], strict=True))


def test_equal_accuracy_ratio_linear_case() -> None:
    df = points(
        {
            "A": [(3.0, 94.0), (2.0, 92.0), (1.0, 90.0)],
            "B": [(6.0, 94.0), (4.0, 92.0), (2.0, 90.0)],
        }
    )
    table = report.equal_accuracy_ratios(df, "cpu")
    assert list(table.columns) == report.RATIO_COLUMNS
    assert ratio_of(table, "A", "B") == {90.0: 0.5, 92.0: 0.5, 94.0: 0.5}
    assert ratio_of(table, "B", "A") == {90.0: 2.0, 92.0: 2.0, 94.0: 2.0}
    # dense (8 ms, top1 92 from the records) reaches every level up to 92
    assert ratio_of(table, "A", "dense") == {90.0: 1 / 8, 92.0: 2 / 8}


def test_equal_accuracy_ratio_interpolates_on_the_upper_envelope() -> None:
    # A's 2.5 ms point is slower and worse than its 2 ms point: the envelope drops it.
    # Levels: every envelope point of A or B in [90, 94]. At 92, A interpolates between
    # (90, 1 ms) and (93, 2 ms): 5/3 ms, B measured 4 ms; at 93, B is 5 ms between 4 and 6.
    df = points(
        {
            "A": [(3.0, 94.0), (2.5, 91.0), (2.0, 93.0), (1.0, 90.0)],
            "B": [(6.0, 94.0), (4.0, 92.0), (2.0, 90.0), (1.5, 89.0)],
        }
    )
    table = report.equal_accuracy_ratios(df, "cpu", references=["B"])
    assert set(table["reference"]) == {"B"}
    expected = {90.0: 0.5, 92.0: 5 / 12, 93.0: 0.4, 94.0: 0.5}
    assert ratio_of(table, "A", "B") == pytest.approx(expected)


def test_headline_numbers() -> None:
    df = points(
        {
            "A": [(3.0, 94.0), (2.0, 92.0), (1.0, 90.0)],  # reaches 91 between 1 and 2 ms
            "C": [(5.0, 90.0), (4.0, 88.0)],  # never within 1 of dense
            "D": [(7.0, 95.0), (6.0, 93.0)],  # always within: its fastest point counts
            "dense": [(8.0, 92.0)],
        }
    )
    heads = report.headline(df, "cpu", tolerance=1.0).set_index("pattern")
    assert heads.loc["A", "level"] == 91.0 and heads.loc["A", "dense_latency"] == 8.0
    assert heads.loc["A", "latency"] == pytest.approx(1.5)
    assert heads.loc["A", "speedup"] == pytest.approx(8 / 1.5)
    assert bool(heads.loc["A", "interpolated"]) is True
    assert math.isnan(heads.loc["C", "speedup"]) and heads.loc["C", "best_metric"] == 90.0
    assert heads.loc["D", "speedup"] == pytest.approx(8 / 6) and not heads.loc["D", "interpolated"]
    texts = [report.headline_text(row, 1.0) for _, row in heads.reset_index().iterrows()]
    assert texts == [
        "A: 5.33x faster than dense at equal top1 (91 = dense 92 - 1)",
        "C: never within 1 of dense top1 (91 = dense 92 - 1; best 90)",
        "D: 1.33x faster than dense at equal top1 (91 = dense 92 - 1)",
    ]


def test_headline_lower_is_better() -> None:
    df = points({"A": [(3.0, 10.0), (2.0, 12.0), (1.0, 14.0)], "dense": [(8.0, 10.0)]}, False)
    row = report.headline(df, "cpu", tolerance=1.0).iloc[0]
    assert row["level"] == 11.0 and row["latency"] == pytest.approx(2.5)
    assert report.headline_text(row, 1.0) == (
        "A: 3.20x faster than dense at equal top1 (11 = dense 10 + 1)"
    )
    with pytest.raises(ValueError, match="tolerance -1"):
        report.headline(df, "cpu", tolerance=-1)


def test_plots_of_a_lower_is_better_task(tmp_path: Path) -> None:
    df = points({"A": [(3.0, 10.0), (2.0, 12.0), (1.0, 14.0)], "dense": [(8.0, 10.0)]}, False)
    paths = [
        report.plot_accuracy_latency(df, "cpu", tmp_path / "lat.png", tolerance=1.0),
        report.plot_accuracy_sparsity(df, tmp_path / "sp.png"),
        report.plot_layer_speedup(df, "cpu", tmp_path / "layers.png"),
    ]
    for path in paths:
        assert path is not None and path.read_bytes().startswith(PNG_MAGIC)
    assert report.plot_layer_speedup(df, "cpu", tmp_path / "none.png", sparsity=0.9) is None
    two_tasks = pd.concat([df, df.assign(task="speech")])
    with pytest.raises(ValueError, match="a figure shows one task; got 2"):
        report.plot_accuracy_sparsity(two_tasks, tmp_path / "x.png")


def test_main_writes_table_summary_and_figures(sweep_dir: Path, capsys) -> None:
    out = sweep_dir / "out"
    assert report.main([str(sweep_dir), "--out", str(out), "--tolerance", "1"]) == 0

    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 10 and "layers_cpu" not in runs.columns
    layers = pd.read_csv(out / "layers.csv")
    assert len(layers) == 2 * 10 * 2  # 2 layers x 10 runs x 2 backends
    assert set(layers["backend"]) == {"cpu", "model"}
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "## image: top1 (higher is better)" in summary
    assert "- gs V=8: 2.86x faster than dense at equal top1 (91 = dense 92 - 1)" in summary
    assert "Latency ratio at equal top1" in summary and "Pareto front" in summary
    assert "missing.json: missing field metric.value" in summary
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures == [
        "image_accuracy_sparsity.png",
        "image_cpu_accuracy_latency.png",
        "image_cpu_layer_speedup.png",
        "image_model_accuracy_latency.png",
        "image_model_layer_speedup.png",
    ]
    for name in figures:
        assert (out / "figures" / name).read_bytes().startswith(PNG_MAGIC)
        assert f"(figures/{name})" in summary
    captured = capsys.readouterr()
    assert "gs V=8: 2.86x faster than dense" in captured.out
    assert "missing.json: missing field metric.value" in captured.err


def test_main_default_out_backend_and_sparsity_choice(sweep_dir: Path, capsys) -> None:
    assert report.main([str(sweep_dir), "--backend", "model", "--sparsity", "0.6"]) == 0
    figures = sorted(p.name for p in (sweep_dir / "report" / "figures").glob("*.png"))
    assert figures == ["image_accuracy_sparsity.png", "image_model_accuracy_latency.png"]
    assert "image, model: no pruned run with per-layer latencies at target sparsity 0.6" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backend", "cuda"], "--backend cuda not in the records; backends present: cpu, model"),
        (["--tolerance", "-2"], "tolerance -2.0 is not accepted"),
        (["--sparsity", "1.5"], "--sparsity 1.5 is outside [0, 1)"),
    ],
)
def test_main_rejects_bad_options(sweep_dir: Path, capsys, extra: list[str], message: str) -> None:
    assert report.main([str(sweep_dir), *extra]) == 2
    assert message in capsys.readouterr().err


def test_main_on_empty_or_missing_directory_exits_2_with_a_message(tmp_path: Path, capsys) -> None:
    assert report.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gsprune-report: error: no run records found under")
    assert "Traceback" not in err
    assert report.main([str(tmp_path / "nope")]) == 2
    assert "is neither a directory nor a file" in capsys.readouterr().err


def test_main_without_latency_and_with_two_scales(tmp_path: Path) -> None:
    for scale in ("embedded", "paper"):
        for i, sparsity in enumerate((0.5, 0.9)):
            record = make_record(f"{scale}{i}", target=sparsity, latency={}, scale=scale)
            write_record(tmp_path / f"{scale}{i}.json", record)

    assert report.main([str(tmp_path)]) == 0

    runs = pd.read_csv(tmp_path / "report" / "runs.csv")
    assert len(runs) == 4 and not any(c.startswith("latency_") for c in runs.columns)
    figures = sorted(p.name for p in (tmp_path / "report" / "figures").glob("*.png"))
    assert figures == ["image-embedded_accuracy_sparsity.png", "image-paper_accuracy_sparsity.png"]
    summary = (tmp_path / "report" / "summary.md").read_text(encoding="utf-8")
    assert "## image-embedded: top1" in summary and "## image-paper: top1" in summary


def test_main_rejects_a_task_with_two_metrics(tmp_path: Path, capsys) -> None:
    write_record(tmp_path / "a.json", make_record("a"))
    write_record(tmp_path / "b.json", make_record("b", metric_name="top5"))
    assert report.main([str(tmp_path)]) == 2
    assert "task 'image' mixes metrics" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()
