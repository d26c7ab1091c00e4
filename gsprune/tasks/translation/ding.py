"""Sentence and phrase pairs from the Ding German-English dictionary (Debian ``trans-de-en``).

The file (/usr/share/trans/de-en, UTF-8, about 206k entries) holds one entry a
line, ``Deutsch | Beispiel :: English | example``: the two sides of ``::`` hold
the same number of `` | ``-separated *parts* (a headword, its inflections, then
usage examples), aligned by position. A part lists synonymous *alternatives*
separated by ``;`` and carries annotations. This module turns it into pairs:

1. Parts: lines whose sides hold different numbers of parts are skipped
   (1 of 206,233 entries in the 2023-01-30 file), and so are comment lines
   (``#``).
2. Alternatives: each part is split at ``;`` outside brackets (``{prp; +Dat.}``
   and ``/bu.; bsh./`` stay whole). Pairing: equal counts pair by position (the
   dictionary lists parallel alternatives in the same order); one alternative
   against n pairs it with each of the n (every one of them translates it);
   other unequal counts (m, n > 1, m != n) have no alignment and are dropped
   (25,667 part pairs in that file). Pairing by position only would give
   19,236 sentence pairs instead of 22,318.
3. Annotations (``clean``): ``{f}``/``{vt}``/``{prp; +Dat.}`` (grammar),
   ``[ugs.]``/``[Am.]`` (register, region, domain), ``<Aalmolch>`` (search
   keywords), ``~Scheffel`` (cross references) and `` /IFP/`` (abbreviations)
   are always removed. A parenthesis at the start or the end of an
   alternative is a comment (``(zoologische Familie)``, ``(closing formula)``)
   and is removed with its text; one inside the text marks optional words
   (``I have a feeling (that) it is``, ``Geh(t) mit Gott!``), whose brackets
   are removed and words kept. Whitespace is collapsed and a space left
   before ``. , ? ! ; :`` by a removal is dropped. Then the corpus
   normalization (``text.normalize``: NFKC, so ``…`` becomes ``...``; ASCII
   quotes, so ``It’s`` becomes ``It's``).
4. Sentences (``is_sentence``): both sides start with an upper-case letter, end
   in ``.``, ``?`` or ``!``, hold no placeholder (``PLACEHOLDERS``: sb., sth.,
   etw., jdm., jdn., jds., jd., jmd., with or without the dot, and ``…``/``...``
   fragments) and nothing unbalanced is left of the brackets. There is no
   minimum length (DESIGN's ">= 4 English words" would keep 20,262 of the
   22,318; the median is 7 words). Every other pair with two non-empty sides
   is a *phrase* pair (headwords, inflections, collocations; placeholders
   stay, sth. <-> etw. is consistent).
5. Duplicates are removed (the first occurrence in file order is kept), and a
   pair that is a sentence is never also listed as a phrase. The 2023-01-30
   file gives 22,318 sentence pairs and 532,440 phrase pairs (1.9M words
   against the sentences' 0.33M).

The split (``split_pairs``) groups pairs that share a German or an English
sentence (union-find), so that no sentence appears in two splits, and gives
whole groups to test and validation by a hash of the group's smallest member
(in code-point order) salted with the seed: the same file and settings give
the same split on every machine. Test and validation hold sentence pairs
only; phrase pairs are training data.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from gsprune.tasks.translation.text import normalize

DING_FILE = Path("/usr/share/trans/de-en")

# Placeholder words of the dictionary (English and German pronoun stand-ins)
# and ellipses, which mark sentence fragments ("Sie versuchten, um …").
PLACEHOLDERS = re.compile(r"\b(?:sb|sth|etw|jdm|jdn|jds|jd|jmd|jmdn|jmdm)\b|…|\.\.\.")
# Annotations removed wherever they stand (bracket kinds that never hold text).
_ALWAYS = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|<[^<>]*>")
_CROSS_REFERENCE = re.compile(r"(?<!\S)~\S+")
_ABBREVIATION = re.compile(r"(?<!\S)/[^\s/|][^/|]*?(?<!\s)/(?=[\s;,)]|$)")
_ANNOTATION_CHARS = re.compile(r"[(){}\[\]<>~/]")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,?!;:])")
_BRACKETED = re.compile(r"\([^()]*\)|\{[^{}]*\}|\[[^\[\]]*\]|<[^<>]*>")


@dataclass(frozen=True)
class Pair:
    """One aligned pair: German ``de`` and English ``en`` text (cleaned, non-empty)."""

    de: str
    en: str


@dataclass(frozen=True)
class Extraction:
    """What ``extract`` found: unique sentence pairs and phrase pairs, in file order."""

    sentences: list[Pair]
    phrases: list[Pair]
    lines: int  # dictionary entries read (comment lines excluded)
    skipped_lines: int  # entries whose two sides hold different numbers of parts
    unaligned: int  # part pairs dropped for unequal alternative counts (m, n > 1)


def _mask_brackets(text: str) -> str:
    """``text`` with every bracketed span (and `` /abbr/``) overwritten by NUL, same length."""
    if _ANNOTATION_CHARS.search(text) is None:
        return text
    previous = None
    while previous != text:  # nested brackets: innermost first
        previous = text
        text = _BRACKETED.sub(lambda m: "\0" * len(m.group()), text)
    return _ABBREVIATION.sub(lambda m: "\0" * len(m.group()), text)


def _split_masked(text: str, masked: str, sep: str) -> list[tuple[str, str]]:
    """Split ``text`` and its mask (``_mask_brackets``) at ``sep`` found in the mask."""
    out, start = [], 0
    while (at := masked.find(sep, start)) >= 0:
        out.append((text[start:at], masked[start:at]))
        start = at + len(sep)
    out.append((text[start:], masked[start:]))
    return out


def split_outside_brackets(text: str, sep: str) -> list[str]:
    """Split ``text`` at ``sep`` where no bracket (``( [ { <`` or `` /…/``) is open.

    Unbalanced brackets count as text.
    """
    return [piece for piece, _ in _split_masked(text, _mask_brackets(text), sep)]


def _strip_edge_parentheses(text: str) -> str:
    """Remove parenthesised comments at the start and the end of ``text`` (repeatedly)."""
    while True:
        text = text.strip()
        if text.startswith("("):
            end = _matching(text, 0)
            if end < 0:
                return text
            text = text[end + 1 :]
        elif text.endswith(")"):
            start = _matching_backwards(text, len(text) - 1)
            if start < 0:
                return text
            text = text[:start]
        else:
            return text


def _matching(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return -1


def _matching_backwards(text: str, close_at: int) -> int:
    depth = 0
    for i in range(close_at, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return -1


def clean(text: str) -> str:
    """One alternative without its annotations (module docstring, step 3)."""
    if _ANNOTATION_CHARS.search(text) is None:
        return " ".join(text.split())
    previous = None
    while previous != text:  # nested annotations: innermost first
        previous, text = text, _ALWAYS.sub(" ", text)
    text = _ABBREVIATION.sub(" ", _CROSS_REFERENCE.sub(" ", text))
    text = _strip_edge_parentheses(" ".join(text.split()))
    text = text.replace("(", "").replace(")", "")
    return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(text.split()))


def is_sentence(text: str) -> bool:
    """A full sentence: upper-case start, ``. ? !`` end, no placeholder, no bracket left."""
    return (
        len(text) > 1
        and text[0].isupper()
        and text[-1] in ".?!"
        and PLACEHOLDERS.search(text) is None
        and not any(ch in text for ch in "()[]{}<>")
    )


def align_alternatives(de: Sequence[str], en: Sequence[str]) -> list[tuple[str, str]] | None:
    """Pair two alternative lists (step 2): by position, one-to-many, or None (no alignment)."""
    if len(de) == len(en):
        return list(zip(de, en, strict=True))
    if len(de) == 1:
        return [(de[0], e) for e in en]
    if len(en) == 1:
        return [(d, en[0]) for d in de]
    return None


def parse_line(line: str) -> Iterator[tuple[str, str] | None]:
    """The aligned (German, English) alternatives of one entry, uncleaned.

    Yields None for each part pair whose alternatives cannot be aligned.
    Raises ValueError for a line that is not ``de :: en`` with equal part counts.
    """
    line = line.rstrip("\n")
    sides = _split_masked(line, _mask_brackets(line), " :: ")
    if len(sides) != 2:
        raise ValueError(f"not a 'Deutsch :: English' entry: {line[:80]!r}")
    de_parts, en_parts = (_split_masked(*side, " | ") for side in sides)
    if len(de_parts) != len(en_parts):
        raise ValueError(f"{len(de_parts)} German parts but {len(en_parts)} English parts")
    for de_part, en_part in zip(de_parts, en_parts, strict=True):
        de_alts = [a for a, _ in _split_masked(*de_part, ";") if a.strip()]
        en_alts = [a for a, _ in _split_masked(*en_part, ";") if a.strip()]
        aligned = align_alternatives(de_alts, en_alts)
        if aligned is None:
            yield None
            continue
        yield from aligned


def extract(lines: Iterable[str], limit: int | None = None) -> Extraction:
    """Sentence and phrase pairs of the dictionary ``lines`` (module docstring, steps 1-5).

    Texts are ``clean``-ed, then ``normalize``-d (the corpus normalization:
    ’ becomes '). With ``limit``, reading stops after the entry that brings
    the sentence pairs to ``limit`` (they are cut to ``limit``); the phrases
    are those of the entries read.
    """
    sentences: dict[Pair, None] = {}
    phrases: dict[Pair, None] = {}
    count = skipped = unaligned = 0
    for line in lines:
        if limit is not None and len(sentences) >= limit:
            break
        if not line.strip() or line.startswith("#"):
            continue
        count += 1
        try:
            aligned = list(parse_line(line))
        except ValueError:
            skipped += 1
            continue
        for item in aligned:
            if item is None:
                unaligned += 1
                continue
            pair = Pair(normalize(clean(item[0])), normalize(clean(item[1])))
            if not pair.de or not pair.en:
                continue
            if is_sentence(pair.de) and is_sentence(pair.en):
                sentences[pair] = None
            else:
                phrases[pair] = None
    phrase_list = [p for p in phrases if p not in sentences]
    return Extraction(list(sentences)[:limit], phrase_list, count, skipped, unaligned)


def read_ding(path: str | os.PathLike = DING_FILE) -> list[str]:
    """The dictionary's lines; a missing or non-UTF-8 file raises a one-paragraph error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"the Ding dictionary {path} is missing; the embedded translation task reads it "
            "from the Debian package trans-de-en (apt.txt; `make install` installs it)"
        )
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not UTF-8 text ({err}); expected the trans-de-en file"
        ) from err


# -- split ------------------------------------------------------------------------


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def group_pairs(pairs: Sequence[Pair]) -> list[list[int]]:
    """Indices of ``pairs`` grouped so that pairs sharing a German or English text are together.

    Union-find over the pairs, joined through their German and their English
    texts. Groups are lists of indices in increasing order, returned in the
    order of their first index.
    """
    parent = list(range(len(pairs)))
    first_with: dict[tuple[str, str], int] = {}
    for i, pair in enumerate(pairs):
        for key in (("de", pair.de), ("en", pair.en)):
            j = first_with.setdefault(key, i)
            a, b = _find(parent, i), _find(parent, j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(len(pairs)):
        groups.setdefault(_find(parent, i), []).append(i)
    return list(groups.values())


def group_rank(pairs: Sequence[Pair], group: Sequence[int], seed: int) -> bytes:
    """The sort key of a group: sha256 of the seed and its smallest member (de, then en)."""
    smallest = min((pairs[i].de, pairs[i].en) for i in group)
    return hashlib.sha256(f"{seed}\n{smallest[0]}\n{smallest[1]}".encode()).digest()


def first_per_source(pairs: Sequence[Pair], group: Sequence[int]) -> list[int]:
    """The indices of ``group`` whose German text has not occurred earlier in it."""
    seen: set[str] = set()
    out = []
    for i in group:
        if pairs[i].de not in seen:
            seen.add(pairs[i].de)
            out.append(i)
    return out


def split_pairs(
    sentences: Sequence[Pair], valid_size: int, test_size: int, seed: int
) -> dict[str, list[Pair]]:
    """Deterministic ``{"train", "valid", "test"}`` split of the sentence pairs.

    Groups (``group_pairs``) are ordered by ``group_rank``; test takes whole
    groups from the front until it holds ``test_size`` pairs or more, then
    validation likewise, the rest is training data. Test and validation keep
    one pair per German sentence (the first in file order; a model gives one
    output per source), the other pairs of that sentence are dropped, never
    moved to training. A split's pairs keep file order. No German or English
    sentence occurs in two splits. Raises ValueError when the sentences cannot
    fill test and validation and leave training data.
    """
    groups = group_pairs(sentences)
    groups.sort(key=lambda g: group_rank(sentences, g, seed))
    chosen: dict[str, list[int]] = {"test": [], "valid": [], "train": []}
    wanted = {"test": test_size, "valid": valid_size}
    for group in groups:
        name = next((n for n in ("test", "valid") if len(chosen[n]) < wanted[n]), "train")
        if name != "train":
            group = first_per_source(sentences, group)
        chosen[name].extend(group)
    if not chosen["train"] or any(len(chosen[n]) < wanted[n] for n in wanted):
        raise ValueError(
            f"{len(sentences)} sentence pairs cannot fill test_size={test_size} and "
            f"valid_size={valid_size} and leave training pairs; lower the two sizes "
            "(or raise `limit`)"
        )
    return {name: [sentences[i] for i in sorted(idx)] for name, idx in chosen.items()}
