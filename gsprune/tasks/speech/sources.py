"""The real inputs of the embedded speech corpus, and how a real clip is assigned a split.

The Asterisk prompts (Debian ``asterisk-core-sounds-en-wav``, 8 kHz WAV) with
their transcripts (``asterisk-core-sounds-en``'s ``core-sounds-en.txt.gz``),
the English sentences of the Ding dictionary (``trans-de-en``) that the
synthetic clips read, and the hash that puts a real text in the real test set.
``gsprune.tasks.speech.corpus`` describes the whole corpus.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import wave
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gsprune.tasks.speech.text import normalize

SAMPLE_RATE = 8000


@dataclass
class Clip:
    """One utterance: ``audio: int16[T]`` at ``SAMPLE_RATE``, normalised ``text``, its source."""

    id: str
    text: str
    voice: str
    audio: np.ndarray


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A 16-bit PCM mono WAV file -> ``(int16[T], sample_rate)``; ValueError naming it otherwise."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as handle:
            channels, width, rate = (
                handle.getnchannels(),
                handle.getsampwidth(),
                handle.getframerate(),
            )
            raw = handle.readframes(handle.getnframes())
    except FileNotFoundError:
        raise FileNotFoundError(f"the audio file {path} does not exist") from None
    except (OSError, EOFError, wave.Error) as err:
        raise ValueError(
            f"the audio file {path} cannot be read as a WAV file ({err}); accepted: "
            "16-bit PCM mono WAV"
        ) from err
    if channels != 1 or width != 2:
        raise ValueError(
            f"the audio file {path} has {channels} channel(s) of {8 * width}-bit samples; "
            "accepted: 16-bit PCM mono WAV"
        )
    return np.frombuffer(raw, dtype="<i2").astype(np.int16), rate


def read_prompt_transcripts(path: str | os.PathLike) -> dict[str, str]:
    """``core-sounds-en.txt(.gz)`` -> ``{clip name: raw transcript}``.

    Lines are ``name: text`` (``digits/7: seven``); blank lines and lines
    starting with ``;`` are comments. A line without ``": "`` raises ValueError
    naming the file and line.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"the prompt transcripts {path} do not exist; install the Debian package "
            "asterisk-core-sounds-en (apt.txt) or set task.corpus.transcripts"
        ) from None
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise ValueError(f"the prompt transcripts {path} cannot be read ({err})") from err
    transcripts = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith(";"):
            continue
        name, sep, text = line.partition(": ")
        if not sep or not name.strip():
            raise ValueError(
                f"{path}, line {number}: {line!r} is not of the form 'name: transcript'"
            )
        transcripts[name.strip()] = text.strip()
    return transcripts


def dictionary_sentences(path: str | os.PathLike) -> list[str]:
    """Whole English sentences of the Ding dictionary (``trans-de-en``), sorted and unique.

    Lines are ``German :: English``; the English side splits on `` | `` into
    parts. A part is kept when it starts with a capital, ends in . ? or !,
    holds no brackets, slashes, semicolons or sb./sth. placeholders, and has
    4 to 14 words.
    """

    keep = set()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("#") or " :: " not in line:
                continue
            for part in line.rstrip("\n").split(" :: ", 1)[1].split(" | "):
                part = part.strip()
                if (
                    re.match(r"^[A-Z][^{}\[\]()/;]*[.?!]$", part)
                    and not re.search(r"\b(sb|sth)\.", part)
                    and 4 <= len(part.split()) <= 14
                ):
                    keep.add(part)
    return sorted(keep)


def text_hash(text: str, salt: str = "") -> float:
    """A stable pseudo-random number in [0, 1) for ``text`` (sha1; splits by hash)."""
    digest = hashlib.sha1(f"{salt}{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def real_clips(settings: Mapping[str, Any]) -> list[Clip]:
    """The usable Asterisk prompts (see the module doc), sorted by name."""
    root = Path(settings["prompts_dir"])
    if not root.is_dir():
        raise FileNotFoundError(
            f"the Asterisk prompts folder {root} does not exist; install the Debian package "
            "asterisk-core-sounds-en-wav (apt.txt) or set task.corpus.prompts_dir"
        )
    clips = []
    for name, raw in sorted(read_prompt_transcripts(settings["transcripts"]).items()):
        text = normalize(raw)
        path = root / f"{name}.wav"
        if not text or not path.is_file():
            continue
        audio, rate = read_wav(path)
        if rate != SAMPLE_RATE:
            raise ValueError(f"{path}: sample rate {rate} Hz; the prompts must be {SAMPLE_RATE} Hz")
        if len(audio) <= settings["max_seconds"] * SAMPLE_RATE:
            clips.append(Clip(f"real/{name}", text, "asterisk:allison", audio))
    return clips


def is_real_test(text: str, settings: Mapping[str, Any]) -> bool:
    """Whether a real clip's normalised text belongs to the real test set (by hash)."""
    return text_hash(text, f"real-test:{settings['seed']}:") < float(settings["real_test_fraction"])
