"""Shared-memory bank conflicts of the GS gather on an NVIDIA GPU: one matrix, three layouts.

W is a Gaussian 4096x4096 projected onto ``gs`` with V = B = 32 at sparsity 0.9 and
encoded. Three GS formats share its band pointers and values and differ only in their
column indices:

- ``gs``: the encoder's groups; the 32 columns of every group lie in 32 distinct banks
  (column mod 32), so each warp-wide shared load of the gather is conflict-free;
- ``random``: every column drawn uniformly (no bank rule, like unstructured sparsity;
  about 3.5 lanes share the busiest bank of a 32-lane load);
- ``conflict``: the 32 columns of group g are 32 distinct words of bank g mod 32 (lane i
  takes column 32 * ((32 g + i) mod K/32) + g mod 32): each load serializes into 32
  wavefronts (distinct words, so no broadcast merges them).

For each layout it reports the H(32, 32) step model's cost per group (1 for gs; the
modelled wavefronts of one load), and times, with CUDA events, the shared-memory CUDA
kernel ``gs_cuda_smem`` (where banks apply) and the Triton kernel ``gs_triton`` (which
gathers through L1/L2, where they do not) for N = 1 and N = 8, each checked against the
product of its own matrix first. With ``--ncu`` and Nsight Compute's ``ncu`` on PATH it
also profiles one N = 1 launch of ``gs_cuda_smem`` per layout and reports the counters
of shared loads (instructions, wavefronts, bank conflicts).

Writes gs_banks_cuda.md under --out; without a CUDA device it writes nothing and exits 2.

    python scripts/bench_gs_banks.py [--out results/bench] [--repeats 20] [--ncu]
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from benchlib import encode, gaussian

from gsprune import kernels
from gsprune.formats.base import GSMatrix
from gsprune.kernels import gpu
from gsprune.latency import model
from gsprune.latency.cuda_timing import time_cuda_interleaved
from gsprune.latency.machine import gpu_facts

SHAPE, SPARSITY, V = (4096, 4096), 0.9, 32
LAYOUTS = ("gs", "random", "conflict")
NS = (1, 8)
KERNELS = ("gs_cuda_smem", "gs_triton")
NCU_METRICS = {
    "smsp__sass_inst_executed_op_shared_ld.sum": "shared load instructions",
    "l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum": "shared load wavefronts",
    "l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum": "shared load bank conflicts",
}


def layouts(fmt: GSMatrix) -> dict[str, GSMatrix]:
    """The three index layouts of ``fmt`` (module docstring); same band_ptr and values."""
    G, K = fmt.n_groups, fmt.shape[1]
    gen = torch.Generator().manual_seed(2)
    random = torch.randint(0, K, (G, V), generator=gen, dtype=torch.int64)
    group = torch.arange(G)[:, None]
    conflict = 32 * ((32 * group + torch.arange(V)) % (K // 32)) + group % 32
    dtype = fmt.index.dtype
    return {
        "gs": fmt,
        "random": replace(fmt, index=random.to(dtype).contiguous()),
        "conflict": replace(fmt, index=conflict.to(dtype).contiguous()),
    }


def load_per_group(fmt: GSMatrix) -> float:
    """H(32, 32) steps per group: the modelled wavefronts of one 32-lane shared load."""
    return model.steps(fmt, 32, 32) / fmt.n_groups


def time_layouts(fmts: dict[str, GSMatrix], repeats: int) -> dict[tuple[str, str, int], float]:
    """Median microseconds per (layout, kernel, N), each result checked first."""
    gen = torch.Generator().manual_seed(3)
    results = {}
    for N in NS:
        x = torch.randn(SHAPE[1], N, generator=gen)
        fns = {}
        for layout, fmt in fmts.items():
            truth = kernels.matmul(fmt, x, backend="reference")  # sums repeated columns
            for kernel in KERNELS:
                run = gpu.prepare(fmt, "cuda", kernel)
                error = float((run(x.cuda()).cpu() - truth).abs().max())
                scale = float((fmt.to_dense().abs() @ x.abs()).max())
                if not error <= 1e-4 * scale + 1e-5:
                    raise RuntimeError(f"{kernel} on layout {layout}: max error {error:.3g}")
                fns[layout, kernel] = functools.partial(run, x.cuda())
        timed = time_cuda_interleaved(fns, warmup=3, repeats=repeats)
        for (layout, kernel), timing in timed.items():
            results[layout, kernel, N] = timing.stats.median_ms * 1e3
        print(f"N={N}: " + "  ".join(f"{k}={v:.1f}us" for k, v in results.items()), flush=True)
    return results


def profile(fmt_file: Path) -> dict[str, dict[str, float] | str]:
    """Per layout, ncu's shared-load counters of one N = 1 gs_cuda_smem launch (or the error)."""
    counters: dict[str, dict[str, float] | str] = {}
    for layout in LAYOUTS:
        command = [
            "ncu",
            "--clock-control",
            "none",
            "--kernel-name",
            "regex:gs_smem_kernel",
            "--csv",
            "--page",
            "raw",
            "--metrics",
            ",".join(NCU_METRICS),
            sys.executable,
            __file__,
            "--once",
            layout,
            "--fmt-file",
            str(fmt_file),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        counters[layout] = _ncu_values(done.stdout) if done.returncode == 0 else ""
        if not counters[layout]:
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            counters[layout] = f"ncu failed (exit {done.returncode}): {' / '.join(tail)}"
        print(f"ncu {layout}: {counters[layout]}", flush=True)
    return counters


def _ncu_values(stdout: str) -> dict[str, float]:
    """The NCU_METRICS columns of the first profiled launch in ncu's raw CSV page."""
    lines = [line for line in stdout.splitlines() if line.startswith('"')]
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    values = {}
    for metric in NCU_METRICS:
        for row in rows:  # the first row holds units, the next the launch
            text = row.get(metric, "").replace(",", "")
            try:
                values[metric] = float(text)
                break
            except ValueError:
                continue
    return values if len(values) == len(NCU_METRICS) else {}


def once(layout: str, fmt_file: Path) -> None:
    """One N = 1 launch of gs_cuda_smem on ``layout`` (the process ncu profiles)."""
    fmt = layouts(torch.load(fmt_file, weights_only=False))[layout]
    run = gpu.prepare(fmt, "cuda", "gs_cuda_smem")
    run(torch.randn(SHAPE[1], 1, device="cuda"))
    torch.cuda.synchronize()


def markdown(
    fmts: dict[str, GSMatrix],
    timed: dict[tuple[str, str, int], float],
    counters: dict[str, dict[str, float] | str] | None,
    header: dict[str, object],
) -> str:
    lines = ["# GS gather on the GPU: bank-conflict-free against conflicting layouts", ""]
    lines += [f"- {key}: {value}" for key, value in header.items()]
    lines += [
        "",
        "Same matrix size, band pointers and values; only the column indices differ. `model",
        "load` = H(32,32) steps per group (modelled wavefronts of one 32-lane shared load).",
        "Times: median microseconds per call, CUDA events around CUDA-graph replays.",
        "",
    ]
    titles = ["layout", "model load", *(f"{k} N={n} us" for k in KERNELS for n in NS)]
    lines += ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for layout, fmt in fmts.items():
        cells = [layout, f"{load_per_group(fmt):.2f}"]
        cells += [f"{timed[layout, k, n]:.1f}" for k in KERNELS for n in NS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Nsight Compute: shared loads of one N = 1 gs_cuda_smem launch", ""]
    if counters is None:
        lines.append("Not run (pass --ncu on a machine with ncu on PATH).")
    else:
        lines += ["| layout | " + " | ".join(NCU_METRICS.values()) + " |", "|---" * 4 + "|"]
        for layout, values in counters.items():
            if isinstance(values, str):
                lines.append(f"| {layout} | {values} | | |")
            else:
                lines.append(
                    f"| {layout} | " + " | ".join(f"{values[m]:.0f}" for m in NCU_METRICS) + " |"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--ncu", action="store_true", help="profile with Nsight Compute too")
    parser.add_argument("--once", choices=LAYOUTS, help=argparse.SUPPRESS)
    parser.add_argument("--fmt-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if not torch.cuda.is_available():
        print(
            "error: bench_gs_banks needs a CUDA device, and torch.cuda.is_available() is False "
            "here; nothing was measured or written. Run it on a machine with an NVIDIA GPU "
            "(scripts/gpu_check.sh does).",
            file=sys.stderr,
        )
        sys.exit(2)
    if args.once:
        once(args.once, args.fmt_file)
        return
    started = time.time()
    fmt = encode(gaussian(SHAPE), "gs", SPARSITY, {"V": V})
    fmts = layouts(fmt)
    timed = time_layouts(fmts, args.repeats)
    counters = None
    if args.ncu and shutil.which("ncu"):
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(fmt, Path(tmp) / "gs.pt")
            counters = profile(Path(tmp) / "gs.pt")
    elif args.ncu:
        counters = {layout: "ncu is not on PATH" for layout in LAYOUTS}
    facts = gpu_facts(torch.cuda.current_device())
    header = {
        "matrix": f"{SHAPE[0]}x{SHAPE[1]}, gs V={V} B=32, sparsity {SPARSITY} "
        f"({fmt.n_groups} groups)",
        "gpu": f"{facts['name']} (capability {facts['capability']}), SM clock after timing "
        f"{facts.get('sm_clock_mhz')} MHz",
        "wall time s": round(time.time() - started, 1),
        "command": " ".join(["python scripts/bench_gs_banks.py", *(argv or sys.argv[1:])]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gs_banks_cuda.md").write_text(markdown(fmts, timed, counters, header))
    print(f"wrote {args.out / 'gs_banks_cuda.md'}")


if __name__ == "__main__":
    main()
