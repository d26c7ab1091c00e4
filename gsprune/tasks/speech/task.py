"""Speech recognition (DESIGN §7): word error rate of a Jasper CTC model.

Two scales share this task kind (``kind: speech``):

- embedded (``conf/task/speech.yaml``): a small Jasper on the 8 kHz corpus of
  ``gsprune.tasks.speech.corpus`` (real Asterisk prompts + synthesized speech),
  prepared once and cached under ``cache_dir``; two test sets, held-out
  synthetic voices (``test_synthetic``) and held-out real clips (``test_real``);
- paper (``conf/task/librispeech.yaml``): Jasper 10x5 (or the 5x3 preset) on
  LibriSpeech at 16 kHz from ``data_dir``; test sets ``test-clean`` and
  ``test-other``.

The model sees 64-bin log-mel features (``features.LogMel``, computed per
batch on the model's device), SpecAugment masks them in training, CTC (blank
0) over the 28 characters of ``text.ALPHABET``, greedy decoding, WER by jiwer.
The task's metric ``wer`` (lower is better) is the WER in percent over all
test utterances pooled; ``test()`` adds the WER and CER of each test set, the set
sizes, the latency input length, and a ``transcripts.tsv`` with every test
utterance's reference and hypothesis.

Task config keys (besides ``dense:``/``finetune:`` of ``gsprune.tasks.base``)::

    name, kind: speech, scale: embedded | paper
    dataset: embedded | librispeech
    sample_rate: 8000 | 16000            # must match the data
    cache_dir: path                      # embedded: the corpus cache
    corpus: {...}                        # embedded: data.CORPUS_DEFAULTS keys
    real_repeats: 2                      # embedded: each real training clip this often per epoch
    data_dir, train_splits, test_splits  # librispeech
    features: {n_mels, window_ms, hop_ms}
    spec_augment: {freq_masks, freq_width, time_masks, time_width}
    model: jasper, preset: null | 10x5 | 5x3, model_args: {prologue, blocks, repeats, epilogue}
    batch_size, eval_batch_size, num_workers, amp
    sorta_grad: true                     # the first epoch this task trains goes shortest first
    latency_seconds: 10                  # latency input: this many seconds of audio, batch 1
    include, exclude: [fnmatch patterns] # prunable parameters (gsprune.views)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import jiwer
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from gsprune.tasks import register
from gsprune.tasks.base import (
    Evaluation,
    Task,
    check_choice,
    check_flag,
    check_number,
    model_device,
)
from gsprune.tasks.data import distributed, make_loader
from gsprune.tasks.speech.corpus import CORPUS_DEFAULTS, check_tools, corpus_identity, load_corpus
from gsprune.tasks.speech.data import LengthBatches, Utterances, collate
from gsprune.tasks.speech.features import LogMel, spec_augment
from gsprune.tasks.speech.jasper import build_jasper
from gsprune.tasks.speech.librispeech import LIBRISPEECH_SPLITS, LibriSpeech, librispeech_folder
from gsprune.tasks.speech.sources import SAMPLE_RATE
from gsprune.tasks.speech.text import ALPHABET, BLANK, decode
from gsprune.views import gemm_columns

SCALES = ("embedded", "paper")
DATASETS = ("embedded", "librispeech")
FEATURE_DEFAULTS = {"n_mels": 64, "window_ms": 25.0, "hop_ms": 10.0}
AUGMENT_DEFAULTS = {"freq_masks": 2, "freq_width": 15, "time_masks": 2, "time_width": 0.05}


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    """Best-path CTC decoding of ``float[B, V, F]`` scores with valid lengths ``int[B]``.

    Per frame the arg-max symbol; repeats merged, then blanks (index 0) dropped.
    """
    best = log_probs.argmax(dim=1).cpu()
    texts = []
    for row, length in zip(best, lengths.tolist(), strict=True):
        path = row[:length]
        keep = torch.ones_like(path, dtype=torch.bool)
        keep[1:] = path[1:] != path[:-1]
        texts.append(decode([int(s) for s in path[keep] if s != BLANK]))
    return texts


def loader_order(loader: DataLoader) -> list[int]:
    """Dataset indices in the order an (unshuffled) evaluation loader yields them."""
    if isinstance(loader.batch_sampler, LengthBatches):  # sorted by length
        return [index for batch in loader.batch_sampler for index in batch]
    return list(range(len(loader.dataset)))


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Word error rate in percent (jiwer): (substitutions + deletions + insertions) / words."""
    if not references:
        raise ValueError("WER of an empty test set")
    return 100.0 * jiwer.wer(references, hypotheses)


