"""The compiled CPU backends: "cpu", "cpu_avx512", "cpu_avx2" and "cpu_scalar".

"cpu" runs the best build of the extension this CPU supports (``gsprune.kernels.build``:
AVX-512, AVX2/FMA or portable, chosen at run time; ``GSPRUNE_CPU_ISA`` forces one).
"cpu_avx512" and "cpu_avx2" run that build by name, so a machine with AVX-512 runs, times
and tests the AVX2 kernels too (a ValueError names the missing CPU flags elsewhere);
"cpu_scalar" forces the portable C++ path that machines without AVX2 run.
Threads: the thread count is passed to the kernel's OpenMP region (``num_threads``);
no global setting changes. Work is split statically in contiguous ranges of equal
non-zeros (GS bands, row-plan bands, BSR block rows) or equal rows (N:M).

The GS variant "gs" runs from its own arrays; "gs_scatter", "gs_free" and CSR run from a
row plan made once per matrix (``gsprune.kernels.row_plan``) through the same GS kernel.
"""

from __future__ import annotations

from types import ModuleType

import torch

from gsprune.formats.base import BSRMatrix, CSRMatrix, GSMatrix, NMMatrix
from gsprune.kernels import build
from gsprune.kernels.base import register
from gsprune.kernels.row_plan import V_PLAN, RowPlan, row_plan


def _ext(isa: str | None) -> ModuleType:
    module = build.load(isa)
    if module is None:  # callers resolve "cpu" to "reference" first; this is a guard
        raise RuntimeError(f"the compiled CPU kernels are not available: {build.build_error(isa)}")
    return module


def _planned(fmt: CSRMatrix | GSMatrix) -> bool:
    """CSR and the GS variants "gs_scatter" and "gs_free" run from a row plan
    (``gsprune.kernels.row_plan``: why a CPU runs them by rows); "gs" from its own arrays."""
    return not (isinstance(fmt, GSMatrix) and fmt.variant == "gs")


def _operand(fmt: CSRMatrix | GSMatrix) -> CSRMatrix | GSMatrix | RowPlan:
    return row_plan(fmt.slots(), fmt.shape) if _planned(fmt) else fmt


def _suffix(fmt: CSRMatrix | GSMatrix) -> str:
    return "_row_plan" if _planned(fmt) else ""


def _register(backend: str, isa: str | None, simd: bool) -> None:
    """File the four compiled kernels of ``backend``: build ``isa`` (None: the best)."""

    def rows(operand: GSMatrix | RowPlan, x: torch.Tensor, threads: int) -> torch.Tensor:
        """The GS row kernel, from a "gs" matrix or from a row plan (lanes own row_of)."""
        M, K = operand.shape
        if isinstance(operand, RowPlan):
            args = (operand.band_ptr, operand.values, operand.index, operand.row_of, V_PLAN)
        else:
            args = (operand.band_ptr, operand.values, operand.index, None, operand.V)
        return _ext(isa).gs_matmul(*args, M, K, x, threads, simd)

    for fmt_name in ("gs", "csr"):
        register(backend, fmt_name, compiled=True, isa=isa, prepare=_operand, suffix=_suffix)(rows)

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
