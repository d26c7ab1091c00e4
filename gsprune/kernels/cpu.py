"""The compiled CPU backends: "cpu", "cpu_avx512", "cpu_avx2" and "cpu_scalar".

"cpu" runs the best build of the extension this CPU supports (``gsprune.kernels.build``:
AVX-512, AVX2/FMA or portable, chosen at run time; ``GSPRUNE_CPU_ISA`` forces one).
"cpu_avx512" and "cpu_avx2" run that build by name, so a machine with AVX-512 runs, times
and tests the AVX2 kernels too (a ValueError names the missing CPU flags elsewhere);
"cpu_scalar" forces the portable C++ path that machines without AVX2 run.
Threads: the thread count is passed to the kernel's OpenMP region (``num_threads``);
no global setting changes. Work is split statically in contiguous ranges of equal
non-zeros (GS bands, CSR rows, BSR block rows) or equal rows (N:M).
"""

from __future__ import annotations

from types import ModuleType

import torch

from gsprune.formats.base import BSRMatrix, CSRMatrix, GSMatrix, NMMatrix
from gsprune.kernels import build
from gsprune.kernels.base import register


def _ext(isa: str | None) -> ModuleType:
    module = build.load(isa)
    if module is None:  # callers resolve "cpu" to "reference" first; this is a guard
        raise RuntimeError(f"the compiled CPU kernels are not available: {build.build_error(isa)}")
    return module


def _register(backend: str, isa: str | None, simd: bool) -> None:
    """File the four compiled kernels of ``backend``: build ``isa`` (None: the best)."""

    @register(backend, "gs", compiled=True, isa=isa)
    def gs(fmt: GSMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
        M, K = fmt.shape
        args = (fmt.band_ptr, fmt.values, fmt.index, fmt.lane_index, fmt.variant, fmt.V)
        return _ext(isa).gs_matmul(*args, M, K, x, threads, simd)

    @register(backend, "csr", compiled=True, isa=isa)
    def csr(fmt: CSRMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
        M, K = fmt.shape
        return _ext(isa).csr_matmul(
            fmt.crow_indices, fmt.col_indices, fmt.values, M, K, x, threads, simd
        )

    @register(backend, "bsr", compiled=True, isa=isa)
    def bsr(fmt: BSRMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
        M, K = fmt.shape
        R, C = fmt.block
        return _ext(isa).bsr_matmul(
            fmt.crow_indices, fmt.col_indices, fmt.values, R, C, M, K, x, threads, simd
        )

    @register(backend, "nm", compiled=True, isa=isa)
    def nm(fmt: NMMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
        M, K = fmt.shape
        return _ext(isa).nm_matmul(fmt.values, fmt.indices, fmt.n, fmt.m, M, K, x, threads, simd)


_register("cpu", None, simd=True)
_register("cpu_avx512", "avx512", simd=True)
_register("cpu_avx2", "avx2", simd=True)
_register("cpu_scalar", None, simd=False)
