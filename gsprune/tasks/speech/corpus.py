"""The embedded speech corpus (real Asterisk prompts + synthesized speech), cached.

Embedded corpus (``task=speech``), built once per settings and cached under
``<cache_dir>/<key>/corpus.pt`` (``key`` hashes the settings and
``CORPUS_VERSION``; a file lock lets parallel jobs wait for one preparation;
the file is written to a temporary name and renamed). Everything is 8 kHz,
16-bit mono, and deterministic given ``seed``:

- **Real clips**: the Debian package ``asterisk-core-sounds-en-wav`` (one
  professional female US voice, "Allison", 8 kHz telephone prompts) with the
  transcripts of ``asterisk-core-sounds-en``'s ``core-sounds-en.txt.gz``
  (``name: text`` lines; ``;`` comments; bracketed notes such as
  ``[ascending tones]`` dropped, clips whose transcript is then empty skipped,
  clips longer than ``max_seconds`` skipped). The normalised transcript texts
  are split by a hash of the text: a fraction ``real_test_fraction`` of the
  texts goes to the **real test set**, whose clips are never trained on; the
  clips of every other text are **real training clips**. No text (hence no
  clip) is in both.
- **Synthetic training clips**: the *training voices* (``espeak-ng`` accents
  x variants, with random speed and pitch, and ``flite`` voices with random
  duration stretch and pitch) speak (a) every prompt text, the real-test ones
  included, ``prompt_voices`` times each, and (b) extra texts: digit strings,
  numbers read as words, NATO-alphabet spellings, and English sentences from
  Debian's ``trans-de-en`` dictionary (the English sides that look like whole
  sentences). Each clip is resampled to 8 kHz by ``sox``, reverberated with
  probability ``reverb`` (sox ``reverb``) and given white noise with
  probability ``noise`` at an SNR drawn from ``snr_db``.
- **Synthetic test clips**: the *held-out voices* (``espeak-ng`` accents and
  variants and one ``flite`` voice that no training clip uses) speak the
  texts of the real test set, ``test_voices`` voices per text, clean.

So both test sets hold exactly the real-test texts: their words are spoken in
training by synthetic training voices, never by the real voice or by a
held-out voice. They measure generalisation to new voices (synthetic) and to
a real recorded human voice (real), not to unseen sentences.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from gsprune.atomic import atomic_write
from gsprune.checkpoints import file_lock
from gsprune.tasks.speech.sources import SAMPLE_RATE, Clip, is_real_test, real_clips
from gsprune.tasks.speech.synthesis import plan_jobs, synthesize

CORPUS_VERSION = 2
SPLITS = ("train", "test_synthetic", "test_real")
CORPUS_DEFAULTS: dict[str, Any] = {
    "prompts_dir": "/usr/share/asterisk/sounds/en_US_f_Allison",
    "transcripts": "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz",
    "sentences": "/usr/share/trans/de-en",
    "max_seconds": 16.0,
    "real_test_fraction": 0.2,
    "prompt_voices": 8,
    "digit_strings": 300,
    "numbers": 200,
    "spellings": 150,
    "dictionary_sentences": 500,
    "test_voices": 2,
    "reverb": 0.15,
    "noise": 0.25,
    "snr_db": [10.0, 30.0],
    "seed": 0,
    "workers": 2,
}


def corpus_identity(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that determine the corpus (``workers`` only changes how fast it is made)."""
    return {key: value for key, value in settings.items() if key != "workers"}


def corpus_key(settings: Mapping[str, Any]) -> str:
    """The cache folder name: a hash of ``corpus_identity`` and ``CORPUS_VERSION``."""
    identity = {"version": CORPUS_VERSION, **corpus_identity(settings)}
    blob = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def check_tools() -> None:
    """The synthesis programs must be installed (Debian packages in apt.txt)."""
    missing = [tool for tool in ("espeak-ng", "flite", "sox") if shutil.which(tool) is None]
    if missing:
        raise FileNotFoundError(
            f"the speech synthesis program(s) {missing} are not on PATH; install the Debian "
            "packages espeak-ng, flite and sox (apt.txt, `bash scripts/install_apt.sh apt.txt`)"
        )


def build_corpus(settings: Mapping[str, Any]) -> tuple[dict[str, list[Clip]], dict[str, Any]]:
    """Prepare the corpus from scratch: ``({split: clips}, manifest)``; minutes on 2 cores."""
    check_tools()
    start = time.perf_counter()
    real = real_clips(settings)
    jobs = plan_jobs(settings, real)
    splits: dict[str, list[Clip]] = {
        "train": [c for c in real if not is_real_test(c.text, settings)],
        "test_real": [c for c in real if is_real_test(c.text, settings)],
    }
    max_samples = float(settings["max_seconds"]) * SAMPLE_RATE
    with (
        tempfile.TemporaryDirectory(prefix="gsprune-speech-") as tmp,
        ThreadPoolExecutor(max(1, int(settings["workers"]))) as pool,
    ):
        for split in ("train", "test_synthetic"):
            made = pool.map(lambda job: synthesize(job, Path(tmp)), jobs[split])
            splits.setdefault(split, []).extend(c for c in made if len(c.audio) <= max_samples)
    manifest = {
        "version": CORPUS_VERSION,
        "settings": dict(settings),
        "seconds_to_prepare": round(time.perf_counter() - start, 1),
        "clips": {split: len(splits[split]) for split in SPLITS},
        "real_training_clips": sum(c.voice.startswith("asterisk") for c in splits["train"]),
        "hours": {
            split: round(sum(len(c.audio) for c in splits[split]) / SAMPLE_RATE / 3600, 3)
            for split in SPLITS
        },
    }
    return {split: splits[split] for split in SPLITS}, manifest


def load_corpus(settings: Mapping[str, Any], cache_dir: str | os.PathLike) -> dict[str, list[Clip]]:
    """The corpus for ``settings``, prepared once and cached under ``cache_dir/<key>/``."""
    folder = Path(cache_dir) / corpus_key(settings)
    path = folder / "corpus.pt"
    with file_lock(folder / "corpus.lock"):
        if not path.exists():
            splits, manifest = build_corpus(settings)
            payload = {
                "manifest": manifest,
                "splits": {
                    split: [(c.id, c.text, c.voice, torch.from_numpy(c.audio)) for c in clips]
                    for split, clips in splits.items()
                },
            }
            atomic_write(path, lambda handle: torch.save(payload, handle))
            text = json.dumps(manifest, indent=2, default=str)
            atomic_write(folder / "manifest.json", lambda handle: handle.write(text.encode()))
    payload = torch.load(path, weights_only=True)
    return {
        split: [Clip(i, t, v, a.numpy()) for i, t, v, a in clips]
        for split, clips in payload["splits"].items()
    }
