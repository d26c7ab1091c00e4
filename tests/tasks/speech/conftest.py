"""Tiny speech data for the tests: a few real Asterisk prompts, and LibriSpeech-layout FLAC.

The tiny embedded corpus copies a dozen real prompts (and their transcript
lines) into a temporary folder and asks for a handful of synthetic clips, so
it is prepared in seconds; the LibriSpeech fixture synthesizes a few
utterances with espeak-ng and writes them as 16 kHz FLAC in the release layout.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from gsprune.tasks.speech.corpus import CORPUS_DEFAULTS

PROMPTS = Path(CORPUS_DEFAULTS["prompts_dir"])
TRANSCRIPTS = Path(CORPUS_DEFAULTS["transcripts"])
SENTENCES = Path(CORPUS_DEFAULTS["sentences"])
TOOLS = ("espeak-ng", "flite", "sox")


def tiny_jasper(dropout: float = 0.0) -> dict:
    """``model_args`` of a Jasper small enough for tests: 2 blocks x 2 repeats."""
    return {
        "prologue": {"channels": 16, "kernel": 11, "dropout": 0.0},
        "blocks": [
            {"channels": 16, "kernel": 5, "dropout": dropout},
            {"channels": 24, "kernel": 7, "dropout": dropout},
        ],
        "repeats": 2,
        "epilogue": {"channels": 32, "kernel": 9, "hidden": 32, "dropout": dropout},
    }


@pytest.fixture
def speech_data() -> None:
    """Skip when the Debian speech packages of apt.txt are absent."""
    if not (PROMPTS.is_dir() and TRANSCRIPTS.is_file() and SENTENCES.is_file()) or any(
        shutil.which(tool) is None for tool in TOOLS
    ):
        pytest.skip(
            "the Asterisk prompts, trans-de-en, espeak-ng, flite or sox are absent: install "
            "the Debian packages of apt.txt (bash scripts/install_apt.sh apt.txt)"
        )


CLIPS = [
    "digits/1",
    "digits/2",
    "digits/3",
    "digits/7",
    "letters/a",
    "letters/at",
    "vm-goodbye",
    "vm-Old",
    "auth-thankyou",
    "conf-full",
    "calling",
    "cancelled",
    "activated",
    "added",
]
TINY_CORPUS = {
    "max_seconds": 16.0,
    "real_test_fraction": 0.3,
    "prompt_voices": 1,
    "digit_strings": 3,
    "numbers": 2,
    "spellings": 2,
    "dictionary_sentences": 3,
    "test_voices": 1,
    "workers": 2,
}


@pytest.fixture
def tiny_corpus(tmp_path: Path, speech_data: None) -> dict:
    """Corpus settings over 14 real prompts in ``tmp_path/prompts``: about 40 clips."""
    prompts = tmp_path / "prompts"
    lines = {}
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8") as handle:
        for line in handle:
            name, _, _ = line.partition(": ")
            lines[name] = line.rstrip("\n")
    for name in CLIPS:
        (prompts / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROMPTS / f"{name}.wav", prompts / f"{name}.wav")
    transcripts = tmp_path / "core-sounds-en.txt"
    transcripts.write_text("; a comment\n\n" + "\n".join(lines[name] for name in CLIPS) + "\n")
    return {
        **CORPUS_DEFAULTS,
        **TINY_CORPUS,
        "prompts_dir": str(prompts),
        "transcripts": str(transcripts),
    }


LIBRI_TEXTS = {
    "train-clean-100": [
        "PLEASE ENTER YOUR NUMBER",
        "THANK YOU FOR CALLING",
        "THE CONFERENCE IS FULL",
        "GOODBYE",
        "PRESS ONE TO CONTINUE",
        "YOU HAVE NEW MESSAGES",
    ],
    "test-clean": ["THANK YOU FOR CALLING", "PLEASE ENTER YOUR NUMBER"],
    "test-other": ["GOODBYE", "YOU HAVE NEW MESSAGES"],
}


def write_librispeech(root: Path, texts: dict[str, list[str]] = LIBRI_TEXTS) -> Path:
    """Synthesize ``texts`` as LibriSpeech: ``root/LibriSpeech/<split>/<spk>/<chap>/*.flac``.

    Each split gets speaker 19 + i, chapter 198; utterances are numbered 0000...
    Returns ``root`` (the task's data_dir).
    """
    for index, (split, lines) in enumerate(texts.items()):
        speaker, chapter = 19 + index, 198
        folder = root / "LibriSpeech" / split / str(speaker) / str(chapter)
        folder.mkdir(parents=True)
        trans = []
        for utt, text in enumerate(lines):
            name = f"{speaker}-{chapter}-{utt:04d}"
            raw = folder / f"{name}.wav"
            subprocess.run(["espeak-ng", "-w", str(raw), text.lower()], check=True)
            subprocess.run(
                [
                    "sox",
                    str(raw),
                    "-r",
                    "16000",
                    "-b",
                    "16",
                    "-c",
                    "1",
                    str(folder / f"{name}.flac"),
                ],
                check=True,
            )
            raw.unlink()
            trans.append(f"{name} {text}")
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(trans) + "\n")
    return root


@pytest.fixture
def librispeech_root(tmp_path: Path, speech_data: None) -> Path:
    return write_librispeech(tmp_path / "data")
