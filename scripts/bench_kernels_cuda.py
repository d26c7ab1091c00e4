"""The GPU half of scripts/bench_kernels.py (``--backend cuda``): GS kernels on an NVIDIA GPU.

For the shapes and sparsities of the CPU table it projects Gaussian weights onto each
pattern (in ``--jobs`` processes), copies each format to the GPU once
(``gsprune.kernels.gpu.prepare``) and times y = W @ x for N = 1 and N = 64:

- dense: ``torch.matmul`` (cuBLAS; TF32 as torch's setting, recorded);
- torch_csr: ``torch.sparse`` CSR of an unstructured mask (cuSPARSE);
- torch_bsr_8x8: ``torch.sparse`` BSR of a block mask (torch's BSR takes square blocks);
- gs_v8, gs_v32: the Triton GS kernel (variant gs), V = 8 and V = 32;
- gs_v32_smem: the CUDA C++ kernel that stages x in shared memory (V = 32: one GS group
  per warp-wide shared load, 32 distinct banks); left out, with a note, when it cannot
  be built (no nvcc of torch's CUDA version);
- gs_v32_bf16: the Triton kernel with bfloat16 values (float32 x and sums).

Every kernel's result is checked against the dense product of its own matrix first.
All of one (shape, sparsity, N) are timed interleaved with CUDA events
(``gsprune.latency.cuda_timing``): each sample replays a CUDA graph of enough calls to
last 50 us, so the time is the GPU's, without launch overhead; caches stay warm (a
4096x4096 GS matrix at 0.9 is 10 MB, inside the H100/H200's 50-60 MB L2). The table
also gives the GS V=32 format's bytes at the measured device copy bandwidth.

Writes kernels_cuda.md and kernels_cuda.csv under --out. Without a CUDA device it
writes nothing and exits with status 2.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time

import torch
from benchlib import check, encode_many, gaussian, write_csv

from gsprune.formats.base import DenseMatrix, SparseFormat
from gsprune.kernels import gpu
from gsprune.latency import model
from gsprune.latency.cuda_timing import time_cuda_interleaved
from gsprune.latency.machine import gpu_facts, versions

# column label -> (pattern, pattern params, GPU kernel, value dtype)
COLUMNS = {
    "torch_csr": ("unstructured", {}, "csr_cusparse", torch.float32),
    "torch_bsr_8x8": ("block", {"R": 8, "C": 8}, "bsr_torch", torch.float32),
    "gs_v8": ("gs", {"V": 8}, "gs_triton", torch.float32),
    "gs_v32": ("gs", {"V": 32}, "gs_triton", torch.float32),
    "gs_v32_smem": ("gs", {"V": 32}, "gs_cuda_smem", torch.float32),
    "gs_v32_bf16": ("gs", {"V": 32}, "gs_triton", torch.bfloat16),
}
TITLES = ("dense", *COLUMNS)
GS_FP32 = ("gs_v8", "gs_v32", "gs_v32_smem")
TARGET = {"shape": (4096, 4096), "sparsity": 0.9, "ratio": 2.0}


def refuse_without_gpu() -> None:
    """Exit 2 with one paragraph, before any work, when this machine cannot run the bench."""
    if torch.cuda.is_available():
        return
    print(
        "error: bench_kernels --backend cuda needs a CUDA device, and "
        f"torch.cuda.is_available() is False here (torch {torch.__version__}, built for CUDA "
        f"{torch.version.cuda or 'none'}); nothing was measured or written. Run it on a "
        "machine with an NVIDIA GPU (scripts/gpu_check.sh does), or use --backend cpu.",
        file=sys.stderr,
    )
    sys.exit(2)


def bandwidth_gbs(repeats: int) -> dict[str, float]:
    """Device memory bandwidth in GB/s: a 1 GiB copy (read + write), a dense 16384^2 GEMV."""
    src = torch.rand(256 << 20, device="cuda")
    dst = torch.empty_like(src)
    w = torch.rand(16384, 16384, device="cuda")
    v = torch.rand(16384, device="cuda")
    timed = time_cuda_interleaved(
        {"copy": lambda: dst.copy_(src), "gemv": lambda: torch.mv(w, v)}, warmup=2, repeats=repeats
    )
    gbs = {
        "copy": 2 * src.numel() * 4 / timed["copy"].stats.median_ms / 1e6,
        "gemv": w.numel() * 4 / timed["gemv"].stats.median_ms / 1e6,
    }
    return gbs


def prepared_columns(
    fmts: dict, sparsity: float, unavailable: dict[str, str]
) -> dict[str, gpu.Prepared]:
    """Each column's format on the GPU; a kernel that cannot run is noted and left out."""
    runs = {}
    for label, (pattern, params, kernel, dtype) in COLUMNS.items():
        if label in unavailable:
            continue
        try:
            runs[label] = gpu.prepare(fmts[pattern, sparsity, repr(params)], "cuda", kernel, dtype)
        except ValueError as err:
            unavailable[label] = str(err)
            print(f"warning: leaving out {label}: {err}", flush=True)
    return runs


