"""Transcripts: normalisation to the CTC alphabet, number words, the prompt transcript file."""

from __future__ import annotations

import gzip

import pytest

from gsprune.tasks.speech.sources import read_prompt_transcripts
from gsprune.tasks.speech.text import ALPHABET, decode, encode, normalize, number_words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (241, "two hundred forty one"),
        (1234, "one thousand two hundred thirty four"),
        (2_000_005, "two million five"),
    ],
)
def test_number_words(n, words):
    assert number_words(n) == words


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        (
            "Please press 1 to mute or unmute yourself.",
            "please press one to mute or unmute yourself",
        ),
        ("at a 28.8 kilobit modem", "at a twenty eight point eight kilobit modem"),
        ("press * to toggle, press # to enter", "press star to toggle press pound to enter"),
        ("[ascending tones]", ""),
        ("dash [-]", "dash"),
        ("exclaimation-point", "exclaimation point"),
        ("You're 'quoted' here", "you're quoted here"),
        ("I don\u2019t know.", "i don't know"),
        ("A.M.", "a m"),
    ],
)
def test_normalize(written, spoken):
    assert normalize(written) == spoken


def test_encode_decode_round_trip_and_bad_characters():
    text = "press one to don't"
    labels = encode(text)
    assert min(labels) >= 1 and max(labels) <= len(ALPHABET)
    assert decode(labels) == text
    with pytest.raises(ValueError, match="outside the alphabet"):
        encode("Press 1")


def test_prompt_transcripts_parse_comments_blank_lines_and_brackets(tmp_path):
    path = tmp_path / "sounds.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("; Core Asterisk Sounds in English\n\ndigits/7: seven\nbeep: [a beep]\n")
        handle.write("vm-INBOX: new\nconf-usermenu: Press 1 to mute: or not.\n")
    parsed = read_prompt_transcripts(path)
    assert parsed == {
        "digits/7": "seven",
        "beep": "[a beep]",
        "vm-INBOX": "new",
        "conf-usermenu": "Press 1 to mute: or not.",
    }
    bad = tmp_path / "bad.txt"
    bad.write_text("digits/7: seven\nno separator here\n")
    with pytest.raises(ValueError, match=r"bad\.txt, line 2: 'no separator here'"):
        read_prompt_transcripts(bad)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_prompt_transcripts(tmp_path / "missing.txt")


def test_installed_prompt_transcripts_all_normalise():
    """Every line of the installed file parses; only bracketed notes normalise to nothing."""
    from gsprune.tasks.speech.corpus import CORPUS_DEFAULTS

    path = CORPUS_DEFAULTS["transcripts"]
    try:
        parsed = read_prompt_transcripts(path)
    except FileNotFoundError:
        pytest.skip(f"{path} is absent: install asterisk-core-sounds-en (apt.txt)")
    assert len(parsed) > 550
    empty = sorted(name for name, text in parsed.items() if not normalize(text))
    assert all(parsed[name].startswith("[") for name in empty) and len(empty) <= 10
