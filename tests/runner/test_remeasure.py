"""gsprune-remeasure: finished runs re-timed from their kept models, nothing else changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import gsprune
from gsprune import remeasure


@pytest.fixture(scope="module")
def finished(tmp_path_factory, run_cli_in, tiny_args) -> Path:
    """One finished tiny run (GS at 0.8, timed on the CPU kernels and the step model)."""
    results = tmp_path_factory.mktemp("remeasure") / "results"
    done = run_cli_in(results, "pattern=gs", "sparsity=0.8", *tiny_args)
    assert done.returncode == 0, done.stdout[-3000:]
    return results


@pytest.fixture
def copy(finished: Path, tmp_path: Path) -> Path:
    """A copy of the finished run's records and models that a test may change."""
    target = tmp_path / "results"
    for folder in ("records", "models"):
        shutil.copytree(finished / folder, target / folder)
    return target


def the_record(results: Path) -> tuple[Path, dict]:
    (path,) = sorted((results / "records").glob("*.json"))
    return path, json.loads(path.read_text())


@pytest.mark.slow
def test_remeasure_replaces_the_latency_and_keeps_the_rest(copy, capsys):
    path, before = the_record(copy)
    assert remeasure.main([str(copy / "records"), "--backends", "cpu"]) == 0
    _, after = the_record(copy)
    assert f"{before['run_id']}: cpu " in capsys.readouterr().out
    # Only latency.cpu changed; the step model's entry and everything else are as they were.
    assert {k: v for k, v in after.items() if k != "latency"} == {
        k: v for k, v in before.items() if k != "latency"
    }
    assert after["latency"]["model"] == before["latency"]["model"]
    cpu, old = after["latency"]["cpu"], before["latency"]["cpu"]
    assert set(cpu["layers"]) == set(old["layers"])
    assert cpu["settings"]["threads"] == old["settings"]["threads"]
    stamp = cpu["remeasured"]
    assert stamp["previous"] == {
        "sparse": old["sparse"],
        "dense": old["dense"],
        "speedup": old["speedup"],
        "git_commit": before["git_commit"],
    }
    assert stamp["machine"] and stamp["created"]
    assert cpu["sparse"] > 0 and cpu["dense"] > 0
    assert cpu["speedup"] == pytest.approx(cpu["dense"] / cpu["sparse"])
    # The model file is untouched: the record still loads it (its sha256 is checked).
    gsprune.load_run(path)
    # A second pass records the first re-timing as the previous one.
    assert remeasure.main([str(path), "--backends", "cpu"]) == 0
    _, again = the_record(copy)
    assert again["latency"]["cpu"]["remeasured"]["previous"]["sparse"] == cpu["sparse"]


@pytest.mark.slow
def test_bad_input_stops_before_any_timing_and_changes_nothing(copy, tmp_path, capsys):
    path, _ = the_record(copy)
    original = path.read_bytes()
    # A backend the run was not timed on.
    assert remeasure.main([str(path), "--backends", "cuda"]) == 2
    assert "--backends must name some of those" in capsys.readouterr().err
    # No records at all.
    (tmp_path / "empty").mkdir()
    assert remeasure.main([str(tmp_path / "empty")]) == 2
    assert "no run records" in capsys.readouterr().err
    # A run whose model file is gone: no record is re-timed, not even the good ones.
    twin = path.with_name("f" * 16 + ".json")  # sorts after the good record
    record = json.loads(original)
    record["run_id"] = "f" * 16
    record["model"]["file"] = "models/missing.pt"
    twin.write_text(json.dumps(record))
    assert remeasure.main([str(copy / "records")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert path.read_bytes() == original