def bench_shape(
    shape: tuple[int, int],
    sparsities: tuple[float, ...],
    ns: tuple[int, ...],
    args: argparse.Namespace,
    gbs: float,
    unavailable: dict[str, str],
) -> list[dict]:
    """Rows for one shape: every sparsity and N, all columns timed together per row."""
    M, K = shape
    specs = {
        (pattern, sparsity, repr(params)): (pattern, sparsity, params)
        for sparsity in sparsities
        for pattern, params, _, _ in COLUMNS.values()
    }
    started = time.time()
    fmts = encode_many(shape, specs, args.jobs)
    print(f"{M}x{K}: encoded {len(fmts)} formats in {time.time() - started:.1f} s", flush=True)
    gen = torch.Generator().manual_seed(1)
    dense_w = gaussian(shape)
    rows = []
    for sparsity in sparsities:
        runs = prepared_columns(fmts, sparsity, unavailable)
        gs32: SparseFormat = fmts["gs", sparsity, repr({"V": 32})]
        step_ratio = model.dense_steps(shape, 32, 32) / model.steps(gs32, 32, 32)
        runs["dense"] = gpu.prepare(DenseMatrix(shape, dense_w), "cuda", "dense_cublas")
        for N in ns:
            x = torch.randn(K, N, generator=gen).cuda()
            for label, run in list(runs.items()):
                W = fmts[_key(label, sparsity)].to_dense() if label != "dense" else dense_w
                W = W.to(run.dtype).float().cuda()  # bf16 columns: the rounded matrix
                try:
                    check(run(x), W, x, f"{label} {M}x{K} s={sparsity} N={N}")
                except RuntimeError as err:  # a library call that fails, or a wrong result
                    if label == "dense":
                        raise
                    unavailable[label] = f"{type(err).__name__}: {str(err).splitlines()[0]}"
                    print(f"warning: leaving out {label}: {unavailable[label]}", flush=True)
                    del runs[label]
            timed = time_cuda_interleaved(
                {label: functools.partial(run, x) for label, run in runs.items()},
                warmup=args.warmup,
                repeats=args.repeats,
            )
            rows.append(_row(shape, sparsity, N, timed, gs32, step_ratio, gbs))
            print(
                f"{M}x{K} s={sparsity} N={N}: "
                + "  ".join(f"{k}={t.stats.median_ms * 1e3:.1f}us" for k, t in timed.items()),
                flush=True,
            )
    return rows


def _key(label: str, sparsity: float) -> tuple:
    pattern, params, _, _ = COLUMNS[label]
    return pattern, sparsity, repr(params)


def _row(shape, sparsity, N, timed, gs32, step_ratio, gbs) -> dict:
    M, K = shape
    dense_ms = timed["dense"].stats.median_ms
    row = {
        "M": M,
        "K": K,
        "sparsity": sparsity,
        "N": N,
        "gs_v32_h3232_step_ratio": round(step_ratio, 3),
        "gs_v32_nbytes": gs32.nbytes,
        # Time to stream the GS V=32 format's bytes (plus x and y) at the copy bandwidth.
        "gs_v32_bound_ms": (gs32.nbytes + 4 * (K + M) * N) / gbs / 1e6,
    }
    for label in TITLES:
        if label in timed:
            stats = timed[label].stats
            row[f"{label}_ms"] = stats.median_ms
            row[f"{label}_spread_ms"] = stats.spread_ms
            row[f"{label}_speedup"] = dense_ms / stats.median_ms
            row[f"{label}_graph"] = timed[label].graph
    gs = [label for label in GS_FP32 if label in timed]
    if gs and "torch_csr" in timed:
        best = min(gs, key=lambda label: row[f"{label}_ms"])
        row["best_gs_fp32"] = best
        row["best_gs_over_torch_csr"] = row["torch_csr_ms"] / row[f"{best}_ms"]
        row["best_gs_over_dense"] = dense_ms / row[f"{best}_ms"]
    return row


def target_lines(rows: list[dict]) -> list[str]:
    """The issue's target, read off the measured rows: best fp32 GS vs cuSPARSE CSR."""
    (M, K), sparsity, ratio = TARGET["shape"], TARGET["sparsity"], TARGET["ratio"]
    lines = []
    for row in rows:
        if (row["M"], row["K"], row["sparsity"]) != (M, K, sparsity) or "best_gs_fp32" not in row:
            continue
        met = "met" if row["best_gs_over_torch_csr"] >= ratio else "NOT met"
        lines.append(
            f"- {M}x{K}, sparsity {sparsity:g}, N = {row['N']}: best fp32 GS kernel "
            f"{row['best_gs_fp32']} is {row['best_gs_over_torch_csr']:.2f}x cuSPARSE CSR "
            f"(target {ratio:g}x: {met}) and {row['best_gs_over_dense']:.2f}x cuBLAS dense"
        )
    return lines or [f"- {M}x{K} at sparsity {sparsity:g} was not measured in this run"]


