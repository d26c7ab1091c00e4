"""Translation data: the two corpora (Ding, WMT16) and the token-batched loader.

What the translation task calls:

- ``prepare_ding(dict_file, cache_root, settings) -> Corpus``: the embedded
  corpus (``task=translation``), German->English example sentences of the
  Ding dictionary (``ding``), prepared once and cached under
  ``cache_root/<key>/``.
- ``prepare_wmt16(raw_dir, out_dir, settings) -> Corpus``: the paper-scale
  corpus (``task=wmt``), WMT16 English->German (``wmt16``), written to
  ``out_dir`` (``scripts/prepare_wmt16.py``).
- ``load_corpus(root, src, tgt) -> Corpus``: open a prepared corpus, checked.
- ``translation_loader(dataset, max_tokens, shuffle, seed) -> DataLoader``.

Both preparations share one code path (``prepare.prepare_corpus``:
normalization, sentencepiece, fairseq-preprocess) and one layout
(``corpus``). Settings are plain mappings; missing keys take the defaults
below, unknown keys raise ValueError. The key of a prepared corpus hashes its
inputs (the dictionary file's sha256; the raw files' names, sizes and mtimes)
and the resolved settings, so changing either prepares anew.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler

from gsprune.tasks.base import check_number
from gsprune.tasks.translation import ding, wmt16
from gsprune.tasks.translation.corpus import SPLITS, Corpus, load_corpus
from gsprune.tasks.translation.prepare import (
    TextFiles,
    corpus_key,
    prepare_corpus,
    resolve_settings,
)

__all__ = [
    "DING_DEFAULTS",
    "WMT16_DEFAULTS",
    "Corpus",
    "TokenBatchSampler",
    "load_corpus",
    "prepare_ding",
    "prepare_wmt16",
    "translation_loader",
]

# Embedded scale. vocab 4000 bpe: small subword units for ~20k sentences;
# phrases: the dictionary's word and phrase pairs join the training data.
DING_DEFAULTS: dict[str, Any] = {
    "src": "de",
    "tgt": "en",
    "vocab_size": 4000,
    "model_type": "bpe",
    "character_coverage": 1.0,
    "input_sentence_size": 0,
    "max_tokens_per_sentence": 64,
    "max_length_ratio": None,
    "seed": 0,
    "valid_size": 500,  # sentence pairs (whole groups: a few more)
    "test_size": 1500,
    "phrases": True,
    "limit": None,  # null, or only the first N sentence pairs (tests)
}

# Paper scale, as the GNMT references: a shared 32k subword vocabulary; spm
# learns from 2M sampled lines; training pairs over 128 pieces a side or with
# one side over twice the other are dropped.
WMT16_DEFAULTS: dict[str, Any] = {
    "src": "en",
    "tgt": "de",
    "vocab_size": 32000,
    "model_type": "bpe",
    "character_coverage": 0.9999,
    "input_sentence_size": 2_000_000,
    "max_tokens_per_sentence": 128,
    "max_length_ratio": 2.0,
    "seed": 0,
}


def _languages(settings: Mapping[str, Any], what: str) -> tuple[str, str]:
    pair = (settings["src"], settings["tgt"])
    if sorted(pair) != ["de", "en"]:
        raise ValueError(
            f"{what}.src={pair[0]!r}, {what}.tgt={pair[1]!r} is not accepted; "
            "the languages are de and en, one each"
        )
    return pair


def _write_split(out: Path, split: str, src: str, tgt: str, pairs: list[ding.Pair]) -> None:
    for lang in (src, tgt):
        text = "".join(getattr(p, lang) + "\n" for p in pairs)
        (out / f"{split}.{lang}").write_text(text, encoding="utf-8")


def prepare_ding(
    dict_file: str | os.PathLike, cache_root: str | os.PathLike, settings: Mapping[str, Any]
) -> Corpus:
    """The embedded corpus from the Ding dictionary, prepared once under ``cache_root/<key>/``.

    ``settings``: ``DING_DEFAULTS`` keys (see ``prepare.resolve_settings``), plus
    ``valid_size``/``test_size`` (sentence pairs; ``ding.split_pairs``),
    ``phrases`` (add the phrase pairs to training, less those sharing a
    German or an English text with a validation or test sentence: ``true`` for
    all of them, an integer N for N of them drawn with ``seed``, in dictionary
    order, ``false`` for none) and
    ``limit`` (only the first N sentence pairs, and the phrases of the
    entries read up to there). Deterministic: the same file and settings give
    byte-identical files. meta.json records the extraction counts.
    """
    s = resolve_settings(settings, DING_DEFAULTS, "translation")
    src, tgt = _languages(s, "translation")
    check_number(s["valid_size"], "translation.valid_size", 1, integer=True)
    check_number(s["test_size"], "translation.test_size", 1, integer=True)
    wanted = s["phrases"]
    if not isinstance(wanted, bool) and not (isinstance(wanted, int) and wanted >= 1):
        raise ValueError(
            f"translation.phrases={wanted!r} is not accepted; it must be true (all phrase "
            "pairs), false (none) or a number of phrase pairs >= 1"
        )
    if s["limit"] is not None:
        check_number(s["limit"], "translation.limit", 1, integer=True)
    lines = ding.read_ding(dict_file)
    digest = hashlib.sha256(Path(dict_file).read_bytes()).hexdigest()
    key = corpus_key({"kind": "ding", "dictionary_sha256": digest, "settings": s})

    def write_texts(out: Path) -> tuple[TextFiles, dict[str, Any]]:
        found = ding.extract(lines, s["limit"])
        splits = ding.split_pairs(found.sentences, s["valid_size"], s["test_size"], s["seed"])
        held_out = [p for name in ("valid", "test") for p in splits[name]]
        held_de, held_en = {p.de for p in held_out}, {p.en for p in held_out}
        eligible = [p for p in found.phrases if p.de not in held_de and p.en not in held_en]
        if isinstance(wanted, bool):
            phrases = eligible if wanted else []
        else:  # N of them (all when there are fewer), drawn with the split's seed
            drawn = random.Random(s["seed"]).sample(
                range(len(eligible)), min(wanted, len(eligible))
            )
            phrases = [eligible[i] for i in sorted(drawn)]
        out.mkdir()
        for split in SPLITS:
            extra = phrases if split == "train" else []
            _write_split(out, split, src, tgt, splits[split] + extra)
        meta = {
            "source": {"kind": "ding", "file": str(dict_file), "sha256": digest},
            "extraction": {
                "entries": found.lines,
                "skipped_entries": found.skipped_lines,
                "unaligned_parts": found.unaligned,
                "sentence_pairs": len(found.sentences),
                "phrase_pairs": len(found.phrases),
                "phrase_pairs_held_out": len(found.phrases) - len(eligible),
                "split_sentence_pairs": {name: len(splits[name]) for name in SPLITS},
                "train_phrase_pairs": len(phrases),
            },
        }
        return {split: (out / f"{split}.{src}", out / f"{split}.{tgt}") for split in SPLITS}, meta

    return prepare_corpus(Path(cache_root) / key, key, src, tgt, write_texts, s)


def prepare_wmt16(
    raw_dir: str | os.PathLike, out_dir: str | os.PathLike, settings: Mapping[str, Any]
) -> Corpus:
    """The paper-scale corpus from the raw WMT16 En-De files under ``raw_dir``, in ``out_dir``.

    ``settings``: ``WMT16_DEFAULTS`` keys (see ``prepare.resolve_settings``).
    Training = Europarl v7 + Common Crawl + News Commentary v11 (in that
    order), validation = newstest2015, test = newstest2014 (``wmt16``).
    Missing, empty or misaligned raw files raise before any work. An
    ``out_dir`` already holding this preparation (same raw files and
    settings) is returned as is; one prepared otherwise is prepared again.
    """
    s = resolve_settings(settings, WMT16_DEFAULTS, "wmt")
    src, tgt = _languages(s, "wmt")
    raw = wmt16.find_raw_files(raw_dir)
    fingerprint = {
        name: {lang: [p.name, p.stat().st_size, p.stat().st_mtime_ns] for lang, p in files.items()}
        for name, files in raw.items()
    }
    key = corpus_key({"kind": "wmt16", "raw": fingerprint, "settings": s})
    sets = {"train": wmt16.TRAINING, "valid": (wmt16.VALID_SET,), "test": (wmt16.TEST_SET,)}

    def write_texts(out: Path) -> tuple[TextFiles, dict[str, Any]]:
        out.mkdir()
        texts, stats = {}, {}
        for split, names in sets.items():
            texts[split] = (out / f"{split}.{src}", out / f"{split}.{tgt}")
            files = [(raw[name][src], raw[name][tgt]) for name in names]
            stats[split] = wmt16.write_pairs(files, texts[split], drop_empty=split == "train")
        files = {name: {lang: str(p) for lang, p in f.items()} for name, f in raw.items()}
        return texts, {"source": {"kind": "wmt16", "files": files}, "reading": stats}

    return prepare_corpus(Path(out_dir), key, src, tgt, write_texts, s)


# -- batching ---------------------------------------------------------------------------


class TokenBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices by token count, in a per-epoch order.

    The batches are fixed: fairseq's ``dataset.batch_by_size`` over
    ``dataset.ordered_indices()`` (length order), each batch at most
    ``max_tokens`` tokens counting padding (sentences x longest side). With
    ``shuffle``, iteration ``e`` (0, 1, ...; or the epoch given to
    ``set_epoch``) visits them in the permutation drawn by numpy's
    ``default_rng([seed, e])``, the same on every run and rank; without, in
    length order. Under ``torch.distributed`` each rank takes every
    ``world_size``-th batch of that order, starting at its rank (the last
    ``len % world_size`` batches are left out so that all ranks step alike).
    """

    def __init__(self, dataset: Any, max_tokens: int, shuffle: bool, seed: int) -> None:
        sizes = np.maximum(dataset.src_sizes, dataset.tgt_sizes)
        if len(sizes) and sizes.max() > max_tokens:
            raise ValueError(
                f"max_tokens={max_tokens} is smaller than the longest sentence of the dataset "
                f"({int(sizes.max())} tokens with </s>); raise max_tokens (or filter the data)"
            )
        batches = dataset.batch_by_size(dataset.ordered_indices(), max_tokens=max_tokens)
        self.batches = [b.tolist() for b in batches]
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.rank, self.world = 0, 1
        if dist.is_available() and dist.is_initialized():
            self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` for the next iteration (to resume mid-training)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.batches) // self.world

    def __iter__(self) -> Iterator[list[int]]:
        order = np.arange(len(self.batches))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.batches))
        self.epoch += 1
        mine = order[: len(self) * self.world][self.rank :: self.world]
        return iter([self.batches[i] for i in mine])


def translation_loader(dataset: Any, max_tokens: int, shuffle: bool, seed: int) -> DataLoader:
    """A DataLoader of fairseq translation batches, batched by tokens (``TokenBatchSampler``).

    ``dataset``: a LanguagePairDataset (``Corpus.dataset``). ``len(loader)``
    is the number of batches (of this rank, under ``torch.distributed``: each
    rank takes every world_size-th batch). With ``shuffle`` the order of the
    batches is redrawn every epoch from ``(seed, epoch)``; the epoch counts
    iterations, or ``loader.batch_sampler.set_epoch(e)`` sets it. Batches are
    ``dataset.collater`` dicts: ``{"id": int64[B], "nsentences": B, "ntokens":
    target tokens, "net_input": {"src_tokens": int64[B, S] (left-padded),
    "src_lengths": int64[B], "prev_output_tokens": int64[B, T]}, "target":
    int64[B, T]}``, sorted by source length (descending) inside the batch.
    """
    sampler = TokenBatchSampler(dataset, max_tokens, shuffle, seed)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collater)
