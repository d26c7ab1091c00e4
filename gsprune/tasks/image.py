"""Image recognition (DESIGN §7): top-1 accuracy of a ResNet.

Two scales share this one task kind (``kind: image``):

- embedded (``conf/task/image.yaml``): ``resnet_small`` below on Fashion-MNIST
  from the Debian package ``dataset-fashion-mnist``, held in memory;
- paper (``conf/task/imagenet.yaml``): torchvision's ``resnet50`` on ImageNet
  in ImageFolder layout under a user-given ``data_dir``, trained with the
  torchvision reference recipe (see ``scripts/prepare_imagenet.py``).

Task config keys (besides the ``dense:``/``finetune:`` sections of
``gsprune.tasks.base``)::

    name, kind: image, scale: embedded | paper
    dataset: fashion_mnist | imagenet     # a key of DATASETS
    data_dir: path                        # imagenet: mandatory
    model: resnet_small | <torchvision classification model name>
    model_args: {}                        # keyword arguments of the model builder
    batch_size, eval_batch_size, num_workers
    amp: false                            # bfloat16 autocast
    channels_last: false
    label_smoothing: 0.0
    include, exclude: [fnmatch patterns]  # prunable parameters (gsprune.views)
    fashion_mnist: train_subset (null | N first images), crop_padding, flip
    imagenet: crop_size, resize_size
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset

from gsprune.registry import Registry
from gsprune.tasks import register
from gsprune.tasks.base import Evaluation, Task, check_choice, check_number, model_device
from gsprune.tasks.data import (
    FASHION_MNIST_FILES,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    InMemoryImages,
    distributed,
    keep_batch,
    load_fashion_mnist,
    make_loader,
    normalize_images,
)

SCALES = ("embedded", "paper")
EMBEDDED_HINT = "or run the embedded image task, which needs no download, with `task=image`"

# -- models ----------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut, as in ResNet-18."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.downsample(x))


class SmallResNet(nn.Module):
    """A ResNet for small images with torchvision's parameter names (conv1, layerN, fc).

    ``conv1`` (3x3, stride ``stem_stride``) maps ``in_channels`` to
    ``widths[0]``; stage i holds ``blocks[i]`` BasicBlocks of ``widths[i]``
    channels, the first of them with stride 2 for i > 0. With the defaults a
    28x28 image runs at 14, 7 and 4 pixels through stages of 64, 128 and 256
    channels, whose 3x3 convs have GEMM views of 64x576, 128x1152 and 256x2304:
    big enough that their sparsity matters, small enough for a 2-core CPU.
    Input ``float[B, in_channels, H, W]``, output logits ``float[B, num_classes]``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        widths: Sequence[int] = (64, 128, 256),
        blocks: Sequence[int] = (1, 1, 1),
        stem_stride: int = 2,
    ) -> None:
        super().__init__()
        if len(widths) != len(blocks) or not widths or min(*widths, *blocks, stem_stride) < 1:
            raise ValueError(
                f"resnet_small needs as many positive widths as blocks and stem_stride >= 1; "
                f"got widths={list(widths)}, blocks={list(blocks)}, stem_stride={stem_stride}"
            )
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        channels = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks, strict=True), start=1):
            layers = []
            for index in range(count):
                stride = 2 if stage > 1 and index == 0 else 1
                layers.append(BasicBlock(channels, width, stride))
                channels = width
            self.add_module(f"layer{stage}", nn.Sequential(*layers))
        self.stages = len(widths)
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of each block: every block starts as identity (Goyal et al.).
        for module in self.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        for stage in range(1, self.stages + 1):
            x = getattr(self, f"layer{stage}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build_classifier(
    name: str, num_classes: int, in_channels: int, model_args: Mapping[str, Any]
) -> nn.Module:
    """``resnet_small`` or any torchvision classification model, randomly initialised.

    torchvision models are built with ``weights=None`` (nothing downloads) and
    expect 3-channel input.
    """
    try:
        if name == "resnet_small":
            return SmallResNet(num_classes, in_channels, **model_args)
        if name not in torchvision.models.list_models(module=torchvision.models):
            raise ValueError(
                f"model={name!r} is unknown; accepted: resnet_small or a torchvision "
                "classification model name (resnet18, resnet50, wide_resnet50_2, ...)"
            )
        if in_channels != 3:
            raise ValueError(
                f"model={name!r} is a torchvision model for 3-channel images but the dataset "
                f"has {in_channels} channel(s); use model=resnet_small"
            )
        return torchvision.models.get_model(
            name, weights=None, num_classes=num_classes, **model_args
        )
    except TypeError as err:  # an unknown or mistyped keyword in model_args
        raise ValueError(
            f"task.model_args={dict(model_args)!r} do not fit model {name!r} ({err}); accepted: "
            "the keyword arguments of its builder (resnet_small: widths, blocks, stem_stride)"
        ) from err


