"""Machine translation (DESIGN §7): BLEU of a GNMT, by sacrebleu on detokenized output.

Two scales share this one task kind (``kind: translation``):

- embedded (``conf/task/translation.yaml``): a small GNMT on the German->English
  example sentences of the Debian package ``trans-de-en``, prepared once and
  cached under ``<results_dir>/cache/translation/`` (``data.prepare_ding``);
- paper (``conf/task/wmt.yaml``): GNMT v2 on WMT16 English->German, read from
  the directory that ``scripts/prepare_wmt16.py`` writes (``data.load_corpus``).

Both go through one fairseq code path: a joined fairseq ``Dictionary``,
binarized ``LanguagePairDataset`` splits, batches by tokens, the GNMT
registered as a fairseq model (``gnmt.py``) and fairseq's ``SequenceGenerator``
for beam search. Training runs in gsprune's own loop (``Task.train_one_epoch``),
so pruning, masks, checkpoints and resume work as for every task.

Task config keys (besides the ``dense:``/``finetune:`` sections of
``gsprune.tasks.base``)::

    name, kind: translation, scale: embedded | paper
    dataset: ding | wmt16             # a key of SOURCES
    data_dir: path                    # ding: the dictionary file; wmt16: the prepared corpus
    cache_dir: path                   # ding: where the prepared corpus is cached
    source_lang, target_lang
    prepare: {...}                    # ding: settings of data.prepare_ding
    model: gnmt
    model_args: {...}                 # gnmt.GNMT_DEFAULTS keys
    max_tokens, eval_max_tokens       # tokens per training / decoding batch
    beam, lenpen, max_len_a, max_len_b  # beam search: max length a * source length + b
    amp, label_smoothing
    include, exclude: [fnmatch patterns]  # prunable parameters (gsprune.views)

The metric is corpus BLEU (sacrebleu, default 13a tokenization) of the
detokenized test hypotheses against the raw references; the record also holds
chrF and both sacrebleu signatures, and the run writes ``hyp.<tgt>`` (one
hypothesis per line, test order) and ``ref.<tgt>`` beside the record, so that
``sacrebleu <ref file> -i <hyp file>`` rescores a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sacrebleu
import torch
import torch.nn.functional as F
from fairseq.sequence_generator import SequenceGenerator
from torch import nn
from torch.utils.data import DataLoader

from gsprune.tasks import register
from gsprune.tasks.base import (
    Evaluation,
    Task,
    check_choice,
    check_number,
    model_device,
    to_device,
)
from gsprune.tasks.translation.data import (
    Corpus,
    load_corpus,
    prepare_ding,
    translation_loader,
)
from gsprune.tasks.translation.gnmt import build_gnmt, check_gnmt_args

SCALES = ("embedded", "paper")
SOURCES = ("ding", "wmt16")
EMBEDDED_HINT = (
    "or run the embedded translation task, which needs no download, with `task=translation`"
)


@register("translation")
class TranslationTask(Task):
    """Sentence translation; metric: corpus BLEU (sacrebleu) on the test split."""

    kind = "translation"
    metric_name = "bleu"
    higher_is_better = True

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__(cfg)
        self._corpus: Corpus | None = None

    # -- validation and data ------------------------------------------------------------

    def check(self) -> None:
        cfg = self.cfg
        self.check_common(SCALES)
        check_choice(cfg.get("dataset"), "task.dataset", SOURCES)
        check_choice(cfg.get("model"), "task.model", ("gnmt",))
        for key in ("max_tokens", "eval_max_tokens"):
            check_number(cfg.get(key), f"task.{key}", minimum=1, integer=True, maximum=10**7)
        check_number(cfg.get("beam"), "task.beam", minimum=1, integer=True, maximum=1000)
        check_number(cfg.get("max_len_a"), "task.max_len_a", minimum=0.0, maximum=100.0)
        check_number(cfg.get("max_len_b"), "task.max_len_b", minimum=1, integer=True, maximum=10**4)
        check_number(cfg.get("lenpen"), "task.lenpen", minimum=0.0, maximum=100.0)
        smoothing = check_number(cfg.get("label_smoothing"), "task.label_smoothing", minimum=0.0)
        if smoothing >= 1.0:
            raise ValueError(f"task.label_smoothing={smoothing} must lie in [0, 1)")
        for key in ("source_lang", "target_lang"):
            if not isinstance(cfg.get(key), str) or not cfg[key]:
                raise ValueError(f"task.{key}={cfg.get(key)!r} must be a language code, e.g. en")
        check_gnmt_args(cfg.get("model_args") or {})
        self.corpus()  # prepares (embedded, cached) or validates (paper) the data now
        if not self.corpus().raw("test", self.target):
            raise ValueError(f"task {cfg['name']}: the test split of {self.corpus().root} is empty")

    @property
    def source(self) -> str:
        return str(self.cfg["source_lang"])

    @property
    def target(self) -> str:
        return str(self.cfg["target_lang"])

    def corpus(self) -> Corpus:
        """The prepared corpus (built once per task object)."""
        if self._corpus is None:
            if self.cfg["dataset"] == "ding":
                self._corpus = prepare_ding(
                    Path(self.cfg["data_dir"]),
                    Path(self.cfg["cache_dir"]),
                    {**dict(self.cfg.get("prepare") or {}), "src": self.source, "tgt": self.target},
                )
            else:
                self._corpus = self._load_paper_corpus()
        return self._corpus

    def _load_paper_corpus(self) -> Corpus:
        data_dir = self.cfg.get("data_dir")
        if data_dir in (None, "", "???"):
            raise ValueError(
                f"task {self.cfg['name']}: data_dir is not set; pass task.data_dir=DIR, a corpus "
                "prepared by `python scripts/prepare_wmt16.py RAW_DIR --out DIR`; "
                f"{EMBEDDED_HINT}"
            )
        hint = (
            f"task {self.cfg['name']} reads the WMT16 corpus that `python scripts/prepare_wmt16.py "
            f"RAW_DIR --out {data_dir}` prepares from the raw WMT16 files you have (Europarl v7, "
            "Common Crawl, News Commentary v11, newstest2015, newstest2014); pass "
            f"task.data_dir=DIR for another folder, {EMBEDDED_HINT}."
        )
        return load_corpus(Path(data_dir).absolute(), self.source, self.target, hint=hint)

    # -- the Task interface ---------------------------------------------------------------

    def describe(self) -> dict[str, str]:
        cfg = self.cfg
        return {
            "name": str(cfg["name"]),
            "kind": self.kind,
            "scale": str(cfg["scale"]),
            "model": str(cfg["model"]),
            "dataset": f"{cfg['dataset']} {self.source}-{self.target}",
        }

    def fingerprint(self) -> dict[str, Any]:
        keys = (
            "kind",
            "dataset",
            "source_lang",
            "target_lang",
            "model",
            "model_args",
            "max_tokens",
            "amp",
            "label_smoothing",
            "dense",
        )
        # The corpus key identifies the data itself (its inputs and preparation settings).
        return {**self.fingerprint_of(keys), "corpus": self.corpus().meta()["key"]}

    def build_model(self) -> nn.Module:
        return build_gnmt(self.corpus().dictionary(), **dict(self.cfg.get("model_args") or {}))

    def loaders(self) -> tuple[DataLoader, DataLoader]:
        # Batch order follows the run's seed (the runner seeds torch before this call).
        corpus, seed = self.corpus(), torch.initial_seed() % 2**31
        return (
            translation_loader(corpus.dataset("train"), int(self.cfg["max_tokens"]), True, seed),
            translation_loader(
                corpus.dataset("test"), int(self.cfg["eval_max_tokens"]), False, seed
            ),
        )

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """Label-smoothed cross entropy per target token (padding ignored)."""
        logits, _ = model(**batch["net_input"])
        return F.cross_entropy(
            logits.float().flatten(0, 1),
            batch["target"].flatten(),
            ignore_index=self.corpus().dictionary().pad(),
            label_smoothing=float(self.cfg["label_smoothing"]),
        )

    def evaluate(self, model: nn.Module, loader: DataLoader) -> float:
        """BLEU of ``loader``'s translations; ``loader`` is the test loader (its references)."""
        return self.score(self.translate(model, loader), self.corpus().raw("test", self.target))[
            "bleu"
        ]

    def test(self, model: nn.Module) -> Evaluation:
        """BLEU and chrF of beam-search translations of the test split, with the files."""
        hypotheses = self.translate(model, self.loaders()[1])
        references = self.corpus().raw("test", self.target)
        scores = self.score(hypotheses, references)
        return Evaluation(
            scores.pop("bleu"),
            details={**scores, "sentences": len(references), "beam": int(self.cfg["beam"])},
            outputs={f"hyp.{self.target}": hypotheses, f"ref.{self.target}": references},
        )

    def baseline(self) -> dict[str, Any]:
        """Copy the source: the detokenized source sentences scored as translations."""
        scores = self.score(
            self.corpus().raw("test", self.source), self.corpus().raw("test", self.target)
        )
        return {"name": "copy-source", "value": scores.pop("bleu"), **scores}

    def latency_columns(self, model: nn.Module, names: list[str]) -> dict[str, int]:
        """One column per weight: one sentence's decoder step (``latency.batch`` sentences).

        Every LSTM gate GEMM and attention projection is timed as a decoding
        step sees it: one token of each of ``latency.batch`` sentences decoded
        together. (The encoder could batch its input GEMMs over a sentence's
        tokens; timing it per step is the latency of streaming input.)
        """
        return dict.fromkeys(names, 1)

    # -- decoding and scoring ---------------------------------------------------------------

    @torch.no_grad()
    def translate(self, model: nn.Module, loader: DataLoader) -> list[str]:
        """Detokenized beam-search translations of every sentence of ``loader``, in id order."""
        was_training = model.training
        model.eval()
        dictionary = self.corpus().dictionary()
        generator = SequenceGenerator(
            [model],
            dictionary,
            beam_size=int(self.cfg["beam"]),
            len_penalty=float(self.cfg["lenpen"]),
            max_len_a=float(self.cfg["max_len_a"]),
            max_len_b=int(self.cfg["max_len_b"]),
        )
        device = model_device(model)
        found: dict[int, str] = {}
        for batch in loader:
            batch = to_device(batch, device)
            with self.autocast(model):
                hypotheses = generator.generate([model], batch)
            for sentence_id, best in zip(batch["id"].tolist(), hypotheses, strict=True):
                pieces = dictionary.string(best[0]["tokens"].int().cpu())
                found[sentence_id] = self.corpus().decode(pieces)
        model.train(was_training)
        if not found:
            raise ValueError("the evaluation loader is empty")
        return [found[index] for index in sorted(found)]

    @staticmethod
    def score(hypotheses: list[str], references: list[str]) -> dict[str, Any]:
        """Corpus BLEU and chrF (sacrebleu defaults) with their signature strings."""
        if len(hypotheses) != len(references):
            raise ValueError(
                f"{len(hypotheses)} hypotheses for {len(references)} references: every test "
                "sentence needs exactly one translation"
            )
        bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
        return {
            "bleu": float(bleu.corpus_score(hypotheses, [references]).score),
            "chrf": float(chrf.corpus_score(hypotheses, [references]).score),
            "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature()),
        }
