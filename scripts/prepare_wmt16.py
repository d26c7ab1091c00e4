"""Prepare WMT16 English-German for the paper-scale translation task (``task=wmt``).

gsprune never downloads data. Get the WMT16 news-task archives from
statmt.org/wmt16 yourself and unpack them into one folder (any layout below
it; files are found by name):

    training-parallel-europarl-v7.tgz   -> europarl-v7.de-en.{de,en}
    training-parallel-commoncrawl.tgz   -> commoncrawl.de-en.{de,en}
    training-parallel-nc-v11.tgz        -> news-commentary-v11.de-en.{de,en}
    dev.tgz                             -> newstest2015-ende-{src.en,ref.de}.sgm (validation)
                                           newstest2014-deen-{src.en,ref.de}.sgm (test)

(newstest2014/2015 may also be plain text: newstest2014.en, newstest2014.de.)
Then

    python scripts/prepare_wmt16.py /path/to/that/folder [--out data/wmt16] [--vocab-size 32000]

normalizes the text (NFKC, white space, ASCII quotes), drops empty, overlong
and length-ratio outlier training pairs, trains a joint sentencepiece model
on the training text, and binarizes everything with fairseq-preprocess into
OUT (default ``data/wmt16`` below the current directory, which is where
``task=wmt`` looks). It reads 4.5M sentence pairs: expect a long run. Run
again with the same inputs and settings, it finds the prepared corpus and stops.
Missing raw files are named in one paragraph (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

DEFAULT_OUT = Path("data/wmt16")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw_dir", type=Path, help="folder holding the unpacked WMT16 files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output corpus folder")
    parser.add_argument("--vocab-size", type=int, default=None, help="sentencepiece pieces")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    from gsprune.tasks.translation.data import WMT16_DEFAULTS, prepare_wmt16

    settings = {} if args.vocab_size is None else {"vocab_size": args.vocab_size}
    started = time.monotonic()
    try:
        corpus = prepare_wmt16(args.raw_dir, args.out, settings)
    except (FileNotFoundError, ValueError) as err:
        print(f"prepare_wmt16: {err}", file=sys.stderr)
        return 2
    meta = corpus.meta()
    print(f"WMT16 {corpus.src}->{corpus.tgt} corpus in {corpus.root.resolve()}")
    print(f"  settings: {json.dumps({**WMT16_DEFAULTS, **meta['settings']})}")
    for name, files in meta["source"]["files"].items():
        print(f"  {name}: {', '.join(files.values())}")
    for split in ("train", "valid", "test"):
        print(f"  {split}: {meta['counts'][split]} sentence pairs (read and dropped: "
              f"{meta['reading'][split]}, {meta['filtered'][split]})")  # fmt: skip
    print(f"  dictionary: {meta['vocab']} entries; {time.monotonic() - started:.0f} s")
    if args.out.resolve() == DEFAULT_OUT.resolve():
        print("Then: gsprune task=wmt pattern=gs sparsity=0.9")
    else:
        print(f"Then: gsprune task=wmt task.data_dir={args.out} pattern=gs sparsity=0.9")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
