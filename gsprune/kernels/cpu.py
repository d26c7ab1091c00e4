"""The compiled CPU backends: "cpu" (AVX2/FMA where compiled in) and "cpu_scalar".

Both call the same extension (``gsprune.kernels.build``); "cpu_scalar" forces the
portable C++ path that machines without AVX2 run, so it is tested and timed here too.
Threads: the thread count is passed to the kernel's OpenMP region (``num_threads``);
no global setting changes. Work is split statically in contiguous ranges of equal
non-zeros (GS bands, CSR rows, BSR block rows) or equal rows (N:M).
"""

from __future__ import annotations

import torch

from gsprune.formats.base import BSRMatrix, CSRMatrix, GSMatrix, NMMatrix
from gsprune.kernels import build
from gsprune.kernels.base import register


def _ext():
    module = build.load()
    if module is None:  # callers resolve "cpu" to "reference" first; this is a guard
        raise RuntimeError(f"the compiled CPU kernels are not available: {build.build_error()}")
    return module


def _register(backend: str, simd: bool) -> None:
    @register(backend, "gs", compiled=True)
    def gs(fmt: GSMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
        M, K = fmt.shape
        args = (fmt.band_ptr, fmt.values, fmt.index, fmt.lane_index, fmt.variant, fmt.V)
        return _ext().gs_matmul(*args, M, K, x, threads, simd)

    @register(backend, "csr", compiled=True)
    def csr(fmt: CSRMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
        M, K = fmt.shape
        return _ext().csr_matmul(
            fmt.crow_indices, fmt.col_indices, fmt.values, M, K, x, threads, simd
        )

    @register(backend, "bsr", compiled=True)
    def bsr(fmt: BSRMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
        M, K = fmt.shape
        R, C = fmt.block
        return _ext().bsr_matmul(
            fmt.crow_indices, fmt.col_indices, fmt.values, R, C, M, K, x, threads, simd
        )

    @register(backend, "nm", compiled=True)
    def nm(fmt: NMMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
        M, K = fmt.shape
        return _ext().nm_matmul(fmt.values, fmt.indices, fmt.n, fmt.m, M, K, x, threads, simd)


_register("cpu", simd=True)
_register("cpu_scalar", simd=False)
