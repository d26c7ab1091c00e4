# ruff: noqa: E501  (the sample holds dictionary entries in their real one-line format)
"""Extraction of sentence and phrase pairs from the Ding dictionary, and the split."""

from __future__ import annotations

import pytest

from gsprune.tasks.translation import ding
from gsprune.tasks.translation.ding import Pair

from .conftest import needs_ding

# Entries in the real line format (some copied from the 2023-01-30 file, some
# made up to reach a case): what each yields is listed in EXPECTED_*.
SAMPLE = """\
# Version :: devel 2023-01-30
Abhilfe {f}; Gegenmittel {n} [Schw.] (gegen etw.) | Möglichkeiten der Abhilfe | Um diese Probleme zu lösen, gibt es kein einfaches Rezept. | Da ist noch nicht alles verloren.; Da ist noch Abhilfe möglich. :: remedy (for sth.) | remedies | These problems do not have a simple remedy. | He / It is not without remedy.
Ahnung {f} | Ich habe keine Ahnung. | Ich habe den Verdacht, dass …; Ich denke mir, dass … | Hast du eine Ahnung, wo er sein könnte? :: notion | I have no idea. | I have a notion that … | Have you any idea where he could be?; Have you an idea where he could be?
Absicht {f} | in der Absicht, etw. zu tun | Das war nicht meine Absicht. | Er tut jdm. etw. an. :: intention | with the intention of doing sth. | Such was not my intention. | He does sth. to sb.
Alles Gute! (Schlussformel) | Alles Gute!; Viel Glück!; Gott befohlen! [geh.] | Ich wünsche dir viel Glück. :: All the best! (closing formula) | All the best!; Good luck! | I wish you good luck.
Bushel {m} (Raummaß) ~Scheffel | ein Bushel Weizen :: bushel /bu.; bsh./ | a bushel of wheat
Geh(t) mit Gott! [relig.] :: Go with God!
Kuss auf den Mund. (Chat-Jargon) :: Kiss on the lips. /KOTL/ (chat jargon)
kaputt | Es ist kaputt. :: broken
Ahnung {f} | Ich habe keine Ahnung. :: idea | I have no idea.
Es ist nicht meins. | Das geht dich nichts an! :: It’s not mine. | That’s none of your business!
"""

EXPECTED_SENTENCES = [
    ("Um diese Probleme zu lösen, gibt es kein einfaches Rezept.", "These problems do not have a simple remedy."),
    ("Da ist noch nicht alles verloren.", "He / It is not without remedy."),
    ("Da ist noch Abhilfe möglich.", "He / It is not without remedy."),
    ("Ich habe keine Ahnung.", "I have no idea."),
    ("Hast du eine Ahnung, wo er sein könnte?", "Have you any idea where he could be?"),
    ("Hast du eine Ahnung, wo er sein könnte?", "Have you an idea where he could be?"),
    ("Das war nicht meine Absicht.", "Such was not my intention."),
    ("Alles Gute!", "All the best!"),
    ("Ich wünsche dir viel Glück.", "I wish you good luck."),
    ("Geht mit Gott!", "Go with God!"),
    ("Kuss auf den Mund.", "Kiss on the lips."),
    ("Es ist nicht meins.", "It's not mine."),
    ("Das geht dich nichts an!", "That's none of your business!"),
]  # fmt: skip

EXPECTED_PHRASES = [
    ("Abhilfe", "remedy"),
    ("Gegenmittel", "remedy"),
    ("Möglichkeiten der Abhilfe", "remedies"),
    ("Ahnung", "notion"),
    ("Ich habe den Verdacht, dass ...", "I have a notion that ..."),
    ("Ich denke mir, dass ...", "I have a notion that ..."),
    ("Absicht", "intention"),
    ("in der Absicht, etw. zu tun", "with the intention of doing sth."),
    ("Er tut jdm. etw. an.", "He does sth. to sb."),
    ("Bushel", "bushel"),
    ("ein Bushel Weizen", "a bushel of wheat"),
    ("Ahnung", "idea"),
]


