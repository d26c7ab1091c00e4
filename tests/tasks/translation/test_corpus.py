"""prepare_ding end to end on a small real subset, the cache, and load_corpus on bad input."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from gsprune.tasks.translation.corpus import SPLITS, Corpus, load_corpus, split_prefix
from gsprune.tasks.translation.data import DING_DEFAULTS, prepare_ding, translation_loader
from gsprune.tasks.translation.ding import DING_FILE
from gsprune.tasks.translation.prepare import prepare_corpus, resolve_settings

from .conftest import SMALL, needs_ding

pytestmark = [needs_ding, pytest.mark.slow]


def files_of(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def test_prepared_corpus_loads_and_batches(small_corpus):
    corpus = load_corpus(small_corpus.root, "de", "en")
    meta = corpus.meta()
    assert meta["settings"]["vocab_size"] == 400 and meta["settings"]["phrases"] is True
    ext = meta["extraction"]
    assert ext["sentence_pairs"] == 300
    assert ext["split_sentence_pairs"]["test"] == meta["counts"]["test"] >= 50
    train = meta["filtered"]["train"]  # kept, and dropped by reason (too long: > 64 pieces)
    assert sum(train.values()) == ext["split_sentence_pairs"]["train"] + ext["train_phrase_pairs"]
    assert meta["counts"]["train"] == train["kept"] > 0.99 * sum(train.values())
    # 4 fairseq specials instead of sentencepiece's <unk> <s> </s>
    assert len(corpus.dictionary()) == meta["vocab"] <= 400 + 1
    dataset = corpus.dataset("train")
    assert len(dataset) == meta["counts"]["train"]
    loader = translation_loader(dataset, max_tokens=2000, shuffle=True, seed=0)
    batch = next(iter(loader))
    tokens = batch["net_input"]["src_tokens"]
    assert tokens.dtype.is_floating_point is False and tokens.shape[0] == batch["nsentences"]
    assert batch["target"].shape == batch["net_input"]["prev_output_tokens"].shape
    assert (batch["target"][:, 0] != corpus.dictionary().eos()).all()
    assert int(tokens.numel()) <= 2000 and int(batch["target"].numel()) <= 2000


def test_decode_inverts_the_binarized_text(small_corpus):
    dictionary = small_corpus.dictionary()
    unknown = 0
    for split in ("valid", "test"):
        dataset = small_corpus.dataset(split)
        for lang, key in ((small_corpus.src, "source"), (small_corpus.tgt, "target")):
            raw = small_corpus.raw(split, lang)
            assert len(raw) == len(dataset)
            for i, text in enumerate(raw):
                decoded = small_corpus.decode(dictionary.string(dataset[i][key]))
                # a character absent from the training text decodes to sentencepiece's " ⁇ "
                if "\u2047" in decoded:
                    unknown += 1
                    pattern = re.escape(decoded).replace("\u2047", ".+?").replace(r"\ ", r"\s*")
                    assert re.fullmatch(pattern, text), (decoded, text)
                else:
                    assert decoded == text
            assert small_corpus.encode(raw[0]) == dictionary.string(dataset[0][key])
    assert unknown <= 5


def test_no_evaluation_sentence_in_training(small_corpus):
    train = {lang: set(small_corpus.raw("train", lang)) for lang in ("de", "en")}
    valid = {lang: set(small_corpus.raw("valid", lang)) for lang in ("de", "en")}
    for lang in ("de", "en"):
        test = set(small_corpus.raw("test", lang))
        assert not test & train[lang] and not valid[lang] & train[lang] and not test & valid[lang]


def test_preparation_is_deterministic_and_cached(small_corpus, tmp_path):
    again = prepare_ding(DING_FILE, tmp_path, SMALL)
    assert again.root.name == small_corpus.root.name  # the key
    assert files_of(again.root) == files_of(small_corpus.root)
    stamp = (again.root / "meta.json").stat().st_mtime_ns
    assert prepare_ding(DING_FILE, tmp_path, dict(SMALL)).root == again.root
    assert (again.root / "meta.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    other = prepare_ding(DING_FILE, tmp_path, {**SMALL, "phrases": False})
    assert other.root != again.root
    assert (
        other.meta()["counts"]["train"]
        == other.meta()["extraction"]["split_sentence_pairs"]["train"]
    )


def test_a_number_of_phrases_draws_that_many_in_dictionary_order(small_corpus, tmp_path):
    def phrases_of(corpus: Corpus) -> list[tuple[str, str]]:  # they follow the sentences
        pairs = list(zip(corpus.raw("train", "de"), corpus.raw("train", "en"), strict=True))
        return pairs[-corpus.meta()["extraction"]["train_phrase_pairs"] :]

    every = phrases_of(small_corpus)
    drawn = prepare_ding(DING_FILE, tmp_path, {**SMALL, "phrases": 40})
    extraction = drawn.meta()["extraction"]
    assert extraction["train_phrase_pairs"] == 40 < len(every)
    held_out = small_corpus.meta()["extraction"]["phrase_pairs_held_out"]
    assert extraction["phrase_pairs_held_out"] == held_out
    position = {text: i for i, text in enumerate(every)}
    assert [position[t] for t in phrases_of(drawn)] == sorted(
        position[t] for t in phrases_of(drawn)
    )
    again = prepare_ding(DING_FILE, tmp_path / "again", {**SMALL, "phrases": 40})
    assert files_of(again.root) == files_of(drawn.root)  # the same draw
    more = prepare_ding(DING_FILE, tmp_path, {**SMALL, "phrases": 10**9})
    assert phrases_of(more) == every  # more than there are: all of them


def copy_texts(corpus: Corpus, out: Path) -> dict[str, tuple[Path, Path]]:
    out.mkdir()
    texts = {}
    for split in SPLITS:
        texts[split] = (out / f"{split}.de", out / f"{split}.en")
        for lang, path in zip(("de", "en"), texts[split], strict=True):
            path.write_text("".join(line + "\n" for line in corpus.raw(split, lang)[:200]))
    return texts


def test_interrupted_preparation_leaves_no_corpus(small_corpus, tmp_path):
    settings = resolve_settings({"vocab_size": 300}, DING_DEFAULTS, "t")
    target = tmp_path / "cache" / "k"

    def interrupted(out: Path):
        copy_texts(small_corpus, out)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_corpus(target, "k", "de", "en", interrupted, settings)
    assert sorted(os.listdir(tmp_path / "cache")) == [".k.lock"]
    # a preparation killed outright leaves its temporary directory: the next one removes it
    (tmp_path / "cache" / ".k.tmp-killed").mkdir()
    calls = []

    def write(out: Path):
        calls.append(out)
        return copy_texts(small_corpus, out), {"source": "test"}

    threads = [
        threading.Thread(target=prepare_corpus, args=(target, "k", "de", "en", write, settings))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1  # the second waited on the lock, then reused the corpus
    assert sorted(os.listdir(tmp_path / "cache")) == [".k.lock", "k"]
    assert load_corpus(target, "de", "en").meta()["source"] == "test"


def test_prepare_ding_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="unknown translation setting.*vocab"):
        prepare_ding(DING_FILE, tmp_path, {"vocab": 100})
    with pytest.raises(ValueError, match="model_type='wordpiece'"):
        prepare_ding(DING_FILE, tmp_path, {"model_type": "wordpiece"})
    for bad in ("yes", 0, -5, 2.5):
        with pytest.raises(ValueError, match=f"phrases={bad!r} is not accepted"):
            prepare_ding(DING_FILE, tmp_path, {"phrases": bad})
    with pytest.raises(ValueError, match="src='de', translation.tgt='de'"):
        prepare_ding(DING_FILE, tmp_path, {"tgt": "de"})
    with pytest.raises(FileNotFoundError, match="trans-de-en"):
        prepare_ding(tmp_path / "de-en", tmp_path, {})
    assert list(tmp_path.iterdir()) == []  # nothing written


# -- load_corpus on bad input ------------------------------------------------------


def test_load_corpus_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope'} does not exist.*run it"):
        load_corpus(tmp_path / "nope", "de", "en", hint="run it")


def test_load_corpus_missing_file(corpus_copy):
    (corpus_copy / "test.raw.en").unlink()
    (corpus_copy / "spm.model").unlink()
    with pytest.raises(FileNotFoundError, match="lacks spm.model, test.raw.en;"):
        load_corpus(corpus_copy, "de", "en")


def test_load_corpus_truncated_bin(corpus_copy):
    path = corpus_copy / f"{split_prefix('train', 'de', 'en', 'en')}.bin"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match=f"{path}.*truncated or corrupt"):
        load_corpus(corpus_copy, "de", "en")


def test_load_corpus_corrupt_idx(corpus_copy):
    path = corpus_copy / f"{split_prefix('valid', 'de', 'en', 'de')}.idx"
    path.write_bytes(b"garbage!" + path.read_bytes()[8:])
    with pytest.raises(ValueError, match=f"{path} is not a fairseq mmap index"):
        load_corpus(corpus_copy, "de", "en")
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="not a fairseq mmap index"):
        load_corpus(corpus_copy, "de", "en")


def test_load_corpus_raw_lines_disagree(corpus_copy):
    with open(corpus_copy / "valid.raw.de", "a") as handle:
        handle.write("Noch ein Satz.\n")
    with pytest.raises(ValueError, match="valid.raw.de has .* lines but the binarized valid"):
        load_corpus(corpus_copy, "de", "en")


def test_load_corpus_empty_test_split(corpus_copy):
    from fairseq.data.indexed_dataset import MMapIndexedDatasetBuilder

    for lang in ("de", "en"):
        stem = corpus_copy / split_prefix("test", "de", "en", lang)
        builder = MMapIndexedDatasetBuilder(f"{stem}.bin", dtype=np.uint16)
        builder.finalize(f"{stem}.idx")
        (corpus_copy / f"test.raw.{lang}").write_text("")
    meta = json.loads((corpus_copy / "meta.json").read_text())
    meta["counts"]["test"] = 0
    (corpus_copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="the test split of .* is empty"):
        load_corpus(corpus_copy, "de", "en")


def test_load_corpus_other_direction(small_corpus):
    with pytest.raises(FileNotFoundError, match=r"\(en->de\) lacks"):
        load_corpus(small_corpus.root, "en", "de")
