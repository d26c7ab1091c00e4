"""The paper-scale path on a few utterances written by the test in LibriSpeech's real layout:
FLAC through torchaudio's LIBRISPEECH, features, a few training steps of a tiny Jasper,
greedy decoding, WER per test set, the baseline, the transcripts file; and bad data."""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from gsprune import tasks
from gsprune.tasks.speech.librispeech import LibriSpeech

from .conftest import tiny_jasper

REPO = Path(__file__).resolve().parents[3]
CONF = REPO / "conf" / "task"
TEST_SETS = ("test-clean", "test-other")
TINY_JASPER = tiny_jasper(0.1)


def librispeech_config(data_dir: Path | str, **changes) -> dict:
    cfg = yaml.safe_load((CONF / "librispeech.yaml").read_text())
    cfg.update(
        data_dir=str(data_dir),
        train_splits=["train-clean-100"],
        preset=None,
        model_args=TINY_JASPER,
        batch_size=2,
        eval_batch_size=2,
        num_workers=0,
        amp=False,
    )
    cfg["dense"] = {**cfg["dense"], "epochs": 1, "lr": 3e-3, "reference_batch": None}
    cfg.update(changes)
    return cfg


@pytest.mark.slow
def test_librispeech_path_end_to_end(librispeech_root):
    pytest.importorskip("torchcodec", reason="torchaudio reads FLAC through torchcodec")
    task = tasks.build(librispeech_config(librispeech_root))
    task.check()
    assert task.describe()["scale"] == "paper"
    train, tests = task.datasets()
    assert len(train) == 6 and {name: len(d) for name, d in tests.items()} == {
        "test-clean": 2,
        "test-other": 2,
    }
    wave, text = train[0]
    assert wave.dim() == 1 and len(wave) > 8000 and text == "please enter your number"

    torch.manual_seed(0)
    model = task.build_model()
    before = [p.detach().clone() for p in model.parameters()]
    train_loader, eval_loader = task.loaders()
    optimizer, scheduler = task.make_optimizer(model, "dense", len(train_loader))
    loss = task.train_one_epoch(model, train_loader, optimizer, scheduler)
    assert math.isfinite(loss) and loss > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

    value = task.evaluate(model, eval_loader)
    assert value >= 0.0
    result = task.test(model)
    assert result.value == pytest.approx(value)
    assert set(result.details["wer"]) == set(result.details["cer"]) == {"test-clean", "test-other"}
    assert result.details["test_sets"]["test-other"] == {"utterances": 2, "words": 5}
    assert result.details["latency_input"]["model_frames"] == 501
    lines = result.outputs["transcripts.tsv"]
    assert lines[0] == "set\tid\treference\thypothesis" and len(lines) == 5
    assert lines[1].startswith("test-clean\ttest-clean/20-198-0000\t")  # split/<spk>-<chap>-<utt>
    assert sorted(line.split("\t")[2] for line in lines[3:]) == ["goodbye", "you have new messages"]

    baseline = task.baseline()
    # All six training transcripts are unique: the alphabetically first one, "goodbye".
    assert baseline["transcript"] == "goodbye"
    assert baseline["wer"] == {"test-clean": 100.0, "test-other": 80.0}
    assert baseline["value"] == pytest.approx(100 * 12 / 13)


def test_missing_librispeech_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"data_dir is not set.*task=speech"):
        tasks.build(librispeech_config("???")).check()
    with pytest.raises(
        FileNotFoundError, match=r"train-clean-100' is not at .*nowhere.*task=speech"
    ):
        tasks.build(librispeech_config(tmp_path / "nowhere")).check()
    with pytest.raises(ValueError, match="task.test_splits='test-clean'"):
        tasks.build(librispeech_config(tmp_path, test_splits="test-clean")).check()


@pytest.mark.slow
def test_unreadable_audio_and_empty_transcripts_name_the_file(librispeech_root):
    pytest.importorskip("torchcodec", reason="torchaudio reads FLAC through torchcodec")
    chapter = librispeech_root / "LibriSpeech" / "test-other" / "21" / "198"
    (chapter / "21-198-0000.flac").write_bytes(b"fLaC but nothing after")
    data = LibriSpeech(librispeech_root, "test-other")
    with pytest.raises(ValueError, match=r"21-198-0000\.flac cannot be read"):
        data[0]
    assert data[1][1] == "you have new messages"
    trans = chapter / "21-198.trans.txt"
    trans.write_text("21-198-0000\n21-198-0001 YOU HAVE NEW MESSAGES\n")
    with pytest.raises(
        ValueError, match=r"21-198-0000\.flac has an empty transcript in .*21-198\.trans\.txt"
    ):
        LibriSpeech(librispeech_root, "test-other").texts()
    trans.unlink()
    with pytest.raises(FileNotFoundError, match=r"21-198\.trans\.txt is missing"):
        LibriSpeech(librispeech_root, "test-other")[1]
    shutil.rmtree(chapter.parent.parent)
    with pytest.raises(FileNotFoundError, match="test-other' is not at"):
        LibriSpeech(librispeech_root, "test-other")


def hydra_value(value) -> str:
    """A Python value in Hydra's override grammar (dicts and lists of plain values)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    return str(value)


@pytest.mark.slow
def test_the_librispeech_cli_run_is_killed_mid_fine_tuning_and_resumes(
    librispeech_root, tmp_path, kill_process_when
):
    pytest.importorskip("torchcodec", reason="torchaudio reads FLAC through torchcodec")
    results = tmp_path / "results"
    args = [
        "task=librispeech",
        f"task.data_dir={librispeech_root}",
        "task.train_splits=[train-clean-100]",
        "task.preset=null",
        f"task.model_args={hydra_value(TINY_JASPER)}",
        "task.batch_size=2",
        "task.eval_batch_size=2",
        "task.num_workers=0",
        "task.amp=false",
        "task.dense.epochs=1",
        "task.finetune.epochs=3",
        "prune.events=2",
        "pattern=gs",
        "sparsity=0.8",
        "latency.warmup=1",
        "latency.repeats=3",
        "threads=1",
        f"results_dir={results}",
    ]
    command = [sys.executable, "-m", "gsprune.cli", *args]
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log)
        kill_process_when(first, lambda: any((results / "checkpoints").glob("*.pt")), 600)
    first_log = (tmp_path / "first.log").read_text()
    assert first.returncode == -signal.SIGKILL, first_log[-2000:]  # killed, not failed
    assert not (results / "records").exists(), first_log[-2000:]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    log = done.stdout + done.stderr
    assert re.search(r"resuming \S+ after fine-tuning epoch [123]", log), log[-3000:]
    assert "dense model from cache" in log

    (record_file,) = (results / "records").glob("*.json")
    record = json.loads(record_file.read_text())
    metric = record["metric"]
    assert metric["name"] == "wer" and metric["higher_is_better"] is False
    assert set(metric["details"]["wer"]) == set(metric["details"]["cer"]) == set(TEST_SETS)
    assert metric["baseline"]["name"] == "most-frequent-transcript"
    layers = record["sparsity"]["layers"]
    assert "prologue.conv.weight" not in layers and "classifier.weight" not in layers
    assert all(layer["format"] == "gs" for layer in layers.values())
    assert {layer["columns"] for layer in layers.values()} == {501}  # 10 s at batch 1
    lines = (results / record["outputs"]["transcripts.tsv"]).read_text().splitlines()
    assert lines[0] == "set\tid\treference\thypothesis" and len(lines) == 5
