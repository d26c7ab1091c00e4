"""Library baselines: dense ``F.linear`` (oneDNN/MKL) and ``torch.sparse`` CSR.

Layout: every backend reads the same ``x: float32[K, N]`` buffer. The dense baseline
computes ``y.T = F.linear(x.T, W)`` -- the GEMM that ``nn.Linear`` runs on a batch of N
tokens, with ``x.T`` a free transposed view, so MKL reads x in place -- and returns
``y`` as the ``[M, N]`` transposed view of that result (no copy; N == 1 is a GEMV and
returns a contiguous column). Both run under torch's thread pool with ``threads``
threads (set by ``gsprune.kernels.matmul``).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from gsprune.formats.base import CSRMatrix, DenseMatrix
from gsprune.kernels.base import register

# torch warns on every CSR tensor it builds that sparse CSR support is "beta"; that
# tensor is exactly the baseline we time, so the warning says nothing here.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


@register("dense", "dense", label="torch_linear")
@register("cpu", "dense", label="torch_linear")
def linear(fmt: DenseMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
    if x.shape[1] == 1:
        return F.linear(x[:, 0], fmt.values).unsqueeze(1)
    return F.linear(x.T, fmt.values).T


def torch_csr(fmt: CSRMatrix) -> torch.Tensor:
    """The torch sparse CSR tensor over the format's own arrays (int32 indices; no copy
    unless a bank-interleaved CSR must be put in ascending column order first)."""
    csr = fmt.ascending()
    return torch.sparse_csr_tensor(
        csr.crow_indices, csr.col_indices, csr.values, size=fmt.shape, check_invariants=False
    )


@register("torch_sparse_csr", "csr")
def sparse_csr(fmt: CSRMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
    return torch.sparse.mm(torch_csr(fmt), x)
