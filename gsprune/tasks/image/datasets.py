"""The image task's data sources: Fashion-MNIST in memory and ImageNet in ImageFolder layout."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torchvision
from torch.utils.data import Dataset

from gsprune.registry import Registry
from gsprune.tasks.base import (
    check_flag,
    check_number,
)
from gsprune.tasks.data import (
    FASHION_MNIST_FILES,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    InMemoryImages,
    keep_batch,
    load_fashion_mnist,
    normalize_images,
)

SCALES = ("embedded", "paper")
EMBEDDED_HINT = "or run the embedded image task, which needs no download, with `task=image`"


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
            self.settings["crop_padding"],
            "task.fashion_mnist.crop_padding",
            0,
            integer=True,
            maximum=28,
        )
        check_flag(self.settings["flip"], "task.fashion_mnist.flip")
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
