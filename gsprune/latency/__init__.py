"""Latency of one sparse layer beside its dense baseline, per backend (DESIGN §6).

``measure(fmt, dense_weight, backend=...)`` returns a plain dict for one layer;
``summarize(layers, backend, settings)`` turns the per-layer dicts into the
run record's ``latency[backend]`` entry (see ``gsprune.records``). Backends
are looked up by name in ``BACKENDS``:

- ``cpu``: wall-clock milliseconds of ``gsprune.kernels.matmul(fmt, x)``
  against ``torch.nn.functional.linear`` with the dense weight, on the same x,
  in the same process, interleaved (``timing.time_interleaved``), threads fixed;
- ``cuda``: on the current CUDA device, the run's format with its GPU kernel
  (``gsprune.kernels.gpu``: Triton for GS, cuSPARSE CSR, torch BSR, cuBLAS dense) beside
  dense ``torch.matmul`` (cuBLAS) and ``torch.sparse`` CSR (cuSPARSE) of the same matrix,
  timed with CUDA events after warm-up (``cuda_timing``); the GPU's name and clocks go
  into the result. Without a CUDA device ``check_backend`` refuses it up front;
- ``model``: H(V, B) steps from ``gsprune.latency.model`` (deterministic, N = 1).

x is float32 [K, batch] drawn from a fixed seed (``X_SEED``), so every run
and every pattern sees the same input.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from gsprune.latency import model
from gsprune.latency.machine import gpu_facts, machine_facts, versions
from gsprune.latency.timing import TimingStats, time_interleaved
from gsprune.registry import Registry

if TYPE_CHECKING:
    from gsprune.formats.base import SparseFormat

X_SEED = 0


@dataclass(frozen=True)
class LatencyBackend:
    """A way to cost one layer: ``run(fmt, weight, **settings) -> dict`` in ``unit``.

    ``check(format_name)``, when set, raises ValueError when the backend cannot run on
    this machine, or cannot run formats of that name (None: any format); the runner calls
    it through :func:`check_backend` before any training.
    """

    name: str
    unit: str
    run: Callable[..., dict[str, Any]]
    check: Callable[[str | None], None] | None = None


BACKENDS: Registry[LatencyBackend] = Registry("latency backend")


def _register(name: str, unit: str, check: Callable[[str | None], None] | None = None):
    def add(run: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        BACKENDS.register(name)(LatencyBackend(name, unit, run, check))
        return run

    return add


def check_backend(name: str, format_name: str | None = None) -> LatencyBackend:
    """The backend ``name``; ValueError when it is unknown, cannot run on this machine, or
    cannot run a format of ``format_name`` (e.g. 'cuda' without a GPU, or for N:M)."""
    entry = BACKENDS.get(name)
    if entry.check is not None:
        entry.check(format_name)
    return entry


def _ratio(dense: float, sparse: float) -> float:
    """Speedup dense / sparse; inf when the sparse cost is 0 (an all-zero layer)."""
    return dense / sparse if sparse else float("inf")


def _timed(
    fmt: SparseFormat,
    weight: torch.Tensor,
    *,
    batch: int,
    threads: int,
    warmup: int,
    repeats: int,
) -> dict[str, Any]:
    """Median ms of the CPU sparse kernel and of dense F.linear, interleaved.

    The sparse kernel gets x as float32 [K, batch] with its rows on 64-byte boundaries
    (``kernels.aligned_rows``: the layout a sparse layer's own input buffer would have),
    F.linear the same numbers as [batch, K] (its layout). Both results are compared once
    before timing, so a format that does not hold ``weight`` never gets a time.
    """
    from gsprune import kernels  # imported here: building the kernels is not needed for "model"

    M, K = fmt.shape
    x = kernels.aligned_rows(_x(K, batch))
    x_rows = x.T.contiguous()
    w = weight.detach().to(dtype=torch.float32).contiguous()

    # Checked and resolved once: F.linear below pays no such checks at every call either.
    sparse_run = kernels.bind(fmt, threads=threads, backend="cpu")

    def sparse() -> None:
        sparse_run(x)

    def dense() -> None:
        F.linear(x_rows, w)

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        y_sparse = kernels.matmul(fmt, x, threads=threads, backend="cpu").reshape(M, batch)
        _check_holds(fmt, weight, w, x, y_sparse, F.linear(x_rows, w).T)
        stats: dict[str, TimingStats] = time_interleaved(
            {"sparse": sparse, "dense": dense}, warmup=warmup, repeats=repeats
        )
    finally:
        torch.set_num_threads(previous)
    return {
        "sparse": stats["sparse"].median_ms,
        "dense": stats["dense"].median_ms,
        "speedup": _ratio(stats["dense"].median_ms, stats["sparse"].median_ms),
        "sparse_spread": stats["sparse"].spread_ms,
        "dense_spread": stats["dense"].spread_ms,
        "repeats": stats["sparse"].repeats,
        "kernel": kernels.kernel_name(fmt, backend="cpu"),
    }


def _x(K: int, batch: int) -> torch.Tensor:
    """The input every run and pattern sees: float32 [K, batch] from ``X_SEED``, on the CPU."""
    return torch.randn(K, batch, generator=torch.Generator().manual_seed(X_SEED))


def _check_holds(
    fmt: SparseFormat,
    weight: torch.Tensor,
    w: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    y_dense: torch.Tensor,
) -> None:
    """ValueError unless ``y`` (a kernel's W @ x) matches ``y_dense`` (the dense product).

    fp32 sums in different orders: the tolerance scales with the size of the terms.
    """
    tol = 1e-4 * float((w.abs() @ x.abs()).max()) + 1e-6
    error = float((y.reshape(y_dense.shape) - y_dense).abs().max())
    if not error <= tol:
        raise ValueError(
            f"latency: the {fmt.name!r} format does not hold the given dense weight of shape "
            f"{tuple(weight.shape)} (max |sparse - dense| = {error:.3g} > {tol:.3g}); pass "
            "the pruned weight (zeros included) that the format was encoded from."
        )


@_register("cpu", "ms")
def _cpu(fmt: SparseFormat, weight: torch.Tensor, *, V: Any, B: Any, **timing: Any) -> dict:
    """Wall clock on the CPU; V and B (model-only settings) do not apply."""
    return _timed(fmt, weight, **timing)


def _check_cuda(format_name: str | None) -> None:
    """The 'cuda' backend needs a CUDA device, a GPU kernel for the format, and Triton for GS."""
    if not torch.cuda.is_available():
        raise ValueError(
            "latency backend 'cuda' needs a CUDA device (an NVIDIA GPU that torch can use), "
            f"and torch.cuda.is_available() is False on this machine (torch {torch.__version__}, "
            f"built for CUDA {torch.version.cuda or 'none'}), so nothing was trained or timed. "
            "Here use latency=cpu (compiled CPU kernels, measured) or latency=model (H(V, B) "
            "steps); for GPU timings run on a machine whose GPU torch sees (check "
            "CUDA_VISIBLE_DEVICES and the NVIDIA driver)."
        )
    if format_name is None:
        return
    from gsprune.kernels import gpu  # torch only; Triton is imported when a GS kernel runs

    kernel = gpu.default_kernel(format_name)
    if kernel == "gs_triton" and importlib.util.find_spec("triton") is None:
        raise ValueError(
            "latency backend 'cuda' runs GS formats with Triton, which is not installed; "
            "install the triton version that torch pins (pip install triton)"
        )


@_register("cuda", "ms", check=_check_cuda)
def _cuda(
    fmt: SparseFormat,
    weight: torch.Tensor,
    *,
    V: Any,
    B: Any,
    batch: int,
    threads: int,
    warmup: int,
    repeats: int,
) -> dict:
    """CUDA-event time on the current CUDA device; V, B and threads do not apply.

    Times the format's own GPU kernel ("sparse"), dense cuBLAS ("dense") and, for a
    sparse format, cuSPARSE CSR of the same matrix ("torch_csr"), all on the same x.
    """
    from gsprune.formats.base import DenseMatrix
    from gsprune.kernels import gpu
    from gsprune.latency.cuda_timing import time_cuda_interleaved

    device = torch.device("cuda")
    w = weight.detach().to(dtype=torch.float32).contiguous()
    dense_fmt = DenseMatrix(tuple(fmt.shape), w)
    runs = {
        "sparse": gpu.prepare(fmt, device),
        "dense": gpu.prepare(dense_fmt, device, "dense_cublas"),
    }
    if fmt.name != "dense":
        runs["torch_csr"] = gpu.prepare(fmt, device, "csr_cusparse")
    x = _x(fmt.shape[1], batch).to(device)
    w_device, y_dense = w.to(device), runs["dense"](x)
    for run in runs.values():
        _check_holds(fmt, weight, w_device, x, run(x), y_dense)
    timed = time_cuda_interleaved(
        {name: functools.partial(run, x) for name, run in runs.items()},
        warmup=warmup,
        repeats=repeats,
    )
    sparse, dense = timed["sparse"].stats, timed["dense"].stats
    result = {
        "sparse": sparse.median_ms,
        "dense": dense.median_ms,
        "speedup": _ratio(dense.median_ms, sparse.median_ms),
        "sparse_spread": sparse.spread_ms,
        "dense_spread": dense.spread_ms,
        "repeats": sparse.repeats,
        "kernel": runs["sparse"].label,
    }
    if "torch_csr" in timed:
        csr = timed["torch_csr"].stats
        result |= {"torch_csr": csr.median_ms, "torch_csr_spread": csr.spread_ms}
    result["cuda_graphs"] = {name: timing.graph for name, timing in timed.items()}
    result["device"] = gpu_facts(torch.cuda.current_device())  # clocks right after timing
    return result


@_register("model", "steps")
def _model(
    fmt: SparseFormat, weight: torch.Tensor, *, V: int | None, B: int | None, **_: Any
) -> dict[str, Any]:
    """H(V, B) steps; batch, threads, warmup and repeats do not apply (N = 1, deterministic)."""
    cost = model.breakdown(fmt, V, B)
    dense = model.dense_steps(fmt.shape, cost.V, cost.B)
    return {
        "sparse": cost.steps,
        "dense": dense,
        "speedup": _ratio(dense, cost.steps),
        "V": cost.V,
        "B": cost.B,
        "conflict_steps": cost.conflict_steps,
        "lane_utilization": cost.lane_utilization,
    }


def _check_positive(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(
            f"measure: {name}={value!r} is not accepted; {name} must be an integer >= {minimum}."
        )
    return value


def measure(
    fmt: SparseFormat,
    dense_weight: torch.Tensor,
    *,
    backend: str,
    batch: int = 1,
    threads: int | None = None,
    warmup: int = 3,
    repeats: int = 20,
    V: int | None = None,
    B: int | None = None,
) -> dict[str, Any]:
    """Cost of y = W x for ONE layer with ``backend``, beside the dense baseline.

    fmt: the layer's exported format holding W: float32[M, K]; dense_weight:
    the same W as a dense float32 [M, K] tensor (pruned, zeros included).
    batch: columns of x (N); threads: CPU threads for both products (default:
    torch's current setting; recorded as a number); V, B: the H(V, B) machine
    for ``backend="model"`` (a GS format brings its own). The model backend
    always counts N = 1 and ignores batch, threads, warmup and repeats.

    Returns for "cpu"/"cuda": ``{"sparse": ms, "dense": ms, "speedup",
    "sparse_spread", "dense_spread", "repeats", "kernel"}`` (medians and
    p90 - p10 spreads in ms; "kernel" names the kernel actually used, e.g.
    "reference" when the compiled one is unavailable); "cuda" adds "torch_csr"
    and "torch_csr_spread" (cuSPARSE on the same matrix, for sparse formats),
    "cuda_graphs" ({variant: timed as a CUDA graph replay}) and "device" (the GPU
    and its clocks right after timing, ``gpu_facts``); for "model":
    ``{"sparse": steps, "dense": steps, "speedup", "V", "B", "conflict_steps",
    "lane_utilization"}``. ``speedup = dense / sparse``.
    """
    entry = check_backend(backend, fmt.name)
    if tuple(dense_weight.shape) != tuple(fmt.shape):
        raise ValueError(
            f"measure: dense_weight has shape {tuple(dense_weight.shape)} but the {fmt.name!r} "
            f"format holds a matrix of shape {tuple(fmt.shape)}; pass the same layer's weight "
            "as its GEMM view [M, K]."
        )
    threads = torch.get_num_threads() if threads is None else threads
    # warmup and repeats are checked by the timed backends (time_interleaved); the model
    # backend does not use them, so a model-only config may set them to 0.
    return entry.run(
        fmt,
        dense_weight,
        batch=_check_positive("batch", batch, 1),
        threads=_check_positive("threads", threads, 1),
        warmup=warmup,
        repeats=repeats,
        V=V,
        B=B,
    )


def summarize(
    layer_results: dict[str, dict[str, Any]], backend: str, settings: dict[str, Any]
) -> dict[str, Any]:
    """The run record's ``latency[backend]`` entry from per-layer ``measure`` results.

    ``sparse`` and ``dense`` are sums over the layers, ``speedup = dense /
    sparse`` of the sums, ``unit`` is the backend's ("ms" or "steps").
    ``settings`` is copied; for timed backends the kernels the layers used are
    added as ``settings["kernel"]`` (one name, or the sorted distinct names
    joined by "+"), and per-layer "kernel" keys stay in ``layers``.
    """
    entry = BACKENDS.get(backend)
    if not layer_results:
        raise ValueError(
            f"summarize: no layer results for backend {backend!r}; pass a dict "
            "{layer name: measure(...) result} with at least one layer."
        )
    for name, result in layer_results.items():
        missing = [key for key in ("sparse", "dense") if key not in result]
        if missing:
            raise ValueError(
                f"summarize: the result of layer {name!r} lacks {missing}; every layer needs "
                "the 'sparse' and 'dense' costs that measure() returns."
            )
    sparse = sum(result["sparse"] for result in layer_results.values())
    dense = sum(result["dense"] for result in layer_results.values())
    settings = dict(settings)
    used = sorted({r["kernel"] for r in layer_results.values() if "kernel" in r})
    if used and "kernel" not in settings:
        settings["kernel"] = "+".join(used)
    devices = [r["device"] for r in layer_results.values() if "device" in r]
    if devices and "device" not in settings:
        settings["device"] = devices[-1]
    return {
        "unit": entry.unit,
        "sparse": sparse,
        "dense": dense,
        "speedup": _ratio(dense, sparse),
        "settings": settings,
        "layers": {name: dict(result) for name, result in layer_results.items()},
    }


__all__ = [
    "BACKENDS",
    "X_SEED",
    "LatencyBackend",
    "check_backend",
    "gpu_facts",
    "TimingStats",
    "machine_facts",
    "measure",
    "summarize",
    "time_interleaved",
    "versions",
]
