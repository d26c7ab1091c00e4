"""The image Task (kind ``image``): loss, top-1, predictions and the majority-class baseline."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import DataLoader

from gsprune.tasks import register
from gsprune.tasks.base import (
    Evaluation,
    Task,
    check_flag,
    check_number,
    model_device,
)
from gsprune.tasks.data import (
    distributed,
    make_loader,
)
from gsprune.tasks.image.datasets import DATASETS, SCALES
from gsprune.tasks.image.resnet import build_classifier


@register("image")
class ImageTask(Task):
    """Image classification; metric: top-1 accuracy in percent on the eval split."""

    kind = "image"
    metric_name = "top1"
    higher_is_better = True

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__(cfg)
        dataset = self.cfg.get("dataset")
        self.data = DATASETS.get(dataset)(self.cfg, dataset)

    def check(self) -> None:
        cfg = self.cfg
        self.check_common(SCALES)
        for key in ("batch_size", "eval_batch_size"):
            check_number(cfg.get(key), f"task.{key}", minimum=1, integer=True, maximum=65536)
        workers = cfg.get("num_workers", 0)
        check_number(workers, "task.num_workers", minimum=0, integer=True, maximum=256)
        check_number(cfg.get("label_smoothing", 0.0), "task.label_smoothing", 0.0, maximum=1.0)
        check_flag(cfg.get("channels_last", False), "task.channels_last")
        if not isinstance(cfg.get("data_dir"), str | None):
            raise ValueError(f"task.data_dir={cfg.get('data_dir')!r} must be a directory path")
        if not isinstance(cfg.get("model_args", {}), Mapping):
            raise ValueError(f"task.model_args={cfg.get('model_args')!r} must be a mapping")
        self.build_model()  # a bad model name or model_args fails here, before any data work
        self.data.check()

    weight_sources = ("torchvision",)

    def named_weights(self, source: str) -> Path:
        """``torchvision`` (the model's DEFAULT weights) or ``torchvision:NAME`` (e.g.
        ``torchvision:IMAGENET1K_V1``, the 76.1% top-1 ResNet-50), from the local torch
        hub cache only: ``torch.hub.get_dir()/checkpoints/<file name of the weights' url>``.
        """
        prefix, _, name = source.partition(":")
        if prefix not in self.weight_sources:
            return super().named_weights(source)
        model = str(self.cfg.get("model"))
        try:
            enum = torchvision.models.get_model_weights(model)
        except (ValueError, KeyError):
            raise ValueError(
                f"task.dense.init={source!r}: model={model!r} has no torchvision weights; "
                "accepted: a torchvision classification model (resnet50, ...) or a path "
                "to a state-dict file"
            ) from None
        try:
            weights = enum[name] if name else enum.DEFAULT
        except KeyError:
            names = ", ".join(w.name for w in enum)
            raise ValueError(
                f"task.dense.init={source!r}: {enum.__name__} has no {name!r}; accepted: "
                f"torchvision (DEFAULT) or torchvision:NAME with NAME one of {names}"
            ) from None
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not path.is_file():
            raise FileNotFoundError(
                f"task.dense.init={source!r}: {enum.__name__}.{weights.name} is not in the "
                f"local torch hub cache (looked for {path}); gsprune never downloads. Put the "
                f"file there from a machine with network access (`curl -L {weights.url} -o "
                f"{path}`; TORCH_HOME moves the cache), or pass its path as task.dense.init"
            )
        return path

    def describe(self) -> dict[str, str]:
        cfg = self.cfg
        return {
            "name": str(cfg["name"]),
            "kind": self.kind,
            "scale": str(cfg["scale"]),
            "model": str(cfg["model"]),
            "dataset": str(cfg["dataset"]),
        }

    def fingerprint(self) -> dict[str, Any]:
        keys = (
            "kind",
            "dataset",
            "data_dir",
            "model",
            "model_args",
            "batch_size",
            "amp",
            "channels_last",
            "label_smoothing",
            "dense",
            self.cfg["dataset"],
        )
        return self.fingerprint_of(keys)

    def build_model(self) -> nn.Module:
        model = build_classifier(
            str(self.cfg.get("model")),
            self.data.num_classes,
            self.data.in_channels,
            dict(self.cfg.get("model_args") or {}),
        )
        if self.cfg.get("channels_last"):
            model = model.to(memory_format=torch.channels_last)
        return model

    def loaders(self) -> tuple[DataLoader, DataLoader]:
        train, test = self.data.datasets()
        workers = int(self.cfg.get("num_workers", 0))
        collate = self.data.collate_fn
        return (
            make_loader(train, int(self.cfg["batch_size"]), True, workers, collate),
            make_loader(test, int(self.cfg["eval_batch_size"]), False, workers, collate),
        )

    def _inputs(self, images: torch.Tensor) -> torch.Tensor:
        if self.cfg.get("channels_last"):
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, labels = batch
        logits = model(self._inputs(images))
        smoothing = float(self.cfg.get("label_smoothing", 0.0))
        return F.cross_entropy(logits.float(), labels, label_smoothing=smoothing)

    def evaluate(self, model: nn.Module, loader: DataLoader) -> float:
        """Top-1 accuracy in percent over every batch of ``loader`` (summed over ranks).

        Under torchrun the DistributedSampler pads the eval set to a multiple
        of the world size, so a few images may count twice, as in torchvision.
        """
        return self._score(model, loader)[0]

    def test(self, model: nn.Module) -> Evaluation:
        """Top-1 on the eval split; outputs ``predictions.tsv``: index, label, prediction.

        The rows are this process's eval images in loader order (all of them
        without torchrun), headed by a ``index\tlabel\tprediction`` line.
        """
        value, labels, predicted = self._score(model, self.loaders()[1])
        pairs = enumerate(zip(labels, predicted, strict=True))
        rows = [f"{i}\t{label}\t{guess}" for i, (label, guess) in pairs]
        return Evaluation(value, outputs={"predictions.tsv": ["index\tlabel\tprediction", *rows]})

    def baseline(self) -> dict[str, Any]:
        """Always answering the eval split's most frequent class: its top-1 in percent."""
        labels = torch.cat([batch[1].flatten() for batch in self.loaders()[1]])
        counts = torch.bincount(labels)
        return {
            "name": "majority-class",
            "value": float(100.0 * counts.max() / labels.numel()),
            "class": int(counts.argmax()),
        }

    @torch.no_grad()
    def _score(self, model: nn.Module, loader: DataLoader) -> tuple[float, list[int], list[int]]:
        """(top-1 in percent over all ranks, this rank's labels, its predictions) in order."""
        was_training = model.training
        model.eval()
        device = model_device(model)
        counts = torch.zeros(2, dtype=torch.float64, device=device)
        labels_seen: list[int] = []
        predicted: list[int] = []
        for images, labels in loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device)
            with self.autocast(model):
                logits = model(self._inputs(images))
            guesses = logits.argmax(dim=1)
            counts[0] += (guesses == labels).sum()
            counts[1] += labels.numel()
            labels_seen += labels.tolist()
            predicted += guesses.tolist()
        if distributed():
            dist.all_reduce(counts)
        model.train(was_training)
        if counts[1] == 0:
            raise ValueError("the evaluation loader is empty")
        return float(100.0 * counts[0] / counts[1]), labels_seen, predicted
