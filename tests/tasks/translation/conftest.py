"""Shared fixtures of the translation data tests: one small prepared Ding corpus.

The corpus is real (the first 300 sentence pairs of the installed Ding
dictionary with the phrase pairs of the entries read, a 400-piece
sentencepiece model, fairseq-preprocess) and prepared once per session
(about 15 s on two cores); tests that damage it work on a copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gsprune.tasks.translation.ding import DING_FILE

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
