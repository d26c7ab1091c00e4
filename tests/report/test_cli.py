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
        (["--tolerance", "top1=-1"], "tolerance top1=-1.0 is not accepted"),
        (
            ["--tolerance", "bleu=1"],
            "--tolerance for bleu: no task reports that metric; metrics present: top1",
        ),
        (["--tolerance", "1", "--tolerance", "top1=2"], "--tolerance got both a number"),
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


def test_main_on_a_lower_is_better_task_with_two_test_sets(speech_dir: Path, capsys) -> None:
    assert report.main([str(speech_dir)]) == 0
    out = speech_dir / "report"

    runs = pd.read_csv(out / "runs.csv").set_index("run_id")
    for column in ["details.wer.real", "details.wer.synthetic", "dense_details.wer.real"]:
        assert column in runs.columns
    assert (
        runs.loc["A1", "details.wer.real"] == 23.0 and runs.loc["A1", "details.wer.synthetic"] == 11
    )
    assert (runs.loc["A1", "baseline"], runs.loc["A1", "baseline_value"]) == ("most-frequent", 98)
    assert runs.loc["A1", "baseline.wer.real"] == 99.0
    assert runs.loc["A1", "outputs.transcripts.tsv"] == "records/A1.transcripts.tsv"
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures == [
        "speech_accuracy_sparsity.png",
        "speech_accuracy_sparsity_real.png",
        "speech_accuracy_sparsity_synthetic.png",
        "speech_cpu_accuracy_latency.png",
        "speech_cpu_accuracy_latency_real.png",
        "speech_cpu_accuracy_latency_synthetic.png",
        "speech_cpu_layer_speedup.png",
    ]
    summary = (out / "summary.md").read_text(encoding="utf-8")
    facts = [
        "## speech: wer (lower is better)",
        "- metric: wer, lower is better; headline tolerance 1 (wer within dense + 1 counts as "
        "equal to dense)",
        "- dense: 11.5 (wer.real 21.5; wer.synthetic 9.5)",
        "- baseline: most-frequent 98 (wer.real 99; wer.synthetic 97)",
        "- in every run: test_sets.real 120; test_sets.synthetic 200",
        "| pattern | target_sparsity | achieved_sparsity | wer | wer.real | wer.synthetic | "
        "latency_cpu | speedup_cpu | run_id |",
        "- A: 2.29x faster than dense at equal wer (12.5 = dense 11.5 + 1)",
        "- B: 1.45x faster than dense at equal wer (12.5 = dense 11.5 + 1)",
        "Latency ratio at equal wer:",
    ]
    for line in facts:
        assert line in summary.splitlines(), line
    for name in figures:
        assert f"(figures/{name})" in summary
    assert "speech, cpu backend (tolerance 1):\n  A: 2.29x faster" in capsys.readouterr().out


def test_main_tolerance_per_metric(sweep_dir: Path, speech_dir: Path) -> None:
    # both fixtures write under the same tmp/results: an image task and a speech task
    assert sweep_dir == speech_dir
    assert report.main([str(speech_dir), "--tolerance", "wer=3", "--backend", "cpu"]) == 0
    summary = (speech_dir / "report" / "summary.md").read_text(encoding="utf-8").splitlines()
    assert "- metric: top1, higher is better; headline tolerance 1 (top1 within dense - 1 " in (
        " ".join(summary)
    )
    assert "- baseline: not recorded" in summary
    # WER 14.5 on A: between (1 ms, 18) and (2 ms, 14), 1.875 ms
    assert "- A: 4.27x faster than dense at equal wer (14.5 = dense 11.5 + 3)" in summary
    assert "- gs V=8: 2.86x faster than dense at equal top1 (91 = dense 92 - 1)" in summary


def test_main_rejects_a_malformed_tolerance(sweep_dir: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(sweep_dir), "--tolerance", "wer=x"])
    assert exit_info.value.code == 2
    assert "'wer=x' is not a tolerance; give a number" in capsys.readouterr().err
