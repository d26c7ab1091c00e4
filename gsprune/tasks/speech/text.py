"""Characters and words of the speech tasks: the CTC alphabet and transcript normalisation.

Both scales transcribe into the LibriSpeech alphabet: a blank (CTC index 0), a
space, the 26 letters and the apostrophe. ``normalize`` maps written English
(the Asterisk prompt transcripts, dictionary sentences) onto it: lower case,
numbers read out as words ("28.8" -> "twenty eight point eight", "1234" ->
"one thousand two hundred thirty four"), a few symbols named ("*" -> "star",
"#" -> "pound"), bracketed notes dropped ("[ascending tones]"), hyphens and
other punctuation turned into spaces.
"""

from __future__ import annotations

import re

BLANK = 0
ALPHABET = " abcdefghijklmnopqrstuvwxyz'"  # index i + 1 in the CTC output
SYMBOLS = {"*": " star ", "#": " pound ", "&": " and ", "%": " percent ", "@": " at "}
ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """An integer 0 <= n < 10**9 as English words (no "and"): 241 -> two hundred forty one."""
    if not 0 <= n < 10**9:
        raise ValueError(f"number_words({n}): accepted 0 <= n < 10**9")
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    for size, name in ((10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            rest = n % size
            head = f"{number_words(n // size)} {name}"
            return head if rest == 0 else f"{head} {number_words(rest)}"
    raise AssertionError("unreachable")


def _number(match: re.Match[str]) -> str:
    whole, _, fraction = match.group(0).partition(".")
    words = number_words(int(whole))
    if fraction:
        words += " point " + " ".join(ONES[int(d)] for d in fraction)
    return f" {words} "


def normalize(text: str) -> str:
    """Written English -> a transcript over ``ALPHABET`` (may be empty); see the module doc."""
    text = re.sub(r"\[[^\]]*\]", " ", text).lower().replace("\u2019", "'")
    for symbol, word in SYMBOLS.items():
        text = text.replace(symbol, word)
    text = re.sub(r"\d+(\.\d+)?", _number, text)
    text = re.sub(r"[^a-z' ]+", " ", text)
    text = re.sub(r"(^|\s)'+|'+(\s|$)", " ", text)  # quotes, not apostrophes inside words
    return " ".join(text.split())


def encode(text: str) -> list[int]:
    """A normalised transcript -> CTC label indices in 1..len(ALPHABET); ValueError otherwise."""
    bad = sorted(set(text) - set(ALPHABET))
    if bad:
        raise ValueError(
            f"transcript {text!r} holds characters {bad} outside the alphabet {ALPHABET!r}; "
            "pass it through gsprune.tasks.speech.text.normalize first"
        )
    return [ALPHABET.index(c) + 1 for c in text]


def decode(labels: list[int]) -> str:
    """Label indices (no blanks) -> text; the inverse of ``encode``."""
    return "".join(ALPHABET[i - 1] for i in labels)
