"""Synthetic clips of the embedded speech corpus: espeak-ng and flite voices, sox, noise.

``plan_jobs`` decides, deterministically in the corpus ``seed``, who says
what (training voices speak the prompt texts and the extra texts; held-out
voices speak the real-test texts) and with which augmentation; ``synthesize``
makes one clip. ``gsprune.tasks.speech.corpus`` describes the whole corpus.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gsprune.tasks.speech.sources import (
    SAMPLE_RATE,
    Clip,
    dictionary_sentences,
    is_real_test,
    read_wav,
)
from gsprune.tasks.speech.text import normalize, number_words

ESPEAK_TRAIN_ACCENTS = (
    "en-us",
    "en",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-us-nyc",
)
ESPEAK_TEST_ACCENTS = ("en-029", "en-gb-x-gbcwmd")
ESPEAK_TRAIN_VARIANTS = (
    "m1 m2 m3 m4 m6 m7 f1 f2 f4 f5 klatt klatt3 klatt4 Annie Andy linda steph david edward max "
    "paul john robert quincy belinda aunty benjamin norbert travis victor shelby grandma"
).split()
ESPEAK_TEST_VARIANTS = "m5 f3 klatt2 Alicia adam Mike michel steph2".split()
FLITE_TRAIN_VOICES = ("slt", "awb", "kal", "kal16")
FLITE_TEST_VOICES = ("rms",)
NATO = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
    "oscar papa quebec romeo sierra tango uniform victor whiskey x-ray yankee zulu"
).split()


@dataclass(frozen=True)
class Job:
    """One synthetic clip to make: who says what, how, and its augmentation."""

    id: str
    text: str  # what the engine reads (written form)
    label: str  # the normalised transcript
    engine: str  # espeak | flite
    voice: str  # espeak "accent+variant", flite voice name
    speed: float  # espeak words per minute; flite duration stretch
    pitch: float  # espeak 0..99; flite mean F0 in Hz
    reverb: float  # sox reverberance 0..100; 0 = none
    snr_db: float  # white noise SNR; inf = none
    seed: int


def synthesize(job: Job, workdir: Path) -> Clip:
    """Run the engine, resample (and reverberate) with sox, add noise: one ``Clip``."""
    raw, out = workdir / f"{job.seed}.raw.wav", workdir / f"{job.seed}.wav"
    if job.engine == "espeak":
        command = [
            "espeak-ng",
            "-v",
            job.voice,
            "-s",
            str(int(job.speed)),
            "-p",
            str(int(job.pitch)),
        ]
        command += ["-w", str(raw), job.text]
    else:
        command = ["flite", "-voice", job.voice, "--setf", f"duration_stretch={job.speed:.3f}"]
        command += ["--setf", f"int_f0_target_mean={job.pitch:.1f}", "-t", job.text, "-o", str(raw)]
    subprocess.run(command, check=True, capture_output=True)
    effects = ["reverb", f"{job.reverb:.0f}"] if job.reverb > 0 else []
    sox = ["sox", "-R", "-D", str(raw), "-r", str(SAMPLE_RATE), "-b", "16", "-c", "1", str(out)]
    subprocess.run([*sox, *effects, "gain", "-n", "-3"], check=True, capture_output=True)
    audio, _ = read_wav(out)
    raw.unlink()
    out.unlink()
    if np.isfinite(job.snr_db):
        signal = audio.astype(np.float64)
        power = max(float(np.mean(signal**2)), 1.0)
        noise = np.random.default_rng(job.seed).normal(size=len(signal))
        signal += noise * np.sqrt(power / 10 ** (job.snr_db / 10))
        audio = np.clip(signal, -32768, 32767).astype(np.int16)
    return Clip(job.id, job.label, f"{job.engine}:{job.voice}", audio)


def _voice(
    rng: random.Random, accents: Sequence[str], variants: Sequence[str], flite: Sequence[str]
) -> tuple[str, str, float, float]:
    """A random voice of the given pools: espeak 4 times out of 5 (it has far more variety)."""
    if rng.random() < 0.8:
        voice = f"{rng.choice(accents)}+{rng.choice(variants)}"
        return "espeak", voice, rng.uniform(125, 195), rng.uniform(25, 80)
    return "flite", rng.choice(flite), rng.uniform(0.8, 1.25), rng.uniform(90, 200)


def extra_texts(settings: Mapping[str, Any], rng: random.Random) -> list[tuple[str, str]]:
    """``(written, transcript)`` pairs of the extra training texts (see the module doc)."""
    texts = []
    for _ in range(int(settings["digit_strings"])):
        digits = [rng.randrange(10) for _ in range(rng.randint(3, 9))]
        texts.append((" ".join(map(str, digits)), " ".join(number_words(d) for d in digits)))
    for _ in range(int(settings["numbers"])):
        n = rng.choice((rng.randrange(100), rng.randrange(1000), rng.randrange(100_000)))
        texts.append((str(n), number_words(n)))
    for _ in range(int(settings["spellings"])):
        words = rng.choices(NATO, k=rng.randint(2, 6))
        texts.append((" ".join(words), normalize(" ".join(words))))
    sentences = dictionary_sentences(settings["sentences"])
    count = min(int(settings["dictionary_sentences"]), len(sentences))
    texts += [(s, normalize(s)) for s in rng.sample(sentences, count)]
    return [(written, label) for written, label in texts if label]


def plan_jobs(settings: Mapping[str, Any], real: list[Clip]) -> dict[str, list[Job]]:
    """The synthetic clips of ``train`` and ``test_synthetic`` (deterministic in ``seed``)."""
    rng = random.Random(int(settings["seed"]))
    prompt_texts = sorted({clip.text for clip in real})
    test_texts = sorted({clip.text for clip in real if is_real_test(clip.text, settings)})
    jobs: dict[str, list[Job]] = {"train": [], "test_synthetic": []}
    training = [(t, t) for t in prompt_texts for _ in range(int(settings["prompt_voices"]))]
    training += extra_texts(settings, rng)
    low, high = (float(x) for x in settings["snr_db"])
    for index, (written, label) in enumerate(training):
        engine, voice, speed, pitch = _voice(
            rng, ESPEAK_TRAIN_ACCENTS, ESPEAK_TRAIN_VARIANTS, FLITE_TRAIN_VOICES
        )
        reverb = rng.uniform(20, 70) if rng.random() < float(settings["reverb"]) else 0.0
        snr = rng.uniform(low, high) if rng.random() < float(settings["noise"]) else float("inf")
        jobs["train"].append(
            Job(
                f"synth/train/{index}",
                written,
                label,
                engine,
                voice,
                speed,
                pitch,
                reverb,
                snr,
                index,
            )
        )
    for index, text in enumerate(
        t for t in test_texts for _ in range(int(settings["test_voices"]))
    ):
        engine, voice, speed, pitch = _voice(
            rng, ESPEAK_TEST_ACCENTS, ESPEAK_TEST_VARIANTS, FLITE_TEST_VOICES
        )
        seed = len(training) + index
        jobs["test_synthetic"].append(
            Job(
                f"synth/test/{index}",
                text,
                text,
                engine,
                voice,
                speed,
                pitch,
                0.0,
                float("inf"),
                seed,
            )
        )
    return jobs
