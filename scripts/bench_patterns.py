"""Kept score and speed of every pattern projection, and ResNet-50 projected to GS.

Plain script: for a Gaussian 1024x1024 score matrix |w| and sparsities 0.5,
0.75, 0.9, 0.95 it projects onto each pattern (dense excluded) and records the
achieved sparsity, the kept score relative to unstructured top-k at the same
target, and the projection time (median of interleaved repeats). Then it times
projecting every prunable weight of torchvision's resnet50 (random init, no
download; conv1 and fc excluded) onto GS V=8 at sparsity 0.9.

Writes results/bench/patterns.md and results/bench/patterns.csv.

    python scripts/bench_patterns.py [--size 1024] [--repeats 3] [--threads N] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torchvision
from bench_formats import format_rows
from benchlib import machine_lines, write_csv

from gsprune import patterns
from gsprune.latency.timing import time_interleaved
from gsprune.patterns import achieved_sparsity
from gsprune.views import gemm_view, prunable_parameters

SPARSITIES = (0.5, 0.75, 0.9, 0.95)
# (label, pattern, params, sparsities it runs at: None = all); nm 2:4 has the one
# natural sparsity 0.5 and ignores any other target.
CASES = [
    ("unstructured", "unstructured", {}, None),
    ("block 1x8", "block", {"R": 1, "C": 8}, None),
    ("block 4x4", "block", {"R": 4, "C": 4}, None),
    ("nm 2:4", "nm", {"N": 2, "M": 4}, (0.5,)),
    ("row_balanced", "row_balanced", {}, None),
    ("bank_balanced B=8", "bank_balanced", {"B": 8}, None),
    ("gs V=8", "gs", {"V": 8}, None),
    ("gs V=8 band_k=free", "gs", {"V": 8, "band_k": "free"}, None),
    ("gs V=8 B=16", "gs", {"V": 8, "B": 16}, None),
    ("gs V=32", "gs", {"V": 32}, None),
    ("gs_scatter V=8", "gs_scatter", {"V": 8}, None),
    ("gs_free V=8", "gs_free", {"V": 8}, None),
]
RESNET_EXCLUDE = ["conv1.weight", "fc.weight"]


def pattern_rows(size: int, repeats: int, seed: int = 0) -> list[dict]:
    """One row per (sparsity, case) on a Gaussian ``size x size`` score matrix."""
    scores = torch.randn(size, size, generator=torch.Generator().manual_seed(seed)).abs()
    rows = []
    for sparsity in SPARSITIES:
        cases = [case[:3] for case in CASES if case[3] is None or sparsity in case[3]]
        masks = {
            label: patterns.get(name).project(scores, sparsity, **params)
            for label, name, params in cases
        }
        reference = float(scores.double()[masks["unstructured"]].sum())
        timings = time_interleaved(
            {
                label: (
                    lambda n=name, p=params, s=sparsity: patterns.get(n).project(scores, s, **p)
                )
                for label, name, params in cases
            },
            warmup=1,
            repeats=repeats,
        )
        for label, _, _ in cases:
            rows.append(
                {
                    "size": size,
                    "sparsity": sparsity,
                    "pattern": label,
                    "achieved": round(achieved_sparsity(masks[label]), 5),
                    "kept_vs_unstructured": round(
                        float(scores.double()[masks[label]].sum()) / reference, 5
                    ),
                    "median_ms": round(timings[label].median_ms, 2),
                    "spread_ms": round(timings[label].spread_ms, 2),
                }
            )
            print(rows[-1], flush=True)
    return rows


def resnet50_projection(threads: int, sparsity: float = 0.9, repeats: int = 3) -> dict:
    """Seconds to project every prunable resnet50 weight (conv1, fc excluded) onto GS V=8."""
    torch.manual_seed(0)
    model = torchvision.models.resnet50()
    weights = prunable_parameters(model, ["*"], RESNET_EXCLUDE)
    scores = [gemm_view(w.detach()).abs() for w in weights.values()]
    gs = patterns.get("gs")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for s in scores:
            gs.project(s, sparsity, V=8)
        seconds.append(time.perf_counter() - start)
    torch.set_num_threads(previous)
    return {
        "threads": threads,
        "layers": len(scores),
        "weights": sum(s.numel() for s in scores),
        "sparsity": sparsity,
        "median_s": sorted(seconds)[len(seconds) // 2],
        "all_s": [round(s, 2) for s in seconds],
    }


def write_markdown(path: Path, rows: list[dict], resnet: list[dict]) -> None:
    lines = [
        "# Pattern projections",
        "",
        f"Gaussian {rows[0]['size']}x{rows[0]['size']} scores |w|. `kept` is the kept score "
        "relative to unstructured top-k at the same target sparsity; `achieved` is the "
        "sparsity the projection reached (nm 2:4 is always 0.5). Time: median of interleaved "
        "repeats (spread = p90 - p10).",
        "",
        "| sparsity | pattern | achieved | kept | time (ms) | spread (ms) |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['sparsity']} | {r['pattern']} | {r['achieved']:.4f} | "
        f"{r['kept_vs_unstructured']:.4f} | {r['median_ms']:.1f} | {r['spread_ms']:.1f} |"
        for r in rows
    ]
    lines += [
        "",
        "## ResNet-50 projected to GS V=8",
        "",
        f"All {resnet[0]['layers']} prunable weights of torchvision resnet50 (random init; "
        f"{', '.join(RESNET_EXCLUDE)} excluded; {resnet[0]['weights']:,} weights) projected to "
        f"gs V=8 at sparsity {resnet[0]['sparsity']}, one layer after the other:",
        "",
        "| torch threads | median (s) | all repeats (s) |",
        "| ---: | ---: | --- |",
        *(f"| {r['threads']} | {r['median_s']:.2f} | {r['all_s']} |" for r in resnet),
        "",
        "## Bytes per non-zero of the formats",
        "",
        "The same weights encoded in each pattern's format (GS int16 column indices, CSR and",
        "BSR int32 indices, N:M uint8 offsets); `scripts/bench_formats.py` adds 4096x4096.",
        "",
        "| sparsity | format | bytes per non-zero | size vs dense |",
        "| ---: | --- | ---: | ---: |",
        *(
            f"| {r['sparsity']} | {r['format']} | {r['bytes_per_nnz']} | {r['vs_dense']} |"
            for r in format_rows(rows[0]["size"])
        ),
        "",
        *machine_lines(),
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    rows = pattern_rows(args.size, args.repeats)
    write_csv(args.out / "patterns.csv", rows)
    # One thread too: the exchange loop is many tiny ops, and on a loaded machine a second
    # thread costs more in synchronisation than it brings.
    resnet = [
        resnet50_projection(threads, repeats=args.repeats)
        for threads in sorted({1, torch.get_num_threads()})
    ]
    print(resnet, flush=True)
    write_markdown(args.out / "patterns.md", rows, resnet)
    print(f"wrote {args.out / 'patterns.md'} and {args.out / 'patterns.csv'}")


if __name__ == "__main__":
    main()
