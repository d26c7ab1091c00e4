"""Library baselines on the device: dense cuBLAS, torch.sparse CSR (cuSPARSE) and BSR.

Each ``prepare_*(fmt, device, dtype)`` copies the matrix to ``device`` once in the layout
the library reads and returns ``run(x: float32[K, N]) -> y: float32[M, N]``. N = 1 goes
through the matrix-vector form (``torch.matmul`` with a 1-D x: cuBLAS gemv, cuSPARSE
SpMV), N > 1 through the matrix-matrix form (gemm, SpMM). Values are float32 only: these
are the float32 baselines the GS kernels are compared with. On the CPU the same calls
run torch's CPU kernels (used by the tests to check this glue).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from gsprune import formats
from gsprune.formats.base import BSRMatrix, CSRMatrix, SparseFormat


def _float32_only(dtype: torch.dtype, kernel: str) -> None:
    if dtype != torch.float32:
        raise ValueError(f"{kernel} is a float32 baseline; got dtype={dtype} (use torch.float32)")


def _product(A: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``run(x: [K, N]) -> A @ x``, 1-D for N = 1 so that torch picks the GEMV/SpMV path."""

    def run(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            return torch.matmul(A, x[:, 0]).unsqueeze(1)
        return torch.matmul(A, x)

    return run


def prepare_dense(fmt: SparseFormat, device: torch.device, dtype: torch.dtype) -> Callable:
    """cuBLAS on the dense matrix that ``fmt`` holds (zeros included)."""
    _float32_only(dtype, "dense_cublas")
    return _product(fmt.to_dense().to(device))


def as_csr(fmt: SparseFormat) -> CSRMatrix:
    """``fmt``'s matrix in CSR with its stored (real) positions as the non-zero structure,
    columns ascending in each row (as cuSPARSE takes them)."""
    if isinstance(fmt, CSRMatrix):
        return fmt.ascending()
    return formats.FORMATS.get("csr").encode(fmt.to_dense(), fmt.structure())


def prepare_csr(fmt: SparseFormat, device: torch.device, dtype: torch.dtype) -> Callable:
    """torch.sparse CSR (cuSPARSE on CUDA) with int32 indices, from any format."""
    _float32_only(dtype, "csr_cusparse")
    csr = as_csr(fmt)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        A = torch.sparse_csr_tensor(
            csr.crow_indices.to(device),
            csr.col_indices.to(device),
            csr.values.to(device),
            size=csr.shape,
            check_invariants=False,
        )
    return _product(A)


def prepare_bsr(fmt: SparseFormat, device: torch.device, dtype: torch.dtype) -> Callable:
    """torch.sparse BSR on the format's zero-padded block grid; square blocks only.

    torch's BSR products take square blocks only (MKL on the CPU; cuSPARSE's bsrmm has
    one block dimension), so ``gsprune.kernels.gpu.kernel_for`` sends other BSR formats
    to ``csr_cusparse``. When R does not divide M or C does not divide K the product
    runs on the padded grid: x gets zero rows up to the padded K (a copy inside the
    timed call) and the padded rows of y are dropped.
    """
    _float32_only(dtype, "bsr_torch")
    if not isinstance(fmt, BSRMatrix):
        raise ValueError(f"GPU kernel 'bsr_torch' runs BSR formats only; got {fmt.name!r}")
    (M, K), (R, C) = fmt.shape, fmt.block
    if R != C:
        raise ValueError(
            f"GPU kernel 'bsr_torch' takes square blocks only (torch's BSR products); got "
            f"{R}x{C} blocks (time them with csr_cusparse, the default for such formats)"
        )
    Mp, Kp = -(-M // R) * R, -(-K // C) * C
    # The product reads the block overhang: make sure it holds the zeros the format promises.
    inside = fmt.slots().real.reshape(fmt.values.shape)
    values = torch.where(inside, fmt.values, 0.0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse BSR tensor support is in beta")
        A = torch.sparse_bsr_tensor(
            fmt.crow_indices.to(device),
            fmt.col_indices.to(device),
            values.to(device),
            size=(Mp, Kp),
            check_invariants=False,
        )
    product = _product(A)
    if (Mp, Kp) == (M, K):
        return product
    return lambda x: product(F.pad(x, (0, 0, 0, Kp - K)))[:M]
