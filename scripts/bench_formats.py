"""Bytes per non-zero of each compact format, and the time to encode ResNet-50 to GS.

Plain script: for Gaussian weights of 1024x1024 and 4096x4096 at sparsities
0.5, 0.75, 0.9, 0.95 it projects the scores |w| onto each pattern, encodes the
mask in the pattern's format and records nnz, nbytes, bytes per non-zero and
the size relative to the dense matrix: GS (V=8, int16 indices), CSR (int32),
BSR 1x8 and 4x4, N:M 2:4 (only at its natural sparsity 0.5) and dense. Then it
times encoding every prunable weight of torchvision's resnet50 (random init,
conv1 and fc excluded) to GS V=8 at sparsity 0.9: the projection, the
encoder alone and ``gsprune.formats.encode`` (which also checks the mask).

Writes results/bench/formats.md and results/bench/formats.csv.

    python scripts/bench_formats.py [--sizes 1024 4096] [--out results/bench]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torchvision
from benchlib import machine_lines, write_csv

from gsprune import formats, patterns
from gsprune.formats import FORMATS
from gsprune.views import gemm_view, prunable_parameters

SPARSITIES = (0.5, 0.75, 0.9, 0.95)
# (label, pattern, params, sparsities it applies to: None = all)
CASES = [
    ("GS V=8", "gs", {"V": 8}, None),
    ("CSR", "unstructured", {}, None),
    ("BSR 1x8", "block", {"R": 1, "C": 8}, None),
    ("BSR 4x4", "block", {"R": 4, "C": 4}, None),
    ("N:M 2:4", "nm", {"N": 2, "M": 4}, (0.5,)),
]
FIELDS = [
    "size",
    "sparsity",
    "format",
    "achieved",
    "nnz",
    "nbytes",
    "bytes_per_nnz",
    "vs_dense",
    "encode_s",
]


def format_rows(size: int, seed: int = 0) -> list[dict]:
    """One row per (sparsity, format) for a Gaussian ``size x size`` weight."""
    weight = torch.randn(size, size, generator=torch.Generator().manual_seed(seed))
    dense_bytes = 4 * size * size
    rows = []
    for sparsity in SPARSITIES:
        for label, pattern, params, only in CASES:
            if only is not None and sparsity not in only:
                continue
            mask = patterns.get(pattern).project(weight.abs(), sparsity, **params)
            start = time.perf_counter()
            fmt = formats.encode(weight, mask, pattern, **params)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "size": f"{size}x{size}",
                    "sparsity": sparsity,
                    "format": label,
                    "achieved": round(1 - fmt.nnz / weight.numel(), 4),
                    "nnz": fmt.nnz,
                    "nbytes": fmt.nbytes,
                    "bytes_per_nnz": round(fmt.bytes_per_nnz, 3),
                    "vs_dense": round(fmt.nbytes / dense_bytes, 4),
                    "encode_s": round(seconds, 3),
                }
            )
        nnz = round((1 - sparsity) * weight.numel())
        rows.append(
            {
                "size": f"{size}x{size}",
                "sparsity": sparsity,
                "format": "dense",
                "achieved": sparsity,
                "nnz": nnz,
                "nbytes": dense_bytes,
                "bytes_per_nnz": round(dense_bytes / nnz, 3),
                "vs_dense": 1.0,
                "encode_s": "",
            }
        )
    return rows


def resnet50_gs_timing(sparsity: float = 0.9, V: int = 8) -> dict:
    """Seconds to project and encode every prunable resnet50 weight to GS."""
    model = torchvision.models.resnet50()  # random init: nothing downloads
    params = prunable_parameters(model, include=["*"], exclude=["conv1.weight", "fc.weight"])
    weights = [gemm_view(p.detach()) for p in params.values()]
    gs = patterns.get("gs")

    start = time.perf_counter()
    masks = [gs.project(w.abs(), sparsity, V=V) for w in weights]
    project_s = time.perf_counter() - start

    start = time.perf_counter()
    encoded = [
        FORMATS.get("gs").encode(w, m, V=V, B=V) for w, m in zip(weights, masks, strict=True)
    ]
    encoder_s = time.perf_counter() - start

    start = time.perf_counter()
    for w, m in zip(weights, masks, strict=True):
        formats.encode(w, m, "gs", V=V)
    encode_s = time.perf_counter() - start

    start = time.perf_counter()
    valid = all(formats.validate(f, "gs", V=V).ok for f in encoded)
    validate_s = time.perf_counter() - start
    return {
        "layers": len(weights),
        "weights": sum(w.numel() for w in weights),
        "nnz": sum(f.nnz for f in encoded),
        "groups": sum(f.n_groups for f in encoded),
        "project_s": project_s,
        "encoder_s": encoder_s,
        "encode_with_mask_check_s": encode_s,
        "validate_s": validate_s,
        "all_valid": valid,
    }


def write_markdown(path: Path, rows: list[dict], resnet: dict) -> None:
    lines = [
        "# Compact formats: bytes per non-zero",
        "",
        "Written by `scripts/bench_formats.py`. Gaussian weights, masks from each pattern's "
        "projection of |w|; values float32; GS V=8 with int16 column indices, CSR and BSR with "
        "int32 indices, N:M with uint8 offsets (2:4 only at its natural sparsity). `vs_dense` = "
        "nbytes / dense nbytes; `encode_s` includes the mask check.",
        "",
        "| " + " | ".join(FIELDS) + " |",
        "|" + "---|" * len(FIELDS),
    ]
    lines += ["| " + " | ".join(str(row[f]) for f in FIELDS) + " |" for row in rows]
    lines += [
        "",
        "## resnet50 to GS (V=8, sparsity 0.9)",
        "",
        f"{resnet['layers']} prunable weights (conv1 and fc excluded), "
        f"{resnet['weights']:,} weights, {resnet['nnz']:,} kept, {resnet['groups']:,} groups.",
        "",
        "| step | seconds |",
        "|---|---|",
        f"| projection (gs, all layers) | {resnet['project_s']:.2f} |",
        f"| GS encoder alone | {resnet['encoder_s']:.2f} |",
        f"| gsprune.formats.encode (mask check + encoder) | "
        f"{resnet['encode_with_mask_check_s']:.2f} |",
        f"| gsprune.formats.validate of the formats | {resnet['validate_s']:.2f} |",
        "",
        f"All encoded layers valid: {resnet['all_valid']}.",
        "",
        *machine_lines(),
    ]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    rows = [row for size in args.sizes for row in format_rows(size)]
    resnet = resnet50_gs_timing()
    write_csv(args.out / "formats.csv", rows)
    write_markdown(args.out / "formats.md", rows, resnet)
    print((args.out / "formats.md").read_text())


if __name__ == "__main__":
    main()