def markdown(rows: list[dict], header: dict, unavailable: dict[str, str]) -> str:
    lines = ["# Kernel benchmark: y = W @ x on the GPU", ""]
    lines += [f"- {key}: {value}" for key, value in header.items()]
    lines += ["", "## Target (measured in this run)", "", *target_lines(rows)]
    if unavailable:
        lines += ["", "## Left out", ""]
        lines += [f"- {label}: {reason}" for label, reason in unavailable.items()]
    lines += [
        "",
        "## Table",
        "",
        "Median microseconds per call (speedup over cuBLAS dense in parentheses), CUDA",
        "events around CUDA-graph replays (a `*` marks a column timed with plain launches,",
        "which include launch overhead); all columns of a row timed interleaved on the same",
        "x. `best GS / CSR` = cuSPARSE time / best fp32 GS time. `H(32,32)` = dense steps /",
        "GS V=32 steps of the hardware model (N = 1). `bound` = GS V=32 bytes at the copy",
        "bandwidth.",
        "",
    ]
    titles = ["M x K", "sparsity", "N", *TITLES, "best GS / CSR", "H(32,32)", "bound us"]
    lines.append("| " + " | ".join(titles) + " |")
    lines.append("|" + "---|" * len(titles))
    for row in rows:
        cells = [f"{row['M']}x{row['K']}", f"{row['sparsity']:g}", str(row["N"])]
        for label in TITLES:
            ms = row.get(f"{label}_ms")
            mark = "" if row.get(f"{label}_graph", True) else "*"
            speedup = row.get(f"{label}_speedup")
            cells.append("-" if ms is None else f"{ms * 1e3:.1f}{mark} ({speedup:.1f}x)")
        ratio = row.get("best_gs_over_torch_csr")
        cells.append("-" if ratio is None else f"{ratio:.2f}x ({row['best_gs_fp32']})")
        cells += [f"{row['gs_v32_h3232_step_ratio']:.2f}", f"{row['gs_v32_bound_ms'] * 1e3:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(
    args: argparse.Namespace,
    shapes: tuple,
    sparsities: tuple,
    ns: tuple,
    argv: list[str],
) -> None:
    """Run the GPU table (called by bench_kernels.main after its own argument checks)."""
    refuse_without_gpu()
    started = time.time()
    gbs = bandwidth_gbs(args.repeats)
    print(f"bandwidth: copy {gbs['copy']:.0f} GB/s, dense GEMV {gbs['gemv']:.0f} GB/s", flush=True)
    unavailable: dict[str, str] = {}
    rows = []
    # The target shape first; the files are rewritten after every shape, so a run cut
    # short by a time limit still leaves the shapes it finished.
    ordered = sorted(shapes, key=lambda shape: shape != TARGET["shape"])
    for done, shape in enumerate(ordered, 1):
        rows += bench_shape(shape, sparsities, ns, args, gbs["copy"], unavailable)
        write(args, rows, started, gbs, unavailable, argv, f"{done} of {len(ordered)}")


def write(
    args: argparse.Namespace,
    rows: list[dict],
    started: float,
    gbs: dict[str, float],
    unavailable: dict[str, str],
    argv: list[str],
    shapes_done: str,
) -> None:
    """kernels_cuda.md and .csv under ``args.out`` from the rows measured so far."""
    facts, soft = gpu_facts(torch.cuda.current_device()), versions()
    header = {
        "gpu": f"{facts['name']} (capability {facts['capability']}, {facts['multiprocessors']} "
        f"SMs, {facts['memory_gib']} GiB, L2 {facts['l2_cache_mib']} MiB)",
        "clocks right after timing (MHz)": f"SM {facts.get('sm_clock_mhz')} of "
        f"{facts.get('max_sm_clock_mhz')}, memory {facts.get('mem_clock_mhz')} of "
        f"{facts.get('max_mem_clock_mhz')}",
        "driver": facts.get("driver"),
        "torch": f"{soft['torch']} (CUDA {facts['torch_cuda']}, TF32 matmul "
        f"{facts['tf32_matmul']})",
        "triton": _triton_version(),
        "bandwidth GB/s (copy, dense GEMV)": f"{gbs['copy']:.0f}, {gbs['gemv']:.0f}",
        "repeats": args.repeats,
        "shapes measured": shapes_done,
        "wall time s": round(time.time() - started, 1),
        "command": " ".join(["python scripts/bench_kernels.py", *argv]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernels_cuda.md").write_text(markdown(rows, header, unavailable))
    write_csv(args.out / "kernels_cuda.csv", rows)
    print(f"wrote {args.out / 'kernels_cuda.md'} and {args.out / 'kernels_cuda.csv'}", flush=True)


def _triton_version() -> str:
    import triton

    return triton.__version__


__all__ = ["COLUMNS", "main", "refuse_without_gpu"]
