"""A prepared translation corpus on disk: its layout, the checks, the reader.

Both scales (``task=translation`` from the Ding dictionary, ``task=wmt`` from
WMT16) end in the same directory layout::

    dict.<src>.txt, dict.<tgt>.txt      one joined fairseq dictionary (two equal copies)
    {train,valid,test}.<src>-<tgt>.<lang>.{bin,idx}   fairseq-preprocess output (mmap)
    {train,valid,test}.raw.<lang>       normalized, detokenized text, one sentence a line,
                                        line i = sentence i of the binarized split
    spm.model                           the joint sentencepiece model
    meta.json                           format, key, settings, counts, sources, versions

The files are written by ``gsprune.tasks.translation.prepare.build_corpus``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from fairseq.data import Dictionary, LanguagePairDataset

FORMAT_VERSION = 1  # bump when the layout or the preparation changes meaning
SPLITS = ("train", "valid", "test")


def split_prefix(split: str, src: str, tgt: str, lang: str) -> str:
    """File name stem of one binarized split and language (fairseq-preprocess naming)."""
    return f"{split}.{src}-{tgt}.{lang}"


def load_once(path: Path, load: Callable[[str], Any]) -> Any:
    """``load(str(path))``, cached per file version (path, mtime, size).

    A file that every batch or sentence needs (the dictionary, the
    sentencepiece model) is read once per process until it changes. ``load``
    must be a module-level function (it is part of the cache key); the object
    returned is shared, so callers must not modify it.
    """
    stat = path.stat()
    return _load_cached(load, str(path), stat.st_mtime_ns, stat.st_size)


@cache
def _load_cached(load: Callable[[str], Any], path: str, mtime_ns: int, size: int) -> Any:
    return load(path)


def _read_sentencepiece(path: str):  # -> sentencepiece.SentencePieceProcessor
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=path)


def _read_dictionary(path: str) -> Dictionary:
    from fairseq.data import Dictionary

    return Dictionary.load(path)


def sentencepiece_processor(model_file: Path):  # -> sentencepiece.SentencePieceProcessor
    """The sentencepiece model in ``model_file``, loaded once per file version."""
    return load_once(model_file, _read_sentencepiece)


@dataclass(frozen=True)
class Corpus:
    """A prepared corpus: fairseq-preprocess output + sentencepiece model + raw texts.

    ``root`` holds the layout of this module's docstring; ``src`` and ``tgt``
    are the language codes (the translation direction). Build it with
    ``load_corpus`` (which checks the files) or the ``prepare_*`` functions.
    """

    root: Path
    src: str
    tgt: str

    def meta(self) -> dict[str, Any]:
        """``meta.json``: format, key, src, tgt, settings, counts, sources, versions."""
        return json.loads((self.root / "meta.json").read_text())

    def raw(self, split: str, lang: str) -> list[str]:
        """Normalized, detokenized sentences of one split and language, in binarized order."""
        _check_split_lang(self, split, lang)
        text = (self.root / f"{split}.raw.{lang}").read_text(encoding="utf-8")
        return text.split("\n")[:-1]

    def dictionary(self) -> Dictionary:
        """The joined fairseq dictionary (4 specials ``<s> <pad> </s> <unk>``, then pieces).

        Loaded once per file version (``load_once``; the training loss asks for
        its padding index every step): shared, not to be modified.
        """
        return load_once(self.root / f"dict.{self.src}.txt", _read_dictionary)

    def dataset(self, split: str) -> LanguagePairDataset:
        """The binarized ``split`` as a LanguagePairDataset (src -> tgt, one dictionary).

        Sentences end in ``</s>``; sources are padded on the left, targets on
        the right (fairseq's defaults); ``shuffle=False`` makes
        ``ordered_indices`` deterministic (length order, ties by index), which
        ``translation_loader`` relies on.
        """
        from fairseq.data import LanguagePairDataset, data_utils

        _check_split_lang(self, split, self.src)
        dictionary = self.dictionary()
        sides = [
            data_utils.load_indexed_dataset(
                str(self.root / split_prefix(split, self.src, self.tgt, lang)),
                dictionary,
                dataset_impl="mmap",
            )
            for lang in (self.src, self.tgt)
        ]
        return LanguagePairDataset(
            sides[0],
            sides[0].sizes,
            dictionary,
            sides[1],
            sides[1].sizes,
            dictionary,
            left_pad_source=True,
            left_pad_target=False,
            shuffle=False,
        )

    def decode(self, pieces: str) -> str:
        """A line of space-separated sentencepiece pieces -> detokenized text.

        fairseq's ``<unk>`` decodes to sentencepiece's unknown surface `` ⁇ ``.
        """
        return sentencepiece_processor(self.root / "spm.model").decode(pieces.split())

    def encode(self, text: str) -> str:
        """Normalized text -> a line of space-separated pieces (the inverse of ``decode``)."""
        return " ".join(sentencepiece_processor(self.root / "spm.model").encode(text, out_type=str))


def _check_split_lang(corpus: Corpus, split: str, lang: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is unknown; accepted: {', '.join(SPLITS)}")
    if lang not in (corpus.src, corpus.tgt):
        raise ValueError(
            f"lang={lang!r} is not a language of this corpus ({corpus.src}, {corpus.tgt})"
        )


def required_files(src: str, tgt: str) -> list[str]:
    """The file names a corpus directory must hold."""
    names = ["meta.json", f"dict.{src}.txt", f"dict.{tgt}.txt", "spm.model"]
    for split in SPLITS:
        for lang in (src, tgt):
            stem = split_prefix(split, src, tgt, lang)
            names += [f"{split}.raw.{lang}", f"{stem}.bin", f"{stem}.idx"]
    return names


def read_index(idx: Path, bin_file: Path) -> np.ndarray:
    """Sentence lengths (tokens, with ``</s>``) of a fairseq mmap dataset, checked with its files.

    The ``.idx`` holds the magic ``MMIDIDX\\0\\0``, version 1 (uint64), a dtype
    code (uint8), the count n (uint64), then int32 sizes[n] and int64
    pointers[n]; the ``.bin`` holds sum(sizes) tokens of that dtype. Raises
    ValueError naming the file when the header is not that, the ``.idx`` is
    not 26 + 12 n bytes, the pointers are not the running sums, or the
    ``.bin`` size differs (truncated or corrupt).
    """
    from fairseq.data.indexed_dataset import MMapIndexedDataset, _code_to_dtype

    data = idx.read_bytes()
    magic = MMapIndexedDataset.Index._HDR_MAGIC
    if len(data) < 26 or data[:9] != magic or int.from_bytes(data[9:17], "little") != 1:
        raise ValueError(
            f"{idx} is not a fairseq mmap index (expected the header {magic!r} version 1); "
            "the file is corrupt or was not written by fairseq-preprocess --dataset-impl mmap"
        )
    code, n = data[17], int.from_bytes(data[18:26], "little")
    if code not in _code_to_dtype or len(data) != 26 + 12 * n:
        raise ValueError(
            f"{idx} is truncated or corrupt: its header announces {n} sentences of dtype code "
            f"{code}, which needs {26 + 12 * n} bytes, but the file has {len(data)}"
        )
    sizes = np.frombuffer(data, dtype=np.int32, count=n, offset=26)
    pointers = np.frombuffer(data, dtype=np.int64, count=n, offset=26 + 4 * n)
    itemsize = np.dtype(_code_to_dtype[code]).itemsize
    running = np.concatenate([[0], np.cumsum(sizes.astype(np.int64))[:-1]]) * itemsize
    if n and (sizes.min() < 1 or not np.array_equal(pointers, running)):
        raise ValueError(f"{idx} is corrupt: its sentence sizes and offsets disagree")
    expected = int(sizes.sum(dtype=np.int64)) * itemsize
    if bin_file.stat().st_size != expected:
        raise ValueError(
            f"{bin_file} holds {bin_file.stat().st_size} bytes but its index {idx.name} "
            f"describes {n} sentences in {expected} bytes: the file is truncated or corrupt; "
            "prepare the corpus again"
        )
    return sizes


def count_lines(path: Path) -> int:
    """Number of ``\\n``-terminated lines of a file, read in blocks."""
    count = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 24):
            count += block.count(b"\n")
    return count


def load_corpus(root: str | os.PathLike, src: str, tgt: str, hint: str = "") -> Corpus:
    """Open a prepared corpus after checking every file, before any work.

    Checks: the directory and every file of ``required_files`` exist; meta.json
    is this format's and names the same languages; the two dictionaries are one
    joined dictionary that fairseq loads; the sentencepiece model loads; every
    split's two binarized sides pass ``read_index``, have as many sentences as
    each other, as its raw files have lines and as meta.json records, and no
    split is empty. A failed check raises FileNotFoundError (missing) or
    ValueError (anything else) in one paragraph naming the file and what is
    expected; ``hint`` (say, how to prepare the corpus) ends the message.
    """
    root = Path(root)
    tail = f" {hint}" if hint else ""
    if not root.is_dir():
        raise FileNotFoundError(
            f"translation corpus directory {root} does not exist; expected a directory "
            f"prepared by gsprune (fairseq-preprocess output, spm.model, raw texts).{tail}"
        )
    missing = [name for name in required_files(src, tgt) if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"translation corpus {root} ({src}->{tgt}) lacks {', '.join(missing)}; a prepared "
            f"corpus holds {', '.join(required_files(src, tgt)[:4])} and, for every split, "
            f"<split>.raw.<lang> and <split>.{src}-{tgt}.<lang>.bin/.idx.{tail}"
        )
    try:
        meta = json.loads((root / "meta.json").read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{root / 'meta.json'} is not valid JSON ({err}).{tail}") from err
    if meta.get("format") != FORMAT_VERSION or (meta.get("src"), meta.get("tgt")) != (src, tgt):
        raise ValueError(
            f"{root / 'meta.json'} describes format {meta.get('format')!r} "
            f"{meta.get('src')}->{meta.get('tgt')}; expected format {FORMAT_VERSION} "
            f"{src}->{tgt}: prepare the corpus again.{tail}"
        )
    dict_src, dict_tgt = root / f"dict.{src}.txt", root / f"dict.{tgt}.txt"
    if dict_src.read_bytes() != dict_tgt.read_bytes():
        raise ValueError(f"{dict_src} and {dict_tgt} differ; expected one joined dictionary.{tail}")
    corpus = Corpus(root, src, tgt)
    try:
        corpus.dictionary()
    except Exception as err:  # fairseq raises ValueError/RuntimeError/IndexError for bad lines
        raise ValueError(f"{dict_src} is not a fairseq dictionary ({err}).{tail}") from err
    try:
        sentencepiece_processor(root / "spm.model")
    except Exception as err:  # sentencepiece raises OSError/RuntimeError for a bad model
        raise ValueError(
            f"{root / 'spm.model'} is not a sentencepiece model ({err}).{tail}"
        ) from err
    counts = meta.get("counts", {})
    for split in SPLITS:
        lengths = set()
        for lang in (src, tgt):
            stem = root / split_prefix(split, src, tgt, lang)
            try:
                n = len(
                    read_index(
                        stem.with_name(stem.name + ".idx"), stem.with_name(stem.name + ".bin")
                    )
                )
            except ValueError as err:
                raise ValueError(f"{err}{tail}") from err
            lines = count_lines(root / f"{split}.raw.{lang}")
            if lines != n:
                raise ValueError(
                    f"{root / f'{split}.raw.{lang}'} has {lines} lines but the binarized "
                    f"{split} split has {n} sentences; expected equal counts.{tail}"
                )
            lengths.add(n)
        if len(lengths) != 1 or lengths != {counts.get(split)}:
            raise ValueError(
                f"the {split} split of {root} has {sorted(lengths)} sentences ({src}, {tgt}) "
                f"but meta.json records {counts.get(split)}; the corpus is inconsistent.{tail}"
            )
        if not lengths - {0}:
            raise ValueError(
                f"the {split} split of {root} is empty; a corpus needs sentences in train, "
                f"valid and test.{tail}"
            )
    return corpus