def test_extract_sample_counts_splits_and_strips_annotations():
    found = ding.extract(SAMPLE.splitlines())
    assert [(p.de, p.en) for p in found.sentences] == EXPECTED_SENTENCES
    assert [(p.de, p.en) for p in found.phrases] == EXPECTED_PHRASES
    assert found.lines == 10  # the comment line is not an entry
    assert found.skipped_lines == 1  # "kaputt | Es ist kaputt. :: broken": 2 parts against 1
    assert found.unaligned == 1  # 3 German alternatives against 2 English ones


def test_extract_limit_stops_at_n_sentences():
    found = ding.extract(SAMPLE.splitlines(), limit=4)
    assert [(p.de, p.en) for p in found.sentences] == EXPECTED_SENTENCES[:4]
    # reading stopped after the second entry: only its phrases and the first entry's
    assert [(p.de, p.en) for p in found.phrases] == EXPECTED_PHRASES[:6]


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("Geh(t) mit Gott! [relig.]", "Geht mit Gott!"),
        ("I have a feeling (that) this time will be different.", "I have a feeling that this time will be different."),
        ("Kiss on the lips. /KOTL/ (chat jargon)", "Kiss on the lips."),
        ("Er hatte 1,5 Promille. [ugs.]", "Er hatte 1,5 Promille."),
        ("(zu einer Sache) einen Abstand aufweisen {v}", "einen Abstand aufweisen"),
        ("Aalmolche {pl} (Amphiuma) (zoologische Gattung) [zool.] <Aalmolch>", "Aalmolche"),
        ("eel trap; weel [archaic] <weely>", "eel trap; weel"),
        ("Sprachaufenthalt {m} ~Sprachreise", "Sprachaufenthalt"),
        ("wegen {prp; +Gen.}", "wegen"),
        ("Wie viele (Personen) sind Sie? (Platzreservierung)", "Wie viele Personen sind Sie?"),
        ("comes/arrives", "comes/arrives"),
    ],
)  # fmt: skip
def test_clean_removes_annotations_and_keeps_optional_words(raw, cleaned):
    assert ding.clean(raw) == cleaned


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("Ich habe keine Ahnung.", True),
        ("Hast du eine Ahnung?", True),
        ("Keine Ahnung!", True),
        ("Ärger ist vorprogrammiert.", True),
        ("ich habe keine Ahnung.", False),  # lower-case start
        ("Ich habe keine Ahnung", False),  # no final punctuation
        ("Sie versuchten ihr Möglichstes, um …", False),  # fragment
        ("Sie versuchten, um ... zu helfen.", False),
        ("Er gab es jdm. zurück.", False),
        ("Gib es jdn. zurück.", False),
        ("That is sb.'s problem.", False),
        ("He did sth. wrong.", False),
        ("Er tut etw. Gutes.", False),
        ("I think so.", True),  # "so." is a word here, no placeholder
        ("He asked (why.", False),  # a bracket left over
    ],
)
def test_is_sentence(text, sentence):
    assert ding.is_sentence(text) is sentence


def test_split_outside_brackets_keeps_annotations_whole():
    text = "wegen {prp; +Gen.}; bushel /bu.; bsh./; (a; b) c"
    assert ding.split_outside_brackets(text, ";") == [
        "wegen {prp; +Gen.}",
        " bushel /bu.; bsh./",
        " (a; b) c",
    ]


def test_align_alternatives():
    assert ding.align_alternatives(["a", "b"], ["x", "y"]) == [("a", "x"), ("b", "y")]
    assert ding.align_alternatives(["a"], ["x", "y"]) == [("a", "x"), ("a", "y")]
    assert ding.align_alternatives(["a", "b"], ["x"]) == [("a", "x"), ("b", "x")]
    assert ding.align_alternatives(["a", "b", "c"], ["x", "y"]) is None