def cer(references: list[str], hypotheses: list[str]) -> float:
    """Character error rate in percent (jiwer; spaces count as characters)."""
    if not references:
        raise ValueError("CER of an empty test set")
    return 100.0 * jiwer.cer(references, hypotheses)


def _section(cfg: Mapping[str, Any], key: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    section = {**defaults, **(cfg.get(key) or {})}
    unknown = set(section) - set(defaults)
    if unknown:
        raise ValueError(
            f"task.{key} has unknown key(s) {sorted(unknown)}; accepted: {sorted(defaults)}"
        )
    return section


@register("speech")
class SpeechTask(Task):
    """Jasper + CTC; metric: WER in percent over the pooled test sets (lower is better)."""

    kind = "speech"
    metric_name = "wer"
    higher_is_better = False

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__(cfg)
        self.features = _section(self.cfg, "features", FEATURE_DEFAULTS)
        self.augment = _section(self.cfg, "spec_augment", AUGMENT_DEFAULTS)
        self.corpus = _section(self.cfg, "corpus", CORPUS_DEFAULTS)
        self._data: tuple[Dataset, dict[str, Dataset]] | None = None
        self._frontend: LogMel | None = None

    # -- config and data ------------------------------------------------------------

    def check(self) -> None:
        cfg = self.cfg
        self.check_common(SCALES)
        check_choice(cfg.get("dataset"), "task.dataset", DATASETS)
        check_choice(cfg.get("model"), "task.model", ("jasper",))
        for key in ("batch_size", "eval_batch_size"):
            check_number(cfg.get(key), f"task.{key}", minimum=1, integer=True, maximum=65536)
        check_number(cfg.get("sample_rate"), "task.sample_rate", 1, integer=True, maximum=192000)
        check_flag(cfg.get("sorta_grad", False), "task.sorta_grad")
        workers = cfg.get("num_workers", 0)
        check_number(workers, "task.num_workers", minimum=0, integer=True, maximum=256)
        check_number(
            cfg.get("latency_seconds"), "task.latency_seconds", 0, strict=True, maximum=3600
        )
        check_number(self.features["n_mels"], "task.features.n_mels", 1, integer=True, maximum=1024)
        for key in ("window_ms", "hop_ms"):
            check_number(self.features[key], f"task.features.{key}", 0, strict=True, maximum=1000)
        for key, value in self.augment.items():
            check_number(value, f"task.spec_augment.{key}", minimum=0, maximum=10**4)
        self.build_model()  # a bad preset or model_args fails here, before any data work
        if cfg["dataset"] == "embedded":
            self._check_embedded()
        else:
            self._check_librispeech()

    def _check_embedded(self) -> None:
        if self.cfg["sample_rate"] != SAMPLE_RATE:
            raise ValueError(
                f"task.sample_rate={self.cfg['sample_rate']}: the embedded corpus is "
                f"{SAMPLE_RATE} Hz; accepted: {SAMPLE_RATE}"
            )
        if not self.cfg.get("cache_dir"):
            raise ValueError("task.cache_dir is not set: the embedded corpus is cached there")
        check_number(self.cfg.get("real_repeats", 1), "task.real_repeats", minimum=0, integer=True)
        fraction = check_number(
            self.corpus["real_test_fraction"],
            "task.corpus.real_test_fraction",
            minimum=0,
            strict=True,
        )
        if fraction >= 1:
            raise ValueError(f"task.corpus.real_test_fraction={fraction} must be in (0, 1)")
        check_tools()
        self.datasets()  # prepares (minutes, once) or loads the cached corpus, before training

    def _check_librispeech(self) -> None:
        data_dir = self.cfg.get("data_dir")
        if data_dir in (None, "", "???"):
            raise ValueError(
                f"task {self.cfg.get('name')}: data_dir is not set (task.data_dir is mandatory "
                "at paper scale): pass task.data_dir=/path/holding/LibriSpeech, laid out as "
                "<data_dir>/LibriSpeech/<split>/<speaker>/<chapter>/*.flac; or run the embedded "
                "speech task, which needs no download, with `task=speech`"
            )
        for key in ("train_splits", "test_splits"):
            splits = self.cfg.get(key)
            if not isinstance(splits, list) or not splits:
                raise ValueError(f"task.{key}={splits!r} must be a non-empty list of split names")
            for split in splits:
                check_choice(split, f"task.{key}", LIBRISPEECH_SPLITS)
        for split in [*self.cfg["train_splits"], *self.cfg["test_splits"]]:
            librispeech_folder(data_dir, split)

    def datasets(self) -> tuple[Dataset, dict[str, Dataset]]:
        """``(train, {test set name: dataset})``, built once per task."""
        if self._data is None:
            if self.cfg["dataset"] == "embedded":
                corpus = load_corpus(self.corpus, self.cfg["cache_dir"])
                real = [c for c in corpus["train"] if c.voice.startswith("asterisk")]
                train = corpus["train"] + real * (int(self.cfg.get("real_repeats", 1)) - 1)
                tests = {
                    name: Utterances.from_clips(corpus[name])
                    for name in ("test_synthetic", "test_real")
                }
                self._data = Utterances.from_clips(train), tests
            else:
                root = self.cfg["data_dir"]
                rate = int(self.cfg["sample_rate"])
                train_sets = [LibriSpeech(root, s, rate) for s in self.cfg["train_splits"]]
                train = train_sets[0] if len(train_sets) == 1 else ConcatDataset(train_sets)
                self._data = train, {s: LibriSpeech(root, s, rate) for s in self.cfg["test_splits"]}
        return self._data

    def describe(self) -> dict[str, str]:
        cfg = self.cfg
        model = f"jasper {cfg.get('preset') or 'custom'}"
        return {
            "name": str(cfg["name"]),
            "kind": self.kind,
            "scale": str(cfg["scale"]),
            "model": model,
            "dataset": str(cfg["dataset"]),
        }

    def fingerprint(self) -> dict[str, Any]:
        keys = (
            "kind",
            "dataset",
            "sample_rate",
            "data_dir",
            "train_splits",
            "real_repeats",
            "model",
            "preset",
            "model_args",
            "batch_size",
            "sorta_grad",
            "amp",
            "dense",
        )
        fingerprint = self.fingerprint_of(keys)
        fingerprint.update(features=self.features, spec_augment=self.augment)
        if self.cfg.get("dataset") == "embedded":
            fingerprint["corpus"] = corpus_identity(self.corpus)
        return fingerprint

    # -- model, loaders, loss ---------------------------------------------------------

    def build_model(self) -> nn.Module:
        return build_jasper(
            int(self.features["n_mels"]),
            len(ALPHABET) + 1,
            self.cfg.get("preset"),
            self.cfg.get("model_args") or {},
        )

    def frontend(self, device: torch.device) -> LogMel:
        """The log-mel front end (not part of the model: it holds no trainable weights)."""
        if self._frontend is None:
            f = self.features
            self._frontend = LogMel(
                int(self.cfg["sample_rate"]),
                int(f["n_mels"]),
                float(f["window_ms"]),
                float(f["hop_ms"]),
            )
        return self._frontend.to(device)

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        batch = int(self.cfg["batch_size" if train else "eval_batch_size"])
        workers = int(self.cfg.get("num_workers", 0))
        if distributed() or not isinstance(dataset, Utterances):
            return make_loader(dataset, batch, train, workers, collate)
        lengths = [len(w) for w in dataset.waves]
        return DataLoader(
            dataset,
            batch_sampler=LengthBatches(
                lengths,
                batch,
                shuffle=train,
                drop_last=train,
                sorta_grad=train and bool(self.cfg.get("sorta_grad", False)),
            ),
            num_workers=workers,
            collate_fn=collate,
        )

    def loaders(self) -> tuple[DataLoader, DataLoader]:
        train, tests = self.datasets()
        pooled = ConcatDataset(list(tests.values()))
        return self._loader(train, True), self._loader(pooled, False)

    def _forward(
        self, model: nn.Module, waves: torch.Tensor, lengths: torch.Tensor, augment: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log-probabilities float32[B, V, F'], valid output frames int64[B])``."""
        features, frames = self.frontend(waves.device)(waves, lengths)
        if augment:
            a = self.augment
            features = spec_augment(
                features,
                frames,
                int(a["freq_masks"]),
                int(a["freq_width"]),
                int(a["time_masks"]),
                float(a["time_width"]),
            )
        logits = model(features)
        out = model.output_lengths(frames).clamp(max=logits.shape[-1])
        return F.log_softmax(logits.float(), dim=1), out

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        waves, lengths, labels, label_lengths = batch
        log_probs, frames = self._forward(model, waves, lengths, augment=True)
        return F.ctc_loss(
            log_probs.permute(2, 0, 1),
            labels,
            frames,
            label_lengths,
            blank=BLANK,
            reduction="mean",
            zero_infinity=True,
        )

    # -- scoring ----------------------------------------------------------------------

    @torch.no_grad()
    def transcribe(self, model: nn.Module, loader: DataLoader) -> tuple[list[str], list[str]]:
        """``(references, hypotheses)`` of every utterance of ``loader``, in loader order."""
        was_training = model.training
        model.eval()
        device = model_device(model)
        references, hypotheses = [], []
        for waves, lengths, labels, label_lengths in loader:
            with self.autocast(model):
                log_probs, frames = self._forward(
                    model, waves.to(device), lengths.to(device), False
                )
            hypotheses += greedy_decode(log_probs, frames)
            references += [
                decode(row[:n].tolist())
                for row, n in zip(labels, label_lengths.tolist(), strict=True)
            ]
        model.train(was_training)
        return references, hypotheses

    def _gather(self, pairs: tuple[list[str], list[str]]) -> tuple[list[str], list[str]]:
        """All ranks' pairs (under torchrun each rank transcribes its shard)."""
        if not distributed():
            return pairs
        everyone: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, pairs)
        return [r for refs, _ in everyone for r in refs], [h for _, hyps in everyone for h in hyps]

    def evaluate(self, model: nn.Module, loader: DataLoader) -> float:
        """WER in percent of ``model`` over every utterance of ``loader`` (all ranks)."""
        references, hypotheses = self._gather(self.transcribe(model, loader))
        return wer(references, hypotheses)

    def test(self, model: nn.Module) -> Evaluation:
        """Pooled WER, the WER of each test set, and every utterance's transcript."""
        _, tests = self.datasets()
        lines = ["set\tid\treference\thypothesis"]
        per_set, per_set_cer, sizes, pooled_refs, pooled_hyps = {}, {}, {}, [], []
        for name, dataset in tests.items():
            loader = self._loader(dataset, False)
            refs, hyps = self._gather(self.transcribe(model, loader))
            per_set[name] = round(wer(refs, hyps), 3)
            per_set_cer[name] = round(cer(refs, hyps), 3)
            sizes[name] = {"utterances": len(refs), "words": sum(len(r.split()) for r in refs)}
            pooled_refs += refs
            pooled_hyps += hyps
            ids = (
                [dataset.ids[i] for i in loader_order(loader)]
                if not distributed()
                else [""] * len(refs)
            )
            lines += [f"{name}\t{i}\t{r}\t{h}" for i, r, h in zip(ids, refs, hyps, strict=True)]
        # CER shows a model's progress while its WER is still near 100 (words half right).
        details = {
            "wer": per_set,
            "cer": per_set_cer,
            "test_sets": sizes,
            "latency_input": self.latency_input(model),
        }
        return Evaluation(wer(pooled_refs, pooled_hyps), details, {"transcripts.tsv": lines})

    def baseline(self) -> dict[str, Any]:
        """Most-frequent-transcript baseline: every test utterance gets the training
        set's most frequent transcript (ties: the alphabetically first)."""
        train, tests = self.datasets()
        texts = (
            train.texts
            if isinstance(train, Utterances)
            else [text for part in getattr(train, "datasets", [train]) for text in part.texts()]
        )
        counts = Counter(texts)
        guess = min(counts, key=lambda t: (-counts[t], t))
        per_set, refs_all = {}, []
        for name, dataset in tests.items():
            refs = dataset.texts if isinstance(dataset, Utterances) else dataset.texts()
            per_set[name] = round(wer(list(refs), [guess] * len(refs)), 3)
            refs_all += list(refs)
        return {
            "name": "most-frequent-transcript",
            "value": wer(refs_all, [guess] * len(refs_all)),
            "wer": per_set,
            "transcript": guess,
        }

    def latency_input(self, model: nn.Module) -> dict[str, Any]:
        """The typical input the latency harness times: ``latency_seconds`` of audio, batch 1."""
        seconds = float(self.cfg["latency_seconds"])
        samples = round(seconds * int(self.cfg["sample_rate"]))
        frames = int(self.frontend(torch.device("cpu")).frames(samples))
        out = int(model.output_lengths(torch.tensor(frames)))
        return {"seconds": seconds, "feature_frames": frames, "model_frames": out}

    @torch.no_grad()
    def latency_columns(self, model: nn.Module, names: list[str]) -> dict[str, int]:
        """GEMM columns per weight for ``latency_seconds`` of audio (batch 1), e.g. 10 s at
        10 ms hops = 1001 feature frames -> 501 frames after the prologue's stride 2."""
        frames = self.latency_input(model)["feature_frames"]
        device = model_device(model)
        features = torch.zeros(1, int(self.features["n_mels"]), frames, device=device)
        was_training = model.training
        model.eval()
        try:
            return gemm_columns(model, names, lambda: model(features))
        finally:
            model.train(was_training)
