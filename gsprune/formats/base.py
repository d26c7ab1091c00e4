"""Compact sparse formats: the data each kernel consumes.

Every format holds a matrix ``W: float32[M, K]`` (a GEMM view, rows = outputs)
and answers the same verbs as scipy.sparse: ``to_dense()``, ``nnz``,
``nbytes``. ``nnz`` counts the stored values that are non-zero (padding and
fill slots hold explicit zeros and do not count), so ``1 - nnz / (M*K)`` is
the achieved sparsity. ``nbytes`` counts every stored array (values, indices,
pointers, padding).

All index arrays are torch int tensors on the CPU and contiguous; values are
float32. The dataclasses hold data only: encoders live beside each format and
kernels in ``gsprune.kernels``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch


def tensor_bytes(*tensors: torch.Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


@dataclass
class SparseFormat:
    """Base of all formats. ``shape`` is the logical (M, K), before any padding."""

    name: ClassVar[str]
    shape: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return tensor_bytes(*(getattr(self, f.name) for f in fields(self) if f.name != "shape"
                              and isinstance(getattr(self, f.name), torch.Tensor)))

    @property
    def nnz(self) -> int:  # pragma: no cover - every format overrides
        raise NotImplementedError

    def to_dense(self) -> torch.Tensor:  # pragma: no cover - every format overrides
        raise NotImplementedError


@dataclass
class DenseMatrix(SparseFormat):
    """The dense baseline: ``values: float32[M, K]``."""

    name: ClassVar[str] = "dense"
    values: torch.Tensor


@dataclass
class CSRMatrix(SparseFormat):
    """Compressed sparse rows.

    crow_indices: int32[M + 1], col_indices: int32[nnz], values: float32[nnz];
    column indices ascending inside each row.
    """

    name: ClassVar[str] = "csr"
    crow_indices: torch.Tensor
    col_indices: torch.Tensor
    values: torch.Tensor


@dataclass
class BSRMatrix(SparseFormat):
    """Block sparse rows with R x C blocks on a zero-padded grid.

    The padded matrix is (ceil(M/R)*R, ceil(K/C)*C).
    crow_indices: int32[ceil(M/R) + 1], col_indices: int32[n_blocks] (block
    columns, ascending inside a block row), values: float32[n_blocks, R, C].
    """

    name: ClassVar[str] = "bsr"
    block: tuple[int, int]
    crow_indices: torch.Tensor
    col_indices: torch.Tensor
    values: torch.Tensor


@dataclass
class NMMatrix(SparseFormat):
    """N:M sparsity along K: in every run of M consecutive columns at most N kept.

    K is zero-padded to Kp = ceil(K/M)*M. values: float32[M_rows, Kp/M*N];
    indices: uint8[M_rows, Kp/M*N], the offset (0..M-1) of each value inside its
    run of M columns, ascending inside a run. Runs with fewer than N kept
    entries are filled with explicit zeros at unused offsets.
    """

    name: ClassVar[str] = "nm"
    n: int
    m: int
    values: torch.Tensor
    indices: torch.Tensor


@dataclass
class GSMatrix(SparseFormat):
    """Gather-scatter format (DESIGN §4): groups of V non-zeros, one per lane.

    ``variant`` says what a lane owns:

    - ``"gs"``: bands of V consecutive rows; lane i of a group of band t holds a
      non-zero of row t*V + i; ``index`` holds its column. The V column indices
      of a group fall in pairwise distinct banks (``index % B``).
    - ``"gs_scatter"``: the transpose: bands of V consecutive columns; lane i of
      band t holds a non-zero of column t*V + i; ``index`` holds its row; the
      row banks of a group are pairwise distinct.
    - ``"gs_free"``: one band; ``lane_index`` holds each lane's row and
      ``index`` its column; row banks and column banks of a group are pairwise
      distinct.

    band_ptr: int64[n_bands + 1], the groups of band t are
    ``band_ptr[t]:band_ptr[t+1]`` (band t has k_t = band_ptr[t+1]-band_ptr[t]).
    values: float32[G, V] (contiguous per group), index: int16[G, V] when the
    indexed dimension is < 32768 else int32, lane_index: same dtype, or None.
    Lanes past the matrix edge (the last partial band) hold value 0 and a
    valid in-range index, so kernels need no bounds checks on lanes.
    """

    name: ClassVar[str] = "gs"
    variant: str
    V: int
    B: int
    band_ptr: torch.Tensor
    values: torch.Tensor
    index: torch.Tensor
    lane_index: torch.Tensor | None = None