def make_pairs(n: int) -> list[Pair]:
    """n sentence pairs where every 5th shares its German text and every 7th its English."""
    pairs = []
    for i in range(n):
        de = f"Satz {i - 1}." if i % 5 == 4 else f"Satz {i}."
        en = f"Sentence {i - 1}." if i % 7 == 6 else f"Sentence {i}."
        pairs.append(Pair(de, en))
    return pairs


def assert_disjoint(splits: dict[str, list[Pair]]) -> None:
    for a in splits:
        for b in splits:
            if a < b:
                assert not {p.de for p in splits[a]} & {p.de for p in splits[b]}, (a, b)
                assert not {p.en for p in splits[a]} & {p.en for p in splits[b]}, (a, b)


def test_group_pairs_joins_shared_sides():
    pairs = [
        Pair("A.", "X."),
        Pair("B.", "Y."),
        Pair("A.", "Z."),
        Pair("C.", "Z."),
        Pair("D.", "W."),
    ]
    assert ding.group_pairs(pairs) == [[0, 2, 3], [1], [4]]


def test_split_pairs_is_deterministic_disjoint_and_sized():
    pairs = make_pairs(400)
    splits = ding.split_pairs(pairs, valid_size=40, test_size=60, seed=0)
    assert splits == ding.split_pairs(list(pairs), valid_size=40, test_size=60, seed=0)
    assert_disjoint(splits)
    assert 60 <= len(splits["test"]) <= 62 and 40 <= len(splits["valid"]) <= 42
    for name in ("valid", "test"):  # one pair per German sentence in evaluation splits
        assert len({p.de for p in splits[name]}) == len(splits[name])
    kept = {p for split in splits.values() for p in split}
    dropped = set(pairs) - kept
    assert all(any(p.de == q.de for q in splits["test"] + splits["valid"]) for p in dropped)
    assert splits["train"] == [p for p in pairs if p in set(splits["train"])]  # file order
    other = ding.split_pairs(pairs, valid_size=40, test_size=60, seed=1)
    assert other["test"] != splits["test"]


def test_split_pairs_too_few_sentences():
    with pytest.raises(ValueError, match="cannot fill test_size=60 and valid_size=40"):
        ding.split_pairs(make_pairs(90), valid_size=40, test_size=60, seed=0)


def test_read_ding_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="trans-de-en"):
        ding.read_ding(tmp_path / "de-en")


# -- the real dictionary --------------------------------------------------------------


@pytest.fixture(scope="module")
def real():
    return ding.extract(ding.read_ding())


@needs_ding
@pytest.mark.slow
def test_real_dictionary_counts_and_no_placeholders(real):
    # 2023-01-30 file (trans-de-en 1.9-6): 22,318 sentence pairs, 532,444 phrase pairs
    assert 20_000 <= len(real.sentences) <= 25_000
    assert 450_000 <= len(real.phrases) <= 600_000
    assert real.skipped_lines <= 10
    for pair in real.sentences:
        for text in (pair.de, pair.en):
            assert ding.is_sentence(text), pair
            assert ding.PLACEHOLDERS.search(text) is None, pair
            assert not any(ch in text for ch in "{}[]<>~’"), pair
    assert len(set(real.sentences)) == len(real.sentences)
    assert not set(real.sentences) & set(real.phrases)


@needs_ding
@pytest.mark.slow
def test_real_dictionary_split_is_deterministic_and_disjoint(real):
    splits = ding.split_pairs(real.sentences, valid_size=500, test_size=1500, seed=0)
    again = ding.split_pairs(list(real.sentences), valid_size=500, test_size=1500, seed=0)
    assert splits == again
    assert_disjoint(splits)
    assert 1500 <= len(splits["test"]) <= 1550 and 500 <= len(splits["valid"]) <= 550
    assert len(splits["train"]) >= len(real.sentences) - 2500
