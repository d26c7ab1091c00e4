"""Where the GS SpMM kernel's time goes: the same kernel with x's rows held in L1.

Issue #10 asks GS at sparsity 0.9 for 6x over dense on every GEMM the embedded models
run; on the small conv GEMMs and Jasper's convolutions it reaches 3.4-5x. This script
measures why, with one controlled change: for each shape it times

- dense: ``F.linear`` (the baseline of every speedup);
- gs: the GS kernel (``gsprune.kernels.bind``, V = 8) on the real x;
- gs_l1: the *same* call (same format arrays, same K and N, so the same code path,
  tiles and packing decision) with every column index folded into the first
  ``FOLD`` rows of x (``index % FOLD``; FOLD is a multiple of the bank count, so the
  lanes' banks do not change): the instruction stream is identical, only x's rows
  now sit in L1 (FOLD rows of one column tile: at most 16 KB);
- x_copy: ``x.clone()``, one pass over x: the order of what packing x's column
  tiles costs where the kernel packs (x over 1 MiB and read often enough, e.g.
  Jasper's GEMMs; ``for_each_column_tile`` in kernels.h), in gs and gs_l1 alike;
  timed in rounds of its own (its fresh copy of x evicted x from the caches when it
  ran in the rotation, which made gs slower than in bench_kernels.py).

x's rows start on 64-byte boundaries (``kernels.aligned_rows``), as in bench_kernels.py
and the latency harness.

gs / gs_l1 is how much faster the same instructions run when x's rows hit L1: the
cost of bringing x from L2 (or L3) to the registers, the most a better blocking of x
(K-windows, column-outer orders) could win back; gs_l1's speedup over dense is what
the instruction stream itself allows. ``x GB/s`` is the x traffic the
kernel implies (every stored value reads its x row once: nnz x N floats, packing not
counted) over its time. The folded product is wrong by design: it is not checked, and
it runs through the compiled extension directly, since ``bind`` refuses a format
whose lanes now repeat columns.

Timing as every benchmark here: ``--rounds`` interleaved rounds of ``--repeats``
calls, the best round's median beside the median of all rounds, with the load.
Writes results/bench/roofline.{md,csv}.

    python scripts/bench_roofline.py [--threads 1 2] [--sparsities 0.9] [--rounds 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import time
from pathlib import Path

import torch
from bench_kernels import CASES as KERNEL_CASES
from benchlib import (
    check,
    encode,
    gaussian,
    machine_lines,
    print_case,
    time_rounds,
    write_csv,
)

from gsprune import kernels
from gsprune.formats.base import DenseMatrix, GSMatrix
from gsprune.kernels import build

# (task, M, K, N): bench_kernels.py's conv GEMMs (the embedded ResNet's and Jasper's),
# where GS at 0.9 missed 6x (issue #10), beside 256 x 2304 at N = 16, where it met it.
CASES = tuple(case for case in KERNEL_CASES if case[0] in ("image", "speech"))
FOLD = 64  # rows of x the folded indices reach: 64 rows x <= 4 cache lines = 16 KB
V = 8


def folded(fmt: GSMatrix, rows: int) -> GSMatrix:
    """``fmt`` with every column index taken modulo ``rows`` (a multiple of the banks)."""
    assert rows % fmt.B == 0, "folding must keep each index's bank"
    return dataclasses.replace(fmt, index=(fmt.index.long() % rows).to(fmt.index.dtype))


def raw_call(fmt: GSMatrix, threads: int, N: int):
    """The compiled GS kernel on ``fmt`` as ``bind`` calls it (same thread rule), without
    its format check (folded formats repeat columns in a lane)."""
    ext = build.load(None)
    M, K = fmt.shape
    threads = kernels.call_threads(fmt.values.numel(), N, threads)
    return lambda x: ext.gs_matmul(
        fmt.band_ptr, fmt.values, fmt.index, None, fmt.V, M, K, x, threads, True
    )


def bench(
    case: tuple[str, int, int, int], sparsity: float, threads: list[int], rounds: int, repeats: int
) -> list[dict]:
    task, M, K, N = case
    gen = torch.Generator().manual_seed(0)
    weight = gaussian((M, K), gen)
    fmt = encode(weight, "gs", sparsity, {"V": V})
    x = kernels.aligned_rows(torch.randn(K, N, generator=gen))  # as bench_kernels and the harness
    check(kernels.matmul(fmt, x, 1), fmt.to_dense(), x, "gs")
    fold = folded(fmt, FOLD)
    rows = []
    before = torch.get_num_threads()
    for t in threads:
        fns = {
            "dense": functools.partial(kernels.bind(DenseMatrix((M, K), weight), t, "dense"), x),
            "gs": functools.partial(kernels.bind(fmt, t), x),
            "gs_l1": functools.partial(raw_call(fold, t, N), x),
        }
        torch.set_num_threads(t)
        try:
            times = time_rounds(fns, rounds, repeats)
            # In rounds of its own: each clone allocates and writes a fresh copy of x, which
            # in the rotation evicted x from the caches before the gs call.
            times.update(time_rounds({"x_copy": x.clone}, rounds, repeats))
        finally:
            torch.set_num_threads(before)
        dense = times["dense"][0]
        x_bytes = fmt.nnz * N * 4
        row = {
            "task": task,
            "M": M,
            "K": K,
            "N": N,
            "sparsity": sparsity,
            "threads": t,
            "nnz": fmt.nnz,
        }
        for name, (best, median) in times.items():
            row[f"{name}_ms"], row[f"{name}_median_ms"] = best, median
            row[f"{name}_speedup"] = dense / best
        for name in ("gs", "gs_l1"):
            row[f"{name}_x_gbs"] = x_bytes / (row[f"{name}_ms"] * 1e-3) / 1e9
        row["gs_over_gs_l1"] = row["gs_ms"] / row["gs_l1_ms"]
        rows.append(row)
        print_case(f"{task} {M}x{K} N={N} s={sparsity} t={t}", times, digits=4)
    return rows


def markdown(rows: list[dict], header: list[str]) -> str:
    lines = [
        "# GS kernel with x in L1: how much of its time is data movement",
        "",
        *header,
        "\n\n".join(__doc__.split("\n\n")[1:4]),
        "",
        "| task | M x K | N | s | threads | dense ms | gs ms (median), speedup | "
        "gs_l1 ms (median), speedup | gs / gs_l1 | x GB/s gs, gs_l1 | x_copy ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['M']}x{r['K']} | {r['N']} | {r['sparsity']} | {r['threads']} "
            f"| {r['dense_ms']:.4f} ({r['dense_median_ms']:.4f}) "
            f"| {r['gs_ms']:.4f} ({r['gs_median_ms']:.4f}), {r['gs_speedup']:.2f}x "
            f"| {r['gs_l1_ms']:.4f} ({r['gs_l1_median_ms']:.4f}), {r['gs_l1_speedup']:.2f}x "
            f"| {r['gs_over_gs_l1']:.2f} | {r['gs_x_gbs']:.0f}, {r['gs_l1_x_gbs']:.0f} "
            f"| {r['x_copy_ms']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.9])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args(argv)
    start = time.time()
    rows = [
        row
        for case in CASES
        for s in args.sparsities
        for row in bench(case, s, args.threads, args.rounds, args.repeats)
    ]
    header = machine_lines(
        kernel_isa=build.supported_isas()[0],
        rounds_x_repeats=f"{args.rounds} x {args.repeats}",
        fold_rows=FOLD,
        wall_time_s=round(time.time() - start, 1),
        command="python scripts/bench_roofline.py",
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "roofline.md").write_text(markdown(rows, header), encoding="utf-8")
    write_csv(args.out / "roofline.csv", rows)
    print(f"wrote {args.out / 'roofline.md'}")


if __name__ == "__main__":
    main()
