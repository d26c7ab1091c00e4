"""Data helpers for the image tasks: an IDX reader, in-memory image tensors, loaders.

Fashion-MNIST comes from the Debian package ``dataset-fashion-mnist`` as four
gzip'd IDX files; the whole set (60k + 10k images of 28x28 bytes, 55 MB) is
read once into memory and batches are cut and augmented as whole tensors
(no per-sample Python), which keeps a 2-core CPU busy with the model instead
of the loader. ImageNet is read with ``torchvision.datasets.ImageFolder``.
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

# IDX type codes (http://yann.lecun.com/exdb/mnist/): all multi-byte values are big-endian.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_SIZES = {"train": 60_000, "test": 10_000}
# Mean and std of the Fashion-MNIST training pixels scaled to [0, 1].
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzip'd, by the ``.gz`` suffix) into an array.

    Layout: two zero bytes, a type code (``IDX_DTYPES``), the number of
    dimensions ``n``, ``n`` big-endian uint32 sizes, then the values in C order.
    Returns an array of that shape in native byte order. A file that breaks
    the layout (bad magic, unknown type, wrong length, broken gzip) raises
    ValueError naming the file and what was wrong.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot be read as a (gzip'd) IDX file ({err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file (the first two bytes must be zero, got {raw[:2]!r}); "
            "expected an MNIST-style idx1/idx3 file"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        accepted = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X}; accepted: {accepted}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header truncated ({len(raw)} bytes, {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path}: IDX size mismatch: the header announces shape {shape} of {dtype} "
            f"({expected} bytes in all) but the file holds {len(raw)} bytes (truncated or corrupt)"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


@functools.lru_cache(maxsize=8)
def _read_idx_version(path: str, mtime_ns: int, size: int) -> np.ndarray:
    return read_idx(path)


def read_idx_cached(path: str | os.PathLike) -> np.ndarray:
    """``read_idx`` once per file version in this process, then a copy of the cached array.

    Decompressing Fashion-MNIST is most of a run's planning time; the Hydra basic
    launcher plans every cell of a sweep in one process.
    """
    stat = Path(path).stat()
    return _read_idx_version(str(path), stat.st_mtime_ns, stat.st_size).copy()


def load_fashion_mnist(
    data_dir: str | os.PathLike, split: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of Fashion-MNIST: ``images: uint8[N, 28, 28]``, ``labels: int64[N]``.

    ``split`` is "train" (N = 60000) or "test" (N = 10000). Checks the IDX
    ranks, the 28x28 image size, the expected count, matching image and label
    counts, and labels in 0..9.
    """
    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"split={split!r} is not a Fashion-MNIST split; accepted: train, test")
    image_file, label_file = (Path(data_dir) / name for name in FASHION_MNIST_FILES[split])
    images, labels = read_idx_cached(image_file), read_idx_cached(label_file)
    n = FASHION_MNIST_SIZES[split]
    if images.shape != (n, 28, 28) or images.dtype != np.uint8:
        raise ValueError(
            f"{image_file}: expected uint8 images of shape ({n}, 28, 28), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.shape != (n,) or labels.dtype != np.uint8:
        raise ValueError(
            f"{label_file}: expected {n} uint8 labels, got {labels.dtype} {labels.shape}"
        )
    if labels.max() > 9:
        raise ValueError(f"{label_file}: labels must be in 0..9, found {int(labels.max())}")
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def normalize_images(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """``uint8[N, H, W]`` -> ``float32[N, 1, H, W]`` scaled to [0, 1], then standardised."""
    return ((images.float() / 255.0 - mean) / std).unsqueeze(1).contiguous()


def random_crop_flip(images: torch.Tensor, padding: int, flip: bool) -> torch.Tensor:
    """Augment a whole batch ``float[B, C, H, W]``: random crop after zero padding, h-flip.

    Each image gets its own offset in ``[0, 2 * padding]`` along both axes (the
    torchvision ``RandomCrop(padding=...)`` rule) and, when ``flip``, a
    horizontal flip with probability 1/2. Uses the global torch RNG.
    Returns a new tensor of the same shape.
    """
    b, c, h, w = images.shape
    if padding > 0:
        padded = torch.nn.functional.pad(images, (padding,) * 4).permute(0, 2, 3, 1)
        dy = torch.randint(0, 2 * padding + 1, (b, 1, 1))
        dx = torch.randint(0, 2 * padding + 1, (b, 1, 1))
        rows = dy + torch.arange(h).view(1, h, 1)
        cols = dx + torch.arange(w).view(1, 1, w)
        images = padded[torch.arange(b).view(b, 1, 1), rows, cols].permute(0, 3, 1, 2)
    if flip:
        flipped = torch.rand(b) < 0.5
        images = torch.where(flipped.view(b, 1, 1, 1), images.flip(3), images)
    return images.contiguous()


class InMemoryImages(Dataset):
    """Images held as one tensor; batches are fetched (and augmented) whole.

    ``images: float32[N, C, H, W]`` (already normalised), ``labels: int64[N]``.
    ``__getitems__`` returns ``(x: float32[B, C, H, W], y: int64[B])`` for a
    list of indices, so a DataLoader built by ``make_loader`` yields ready
    batches without per-sample collation.
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, padding: int = 0, flip: bool = False
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels
        self.padding, self.flip = padding, flip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        x = self.images[index]
        if self.padding or self.flip:
            x = random_crop_flip(x, self.padding, self.flip)
        return x, self.labels[index]


def keep_batch(batch: Any) -> Any:
    """Collate function for datasets whose ``__getitems__`` already returns a batch."""
    return batch


def distributed() -> bool:
    """True inside a torchrun job (``torch.distributed`` initialised)."""
    return dist.is_available() and dist.is_initialized()


def make_loader(
    dataset: Dataset,
    batch_size: int,
    train: bool,
    num_workers: int = 0,
    collate_fn: Callable[[Any], Any] | None = None,
) -> DataLoader:
    """A DataLoader: shuffled and drop-last for training, ordered for evaluation.

    Under ``torch.distributed`` each rank reads its shard through a
    ``DistributedSampler`` (``batch_size`` is per rank, as in torchvision's
    reference script); the training loop calls ``sampler.set_epoch``.
    """
    sampler = DistributedSampler(dataset, shuffle=train) if distributed() else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        drop_last=train,
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
    )
