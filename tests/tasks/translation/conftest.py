"""Shared fixtures of the translation data tests: one small prepared Ding corpus.

The corpus is real (the first 300 sentence pairs of the installed Ding
dictionary with the phrase pairs of the entries read, a 400-piece
sentencepiece model, fairseq-preprocess) and prepared once per session
(about 15 s on two cores); tests that damage it work on a copy.
"""

from __future__ import annotations

import html
import importlib.util
import shutil
from pathlib import Path

import pytest

from gsprune.tasks.translation import ding
from gsprune.tasks.translation.ding import DING_FILE

REPO = Path(__file__).resolve().parents[3]
SMALL = {"limit": 300, "valid_size": 30, "test_size": 50, "vocab_size": 400}

needs_ding = pytest.mark.skipif(
    not DING_FILE.is_file(),
    reason=f"{DING_FILE} is absent: install the Debian package trans-de-en "
    "(bash scripts/install_apt.sh apt.txt)",
)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """A prepared Ding corpus (``SMALL`` settings), shared read-only by the session."""
    from gsprune.tasks.translation.data import prepare_ding

    if not DING_FILE.is_file():
        pytest.skip(f"{DING_FILE} is absent (Debian package trans-de-en)")
    return prepare_ding(DING_FILE, tmp_path_factory.mktemp("ding-cache"), SMALL)


@pytest.fixture
def corpus_copy(small_corpus, tmp_path) -> Path:
    """A private copy of ``small_corpus``'s directory, for tests that damage files."""
    return Path(shutil.copytree(small_corpus.root, tmp_path / "corpus"))


# -- the raw WMT16 layout (test_wmt16, test_translation_task) -----------------------


def load_script():
    spec = importlib.util.spec_from_file_location(
        "prepare_wmt16", REPO / "scripts/prepare_wmt16.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def write_sgm(path: Path, lines: list[str], setid: str, role: str, lang: str) -> None:
    kind = {"src": "srcset", "ref": "refset"}[role]
    head = [
        f'<{kind} setid="{setid}" srclang="any" trglang="{lang}">',
        '<doc sysid="ref" docid="1">',
    ]
    segs = [
        f'<seg id="{i}">{html.escape(line, quote=True)}</seg>' for i, line in enumerate(lines, 1)
    ]
    write(path, [*head, "<p>", *segs, "</p>", "</doc>", f"</{kind}>"])


@pytest.fixture(scope="module")
def sentences() -> dict[str, list[str]]:
    pairs = ding.extract(ding.read_ding(), limit=420).sentences
    en, de = [p.en for p in pairs], [p.de for p in pairs]
    # dirt that normalization removes
    en[3] = en[3].replace("'", "\u2019")
    de[5] = de[5].replace(" ", "\u00a0", 1)
    de[160] = de[160].replace(" ", "\r", 1)
    de[400] = f"\u201e{de[400]}\u201c"
    en[401] = f'"{en[401]}" & more'
    return {"en": en, "de": de}


@pytest.fixture(scope="module")
def raw_sgm(tmp_path_factory, sentences) -> Path:
    """The WMT16 layout with .sgm newstest files; an empty line pair in Europarl."""
    raw = tmp_path_factory.mktemp("wmt16-raw")
    spans = {
        "training/europarl-v7": (0, 150),
        "commoncrawl": (150, 250),
        "training-parallel-nc-v11/news-commentary-v11": (250, 350),
    }
    for stem, (a, b) in spans.items():
        for lang in ("de", "en"):
            lines = sentences[lang][a:b]
            if stem.endswith("europarl-v7"):
                lines = lines[:10] + [""] + lines[10:]
            write(raw / f"{stem}.de-en.{lang}", lines)
    for name, (a, b) in (("newstest2015", (350, 380)), ("newstest2014", (380, 420))):
        pair = "ende" if name == "newstest2015" else "deen"
        write_sgm(
            raw / "dev" / f"{name}-{pair}-src.en.sgm", sentences["en"][a:b], name, "src", "en"
        )
        write_sgm(
            raw / "dev" / f"{name}-{pair}-ref.de.sgm", sentences["de"][a:b], name, "ref", "de"
        )
    return raw
