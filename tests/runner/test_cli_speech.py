"""End-to-end `gsprune task=speech` through the real CLI on a tiny preset of the embedded task.

The real Asterisk prompts with few synthetic clips (no per-prompt voices, a
handful of extra texts, one held-out voice per test text), a tiny Jasper, one
dense and one fine-tuning epoch: about a minute on two cores.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gsprune.tasks.base import bf16_native
from gsprune.tasks.speech.corpus import CORPUS_DEFAULTS
from gsprune.tasks.speech.sources import read_prompt_transcripts
from gsprune.tasks.speech.text import normalize

TINY_SPEECH = [
    "task=speech",
    "task.corpus.prompt_voices=0",
    "task.corpus.digit_strings=4",
    "task.corpus.numbers=4",
    "task.corpus.spellings=4",
    "task.corpus.dictionary_sentences=8",
    "task.corpus.test_voices=1",
    "task.model_args.prologue.channels=16",
    "task.model_args.blocks=[{channels:16,kernel:5,dropout:0.0},{channels:24,kernel:7,dropout:0.0}]",
    "task.model_args.epilogue={channels:32,kernel:9,hidden:32,dropout:0.0}",
    "task.dense.epochs=1",
    "task.finetune.epochs=1",
    "prune.events=2",
    "latency.warmup=1",
    "latency.repeats=3",
    "threads=1",
]
NEEDS = ("espeak-ng", "flite", "sox")


@pytest.mark.slow
def test_speech_run_records_wer_per_test_set_baseline_and_transcripts(
    run_cli, results, read_records
):
    if (
        any(shutil.which(tool) is None for tool in NEEDS)
        or not Path("/usr/share/asterisk/sounds/en_US_f_Allison").is_dir()
    ):
        pytest.skip(
            "the speech packages of apt.txt are absent (bash scripts/install_apt.sh apt.txt)"
        )
    done = run_cli(*TINY_SPEECH, "pattern=gs", "sparsity=0.8")
    assert done.returncode == 0, done.stdout[-3000:]
    (record,) = read_records()
    metric = record["metric"]
    assert metric["name"] == "wer" and metric["higher_is_better"] is False
    assert record["amp"] is bf16_native("cpu")  # task.amp=auto, resolved for this CPU
    assert set(metric["details"]["wer"]) == {"test_synthetic", "test_real"}
    assert set(metric["dense_details"]["wer"]) == {"test_synthetic", "test_real"}
    assert metric["details"]["latency_input"] == {
        "seconds": 10.0,
        "feature_frames": 1001,
        "model_frames": 501,
    }
    baseline = metric["baseline"]
    assert baseline["name"] == "most-frequent-transcript" and baseline["value"] > 80.0
    transcripts = results / record["outputs"]["transcripts.tsv"]
    lines = transcripts.read_text().splitlines()
    sizes = metric["details"]["test_sets"]
    assert lines[0] == "set\tid\treference\thypothesis"
    assert (
        len(lines) == 1 + sizes["test_synthetic"]["utterances"] + sizes["test_real"]["utterances"]
    )
    # Each line's id names the clip its reference belongs to (checked against the package).
    prompts = read_prompt_transcripts(CORPUS_DEFAULTS["transcripts"])
    real = [line.split("\t") for line in lines[1:] if line.startswith("test_real\t")]
    assert real and all(normalize(prompts[id_[len("real/") :]]) == ref for _, id_, ref, _ in real)
    layers = record["sparsity"]["layers"]
    assert "prologue.conv.weight" not in layers and "classifier.weight" not in layers
    assert "blocks.0.convs.0.conv.weight" in layers
    assert (results / "cache" / "speech").is_dir()
