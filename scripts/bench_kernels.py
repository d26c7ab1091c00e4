"""Speed of the compiled sparse kernels against dense and torch.sparse baselines.

For Gaussian weights of 1024x1024, 4096x1024, 2048x512 and 4096x4096 at sparsities
0.5, 0.7, 0.8, 0.9, 0.95 it projects |w| onto each pattern, encodes the mask, and
times y = W @ x for N = 1 and N = 64 columns of x with ``gsprune.kernels.matmul``:

- dense: ``F.linear`` (oneDNN/MKL), backend "dense";
- torch.sparse CSR: ``torch.sparse.mm``, backend "torch_sparse_csr";
- our CSR (unstructured), BSR 1x8 (block), N:M 2:4 (at 0.5 only) and GS V=8 ("gs"
  variant), backend "cpu".

All kernels of one (shape, sparsity, N) are timed interleaved round-robin
(``gsprune.latency.timing.time_interleaved``) on the same x, after checking each
result against the dense product of the masked weight. Each is reported as median
milliseconds and as speedup over dense, beside the H(8, 8) step ratio of the GS
format (``gsprune.latency.model``: dense steps / GS steps, N = 1).

It also measures the memory bandwidth (a large tensor copy, and the dense GEMV's
weight stream) and gives, for GS at N = 1, the time its format bytes take at that
bandwidth: GS cannot beat it when its data comes from DRAM; a 4096x4096 GS matrix at
0.9 (about 10 MB) fits the 32 MB L3 of the reference machine and can.

Writes results/bench/kernels.md and results/bench/kernels.csv.

``--backend cuda`` times the GPU kernels instead (``bench_kernels_cuda.py``: Triton and
CUDA C++ GS kernels against cuBLAS, cuSPARSE CSR and torch BSR, CUDA events) for the
same shapes and writes results/bench/kernels_cuda.{md,csv}; without a CUDA device it
writes nothing and exits with status 2.

    python scripts/bench_kernels.py [--backend cpu|cuda] [--quick] [--threads 2]
                                    [--repeats 20] [--jobs 1] [--out results/bench]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from benchlib import check, encode, gaussian, write_csv

from gsprune import kernels
from gsprune.formats.base import DenseMatrix, SparseFormat
from gsprune.latency import model
from gsprune.latency.machine import machine_facts, versions
from gsprune.latency.timing import time_interleaved

SHAPES = ((1024, 1024), (4096, 1024), (2048, 512), (4096, 4096))
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)
NS = (1, 64)
QUICK = {"shapes": ((1024, 1024), (4096, 4096)), "sparsities": (0.5, 0.9)}
# column label -> (pattern, pattern params, backend, sparsities it applies to or None = all)
SPARSE = {
    "torch_csr": ("unstructured", {}, "torch_sparse_csr", None),
    "csr": ("unstructured", {}, "cpu", None),
    "bsr_1x8": ("block", {"R": 1, "C": 8}, "cpu", None),
    "nm_2:4": ("nm", {"N": 2, "M": 4}, "cpu", (0.5,)),
    "gs_v8": ("gs", {"V": 8}, "cpu", None),
}
COLUMNS = ("dense", *SPARSE)


def bandwidth_gbs(threads: int, repeats: int) -> dict[str, float]:
    """Memory bandwidth in GB/s: a 256 MiB copy (read + write) and a dense 8192^2 GEMV."""
    src = torch.rand(64 << 20)
    dst = torch.empty_like(src)
    w = torch.rand(8192, 8192)
    v = torch.rand(8192)
    torch.set_num_threads(threads)
    stats = time_interleaved(
        {"copy": lambda: dst.copy_(src), "gemv": lambda: torch.mv(w, v)},
        warmup=2,
        repeats=repeats,
    )
    return {
        "copy": 2 * src.numel() * 4 / stats["copy"].median_ms / 1e6,
        "gemv": w.numel() * 4 / stats["gemv"].median_ms / 1e6,
    }


def bench_case(
    shape: tuple[int, int], sparsity: float, threads: int, warmup: int, repeats: int, gbs: float
) -> list[dict]:
    """Rows for one (shape, sparsity): one per N, every applicable column timed together."""
    M, K = shape
    gen = torch.Generator().manual_seed(0)
    weight = gaussian(shape, gen)
    mats: dict[str, tuple[SparseFormat, str]] = {"dense": (DenseMatrix((M, K), weight), "dense")}
    for label, (pattern, params, backend, only) in SPARSE.items():
        if only is None or sparsity in only:
            mats[label] = (encode(weight, pattern, sparsity, params), backend)
    gs_fmt = mats["gs_v8"][0]
    step_ratio = model.dense_steps(shape, 8, 8) / model.steps(gs_fmt, 8, 8)
    rows = []
    for N in NS:
        x = torch.randn(K, N, generator=gen)
        fns: dict[str, Callable[[], object]] = {}
        for label, (fmt, backend) in mats.items():
            check(kernels.matmul(fmt, x, threads, backend), fmt.to_dense(), x, label)
            fns[label] = functools.partial(kernels.matmul, fmt, x, threads, backend)
        stats = time_interleaved(fns, warmup=warmup, repeats=repeats)
        dense_ms = stats["dense"].median_ms
        row = {
            "M": M,
            "K": K,
            "sparsity": sparsity,
            "N": N,
            "threads": threads,
            "gs_kernel": kernels.kernel_name(gs_fmt, "cpu"),
            "gs_h88_step_ratio": round(step_ratio, 3),
            "gs_nbytes": gs_fmt.nbytes,
            # Time to stream the GS format's bytes (plus x and y) at the copy bandwidth.
            "gs_bound_ms": (gs_fmt.nbytes + 4 * (K + M) * N) / gbs / 1e6,
        }
        for label in COLUMNS:
            if label in stats:
                ms = stats[label].median_ms
                row[f"{label}_ms"] = ms
                row[f"{label}_spread_ms"] = stats[label].spread_ms
                row[f"{label}_speedup"] = dense_ms / ms
        rows.append(row)
        print(
            f"{M}x{K} s={sparsity} N={N}: "
            + "  ".join(f"{k}={stats[k].median_ms:.3f}ms" for k in stats),
            flush=True,
        )
    return rows


def markdown(rows: list[dict], header: dict) -> str:
    lines = ["# Kernel benchmark: y = W @ x on the CPU", ""]
    lines += [f"- {key}: {value}" for key, value in header.items()]
    load, cores = header["load average (1, 5, 15 min)"], header["usable cores"]
    if load and cores and load[0] > cores:
        lines += [
            "",
            f"**Warning: load average {load[0]:.1f} > {cores} cores: other work shared the "
            "CPUs while timing, so these numbers (multi-threaded ones above all) are noisy.**",
        ]
    lines += [
        "",
        "Median ms per call (speedup over dense F.linear in parentheses); all kernels of a",
        "row timed interleaved on the same x. `gs H(8,8)` = dense steps / GS steps of the",
        "hardware model (N = 1). `gs bound` = GS format bytes at the copy bandwidth.",
        "",
    ]
    titles = ["M x K", "sparsity", "N", *COLUMNS, "gs H(8,8)", "gs bound ms"]
    lines.append("| " + " | ".join(titles) + " |")
    lines.append("|" + "---|" * len(titles))
    for row in rows:
        cells = [f"{row['M']}x{row['K']}", f"{row['sparsity']:g}", str(row["N"])]
        for label in COLUMNS:
            ms = row.get(f"{label}_ms")
            cells.append("-" if ms is None else f"{ms:.3f} ({row[f'{label}_speedup']:.1f}x)")
        cells += [f"{row['gs_h88_step_ratio']:.2f}", f"{row['gs_bound_ms']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 shapes x 2 sparsities")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    parser.add_argument("--backend", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--jobs", type=int, default=1, help="processes encoding (cuda)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0 or args.jobs < 1:
        parser.error("--threads, --repeats and --jobs must be >= 1, --warmup >= 0")
    shapes = QUICK["shapes"] if args.quick else SHAPES
    sparsities = QUICK["sparsities"] if args.quick else SPARSITIES
    if args.backend == "cuda":
        import bench_kernels_cuda

        command = sys.argv[1:] if argv is None else argv
        bench_kernels_cuda.main(args, shapes, sparsities, NS, command)
        return

    if not kernels.cpu_available():
        print("warning: compiled kernels unavailable; the 'cpu' columns are the reference kernels")
    torch.set_num_threads(args.threads)
    started = time.time()
    gbs = bandwidth_gbs(args.threads, args.repeats)
    print(f"bandwidth: copy {gbs['copy']:.1f} GB/s, dense GEMV {gbs['gemv']:.1f} GB/s", flush=True)
    rows = []
    for shape in shapes:
        for sparsity in sparsities:
            rows += bench_case(
                shape, sparsity, args.threads, args.warmup, args.repeats, gbs["copy"]
            )

    facts, soft = machine_facts(), versions()
    header = {
        "cpu": facts["cpu_model"],
        "usable cores": facts["usable_cores"],
        "threads": args.threads,
        "kernel isa": kernels.simd_isa(),
        "torch": soft["torch"],
        "load average (1, 5, 15 min)": facts["load_average"],
        "bandwidth GB/s (copy, dense GEMV)": f"{gbs['copy']:.1f}, {gbs['gemv']:.1f}",
        "repeats": args.repeats,
        "wall time s": round(time.time() - started, 1),
        "command": " ".join(["python scripts/bench_kernels.py", *(argv or sys.argv[1:])]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernels.md").write_text(markdown(rows, header))
    write_csv(args.out / "kernels.csv", rows)
    print(f"wrote {args.out / 'kernels.md'} and {args.out / 'kernels.csv'}")


if __name__ == "__main__":
    main()
