"""Speed of the compiled sparse kernels against dense and torch.sparse baselines.

Cases (``CASES``): the prunable GEMMs the embedded tasks really run, beside square ones.

- image: the embedded ResNet's 3x3 conv GEMMs (out x in*9) at batch 1, N = output
  positions of a 28x28 Fashion-MNIST image (196, 49, 16), and the last one at N = 64;
- translation: the embedded GNMT's LSTM gate matrices (4*256 x 256 recurrent and
  first-layer input, 4*256 x 512 for the inputs that carry the bidirectional output or
  the attention context) at N = 1 (one sentence, one decoder step) and N = 64 (a batch);
- speech: the embedded Jasper's block convolutions (out x in*kernel: 128x1408, 160x2720,
  256x2880) at N = 501 (10 s of audio at 8 kHz, batch 1);
- square: 1024x1024 and 4096x4096 at N = 1 and 64.

For each case and sparsity (0.5 and 0.9 by default) it projects a Gaussian weight's |w|
onto each pattern, encodes it, checks every kernel against the dense product, then times
y = W @ x through ``gsprune.kernels.bind`` (checked once, as the latency harness times a
layer; a kernel's analysis phase, e.g. a row plan, is made there, not timed) for every
thread count asked, x's rows on 64-byte boundaries as the latency harness gives them
(``kernels.aligned_rows``; F.linear and oneDNN read the same x, as a BLAS leading
dimension or copied to their own layout):

- dense: ``F.linear``, backend "dense": what the models and the latency harness run (on
  this torch build, MKL's sgemm; on AMD CPUs MKL may take its AVX2 path only);
- dense_onednn: the same product through oneDNN (``torch.utils.mkldnn``'s Linear, which
  converts x and y to and from oneDNN's layout at each call, as a model would), a second
  dense reference: oneDNN picks AVX-512 by CPU flags, whoever made the CPU. It is timed in
  rounds of its own beside F.linear, not in the rotation of the others: a second copy of
  a dense weight in the rotation would push the first out of L2 on the small shapes;
- torch.sparse CSR: ``torch.sparse.mm``, backend "torch_sparse_csr";
- our CSR (unstructured; run as a row plan), BSR 1x8 (block), N:M 2:4 (at 0.5 only) and
  the GS variants gs, gs_scatter and gs_free (the last two as row plans) with V = 8,
  backend "cpu" (the best build this CPU runs);
  where that is the AVX-512 build, also gs on the AVX2 build ("gs_avx2").

Timing on a shared, noisy host: ``--rounds`` rounds, each a ``time_interleaved`` call
(all kernels of the case round-robin on the same x). Reported per kernel: the best
round's median (the headline: the least disturbed round) beside the median of all
samples, and the load average before and after. Derived: speedup over dense (best
rounds), useful GFLOP/s (2 * non-zeros * N / time) and its ratio to dense's GFLOP/s
(2 * M * K * N / time), i.e. how well the kernel uses the machine per useful FLOP, and
gs's speedup over the faster of the two dense references ("gs vs best dense").

Writes results/bench/kernels.md and results/bench/kernels.csv.

``--backend cuda`` times the GPU kernels instead (``bench_kernels_cuda.py``: Triton and
CUDA C++ GS kernels against cuBLAS, cuSPARSE CSR and torch BSR, CUDA events) for the
square shapes and writes results/bench/kernels_cuda.{md,csv}; without a CUDA device it
writes nothing and exits with status 2.

    python scripts/bench_kernels.py [--backend cpu|cuda] [--quick] [--threads 1 2]
                                    [--rounds 5] [--repeats 5] [--jobs 1] [--out results/bench]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from benchlib import check, encode, gaussian, print_case, time_rounds, write_csv
from torch.utils import mkldnn

from gsprune import kernels
from gsprune.formats.base import DenseMatrix, SparseFormat
from gsprune.kernels import build
from gsprune.latency.machine import machine_facts, versions

# (task, M, K, N): see the module docstring for where each comes from.
CASES = (
    ("image", 64, 576, 196),
    ("image", 128, 1152, 49),
    ("image", 256, 2304, 16),
    ("image", 256, 2304, 64),
    ("translation", 1024, 256, 1),
    ("translation", 1024, 512, 1),
    ("translation", 1024, 512, 64),
    ("speech", 128, 1408, 501),
    ("speech", 160, 2720, 501),
    ("speech", 256, 2880, 501),
    ("square", 1024, 1024, 1),
    ("square", 1024, 1024, 64),
    ("square", 4096, 4096, 1),
    ("square", 4096, 4096, 64),
)
SPARSITIES = (0.5, 0.9)
QUICK_CASES = (("image", 64, 576, 196), ("square", 1024, 1024, 1))
# Square shapes and N for the cuda backend.
CUDA_SHAPES = ((1024, 1024), (4096, 1024), (2048, 512), (4096, 4096))
CUDA_SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)
CUDA_NS = (1, 64)
# column label -> (pattern, pattern params, backend, sparsities it applies to or None = all)
SPARSE = {
    "torch_csr": ("unstructured", {}, "torch_sparse_csr", None),
    "csr": ("unstructured", {}, "cpu", None),
    "bsr_1x8": ("block", {"R": 1, "C": 8}, "cpu", None),
    "nm_2:4": ("nm", {"N": 2, "M": 4}, "cpu", (0.5,)),
    "gs": ("gs", {"V": 8}, "cpu", None),
    "gs_scatter": ("gs_scatter", {"V": 8}, "cpu", None),
    "gs_free": ("gs_free", {"V": 8}, "cpu", None),
}
# Where the "cpu" backend runs the AVX-512 build, GS on the AVX2 build beside it.
if build.supported_isas()[0] == "avx512":
    SPARSE["gs_avx2"] = ("gs", {"V": 8}, "cpu_avx2", None)
COLUMNS = ("dense", "dense_onednn", *SPARSE)
GS_COLUMNS = ("gs", "gs_scatter", "gs_free")


def onednn_linear(weight: torch.Tensor, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """``() -> (W @ x).T: [N, M]`` through oneDNN on torch's pool, x taken as rows [N, K]
    as F.linear takes it."""
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        linear.weight.copy_(weight)
    onednn = mkldnn.to_mkldnn(linear)
    x_rows = x.T.contiguous()

    def run() -> torch.Tensor:
        with torch.no_grad():
            return onednn(x_rows)

    return run


def bench_case(
    case: tuple[str, int, int, int],
    sparsity: float,
    threads: tuple[int, ...],
    rounds: int,
    repeats: int,
) -> list[dict]:
    """Rows for one (case, sparsity): one per thread count, every column timed together."""
    task, M, K, N = case
    gen = torch.Generator().manual_seed(0)
    weight = gaussian((M, K), gen)
    mats: dict[str, tuple[SparseFormat, str]] = {"dense": (DenseMatrix((M, K), weight), "dense")}
    for label, (pattern, params, backend, only) in SPARSE.items():
        if only is None or sparsity in only:
            mats[label] = (encode(weight, pattern, sparsity, params), backend)
    x = kernels.aligned_rows(torch.randn(K, N, generator=gen))
    for label, (fmt, backend) in mats.items():
        check(kernels.matmul(fmt, x, threads[0], backend), fmt.to_dense(), x, label)
    check(onednn_linear(weight, x)().T, weight, x, "dense_onednn")
    rows = []
    before = torch.get_num_threads()
    for t in threads:
        fns = {
            label: functools.partial(kernels.bind(fmt, t, backend), x)
            for label, (fmt, backend) in mats.items()
        }
        pair = {"dense": fns["dense"], "dense_onednn": onednn_linear(weight, x)}
        # Torch's pool sized once for the rounds: the torch ops (dense, torch.sparse, oneDNN)
        # then pay no resizing per call, like the compiled kernels (kernels.bind).
        torch.set_num_threads(t)
        try:
            times = time_rounds(fns, rounds, repeats)
            paired = time_rounds(pair, rounds, repeats)
        finally:
            torch.set_num_threads(before)
        dense_best = times["dense"][0]
        row = {"task": task, "M": M, "K": K, "N": N, "sparsity": sparsity, "threads": t}
        row["dense_gflops"] = 2 * M * K * N / dense_best / 1e6
        for label, (best, median) in times.items():
            nnz = mats[label][0].nnz if label in SPARSE else M * K
            row[f"{label}_ms"] = best
            row[f"{label}_median_ms"] = median
            row[f"{label}_speedup"] = dense_best / best
            row[f"{label}_gflops"] = 2 * nnz * N / best / 1e6
            row[f"{label}_efficiency"] = row[f"{label}_gflops"] / row["dense_gflops"]
        # oneDNN against F.linear in their own rounds: its speedup and GFLOP/s ratio there.
        onednn_best, onednn_median = paired["dense_onednn"]
        row["dense_onednn_ms"], row["dense_onednn_median_ms"] = onednn_best, onednn_median
        row["dense_onednn_speedup"] = paired["dense"][0] / onednn_best
        row["dense_onednn_gflops"] = 2 * M * K * N / onednn_best / 1e6
        row["dense_onednn_efficiency"] = row["dense_onednn_speedup"]
        row["gs_speedup_best_dense"] = row["gs_speedup"] / max(1.0, row["dense_onednn_speedup"])
        rows.append(row)
        print_case(f"{task} {M}x{K} N={N} s={sparsity} t={t}", times)
    return rows


def markdown(rows: list[dict], header: dict) -> str:
    lines = ["# Kernel benchmark: y = W @ x on the CPU", ""]
    lines += [f"- {key}: {value}" for key, value in header.items()]
    load, cores = header["load average before (1, 5, 15 min)"], header["usable cores"]
    if load and cores and load[0] > cores:
        lines += [
            "",
            f"**Warning: load average {load[0]:.1f} > {cores} cores: other work shared the "
            "CPUs while timing, so these numbers (multi-threaded ones above all) are noisy.**",
        ]
    lines += [
        "",
        "Each cell: best round's median ms (median of all rounds), speedup over dense",
        "F.linear, and `eff` = the kernel's useful GFLOP/s over dense's GFLOP/s (dense",
        "GFLOP/s in its own column). `gs_scatter/gs` and `gs_free/gs`: time ratios to `gs`;",
        "`dense_onednn`: the same dense product through oneDNN, timed in rounds of its own",
        "beside F.linear (speedup and eff against F.linear in those rounds). `gs vs best",
        "dense`: gs's speedup over the faster of the two (gs's speedup over F.linear, divided",
        "by oneDNN's over F.linear where that is above 1).",
        *(
            ["`gs_avx2`: `gs` on the AVX2 build (the other kernels run the AVX-512 one)."]
            if "gs_avx2" in SPARSE
            else []
        ),
        "",
    ]
    titles = ["task", "M x K", "N", "s", "threads", *COLUMNS, "gs_scatter/gs", "gs_free/gs"]
    titles.append("gs vs best dense")
    lines.append("| " + " | ".join(titles) + " |")
    lines.append("|" + "---|" * len(titles))
    for row in rows:
        cells = [row["task"], f"{row['M']}x{row['K']}", str(row["N"]), f"{row['sparsity']:g}"]
        cells.append(str(row["threads"]))
        for label in COLUMNS:
            ms = row.get(f"{label}_ms")
            if ms is None:
                cells.append("-")
            elif label == "dense":
                cells.append(
                    f"{ms:.3f} ({row['dense_median_ms']:.3f}), {row['dense_gflops']:.0f} GFLOP/s"
                )
            else:
                cells.append(
                    f"{ms:.3f} ({row[f'{label}_median_ms']:.3f}), "
                    f"{row[f'{label}_speedup']:.2f}x, eff {row[f'{label}_efficiency']:.2f}"
                )
        cells += [f"{row[f'{v}_ms'] / row['gs_ms']:.2f}" for v in GS_COLUMNS[1:]]
        cells.append(f"{row['gs_speedup_best_dense']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 cases")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sparsities", type=float, nargs="+", default=list(SPARSITIES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="calls per kernel per round")
    parser.add_argument("--warmup", type=int, default=3, help="cuda backend only")
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    parser.add_argument("--backend", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--jobs", type=int, default=1, help="processes encoding (cuda)")
    args = parser.parse_args(argv)
    if min(args.threads) < 1 or args.rounds < 1 or args.repeats < 1 or args.jobs < 1:
        parser.error("--threads, --rounds, --repeats and --jobs must be >= 1")
    if not all(0 <= s < 1 for s in args.sparsities):
        parser.error("--sparsities must lie in [0, 1)")
    if args.backend == "cuda":
        import bench_kernels_cuda

        args.threads = args.threads[0]
        command = sys.argv[1:] if argv is None else argv
        bench_kernels_cuda.main(args, CUDA_SHAPES, CUDA_SPARSITIES, CUDA_NS, command)
        return

    if not kernels.cpu_available():
        print("warning: compiled kernels unavailable; the 'cpu' columns are the reference kernels")
    started, load_before = time.time(), os.getloadavg()
    rows = []
    for case in QUICK_CASES if args.quick else CASES:
        for sparsity in args.sparsities:
            rows += bench_case(case, sparsity, tuple(args.threads), args.rounds, args.repeats)

    facts, soft = machine_facts(), versions()
    header = {
        "cpu": facts["cpu_model"],
        "usable cores": facts["usable_cores"],
        "threads": " and ".join(map(str, args.threads)),
        "kernel isa": kernels.simd_isa(),
        "torch": soft["torch"],
        "load average before (1, 5, 15 min)": [round(v, 2) for v in load_before],
        "load average after (1, 5, 15 min)": [round(v, 2) for v in os.getloadavg()],
        "rounds x repeats": f"{args.rounds} x {args.repeats}",
        "wall time s": round(time.time() - started, 1),
        "command": " ".join(["python scripts/bench_kernels.py", *(argv or sys.argv[1:])]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernels.md").write_text(markdown(rows, header))
    write_csv(args.out / "kernels.csv", rows)
    print(f"wrote {args.out / 'kernels.md'} and {args.out / 'kernels.csv'}")


if __name__ == "__main__":
    main()
