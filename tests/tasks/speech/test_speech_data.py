"""The embedded corpus: deterministic, disjoint splits, the cache, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gsprune.tasks.speech.corpus import build_corpus, corpus_key, load_corpus
from gsprune.tasks.speech.data import LengthBatches, Utterances, collate
from gsprune.tasks.speech.sources import read_wav, real_clips
from gsprune.tasks.speech.synthesis import (
    ESPEAK_TEST_ACCENTS,
    ESPEAK_TEST_VARIANTS,
    FLITE_TEST_VOICES,
)


def held_out(voice: str) -> bool:
    engine, _, name = voice.partition(":")
    if engine == "flite":
        return name in FLITE_TEST_VOICES
    accent, _, variant = name.partition("+")
    return accent in ESPEAK_TEST_ACCENTS or variant in ESPEAK_TEST_VARIANTS


@pytest.mark.slow
def test_corpus_is_deterministic_and_its_splits_are_disjoint(tiny_corpus):
    splits, manifest = build_corpus(tiny_corpus)
    again, _ = build_corpus(tiny_corpus)
    for name, clips in splits.items():
        assert [(c.id, c.text, c.voice) for c in clips] == [
            (c.id, c.text, c.voice) for c in again[name]
        ]
        assert all(
            np.array_equal(a.audio, b.audio) for a, b in zip(clips, again[name], strict=True)
        )
    ids = {name: {c.id for c in clips} for name, clips in splits.items()}
    assert not ids["train"] & ids["test_real"] and not ids["train"] & ids["test_synthetic"]
    assert not ids["test_real"] & ids["test_synthetic"]
    real_train = [c for c in splits["train"] if c.voice.startswith("asterisk")]
    real_test = splits["test_real"]
    assert real_train and real_test and all(c.voice.startswith("asterisk") for c in real_test)
    # No real clip (nor any text spoken by the real voice) is in two splits.
    assert not {c.text for c in real_train} & {c.text for c in real_test}
    # The synthetic test set: held-out voices only, speaking exactly the real-test texts.
    assert all(held_out(c.voice) for c in splits["test_synthetic"])
    assert not any(held_out(c.voice) for c in splits["train"] if not c.voice.startswith("asterisk"))
    assert {c.text for c in splits["test_synthetic"]} == {c.text for c in real_test}
    assert manifest["clips"] == {name: len(clips) for name, clips in splits.items()}
    assert all(c.audio.dtype == np.int16 and len(c.audio) > 800 for c in splits["train"])


@pytest.mark.slow
def test_corpus_is_cached_under_its_key(tiny_corpus, tmp_path):
    cache = tmp_path / "cache"
    first = load_corpus(tiny_corpus, cache)
    folder = cache / corpus_key(tiny_corpus)
    stamp = (folder / "corpus.pt").stat().st_mtime_ns
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["clips"] == {name: len(clips) for name, clips in first.items()}
    second = load_corpus(tiny_corpus, cache)
    assert (folder / "corpus.pt").stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert [c.id for c in second["train"]] == [c.id for c in first["train"]]
    assert corpus_key({**tiny_corpus, "seed": 1}) != corpus_key(tiny_corpus)
    assert corpus_key({**tiny_corpus, "workers": 1}) == corpus_key(tiny_corpus)
    assert not list(folder.glob(".*.tmp"))


def test_bad_corpus_input_names_the_path(tiny_corpus, tmp_path):
    missing = {**tiny_corpus, "prompts_dir": str(tmp_path / "nowhere")}
    with pytest.raises(FileNotFoundError, match="nowhere"):
        real_clips(missing)
    broken = Path(tiny_corpus["prompts_dir"]) / "vm-goodbye.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(ValueError, match=r"vm-goodbye\.wav cannot be read as a WAV file"):
        real_clips(tiny_corpus)
    with pytest.raises(FileNotFoundError, match="absent.wav"):
        read_wav(tmp_path / "absent.wav")
    shutil.rmtree(tiny_corpus["prompts_dir"])


def test_empty_transcript_is_refused():
    waves = [torch.zeros(800), torch.zeros(900)]
    with pytest.raises(ValueError, match="utterance b has an empty transcript"):
        Utterances(waves, ["one", ""], ["a", "b"])


def test_collate_pads_waves_and_labels():
    data = Utterances([torch.ones(5), torch.ones(3)], ["ab", "c"], ["x", "y"])
    waves, lengths, labels, label_lengths = collate([data[0], data[1]])
    assert waves.shape == (2, 5) and waves[1, 3:].abs().sum() == 0
    assert lengths.tolist() == [5, 3] and label_lengths.tolist() == [2, 1]
    assert labels.tolist() == [[2, 3], [4, 0]]  # a=2, b=3, c=4; padded with the blank


def test_length_batches_group_similar_lengths():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4]
    fixed = list(LengthBatches(lengths, 3, shuffle=False, drop_last=False))
    assert fixed == [[1, 5, 3], [7, 0, 4], [6, 2]]
    torch.manual_seed(0)
    shuffled = list(LengthBatches(lengths, 3, shuffle=True, drop_last=True))
    assert len(shuffled) == 2 and all(len(b) == 3 for b in shuffled)
    for batch in shuffled:  # each batch is a run of neighbours in length order
        ranks = sorted(sorted(range(8), key=lambda i: lengths[i]).index(i) for i in batch)
        assert ranks[-1] - ranks[0] == 2


def test_length_batches_sorta_grad_goes_shortest_first_in_epoch_zero_only():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6]
    sampler = LengthBatches(lengths, 3, shuffle=True, drop_last=False, sorta_grad=True)
    torch.manual_seed(0)
    first = list(sampler)
    assert [max(lengths[i] for i in b) for b in first] == [3, 6, 9]
    sampler.set_epoch(1)
    orders = set()
    for seed in range(8):
        torch.manual_seed(seed)
        orders.add(tuple(max(lengths[i] for i in b) for b in sampler))
    assert len(orders) > 1  # later epochs shuffle the batches
