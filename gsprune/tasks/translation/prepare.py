"""Preparing a translation corpus: one code path for both scales.

``build_corpus`` writes the layout of ``gsprune.tasks.translation.corpus``
from normalized text files (``text.normalize``) of the three splits:

1. sentencepiece (joint, ``model_type`` bpe or unigram, ``vocab_size``) is
   trained on the training text of both languages only, with one thread and a
   fixed random seed (``seed``) so that the model file is byte-identical from
   run to run (two threads are not), ``normalization_rule_name=identity``
   (the text is normalized once, by ``text.normalize``, so ``decode`` inverts
   ``encode`` exactly) and ``hard_vocab_limit=false`` (a tiny corpus may yield
   fewer pieces than asked).
2. Every split is encoded to pieces. Training pairs with an empty side, more
   than ``max_tokens_per_sentence`` pieces on a side, or, when
   ``max_length_ratio`` is set, a longer side more than that many times the
   shorter (in pieces) are dropped; validation and test are kept whole.
3. The fairseq dictionary is the sentencepiece vocabulary (without its
   ``<unk> <s> </s>``) ordered by training count, so no piece outside the
   model enters it (a character sentencepiece leaves unknown maps to
   fairseq's ``<unk>``).
4. fairseq-preprocess (``fairseq_cli.preprocess.main`` with the arguments of
   ``fairseq-preprocess --joined-dictionary --srcdict ... --workers 1
   --dataset-impl mmap``) binarizes the pieces. It runs in this process: the
   task has fairseq loaded already, and a subprocess would spend about 10 s
   importing it again. The log file handler it adds is removed and its
   ``preprocess.log`` (timestamps) deleted with the piece files, so equal
   inputs give byte-identical directories.

``prepare_corpus`` wraps this with a file lock and an atomic rename: parallel
sweep jobs prepare once, and a killed preparation leaves at most a hidden
``.<name>.tmp-*`` directory (removed by the next preparation), never a half
corpus under the final name.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gsprune.checkpoints import file_lock
from gsprune.tasks.base import check_choice, check_number
from gsprune.tasks.translation.corpus import (
    FORMAT_VERSION,
    SPLITS,
    Corpus,
    load_corpus,
    sentencepiece_processor,
)

log = logging.getLogger(__name__)

MODEL_TYPES = ("bpe", "unigram")
ENCODE_CHUNK = 20_000  # sentences encoded per sentencepiece call (bounded memory)

# -- settings -------------------------------------------------------------------------


def resolve_settings(
    settings: Mapping[str, Any] | None, defaults: Mapping[str, Any], what: str
) -> dict[str, Any]:
    """``defaults`` updated by ``settings``, checked; unknown keys or bad values raise ValueError.

    Checks the keys both scales share (``defaults`` may hold more, checked by
    the caller)::

        vocab_size               joint sentencepiece vocabulary size (>= 8)
        model_type               bpe | unigram (bpe trains in seconds, unigram in minutes)
        character_coverage       sentencepiece: fraction of characters kept as pieces
        input_sentence_size      sentencepiece: learn from this many sampled lines (0: all)
        max_tokens_per_sentence  training pairs with a longer side (pieces) are dropped
        max_length_ratio         null, or training pairs with longer/shorter above it dropped
        seed                     sentencepiece's sampling (and the Ding split)

    Only resolved settings enter cache keys, so ``{}`` and the defaults
    written out give the same corpus.
    """
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown {what} setting(s) {', '.join(unknown)}; accepted: {', '.join(defaults)}"
        )
    out = {**defaults, **settings}
    check_number(out["vocab_size"], f"{what}.vocab_size", 8, integer=True)
    check_choice(out["model_type"], f"{what}.model_type", MODEL_TYPES)
    check_number(out["character_coverage"], f"{what}.character_coverage", 0.9)
    if out["character_coverage"] > 1:
        raise ValueError(f"{what}.character_coverage={out['character_coverage']} must be <= 1")
    check_number(out["input_sentence_size"], f"{what}.input_sentence_size", 0, integer=True)
    check_number(out["max_tokens_per_sentence"], f"{what}.max_tokens_per_sentence", 1, integer=True)
    if out["max_length_ratio"] is not None:
        check_number(out["max_length_ratio"], f"{what}.max_length_ratio", 1)
    check_number(out["seed"], f"{what}.seed", 0, integer=True)
    return out


# -- preparation ----------------------------------------------------------------------

# split -> (source file, target file) of normalized text, one sentence a line
TextFiles = Mapping[str, tuple[Path, Path]]


def corpus_key(fingerprint: Mapping[str, Any]) -> str:
    """16 hex digits of sha256 over the JSON of ``fingerprint`` and ``FORMAT_VERSION``."""
    text = json.dumps({"format": FORMAT_VERSION, **fingerprint}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_pairs(src_file: Path, tgt_file: Path, chunk: int) -> Iterator[tuple[list[str], list[str]]]:
    """Aligned lines of two text files in chunks; unequal line counts raise ValueError."""
    with (
        open(src_file, encoding="utf-8", newline="\n") as a,
        open(tgt_file, encoding="utf-8", newline="\n") as b,
    ):
        while True:
            left = [line.rstrip("\n") for line in itertools.islice(a, chunk)]
            right = [line.rstrip("\n") for line in itertools.islice(b, chunk)]
            if len(left) != len(right):
                raise ValueError(
                    f"{src_file} and {tgt_file} have different numbers of lines; "
                    "expected one sentence a line, aligned"
                )
            if not left:
                return
            yield left, right


def train_sentencepiece(
    files: Iterable[Path], model_file: Path, settings: Mapping[str, Any]
) -> None:
    """Train the sentencepiece model ``model_file`` on the lines of ``files`` (docstring, step 1).

    The lines reach the trainer through an iterator and the model comes back
    through a writer, so the model holds no file name (a path in its trainer
    spec would make equal corpora differ by their temporary directory).
    """
    import sentencepiece

    def lines() -> Iterator[str]:
        for path in files:
            with open(path, encoding="utf-8", newline="\n") as handle:
                for line in handle:
                    yield line.rstrip("\n")

    model = io.BytesIO()
    sentencepiece.set_random_generator_seed(int(settings["seed"]))
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=lines(),
        model_writer=model,
        vocab_size=int(settings["vocab_size"]),
        model_type=settings["model_type"],
        character_coverage=float(settings["character_coverage"]),
        input_sentence_size=int(settings["input_sentence_size"]),
        shuffle_input_sentence=True,
        num_threads=1,
        normalization_rule_name="identity",
        hard_vocab_limit=False,
        minloglevel=1,
    )
    model_file.write_bytes(model.getvalue())


def keep_training_pair(n_src: int, n_tgt: int, settings: Mapping[str, Any]) -> str | None:
    """None to keep a training pair of these piece counts, else why it is dropped."""
    if min(n_src, n_tgt) == 0:
        return "empty"
    if max(n_src, n_tgt) > settings["max_tokens_per_sentence"]:
        return "too_long"
    ratio = settings["max_length_ratio"]
    if ratio is not None and max(n_src, n_tgt) > ratio * min(n_src, n_tgt):
        return "ratio"
    return None


def encode_split(
    sp: Any,
    texts: tuple[Path, Path],
    out: Path,
    split: str,
    langs: tuple[str, str],
    settings: Mapping[str, Any],
    counts: np.ndarray | None,
) -> dict[str, int]:
    """Encode one split to ``out/pieces/<split>.<lang>`` and write ``out/<split>.raw.<lang>``.

    Training pairs go through ``keep_training_pair``; ``counts`` (int64 per
    piece id), when given, accumulates the piece counts of the kept pairs.
    Returns the numbers kept and dropped (by reason).
    """
    stats = Counter({"kept": 0})
    names = [f"{split}.raw.{lang}" for lang in langs] + [f"pieces/{split}.{lang}" for lang in langs]
    handles = [open(out / name, "w", encoding="utf-8") for name in names]
    try:
        for lines in read_pairs(*texts, ENCODE_CHUNK):
            ids = [sp.encode(side, out_type=int) for side in lines]
            kept = []
            for k in range(len(lines[0])):
                if split == "train":
                    reason = keep_training_pair(len(ids[0][k]), len(ids[1][k]), settings)
                    if reason:
                        stats[reason] += 1
                        continue
                kept.append(k)
                for j in range(2):
                    handles[j].write(lines[j][k] + "\n")
                    handles[2 + j].write(" ".join(sp.id_to_piece(ids[j][k])) + "\n")
            stats["kept"] += len(kept)
            if counts is not None and kept:
                flat = [i for side in ids for k in kept for i in side[k]]
                counts += np.bincount(flat, minlength=len(counts))
    finally:
        for handle in handles:
            handle.close()
    return dict(stats)


def write_dictionary(sp: Any, counts: np.ndarray, path: Path) -> None:
    """The sentencepiece vocabulary as a fairseq dictionary file (module docstring, step 3)."""
    ids = [i for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i))]
    ids.sort(key=lambda i: (-int(counts[i]), i))
    path.write_text(
        "".join(f"{sp.id_to_piece(i)} {int(counts[i])}\n" for i in ids), encoding="utf-8"
    )


def binarize(work: Path, src: str, tgt: str, dictionary: Path) -> None:
    """fairseq-preprocess of ``work/pieces/{split}.{lang}`` into ``work``, in this process."""
    from fairseq import options
    from fairseq_cli import preprocess

    pieces = work / "pieces"
    argv = [
        "--source-lang", src, "--target-lang", tgt,
        "--trainpref", str(pieces / "train"),
        "--validpref", str(pieces / "valid"),
        "--testpref", str(pieces / "test"),
        "--destdir", str(work),
        "--joined-dictionary", "--srcdict", str(dictionary),
        "--workers", "1", "--dataset-impl", "mmap",
    ]  # fmt: skip
    args = options.get_preprocessing_parser().parse_args(argv)
    logger = logging.getLogger("fairseq_cli.preprocess")
    handlers = list(logger.handlers)
    try:
        preprocess.main(args)
    except (AssertionError, OSError, ValueError) as err:
        raise RuntimeError(f"fairseq-preprocess failed in {work}: {err}") from err
    finally:  # main() adds a FileHandler writing preprocess.log into the corpus
        for handler in set(logger.handlers) - set(handlers):
            logger.removeHandler(handler)
            handler.close()
    (work / "preprocess.log").unlink(missing_ok=True)


def build_corpus(
    work: Path, src: str, tgt: str, texts: TextFiles, settings: Mapping[str, Any]
) -> dict[str, Any]:
    """Prepare the corpus files in ``work`` from normalized text files (module docstring).

    ``texts`` maps each of ``SPLITS`` to its (source, target) text files.
    Returns ``{"counts": {split: sentences}, "filtered": {split: stats},
    "vocab": fairseq dictionary size}``. Raises ValueError when a split ends
    up empty.
    """
    log.info(
        "training sentencepiece (%s, %d pieces)", settings["model_type"], settings["vocab_size"]
    )
    train_sentencepiece(texts["train"], work / "spm.model", settings)
    sp = sentencepiece_processor(work / "spm.model")
    (work / "pieces").mkdir()
    counts = np.zeros(sp.get_piece_size(), dtype=np.int64)
    filtered = {}
    for split in SPLITS:
        log.info("encoding the %s split", split)
        train_counts = counts if split == "train" else None
        filtered[split] = encode_split(
            sp, texts[split], work, split, (src, tgt), settings, train_counts
        )
        if filtered[split]["kept"] == 0:
            raise ValueError(
                f"the {split} split is empty after preparation ({filtered[split]}); "
                f"check the input files {', '.join(map(str, texts[split]))}"
            )
    write_dictionary(sp, counts, work / "pieces" / "dict.txt")
    log.info("binarizing with fairseq-preprocess")
    binarize(work, src, tgt, work / "pieces" / "dict.txt")
    shutil.rmtree(work / "pieces")
    vocab = len(Corpus(work, src, tgt).dictionary())
    return {
        "counts": {s: f["kept"] for s, f in filtered.items()},
        "filtered": filtered,
        "vocab": vocab,
    }


def versions() -> dict[str, str]:
    """Versions of the packages whose output the corpus files are."""
    from importlib.metadata import version

    return {name: version(name) for name in ("sentencepiece", "fairseq-fixed")}


def reusable(target: Path, key: str, src: str, tgt: str) -> Corpus | None:
    """The corpus in ``target`` when it loads and has ``key``, else None (logged)."""
    try:
        corpus = load_corpus(target, src, tgt)
    except (FileNotFoundError, ValueError) as err:
        log.warning("%s; preparing it again", str(err).splitlines()[0])
        return None
    if corpus.meta().get("key") != key:
        log.info("%s was prepared with other inputs or settings; preparing it again", target)
        return None
    return corpus


def prepare_corpus(
    target: Path,
    key: str,
    src: str,
    tgt: str,
    write_texts: Callable[[Path], tuple[TextFiles, Mapping[str, Any]]],
    settings: Mapping[str, Any],
) -> Corpus:
    """The corpus in ``target`` for ``key``: reused when complete, else prepared and renamed in.

    Under a file lock beside ``target`` (parallel jobs prepare once), in a
    temporary directory beside ``target``: ``write_texts(dir)`` writes the
    normalized text files into ``dir`` and returns them with facts for
    meta.json (sources, counts); ``build_corpus`` prepares the rest;
    ``meta.json`` gets ``key``, ``settings``, the counts and those facts;
    ``load_corpus`` checks the result; only then does it replace ``target``.
    A ``target`` that exists, is not empty and holds no ``meta.json`` is not
    ours: ValueError, nothing touched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f".{target.name}.lock"):
        if target.exists():
            if not (target / "meta.json").is_file() and any(target.iterdir()):
                raise ValueError(
                    f"{target} exists and is not a corpus prepared by gsprune (no meta.json); "
                    "choose another output directory or empty it"
                )
            corpus = reusable(target, key, src, tgt)
            if corpus is not None:
                return corpus
        for stale in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale)  # left by a killed preparation (we hold the lock)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            started = time.monotonic()
            texts, meta = write_texts(work / "text")
            built = build_corpus(work, src, tgt, texts, settings)
            shutil.rmtree(work / "text")
            info = {"format": FORMAT_VERSION, "key": key, "src": src, "tgt": tgt}
            info |= {"settings": dict(settings), **built, **meta, "versions": versions()}
            (work / "meta.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
            load_corpus(work, src, tgt)
            work.chmod(0o755)
            old = target.with_name(f".{target.name}.tmp-old")
            if target.exists():
                os.rename(target, old)
            os.rename(work, target)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    log.info("prepared %s in %.0f s: %s", target, time.monotonic() - started, built["counts"])
    return Corpus(target, src, tgt)
