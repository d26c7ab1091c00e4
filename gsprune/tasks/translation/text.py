"""Text normalization shared by both translation scales (Ding and WMT16)."""

from __future__ import annotations

import unicodedata

# Quotation marks folded to ASCII (after NFKC): the Ding file writes ’ for the
# apostrophe, WMT text mixes ' ’ ‘ and " “ ” „ « » freely.
QUOTES = str.maketrans(
    {
        "\u2018": "'",  # ‘ left single quotation mark
        "\u2019": "'",  # ’ right single quotation mark, apostrophe
        "\u201a": "'",  # ‚ single low-9 quotation mark
        "\u201b": "'",  # ‛ single high-reversed-9 quotation mark
        "\u201c": '"',  # “ left double quotation mark
        "\u201d": '"',  # ” right double quotation mark
        "\u201e": '"',  # „ double low-9 quotation mark
        "\u201f": '"',  # ‟ double high-reversed-9 quotation mark
        "\u00ab": '"',  # « left-pointing double angle quotation mark
        "\u00bb": '"',  # » right-pointing double angle quotation mark
    }
)
# Characters removed outright: zero-width and direction marks, soft hyphen, BOM.
INVISIBLE = str.maketrans(dict.fromkeys("\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"))


def normalize(text: str) -> str:
    """The one text normalization of both scales (idempotent).

    In this order: ``INVISIBLE`` characters and control characters (category
    Cc, other than white space) removed; Unicode NFKC; the quotation marks of
    ``QUOTES`` to ASCII ``'`` and ``"``; every run of white space
    (``str.split``: also tabs, NBSP, U+2028) becomes one space, none leading
    or trailing. The result holds no line break, so a line of a ``.raw`` file
    is exactly one sentence.
    """
    text = text.translate(INVISIBLE)
    if not text.isprintable():
        text = "".join(c for c in text if c.isspace() or unicodedata.category(c) != "Cc")
    text = unicodedata.normalize("NFKC", text).translate(QUOTES)
    return " ".join(text.split())
