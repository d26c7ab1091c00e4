"""End-to-end tests of the `gsprune` CLI: real Hydra, real data, real kernels."""

from __future__ import annotations

import pytest
import torch

BAD_INPUT = [
    (["sparsity=1.2"], "sparsity=1.2"),
    (["pattern=nope"], "nope"),
    (["pattern=gs", "pattern.V=6"], "V=6"),
    (["task=imagenet", "task.data_dir=/nonexistent/imagenet"], "prepare_imagenet"),
    (["task=imagenet"], "data_dir"),
    (["prune.score=nope"], "nope"),
    (["latency.backends=[nope]"], "nope"),
    (["task.dense.epochs=0"], "task.dense.epochs=0"),
    (["task=translation", "task.dense.epochs=0"], "task.dense.epochs=0"),
    (["task=speech", "task.dense.epochs=0"], "task.dense.epochs=0"),
    *([(["latency=cuda"], "needs a CUDA device")] if not torch.cuda.is_available() else []),
]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "expected"), BAD_INPUT)
def test_bad_input_is_a_clear_error_before_any_work(run_cli, results, overrides, expected):
    done = run_cli(*overrides, timeout=120)
    assert done.returncode != 0
    assert expected in done.stdout
    assert "Traceback" not in done.stdout
    assert not (results / "cache").exists(), "no training may start on bad input"


@pytest.mark.slow
def test_single_run_writes_a_complete_record_and_skips_a_rerun(
    run_cli, results, read_records, tiny
):
    first = run_cli(*tiny, "pattern=gs", "sparsity=0.9")
    assert first.returncode == 0, first.stdout[-3000:]
    assert "gsprune run" in first.stdout and "speedup" in first.stdout
    (record,) = read_records()
    assert record["pattern"]["name"] == "gs"
    assert record["sparsity"]["target"] == 0.9
    assert abs(record["sparsity"]["achieved"] - 0.9) < 0.01
    for layer in record["sparsity"]["layers"].values():
        # GS keeps k per row: the target is met to within one weight per row.
        assert abs(layer["achieved"] - 0.9) <= 1 / layer["shape"][1] and layer["format"] == "gs"
    assert set(record["latency"]) == {"cpu", "model"}
    assert record["latency"]["cpu"]["settings"]["kernel"]
    assert record["latency"]["model"]["speedup"] > 5  # GS V=8 at 0.9: ~nnz/V steps
    assert 20.0 < record["metric"]["value"] <= 100.0  # chance is 10
    assert record["machine"]["cpu_model"] and record["versions"]["torch"]
    assert record["metric"]["baseline"]["name"] == "majority-class"
    assert record["metric"]["dense_value"] > record["metric"]["baseline"]["value"]
    predictions = results / record["outputs"]["predictions.tsv"]
    assert predictions.parent == results / "records"
    assert len(predictions.read_text().splitlines()) == 10_001  # header + every test image

    again = run_cli(*tiny, "pattern=gs", "sparsity=0.9")
    assert again.returncode == 0
    assert "skipping" in again.stdout
    assert read_records() == [record]


@pytest.mark.slow
def test_corrupt_dense_cache_is_reported_and_retrained(run_cli, results, read_records, tiny):
    assert run_cli(*tiny, "pattern=unstructured", "sparsity=0.5").returncode == 0
    (cached,) = (results / "cache" / "dense").glob("*.pt")
    cached.write_bytes(b"definitely not a checkpoint")
    done = run_cli(*tiny, "pattern=unstructured", "sparsity=0.7")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "unreadable" in done.stdout and "retraining the dense model" in done.stdout
    assert "Traceback" not in done.stdout
    assert len(read_records()) == 2


SWEEP = ["pattern=unstructured,gs", "sparsity=0.5,0.9"]


@pytest.mark.slow
def test_sweep_killed_midway_resumes_to_exactly_four_records(
    start_cli, run_cli, results, read_records, tiny, tmp_path, kill_process_when
):
    proc = start_cli("-m", *tiny, *SWEEP, log=tmp_path / "first.log")
    kill_process_when(proc, lambda: len(read_records()) >= 1, 600, poll=0.2)
    assert 1 <= len(read_records()) < 4, (tmp_path / "first.log").read_text()[-3000:]
    finished_before = {r["run_id"] for r in read_records()}

    done = run_cli("-m", *tiny, *SWEEP)
    assert done.returncode == 0, done.stdout[-3000:]
    final = read_records()
    assert len(final) == 4
    assert {(r["pattern"]["name"], r["sparsity"]["target"]) for r in final} == {
        ("unstructured", 0.5),
        ("unstructured", 0.9),
        ("gs", 0.5),
        ("gs", 0.9),
    }
    assert done.stdout.count("skipping") == len(finished_before)
    # The dense model is trained once for the whole sweep, killed or not.
    assert len(list((results / "cache" / "dense").glob("*.pt"))) == 1
    assert "dense model trained" not in done.stdout


@pytest.mark.slow
def test_parallel_joblib_sweep_trains_dense_once_and_writes_four(
    run_cli, results, read_records, tiny
):
    done = run_cli("-m", *tiny, *SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert done.returncode == 0, done.stdout[-3000:]
    assert len(read_records()) == 4
    assert len(list((results / "cache" / "dense").glob("*.pt"))) == 1


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_two_cell_sweep(run_cli, read_records, tiny):
    done = run_cli("-m", *tiny, "pattern=row_balanced", "sparsity=0.5,0.8", "hydra/launcher=local")
    assert done.returncode == 0, done.stdout[-3000:]
    assert sorted(r["sparsity"]["target"] for r in read_records()) == [0.5, 0.8]


@pytest.mark.slow
def test_torchrun_two_processes_train_with_ddp_and_write_one_record(run_cli, read_records, tiny):
    # gloo on the CPU: the same code path as NCCL on GPUs, minus the device.
    torchrun = ("-m", "torch.distributed.run", "--nproc_per_node=2")
    done = run_cli(*tiny, "pattern=gs", launcher=torchrun)
    assert done.returncode == 0, done.stdout[-3000:]
    (record,) = read_records()
    assert record["pattern"]["name"] == "gs" and abs(record["sparsity"]["achieved"] - 0.9) < 0.01


@pytest.mark.slow
def test_nan_loss_stops_with_a_message_and_writes_nothing_broken(run_cli, results, tiny):
    done = run_cli(*tiny, "task.dense.lr=1e30", timeout=300)
    assert done.returncode == 2, done.stdout[-3000:]
    assert "diverged" in done.stdout and "Traceback" not in done.stdout
    assert not list(results.glob("cache/dense/*.pt")), "a diverged model must not be cached"
    assert not list(results.glob("records/*.json"))
