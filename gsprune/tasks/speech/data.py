"""Speech data: the embedded corpus (real Asterisk prompts + synthesized speech), datasets.

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

import gzip
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
import wave
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from gsprune.atomic import atomic_write
from gsprune.checkpoints import file_lock
from gsprune.tasks.speech.text import ALPHABET, encode, normalize, number_words

CORPUS_VERSION = 2
SAMPLE_RATE = 8000
SPLITS = ("train", "test_synthetic", "test_real")
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

CORPUS_DEFAULTS: dict[str, Any] = {
    "prompts_dir": "/usr/share/asterisk/sounds/en_US_f_Allison",
    "transcripts": "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz",
    "sentences": "/usr/share/trans/de-en",
    "max_seconds": 16.0,
    "real_test_fraction": 0.2,
    "prompt_voices": 3,
    "digit_strings": 300,
    "numbers": 200,
    "spellings": 150,
    "dictionary_sentences": 1500,
    "test_voices": 2,
    "reverb": 0.3,
    "noise": 0.5,
    "snr_db": [10.0, 30.0],
    "seed": 0,
    "workers": 2,
}


@dataclass
class Clip:
    """One utterance: ``audio: int16[T]`` at ``SAMPLE_RATE``, normalised ``text``, its source."""

    id: str
    text: str
    voice: str
    audio: np.ndarray


# -- reading -----------------------------------------------------------------------


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


# -- synthesis -----------------------------------------------------------------------


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


def is_real_test(text: str, settings: Mapping[str, Any]) -> bool:
    """Whether a real clip's normalised text belongs to the real test set (by hash)."""
    return text_hash(text, f"real-test:{settings['seed']}:") < float(settings["real_test_fraction"])


# -- the cached corpus ---------------------------------------------------------------


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


# -- datasets --------------------------------------------------------------------------


class Utterances(Dataset):
    """Utterances held in memory: item = ``(waveform: float32[T] in [-1, 1], text)``."""

    def __init__(self, waves: list[torch.Tensor], texts: list[str], ids: list[str]) -> None:
        if not len(waves) == len(texts) == len(ids):
            raise ValueError(f"{len(waves)} waveforms, {len(texts)} texts, {len(ids)} ids")
        for text, id_ in zip(texts, ids, strict=True):
            if not text:
                raise ValueError(
                    f"utterance {id_} has an empty transcript; every utterance needs one"
                )
            encode(text)
        self.waves, self.texts, self.ids = waves, texts, ids

    @classmethod
    def from_clips(cls, clips: Sequence[Clip]) -> Utterances:
        waves = [torch.from_numpy(c.audio.astype(np.float32) / 32768.0) for c in clips]
        return cls(waves, [c.text for c in clips], [c.id for c in clips])

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        return self.waves[index], self.texts[index]


def collate(items: Sequence[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, ...]:
    """Pad a batch: ``(waves: float32[B, T], wave_lengths: int64[B], labels: int64[B, L],
    label_lengths: int64[B])``; labels are padded with 0 (the CTC blank, never a target)."""
    waves, texts = zip(*items, strict=True)
    wave_lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(wave_lengths.max()))
    for row, w in enumerate(waves):
        batch[row, : len(w)] = w
    targets = [torch.tensor(encode(t), dtype=torch.long) for t in texts]
    label_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    labels = torch.nn.utils.rnn.pad_sequence(targets, batch_first=True, padding_value=0)
    return batch, wave_lengths, labels, label_lengths


class LengthBatches(Sampler[list[int]]):
    """Batches of similar length (less padding): sort by length, cut, shuffle the batches.

    ``lengths[i]`` is utterance i's length. With ``shuffle`` the indices are
    shuffled before a stable sort (ties in random order) and the batch order is
    shuffled every epoch (global torch RNG); ``drop_last`` drops the one short
    batch. Without ``shuffle`` the order is fixed (evaluation).

    ``sorta_grad``: in epoch 0 (``set_epoch``; the training loop passes the
    number of epochs the task object has trained) the batches are taken
    shortest first (SortaGrad, Amodei et al. 2016, Deep Speech 2): a CTC model
    leaves its all-blank plateau sooner on short utterances. That is dense
    training's first epoch, or, in a run whose dense model comes from the
    cache, its first fine-tuning epoch. Later epochs are shuffled as usual.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        sorta_grad: bool = False,
    ):
        self.lengths = torch.as_tensor(lengths)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.sorta_grad = sorta_grad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.lengths)
        order = torch.randperm(n) if self.shuffle else torch.arange(n)
        order = order[torch.sort(self.lengths[order], stable=True).indices]
        batches = list(torch.split(order, self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle and not (self.sorta_grad and self.epoch == 0):
            batches = [batches[i] for i in torch.randperm(len(batches))]
        for batch in batches:
            yield batch.tolist()


__all__ = [
    "ALPHABET",
    "CORPUS_DEFAULTS",
    "Clip",
    "LengthBatches",
    "Utterances",
    "collate",
    "load_corpus",
    "read_prompt_transcripts",
    "read_wav",
]
