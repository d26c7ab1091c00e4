"""Sparse products ``y = W @ x`` for every format (DESIGN §6).

``matmul(fmt, x, threads=None, backend="cpu")`` with ``x: float32[K]`` or ``[K, N]``
(CPU; row-major, its rows contiguous and possibly padded: ``base.rows_contiguous``;
``aligned_rows`` pads them to cache lines) returns ``y: float32[M]`` or ``[M, N]``.
Backends (see
``BACKENDS``, one kernel registry per backend keyed by format name):

- ``cpu``: compiled C++/OpenMP kernels (``gsprune.kernels.cpu``) for gs (all three
  variants), csr, bsr, nm, from the best build this CPU runs (AVX-512, AVX2/FMA or
  portable, chosen at run time); plus ``dense`` through ``F.linear``. When the extension
  cannot be built, the sparse formats fall back to ``reference`` with a warning, and
  :func:`kernel_name` says so.
- ``cpu_avx512``, ``cpu_avx2``: the kernels of that build (ValueError on a CPU without it).
- ``cpu_scalar``: the same kernels forced onto their portable (non-SIMD) path.
- ``reference``: plain torch from each format's own arrays (``gsprune.kernels.reference``).
- ``dense``: ``F.linear`` for a DenseMatrix; ``torch_sparse_csr``: ``torch.sparse.mm``
  for a CSRMatrix (``gsprune.kernels.baselines``).

``threads``: None keeps torch's current count; an int runs the call with that many
threads (passed to the compiled kernels' OpenMP region; for torch ops
``torch.set_num_threads`` around the call, restored afterwards). Like torch's
``at::parallel_for``, a compiled call with fewer than ``GRAIN_SIZE`` stored values
times columns runs on one thread: waking an OpenMP team costs more than such a
small product, and on a busy machine it can stall for a scheduler slice.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gsprune.formats.base import GSMatrix, SparseFormat
from gsprune.kernels import baselines, build, cpu, reference  # noqa: F401 - fill the registries
from gsprune.kernels.base import (
    BACKENDS,
    Kernel,
    check_format,
    check_threads,
    check_x,
)

GRAIN_SIZE = 32768  # torch's at::internal::GRAIN_SIZE
ROW_ALIGN = 16  # floats: x's rows padded by aligned_rows start on 64-byte cache lines


def aligned_rows(x: torch.Tensor) -> torch.Tensor:
    """``x: float32[K, N]`` with the same values in rows that start on 64-byte boundaries:
    a ``[K, N]`` view of a ``[K, ceil(N / ROW_ALIGN) * ROW_ALIGN]`` buffer (torch's CPU
    allocator aligns buffers to 64 bytes); ``x`` itself where N is 1 or already a multiple.

    The layout a sparse layer's own im2col (or activation) buffer would have: the SpMM
    kernels read x's rows in place where packing them would not pay, and rows of N = 196
    or 49 floats make most of those reads straddle two cache lines (Zen 4, GS at 0.9 on
    64x576: N = 208 took 28 us, N = 196 38 us). Dense ``F.linear`` reads the padded x as
    fast (a BLAS leading dimension).
    """
    N = x.shape[1]
    padded = -(-N // ROW_ALIGN) * ROW_ALIGN
    if N == 1 or padded == N:
        return x
    buffer = x.new_zeros(x.shape[0], padded)
    buffer[:, :N] = x
    return buffer[:, :N]


def call_threads(stored: int, columns: int, threads: int) -> int:
    """Threads a compiled call uses: ``threads``, or 1 when its ``stored`` values times
    x's ``columns`` fall under ``GRAIN_SIZE`` (module docstring)."""
    return 1 if stored * columns < GRAIN_SIZE else threads


__all__ = [
    "BACKENDS",
    "Kernel",
    "backends",
    "bind",
    "call_threads",
    "cpu_available",
    "kernel_name",
    "matmul",
    "simd_isa",
]


def cpu_available(isa: str | None = None) -> bool:
    """True when the compiled kernels of build ``isa`` (None: the best this CPU runs) are
    built and loaded (builds them on first call)."""
    return build.load(isa) is not None


def simd_isa() -> str:
    """What the "cpu" backend runs: "avx512", "avx2", "scalar" (no AVX2 here) or "reference"."""
    module = build.load()
    return module.simd_isa() if module is not None else "reference"


def backends() -> list[str]:
    return BACKENDS.names()