# -- datasets --------------------------------------------------------------------


class ImageData(ABC):
    """One dataset source: validation, the train/eval datasets, their loader settings.

    Subclasses set ``num_classes``, ``in_channels``, ``defaults`` (their own
    config keys, under ``task.<dataset name>``) and ``collate_fn``.
    """

    num_classes: ClassVar[int]
    in_channels: ClassVar[int]
    defaults: ClassVar[dict[str, Any]] = {}
    collate_fn: ClassVar[Any] = None

    def __init__(self, cfg: Mapping[str, Any], name: str) -> None:
        self.task_name = str(cfg.get("name", "image"))
        self.data_dir = cfg.get("data_dir")
        self.settings = {**self.defaults, **(cfg.get(name) or {})}
        unknown = set(self.settings) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"task.{name} has unknown key(s) {sorted(unknown)}; accepted: "
                f"{sorted(self.defaults)}"
            )
        self._datasets: tuple[Dataset, Dataset] | None = None

    @abstractmethod
    def check(self) -> None:
        """Raise ValueError/FileNotFoundError when the data is missing or malformed."""

    @abstractmethod
    def build(self) -> tuple[Dataset, Dataset]:
        """``(train, eval)`` datasets."""

    def datasets(self) -> tuple[Dataset, Dataset]:
        """Built once per task: loading or scanning the data is the slow part."""
        if self._datasets is None:
            self._datasets = self.build()
        return self._datasets


DATASETS: Registry[type[ImageData]] = Registry("image dataset")


@DATASETS.register("fashion_mnist")
class FashionMNIST(ImageData):
    """Fashion-MNIST from its four gzip'd IDX files, normalised and held in memory.

    Training batches get a random crop after ``crop_padding`` zero pixels and a
    random horizontal flip; ``train_subset`` = N trains on the first N of the
    60,000 training images. Evaluation is always on the full 10,000 test images.
    """

    num_classes = 10
    in_channels = 1
    defaults = {"train_subset": None, "crop_padding": 2, "flip": True}
    collate_fn = staticmethod(keep_batch)

    def check(self) -> None:
        if not self.data_dir:
            raise ValueError(
                f"task {self.task_name}: data_dir is not set; the embedded image task reads "
                "/usr/share/datasets/fashion-mnist from the Debian package dataset-fashion-mnist"
            )
        for name in (f for pair in FASHION_MNIST_FILES.values() for f in pair):
            path = Path(self.data_dir) / name
            if not path.is_file():
                raise FileNotFoundError(
                    f"task {self.task_name}: the Fashion-MNIST file {path} is missing. Install "
                    "the Debian package dataset-fashion-mnist (`bash scripts/install_apt.sh "
                    "apt.txt`, which reads apt.txt) or set task.data_dir to a folder holding "
                    "train-/t10k-images-idx3-ubyte.gz and train-/t10k-labels-idx1-ubyte.gz"
                )
        subset = self.settings["train_subset"]
        if subset is not None:
            check_number(subset, "task.fashion_mnist.train_subset", minimum=1, integer=True)
        check_number(
            self.settings["crop_padding"], "task.fashion_mnist.crop_padding", 0, integer=True
        )
        self.datasets()  # parses and validates the four files now, before any training

    def build(self) -> tuple[Dataset, Dataset]:
        train_x, train_y = load_fashion_mnist(self.data_dir, "train")
        test_x, test_y = load_fashion_mnist(self.data_dir, "test")
        subset = self.settings["train_subset"]
        if subset is not None:
            if subset > len(train_y):
                raise ValueError(
                    f"task.fashion_mnist.train_subset={subset} exceeds the {len(train_y)} "
                    "training images; use null for all of them"
                )
            train_x, train_y = train_x[:subset], train_y[:subset]
        train = InMemoryImages(
            normalize_images(train_x, FASHION_MNIST_MEAN, FASHION_MNIST_STD),
            train_y,
            padding=int(self.settings["crop_padding"]),
            flip=bool(self.settings["flip"]),
        )
        test = InMemoryImages(
            normalize_images(test_x, FASHION_MNIST_MEAN, FASHION_MNIST_STD), test_y
        )
        return train, test


