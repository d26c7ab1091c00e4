"""Lay out ImageNet-1k (ILSVRC2012) for the paper-scale image task (``task=imagenet``).

gsprune never downloads data. Get the three official archives from
image-net.org yourself (after accepting its terms of access) into one folder:

    ILSVRC2012_img_train.tar        (138 GB, one tar per class inside)
    ILSVRC2012_img_val.tar          (6.3 GB)
    ILSVRC2012_devkit_t12.tar.gz    (2.5 MB, holds the validation labels)

then run

    python scripts/prepare_imagenet.py /path/to/that/folder

which checks the archives' MD5 sums and extracts them, in place, into the
ImageFolder layout the task reads (about 150 GB more; hours on one disk):

    /path/to/that/folder/train/n01440764/n01440764_10026.JPEG   (1,281,167 images)
    /path/to/that/folder/val/n01440764/ILSVRC2012_val_00000293.JPEG   (50,000 images)

and finally validates the result exactly as a run does. Then:

    gsprune task=imagenet task.data_dir=/path/to/that/folder

A folder that already holds train/ and val/ in this layout (as many clusters
provide) needs no preparation: pass it as task.data_dir directly.
The extraction uses torchvision's own ImageNet archive parsers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from torchvision.datasets import imagenet

from gsprune import tasks

CONFIG = Path(__file__).resolve().parent.parent / "conf" / "task" / "imagenet.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder holding the three ILSVRC2012 archives")
    root = parser.parse_args(argv).root
    missing = [name for name, _ in imagenet.ARCHIVE_META.values() if not (root / name).is_file()]
    if missing and not ((root / "train").is_dir() and (root / "val").is_dir()):
        print(
            f"prepare_imagenet: {root} lacks {', '.join(missing)}; download the ILSVRC2012 "
            "archives from image-net.org into it first (see this script's docstring)",
            file=sys.stderr,
        )
        return 2
    if not missing:
        imagenet.parse_devkit_archive(root)
        if not (root / "train").is_dir():
            print("extracting the training archive (one tar per class) ...", flush=True)
            imagenet.parse_train_archive(root)
        if not (root / "val").is_dir():
            print("extracting the validation archive ...", flush=True)
            wnids = imagenet.load_meta_file(root)[1]
            imagenet.parse_val_archive(root, wnids=wnids)
    cfg = yaml.safe_load(CONFIG.read_text()) | {"data_dir": str(root)}
    tasks.build(cfg).check()
    print(f"ImageNet is ready: gsprune task=imagenet task.data_dir={root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
