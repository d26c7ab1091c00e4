"""gsprune-report end to end (gsprune.report.main): files written, summary, options and
bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gsprune import report
from gsprune.records import write_record


def test_main_writes_table_summary_and_figures(sweep_dir: Path, capsys, png_magic) -> None:
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
        assert (out / "figures" / name).read_bytes().startswith(png_magic)
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


def test_main_without_latency_and_with_two_scales(tmp_path: Path, make_record) -> None:
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


def test_main_rejects_a_task_with_two_metrics(tmp_path: Path, capsys, make_record) -> None:
    write_record(tmp_path / "a.json", make_record("a"))
    write_record(tmp_path / "b.json", make_record("b", metric_name="top5"))
    assert report.main([str(tmp_path)]) == 2
    assert "task 'image' mixes metrics" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()