def _resolve(fmt: SparseFormat, backend: str) -> tuple[str, Kernel]:
    """The backend that will actually run ``fmt`` and its kernel ("cpu" may become "reference")."""
    kernels = BACKENDS.get(backend)
    kernel = kernels.get(fmt.name)
    if kernel.isa is not None:
        build.check_isa(kernel.isa)  # a named build this CPU cannot run: ValueError
    if kernel.compiled and not cpu_available(kernel.isa):
        return "reference", BACKENDS.get("reference").get(fmt.name)
    return backend, kernel


def kernel_name(fmt: SparseFormat, backend: str = "cpu") -> str:
    """Names the implementation ``matmul(fmt, x, backend=backend)`` runs, for run records.

    ``<format or GS variant>_<implementation>``, e.g. ``gs_cpu_avx512``, ``gs_cpu_avx2``,
    ``gs_scatter_cpu_scalar_row_plan`` (run from a row plan), ``csr_torch_sparse_csr``,
    ``dense_torch_linear``, or ``gs_reference`` when the compiled kernels are unavailable.
    """
    check_format(fmt)
    actual, kernel = _resolve(fmt, backend)
    label = kernel.label or (f"cpu_{simd_isa()}" if actual == "cpu" else actual)
    key = fmt.variant if isinstance(fmt, GSMatrix) else fmt.name
    return f"{key}_{label}{kernel.suffix(fmt) if kernel.suffix else ''}"


def bind(
    fmt: SparseFormat, threads: int | None = None, backend: str = "cpu"
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``run(x) == matmul(fmt, x, threads, backend)`` for a timing loop: the format, the
    threads and the backend are checked and the kernel chosen once, not at every call.

    ``x`` must be float32 ``[K, N]`` with contiguous rows, on the CPU (not checked again). A
    compiled kernel's call then costs what a direct call of ``F.linear`` costs around
    its work; ``matmul``'s checks take tens of microseconds, which on a small layer at
    high sparsity would be charged to the sparse kernel alone. Torch ops (the "dense"
    and "torch_sparse_csr" baselines) are called as directly when torch's pool already
    has ``threads`` threads (a timing loop sets it once); otherwise it is resized around
    each call.
    """
    check_format(fmt)
    n_threads = check_threads(threads)
    _, kernel = _resolve(fmt, backend)
    operand = kernel.operand(fmt)  # a kernel's analysis phase (row plans) runs here, once
    if not kernel.compiled:
        return lambda x: _on_torch_pool(n_threads, lambda: kernel.run(operand, x, n_threads))
    work = fmt.values.numel()
    return lambda x: kernel.run(operand, x, call_threads(work, x.shape[1], n_threads))


def _on_torch_pool(n_threads: int, call: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``call()`` with torch's pool at ``n_threads`` (torch ops: baselines, reference),
    resized for the call and restored, or as it is when it already has that many threads
    (a timing loop that sets it once pays nothing per call)."""
    before = torch.get_num_threads()
    if before == n_threads:
        return call()
    torch.set_num_threads(n_threads)
    try:
        return call()
    finally:
        torch.set_num_threads(before)


def matmul(
    fmt: SparseFormat, x: torch.Tensor, threads: int | None = None, backend: str = "cpu"
) -> torch.Tensor:
    """``y = W @ x`` for the matrix ``W: [M, K]`` held by ``fmt``.

    x: float32[K] -> y: float32[M]; x: float32[K, N] -> y: float32[M, N] (a view of the
    transposed result for the dense baseline, contiguous otherwise). A kernel with an
    analysis phase (the row plans of CSR, gs_scatter and gs_free: about a second for a
    4096 x 4096 matrix at sparsity 0.5) repeats it at every call: use :func:`bind` for
    repeated products. Raises ValueError for a non-float32 or wrongly sized x, one whose
    rows are not contiguous, a bad ``threads``, a malformed format, or an unknown backend
    or format.
    """
    check_format(fmt)
    x2 = check_x(x, fmt.shape[1])
    n_threads = check_threads(threads)
    _, kernel = _resolve(fmt, backend)
    if kernel.compiled:
        n_threads = call_threads(fmt.values.numel(), x2.shape[1], n_threads)
    y = _on_torch_pool(n_threads, lambda: kernel.run(kernel.operand(fmt), x2, n_threads))
    return y if x.dim() == 2 else y.reshape(fmt.shape[0])