@DATASETS.register("imagenet")
class ImageNet(ImageData):
    """ImageNet-1k in ImageFolder layout: ``data_dir/{train,val}/<class>/<image>``.

    Transforms follow torchvision's reference recipe: RandomResizedCrop
    ``crop_size`` + horizontal flip for training; Resize ``resize_size`` +
    CenterCrop ``crop_size`` for evaluation; ImageNet mean/std normalisation.
    """

    num_classes = 1000
    in_channels = 3
    defaults = {"crop_size": 224, "resize_size": 256}
    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def _fail(self, problem: str, exc: type[Exception] = ValueError) -> None:
        raise exc(
            f"task {self.task_name}: {problem}. Lay out ImageNet as <data_dir>/train/<class>/"
            "<image> and <data_dir>/val/<class>/<image> (scripts/prepare_imagenet.py builds "
            "this from the official ILSVRC2012 archives) and pass task.data_dir=/path/to/it; "
            f"{EMBEDDED_HINT}"
        )

    def check(self) -> None:
        if self.data_dir in (None, "", "???"):
            self._fail("data_dir is not set (task.data_dir is mandatory at paper scale)")
        root = Path(self.data_dir)
        if not root.is_dir():
            self._fail(f"data_dir={str(root)!r} does not exist", FileNotFoundError)
        for split in ("train", "val"):
            if not (root / split).is_dir():
                self._fail(f"{root / split} does not exist", FileNotFoundError)
        classes = {}
        for split in ("train", "val"):
            folder = root / split
            names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
            if not names:
                self._fail(f"{folder} holds no class folders")
            for name in names:
                with os.scandir(folder / name) as entries:
                    if not any(entry.is_file() for entry in entries):
                        self._fail(f"the class folder {folder / name} holds no images")
            classes[split] = names
        if classes["train"] != classes["val"]:
            only = sorted(set(classes["train"]) ^ set(classes["val"]))[:5]
            self._fail(f"train/ and val/ hold different class folders (e.g. {only})")
        for key in ("crop_size", "resize_size"):
            check_number(self.settings[key], f"task.imagenet.{key}", minimum=1, integer=True)

    def build(self) -> tuple[Dataset, Dataset]:
        from torchvision import transforms as T

        crop, resize = int(self.settings["crop_size"]), int(self.settings["resize_size"])
        normalize = T.Normalize(self.MEAN, self.STD)
        train_tf = T.Compose(
            [T.RandomResizedCrop(crop), T.RandomHorizontalFlip(), T.ToTensor(), normalize]
        )
        eval_tf = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(), normalize])
        root = Path(self.data_dir)
        folder = torchvision.datasets.ImageFolder
        return folder(root / "train", train_tf), folder(root / "val", eval_tf)


# -- the task ----------------------------------------------------------------------


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
        check_choice(cfg.get("kind"), "task.kind", ("image",))
        check_choice(cfg.get("scale"), "task.scale", SCALES)
        for key in ("batch_size", "eval_batch_size"):
            check_number(cfg.get(key), f"task.{key}", minimum=1, integer=True)
        check_number(cfg.get("num_workers", 0), "task.num_workers", minimum=0, integer=True)
        check_number(cfg.get("label_smoothing", 0.0), "task.label_smoothing", minimum=0.0)
        for key in ("include", "exclude"):
            patterns = cfg.get(key)
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                raise ValueError(
                    f"task.{key}={patterns!r} must be a list of fnmatch patterns over parameter "
                    "names, e.g. ['*'] or ['conv1.weight', 'fc.weight']"
                )
        if not isinstance(cfg.get("model_args", {}), Mapping):
            raise ValueError(f"task.model_args={cfg.get('model_args')!r} must be a mapping")
        self.check_phases()
        self.build_model()  # a bad model name or model_args fails here, before any data work
        self.data.check()

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
        return {key: self.cfg.get(key) for key in keys}

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
