"""Why the CPU runs gs_scatter and gs_free as row plans: what bounds a scatter kernel.

A kernel that follows gs_free's groups adds every product into y where it lands. This
script times that loop (``scripts/bench_scatter.cpp``, the scatter kernel gsprune ran
until 2026-12-02) beside two copies of it that do less on purpose (wrong results, timing
only), and beside what gsprune runs, on gs_free matrices (V = 8) of bench_kernels.py's shapes
with N > 1, one thread, the best vector build:

- gs: the gs kernel on the same weight projected to ``gs`` (the reference speed);
- plan: the gs_free matrix through its row plan (``gsprune.kernels.row_plan``);
- scatter: per stored entry, load the x row and the y row, FMA, store the y row;
- scatter_no_store: the same with y loaded but never stored;
- x_only: the same with no y traffic at all (the x loads and FMAs of gs).

If x_only runs at gs's speed and scatter does not, the y loads and stores are the
bound, and no ordering of the groups removes them: only a kernel that keeps rows in
registers does (the row plan). Interleaved rounds, best round beside the median of all.
Writes results/bench/scatter.{md,csv}.

    python scripts/bench_scatter.py [--rounds 5] [--repeats 7] [--out results/bench]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import torch
from bench_kernels import CASES as KERNEL_CASES
from bench_kernels import SPARSITIES
from benchlib import encode, gaussian, machine_lines, time_rounds, write_csv
from torch.utils import cpp_extension

from gsprune import kernels
from gsprune.kernels import build

# bench_kernels.py's (task, M, K, N) cases with N > 1 (the scatter loop has no GEMV form).
CASES = tuple(case for case in KERNEL_CASES if case[3] > 1)
VARIANTS = ("gs", "plan", "scatter", "scatter_no_store", "x_only")


def load_extension():
    """The scatter loops of bench_scatter.cpp, built for the best vector ISA here."""
    isa = build.best_isa()
    if isa == "portable":
        sys.exit("bench_scatter: this CPU has no AVX2; the loops measured here need it")
    directory = build.build_root() / f"bench_scatter_{isa}"
    directory.mkdir(parents=True, exist_ok=True)
    return cpp_extension.load(
        name=f"bench_scatter_{isa}",
        sources=[str(Path(__file__).with_name("bench_scatter.cpp"))],
        extra_cflags=[*build.CFLAGS, *build.ISAS[isa].cflags],
        extra_include_paths=[str(build.CSRC)],
        build_directory=str(directory),
        verbose=False,
    )


def bench_case(ext, case: tuple, sparsity: float, rounds: int, repeats: int) -> dict:
    task, M, K, N = case
    gen = torch.Generator().manual_seed(0)
    weight = gaussian((M, K), gen)
    gs = encode(weight, "gs", sparsity, {"V": 8})
    free = encode(weight, "gs_free", sparsity, {"V": 8})
    x = torch.randn(K, N, generator=gen)
    truth = free.to_dense() @ x
    scatter = functools.partial(ext.scatter_matmul, free.values, free.index, free.lane_index)
    if not torch.allclose(scatter(x, M, 0), truth, atol=1e-3, rtol=1e-3):
        raise RuntimeError(f"{task} {M}x{K}: the scatter loop is wrong; not timing it")
    fns = {
        "gs": functools.partial(kernels.bind(gs, 1), x),
        "plan": functools.partial(kernels.bind(free, 1), x),
        "scatter": functools.partial(scatter, x, M, 0),
        "scatter_no_store": functools.partial(scatter, x, M, 1),
        "x_only": functools.partial(scatter, x, M, 2),
    }
    times = time_rounds(fns, rounds, repeats)
    row = {"task": task, "M": M, "K": K, "N": N, "sparsity": sparsity}
    for name, (best, median) in times.items():
        row[f"{name}_ms"], row[f"{name}_median_ms"] = best, median
        row[f"{name}/gs"] = best / times["gs"][0]
    print(
        f"{task} {M}x{K} N={N} s={sparsity}: "
        + "  ".join(f"{name} {row[f'{name}/gs']:.2f}" for name in VARIANTS),
        flush=True,
    )
    return row


def markdown(rows: list[dict], wall_s: float) -> str:
    lines = ["# Scatter loops against gs on the CPU (one thread)", ""]
    lines += machine_lines(isa=build.best_isa(), wall_time_s=f"{wall_s:.0f}")
    lines += [
        "Each cell: best round's median ms (median of all rounds), then its time over gs's.",
        "`scatter_no_store` and `x_only` compute wrong results on purpose (timing only).",
        "",
        "| task | M x K | N | s | " + " | ".join(VARIANTS) + " |",
        "|" + "---|" * (4 + len(VARIANTS)),
    ]
    for row in rows:
        cells = [row["task"], f"{row['M']}x{row['K']}", str(row["N"]), f"{row['sparsity']:g}"]
        cells += [
            f"{row[f'{v}_ms']:.3f} ({row[f'{v}_median_ms']:.3f}), {row[f'{v}/gs']:.2f}"
            for v in VARIANTS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7, help="calls per variant per round")
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ext = load_extension()
    start = time.perf_counter()
    rows = [
        bench_case(ext, case, s, args.rounds, args.repeats) for case in CASES for s in SPARSITIES
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "scatter.csv", rows)
    (args.out / "scatter.md").write_text(markdown(rows, time.perf_counter() - start))
    print(f"wrote {args.out / 'scatter.md'}")


if __name__ == "__main__":
    main()
