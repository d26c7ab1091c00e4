"""The translation task end to end: BLEU, the task=wmt path through the real CLI, resume, errors.

The paper-scale path runs on a few hundred real sentence pairs (Ding examples)
written in the raw WMT16 layout, prepared by scripts/prepare_wmt16.py, and
trained, pruned, decoded and scored by the real `gsprune` CLI with a tiny GNMT.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu
import torch

import gsprune
from gsprune import tasks
from gsprune.tasks.translation.task import TranslationTask

from .conftest import load_script, needs_ding

REPO = Path(__file__).resolve().parents[3]
TINY_GNMT = [
    "task.model_args.hidden=32",
    "task.model_args.encoder_layers=3",
    "task.model_args.decoder_layers=3",
    "task.max_tokens=600",
    "task.beam=2",
    "task.dense.epochs=2",
    "task.finetune.epochs=2",
    "prune.events=2",
    "latency.warmup=1",
    "latency.repeats=3",
    "threads=1",
]


def test_bleu_and_chrf_on_a_known_tiny_case():
    # "the cat sat on a mat" vs "the cat sat on the mat": n-gram precisions 5/6, 3/5,
    # 2/4, 1/3 and no brevity penalty, so BLEU = 100 * (5/6 * 3/5 * 1/2 * 1/3) ** (1/4).
    scores = TranslationTask.score(["the cat sat on a mat"], ["the cat sat on the mat"])
    assert scores["bleu"] == pytest.approx(100 * (5 / 6 * 3 / 5 * 1 / 2 * 1 / 3) ** 0.25)
    assert scores["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert 0 < scores["chrf"] < 100 and scores["chrf_signature"].startswith("nrefs:1")
    same = "a sentence of six words here"
    assert TranslationTask.score([same], [same])["bleu"] == pytest.approx(100)
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        TranslationTask.score(["a", "b"], ["a"])


def cli(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gsprune.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_wmt_without_prepared_data_stops_before_any_work(tmp_path):
    # The user's first command, from a folder that holds no prepared data/wmt16.
    done = cli("task=wmt", "pattern=gs", "sparsity=0.9", "results_dir=results", cwd=tmp_path)
    assert done.returncode == 2, done.stdout[-2000:]
    assert "Traceback" not in done.stdout
    message = done.stdout[done.stdout.index("gsprune: error:") :]
    assert str(tmp_path / "data" / "wmt16") in message
    assert "scripts/prepare_wmt16.py" in message and "task=translation" in message
    assert not (tmp_path / "results" / "cache").exists()
    assert not (tmp_path / "results" / "records").exists()


@pytest.fixture(scope="module")
def wmt_corpus(raw_sgm, tmp_path_factory) -> Path:
    """scripts/prepare_wmt16.py on the raw layout of test_wmt16 (newstest as .sgm)."""
    out = tmp_path_factory.mktemp("wmt-task") / "wmt16"
    assert load_script().main([str(raw_sgm), "--out", str(out), "--vocab-size", "300"]) == 0
    return out


@needs_ding
@pytest.mark.slow
def test_the_wmt_path_trains_prunes_decodes_and_scores_and_resumes(
    wmt_corpus, tmp_path, kill_process_when
):
    results = tmp_path / "results"
    args = [
        "task=wmt",
        f"task.data_dir={wmt_corpus}",
        "pattern=gs",
        "sparsity=0.8",
        f"results_dir={results}",
        *TINY_GNMT,
    ]
    # Kill the run once its first fine-tuning epoch is checkpointed, then rerun it.
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(
            [sys.executable, "-m", "gsprune.cli", *args], cwd=REPO, stdout=log, stderr=log
        )
        kill_process_when(first, lambda: any((results / "checkpoints").glob("*.pt")), 600, poll=0.2)
    assert not (results / "records").exists()
    done = cli(*args, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "resuming" in done.stdout and "after fine-tuning epoch 1" in done.stdout
    assert "dense model from cache" in done.stdout

    (record_file,) = (results / "records").glob("*.json")
    record = json.loads(record_file.read_text())
    metric = record["metric"]
    assert metric["name"] == "bleu" and metric["higher_is_better"] is True
    assert metric["details"]["bleu_signature"].startswith("nrefs:1")
    assert metric["details"]["sentences"] == 40  # newstest2014 of the raw layout
    assert metric["baseline"]["name"] == "copy-source"
    assert 0.0 <= metric["baseline"]["value"] < 5.0  # English copied as German
    assert "chrf" in metric["dense_details"]
    # Every LSTM gate matrix and attention projection is pruned to the GS pattern.
    layers = record["sparsity"]["layers"]
    assert "decoder.attention.linear_q.weight" in layers
    assert "encoder.rnn_layers.0.backward_lstm.weight_hh_l0" in layers
    assert all(layer["format"] == "gs" for layer in layers.values())
    assert all(layer["columns"] == 1 for layer in layers.values())  # a decoder step, 1 sentence

    # The outputs rescore to the record's BLEU with the standard scorer's command line.
    hyp, ref = (results / record["outputs"][key] for key in ("hyp.de", "ref.de"))
    assert len(hyp.read_text().splitlines()) == len(ref.read_text().splitlines()) == 40
    sacrebleu_cli = Path(sys.executable).with_name("sacrebleu")
    rescored = subprocess.run(
        [str(sacrebleu_cli), str(ref), "-i", str(hyp), "-b", "-w", "6"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(rescored.stdout) == pytest.approx(metric["value"], abs=1e-4)
    score = sacrebleu.corpus_bleu(hyp.read_text().splitlines(), [ref.read_text().splitlines()])
    assert score.score == pytest.approx(metric["value"])

    # The kept pruned model reloads and translates the test set to the same BLEU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the run (threads=1): the same sums, the same beams
    try:
        run = gsprune.load_run(record_file)
        assert run.task.test(run.model).value == metric["value"]
    finally:
        torch.set_num_threads(threads)
    name = "decoder.attention.linear_q.weight"
    assert (run.formats[name].to_dense() != 0).sum() == layers[name]["nnz"]


@needs_ding
@pytest.mark.slow
def test_a_damaged_corpus_is_refused_by_the_cli(wmt_corpus, tmp_path):
    damaged = Path(shutil.copytree(wmt_corpus, tmp_path / "wmt16"))
    binary = damaged / "test.en-de.de.bin"
    binary.write_bytes(binary.read_bytes()[:-7])
    done = cli(
        "task=wmt", f"task.data_dir={damaged}", f"results_dir={tmp_path / 'results'}", cwd=REPO
    )
    assert done.returncode == 2 and "Traceback" not in done.stdout
    assert "test.en-de.de.bin" in done.stdout and "prepare_wmt16.py" in done.stdout
    assert not (tmp_path / "results" / "cache").exists()


@needs_ding
def test_task_config_values_are_checked_before_data_work(tmp_path):
    cfg = {
        "name": "wmt",
        "kind": "translation",
        "scale": "paper",
        "dataset": "wmt16",
        "data_dir": str(tmp_path / "absent"),
        "source_lang": "en",
        "target_lang": "de",
        "model": "gnmt",
        "model_args": {"hidden": 8},
        "max_tokens": 100,
        "eval_max_tokens": 100,
        "beam": 0,
        "lenpen": 1.0,
        "max_len_a": 1.0,
        "max_len_b": 5,
        "label_smoothing": 0.1,
        "include": ["*"],
        "exclude": [],
        "dense": {"epochs": 1, "optimizer": "adamw", "lr": 1e-3},
        "finetune": {"epochs": 1, "optimizer": "adamw", "lr": 1e-3},
    }
    with pytest.raises(ValueError, match="task.beam=0"):
        tasks.build(cfg).check()
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['depth'\]"):
        tasks.build({**cfg, "beam": 5, "model_args": {"depth": 2}}).check()
    with pytest.raises(FileNotFoundError, match="prepare_wmt16.py"):
        tasks.build({**cfg, "beam": 5}).check()
