"""The raw WMT16 English-German files as users have them, read into normalized text.

gsprune never downloads them. From the WMT16 news task site (statmt.org/wmt16)
the training archives and the development archive unpack to (any folder
depth below RAW_DIR; the names are what counts):

    europarl-v7.de-en.{de,en}            training-parallel-europarl-v7.tgz
    commoncrawl.de-en.{de,en}            training-parallel-commoncrawl.tgz
    news-commentary-v11.de-en.{de,en}    training-parallel-nc-v11.tgz
    newstest2015-ende-{src,ref}.{en,de}.sgm    dev.tgz: validation
    newstest2014-deen-{src,ref}.{en,de}.sgm    dev.tgz: test

The two newstest sets may also be plain text, one sentence a line
(``newstest2014.en``, ``newstest2014.de``; sacrebleu's ``--echo`` writes
them); for each language the first of ``eval_candidates`` found is used.
SGML files hold one ``<seg id="n">text</seg>`` a line; the text between the
tags is HTML-unescaped (``&amp;`` -> ``&``).

Every line goes through ``text.normalize``. Training pairs with an empty side
(after normalization) are dropped; validation and test are kept whole, in
file order, so that line i of ``test.raw.de`` is the reference of newstest2014
sentence i.
"""

from __future__ import annotations

import html
import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path

from gsprune.tasks.translation.text import normalize

LANGS = ("de", "en")
TRAINING = ("europarl-v7", "commoncrawl", "news-commentary-v11")
VALID_SET, TEST_SET = "newstest2015", "newstest2014"
_SEG = re.compile(r"<seg\b[^>]*>(.*)</seg>", re.IGNORECASE)


def eval_candidates(name: str, lang: str) -> list[str]:
    """File names that may hold newstest set ``name`` in ``lang``, in order of preference."""
    sgm = [
        f"{name}-{pair}-{role}.{lang}.sgm" for pair in ("ende", "deen") for role in ("src", "ref")
    ]
    return [f"{name}.{lang}", *sgm]


def find_raw_files(raw_dir: str | os.PathLike) -> dict[str, dict[str, Path]]:
    """``{corpus or newstest set: {lang: path}}`` of the files under ``raw_dir``.

    Looks at every file below ``raw_dir`` by name (several copies of a name:
    the one nearest ``raw_dir``, then in path order). Raises FileNotFoundError
    in one paragraph naming every missing file and where to get it, and
    ValueError for an empty file or two files of one set with different
    sentence counts (a quick pass that counts lines), before any other work.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise FileNotFoundError(
            f"the WMT16 raw directory {raw_dir} does not exist; expected a folder holding "
            "the unpacked WMT16 English-German training and newstest files (see "
            "scripts/prepare_wmt16.py)"
        )
    by_name: dict[str, Path] = {}
    for path in sorted(raw_dir.rglob("*"), key=lambda p: (len(p.parts), str(p))):
        if path.is_file():
            by_name.setdefault(path.name, path)
    found: dict[str, dict[str, Path]] = {}
    missing = []
    for corpus in TRAINING:
        for lang in LANGS:
            name = f"{corpus}.de-en.{lang}"
            if name in by_name:
                found.setdefault(corpus, {})[lang] = by_name[name]
            else:
                missing.append(name)
    for name in (VALID_SET, TEST_SET):
        for lang in LANGS:
            hit = next((by_name[c] for c in eval_candidates(name, lang) if c in by_name), None)
            if hit is None:
                missing.append(f"{name}.{lang} (or {name}-*-{{src,ref}}.{lang}.sgm)")
            else:
                found.setdefault(name, {})[lang] = hit
    if missing:
        raise FileNotFoundError(
            f"{raw_dir} lacks the WMT16 English-German files {', '.join(missing)}. Unpack the "
            "WMT16 news-task archives there: training-parallel-europarl-v7.tgz, "
            "training-parallel-commoncrawl.tgz, training-parallel-nc-v11.tgz (training) and "
            "dev.tgz (newstest2015 for validation, newstest2014 for test, as .sgm or plain "
            "text); gsprune downloads nothing"
        )
    empty = [str(p) for files in found.values() for p in files.values() if p.stat().st_size == 0]
    if empty:
        raise ValueError(f"empty WMT16 file(s): {', '.join(empty)}; expected text")
    for files in found.values():
        counts = {lang: count_sentences(path) for lang, path in files.items()}
        if len(set(counts.values())) != 1:
            listing = ", ".join(f"{files[lang]} ({n})" for lang, n in counts.items())
            raise ValueError(
                f"WMT16 files hold different numbers of sentences: {listing}; expected "
                "aligned files (one sentence a line, or one <seg> a line)"
            )
    return found


def count_sentences(path: Path) -> int:
    """Sentences in a raw file: ``<seg>`` lines of an .sgm file, else lines (read in blocks)."""
    if path.suffix == ".sgm":
        return sum(1 for _ in read_lines(path))
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(1 << 24):
            count, last = count + block.count(b"\n"), block[-1:]
    return count + (last != b"\n")


def read_lines(path: Path) -> Iterator[str]:
    """Sentences of a plain or SGML file, not yet normalized.

    Lines split at ``\\n`` only (a stray ``\\r`` inside a sentence is white
    space, not a line end); undecodable bytes become U+FFFD. For ``.sgm``
    files, only the ``<seg>`` lines, their text unescaped.
    """
    with open(path, encoding="utf-8", errors="replace", newline="\n") as handle:
        if path.suffix != ".sgm":
            for line in handle:
                yield line.rstrip("\n")
            return
        for line in handle:
            seg = _SEG.search(line)
            if seg:
                yield html.unescape(seg.group(1))


def write_pairs(
    files: list[tuple[Path, Path]], out: tuple[Path, Path], drop_empty: bool
) -> dict[str, int]:
    """Normalize the aligned lines of each (source, target) file pair, append them to ``out``.

    Returns ``{"pairs": read, "empty": dropped}``; files of unequal sentence
    counts raise ValueError naming them.
    """
    stats = {"pairs": 0, "empty": 0}
    with open(out[0], "a", encoding="utf-8") as a, open(out[1], "a", encoding="utf-8") as b:
        for src_file, tgt_file in files:
            for left, right in itertools.zip_longest(read_lines(src_file), read_lines(tgt_file)):
                if left is None or right is None:
                    raise ValueError(
                        f"{src_file} and {tgt_file} hold different numbers of sentences; "
                        "expected aligned files (one sentence a line, or one <seg> a line)"
                    )
                stats["pairs"] += 1
                left, right = normalize(left), normalize(right)
                if drop_empty and not (left and right):
                    stats["empty"] += 1
                    continue
                a.write(left + "\n")
                b.write(right + "\n")
    return stats
