"""IDX reading, Fashion-MNIST loading, batch augmentation and loaders."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gsprune.tasks.data import (
    InMemoryImages,
    keep_batch,
    load_fashion_mnist,
    make_loader,
    random_crop_flip,
    read_idx,
)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (FASHION_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
    reason=f"{FASHION_DIR} is absent: install the Debian package dataset-fashion-mnist "
    "(bash scripts/install_apt.sh apt.txt)",
)


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def test_read_idx_round_trips_plain_and_gzip_files(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "images-idx3-ubyte").write_bytes(idx_bytes(images, 0x08))
    with gzip.open(tmp_path / "images-idx3-ubyte.gz", "wb") as handle:
        handle.write(idx_bytes(images, 0x08))
    values = np.array([1.5, -2.0, 3.25], dtype=">f4")
    (tmp_path / "floats-idx1").write_bytes(idx_bytes(values, 0x0D))

    for name in ("images-idx3-ubyte", "images-idx3-ubyte.gz"):
        read = read_idx(tmp_path / name)
        assert read.shape == (2, 3, 4) and read.dtype == np.uint8
        assert np.array_equal(read, images)
    floats = read_idx(tmp_path / "floats-idx1")
    assert floats.dtype == np.float32 and floats.dtype.isnative
    assert floats.tolist() == [1.5, -2.0, 3.25]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x07", "first two bytes must be zero"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x07", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "header truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "size mismatch"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "size mismatch"),
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path, content, match):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_a_corrupt_gzip(tmp_path):
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100, np.uint8), 0x08))[:-30])
    with pytest.raises(ValueError, match="cannot be read as a"):
        read_idx(path)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing-idx1-ubyte.gz")


def test_load_fashion_mnist_checks_counts_and_labels(tmp_path):
    for split, count in (("train", 10), ("t10k", 10_000)):
        with gzip.open(tmp_path / f"{split}-images-idx3-ubyte.gz", "wb") as handle:
            handle.write(idx_bytes(np.zeros((count, 28, 28), np.uint8), 0x08))
        with gzip.open(tmp_path / f"{split}-labels-idx1-ubyte.gz", "wb") as handle:
            handle.write(idx_bytes(np.full(count, 11, np.uint8), 0x08))
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \(60000, 28, 28\)"):
        load_fashion_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="labels must be in 0..9, found 11"):
        load_fashion_mnist(tmp_path, "test")
    with pytest.raises(ValueError, match="split='val'"):
        load_fashion_mnist(tmp_path, "val")


@needs_fashion
@pytest.mark.parametrize(("split", "count"), [("train", 60_000), ("test", 10_000)])
def test_fashion_mnist_from_the_debian_package(split, count):
    images, labels = load_fashion_mnist(FASHION_DIR, split)
    assert images.shape == (count, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (count,) and labels.dtype == torch.int64
    # Fashion-MNIST is balanced: every one of the 10 classes has a tenth of the images.
    assert torch.equal(torch.bincount(labels), torch.full((10,), count // 10))
    assert 0.25 < images.float().mean() / 255 < 0.32


def test_random_crop_flip_takes_shifted_windows():
    torch.manual_seed(0)
    images = torch.randn(64, 2, 5, 7)
    assert torch.equal(random_crop_flip(images, 0, False), images)
    out = random_crop_flip(images, 2, True)
    assert out.shape == images.shape
    padded = torch.nn.functional.pad(images, (2,) * 4)
    flipped = 0
    for image, result in zip(padded, out, strict=True):
        candidates = [
            (flip, image[:, dy : dy + 5, dx : dx + 7])
            for dy in range(5)
            for dx in range(5)
            for flip in (False, True)
        ]
        matches = [f for f, c in candidates if torch.equal(c.flip(2) if f else c, result)]
        assert matches, "every output must be a (flipped) window of the padded image"
        flipped += matches[0]
    assert 10 < flipped < 54  # about half are flipped


def test_in_memory_loader_yields_whole_batches():
    images = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 1, 3, 3)
    dataset = InMemoryImages(images.contiguous(), torch.arange(10))
    train = make_loader(dataset, 4, train=True, collate_fn=keep_batch)
    batches = list(train)
    assert len(batches) == 2  # drop_last
    for x, y in batches:
        assert x.shape == (4, 1, 3, 3) and torch.equal(x[:, 0, 0, 0].long(), y)
    ordered = make_loader(dataset, 4, train=False, collate_fn=keep_batch)
    assert [y.tolist() for _, y in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    x, y = dataset[3]
    assert x.shape == (1, 3, 3) and int(y) == 3
    with pytest.raises(ValueError, match="10 images but 9 labels"):
        InMemoryImages(images, torch.arange(9))
