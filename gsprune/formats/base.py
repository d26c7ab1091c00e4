"""Compact sparse formats: the data each kernel consumes.

Every format holds a matrix ``W: float32[M, K]`` (a GEMM view, rows = outputs)
and answers the same verbs as scipy.sparse: ``to_dense()``, ``nnz``,
``nbytes``. ``nnz`` counts the stored values that are non-zero (padding and
fill slots hold explicit zeros and do not count), so ``1 - nnz / (M*K)`` is
the achieved sparsity. ``nbytes`` counts every stored array (values, indices,
pointers, padding).

All index arrays are torch int tensors on the CPU and contiguous; values are
float32. The dataclasses hold data and the verbs that read it back
(``to_dense``, ``nnz``, ``structure``); encoders and format checks live beside
each format (``gsprune.formats.<name>``) and kernels in ``gsprune.kernels``.

Every format reads back through one path: ``slots()`` lists each stored slot
as (row, column, value, real) in a zero-padded grid; ``to_dense`` scatters the
values and crops, ``structure`` marks the real slots. A *real* slot is a kept
position of the mask the format was encoded from (its value may be exactly 0);
padding lanes, padded rows/columns and N:M fill slots past K are not real.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch

from gsprune.patterns.base import Violation
from gsprune.registry import Registry

GS_VARIANTS = ("gs", "gs_scatter", "gs_free")


def tensor_bytes(*tensors: torch.Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def index_dtype(dim: int) -> torch.dtype:
    """The GS index dtype for an indexed dimension of size ``dim``: int16 below 32768."""
    return torch.int16 if dim < 32768 else torch.int32


def check_inputs(weight: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (float32 CPU contiguous weight, bool CPU contiguous mask) or raise ValueError.

    Every encoder starts here, so ``FORMATS.get(name).encode`` accepts what ``encode`` does.
    """
    if (
        not isinstance(weight, torch.Tensor)
        or weight.dim() != 2
        or weight.numel() == 0
        or not weight.is_floating_point()
    ):
        raise ValueError(
            f"weight must be a non-empty floating-point 2-D GEMM view [M, K]; got "
            f"{getattr(weight, 'dtype', type(weight).__name__)} of shape "
            f"{tuple(getattr(weight, 'shape', ()))} (use gsprune.views.gemm_view)"
        )
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != weight.shape:
        raise ValueError(
            f"mask must be a bool tensor of the weight's shape {tuple(weight.shape)}; got "
            f"{getattr(mask, 'dtype', type(mask).__name__)} of shape "
            f"{tuple(getattr(mask, 'shape', ()))}"
        )
    weight = weight.detach().to(device="cpu", dtype=torch.float32).contiguous()
    return weight, mask.detach().cpu().contiguous()


@dataclass(frozen=True)
class Slots:
    """Every stored slot of a format in its zero-padded grid ``padded: (Mp, Kp)``.

    rows, cols: int64[S]; values: float32[S]; real: bool[S] (see module docstring).
    """

    padded: tuple[int, int]
    rows: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor
    real: torch.Tensor


@dataclass
class SparseFormat:
    """Base of all formats. ``shape`` is the logical (M, K), before any padding."""

    name: ClassVar[str]
    shape: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return tensor_bytes(
            *(
                getattr(self, f.name)
                for f in fields(self)
                if f.name != "shape" and isinstance(getattr(self, f.name), torch.Tensor)
            )
        )

    @property
    def nnz(self) -> int:
        return int(self.values.count_nonzero())

    @property
    def bytes_per_nnz(self) -> float:
        """``nbytes / nnz`` (inf for an all-zero matrix)."""
        nnz = self.nnz
        return self.nbytes / nnz if nnz else math.inf

    def slots(self) -> Slots:  # pragma: no cover - every format overrides
        """Every stored slot with its grid position and value (see ``Slots``)."""
        raise NotImplementedError

    def to_dense(self) -> torch.Tensor:
        """``float32[M, K]``; equals the encoded ``weight * mask`` exactly."""
        s = self.slots()
        dense = torch.zeros(s.padded, dtype=torch.float32)
        dense[s.rows, s.cols] = s.values
        return dense[: self.shape[0], : self.shape[1]].contiguous()

    def structure(self) -> torch.Tensor:
        """``bool[M, K]``: the stored (real) positions, whatever their values."""
        s = self.slots()
        mask = torch.zeros(self.shape, dtype=torch.bool)
        mask[s.rows[s.real], s.cols[s.real]] = True
        return mask


@dataclass
class DenseMatrix(SparseFormat):
    """The dense baseline: ``values: float32[M, K]``."""

    name: ClassVar[str] = "dense"
    values: torch.Tensor

    def slots(self) -> Slots:
        M, K = self.shape
        rows = torch.arange(M).repeat_interleave(K)
        cols = torch.arange(K).repeat(M)
        real = torch.ones(M * K, dtype=torch.bool)
        return Slots(self.shape, rows, cols, self.values.reshape(-1), real)

    def to_dense(self) -> torch.Tensor:
        return self.values.clone()

    def structure(self) -> torch.Tensor:
        return torch.ones(self.shape, dtype=torch.bool)


@dataclass
class CSRMatrix(SparseFormat):
    """Compressed sparse rows.

    crow_indices: int32[M + 1], col_indices: int32[nnz], values: float32[nnz].
    Inside each row the entries are in ``bank_order``: with ``banks = B`` and column
    banks ``c mod B``, by (rank of the column among the row's columns of its bank,
    bank), so each run of B entries takes one column from every bank (the order a
    bank-balanced row is gathered in without bank conflicts); ``banks = 1`` is plain
    ascending columns. Every kept position of the mask is stored, also a kept weight
    whose value is exactly 0 (``nnz`` does not count it), so ``structure()`` is the mask.
    """

    name: ClassVar[str] = "csr"
    crow_indices: torch.Tensor
    col_indices: torch.Tensor
    values: torch.Tensor
    banks: int = 1

    def slots(self) -> Slots:
        rows = torch.repeat_interleave(torch.arange(self.shape[0]), self.crow_indices.long().diff())
        real = torch.ones(rows.numel(), dtype=torch.bool)
        return Slots(self.shape, rows, self.col_indices.long(), self.values, real)

    def ascending(self) -> CSRMatrix:
        """The same matrix with ascending columns in every row (``banks = 1``): the
        layout torch.sparse and cuSPARSE take. ``self`` when it already is."""
        if self.banks == 1:
            return self
        order = bank_order(self.crow_indices, self.col_indices, 1)
        return CSRMatrix(self.shape, self.crow_indices, self.col_indices[order], self.values[order])

    def to_torch(self) -> torch.Tensor:
        """The same matrix as a ``torch.sparse_csr`` tensor (int32 indices; shared memory
        when the columns ascend)."""
        csr = self.ascending()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                csr.crow_indices, csr.col_indices, csr.values, size=self.shape
            )


def bank_order(crow_indices: torch.Tensor, col_indices: torch.Tensor, banks: int) -> torch.Tensor:
    """The permutation of a CSR's entries into ``CSRMatrix`` bank order over ``banks``.

    Entry p of row r with column c gets the key (r, rank, c mod banks), rank = how many
    columns of row r in bank c mod banks are smaller than c; returns int64[nnz], the
    stored positions sorted by key (``banks = 1``: ascending columns).
    """
    cols = col_indices.long()
    rows = torch.repeat_interleave(
        torch.arange(crow_indices.numel() - 1), crow_indices.long().diff()
    )
    n = cols.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    width = int(cols.max()) + 1
    bank = cols % banks
    by_cell = torch.argsort((rows * banks + bank) * width + cols, stable=True)
    cell = (rows * banks + bank)[by_cell]
    start = torch.ones(n, dtype=torch.bool)
    start[1:] = cell[1:] != cell[:-1]
    first = torch.cummax(torch.where(start, torch.arange(n), 0), 0).values
    rank = torch.empty(n, dtype=torch.long)
    rank[by_cell] = torch.arange(n) - first
    return torch.argsort((rows * (width + 1) + rank) * banks + bank, stable=True)


@dataclass
class BSRMatrix(SparseFormat):
    """Block sparse rows with R x C blocks on a zero-padded grid.

    The padded matrix is (ceil(M/R)*R, ceil(K/C)*C).
    crow_indices: int32[ceil(M/R) + 1], col_indices: int32[n_blocks] (block
    columns, ascending inside a block row), values: float32[n_blocks, R, C].
    Entries of a stored block that fall in the padding hold 0.
    """

    name: ClassVar[str] = "bsr"
    block: tuple[int, int]
    crow_indices: torch.Tensor
    col_indices: torch.Tensor
    values: torch.Tensor

    def slots(self) -> Slots:
        (M, K), (R, C) = self.shape, self.block
        n_brows = -(-M // R)
        brow = torch.repeat_interleave(torch.arange(n_brows), self.crow_indices.long().diff())
        # rows/cols: [n_blocks, R, C], each block's cells in its grid position.
        rows = (brow[:, None, None] * R + torch.arange(R)[None, :, None]).expand(-1, R, C)
        cols = (self.col_indices.long()[:, None, None] * C + torch.arange(C)).expand(-1, R, C)
        rows, cols = rows.reshape(-1), cols.reshape(-1)
        padded = (n_brows * R, -(-K // C) * C)
        return Slots(padded, rows, cols, self.values.reshape(-1), (rows < M) & (cols < K))

    def to_torch(self) -> torch.Tensor:
        """The same matrix as a ``torch.sparse_bsr`` tensor; needs R | M and C | K."""
        (M, K), (R, C) = self.shape, self.block
        if M % R or K % C:
            raise ValueError(
                f"torch.sparse_bsr needs the block {self.block} to divide the shape "
                f"{self.shape}; use to_dense() or the gsprune BSR kernel for padded shapes"
            )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sparse BSR tensor support is in beta")
            return torch.sparse_bsr_tensor(
                self.crow_indices, self.col_indices, self.values, size=self.shape
            )


@dataclass
class NMMatrix(SparseFormat):
    """N:M sparsity along K: in every run of M consecutive columns at most N kept.

    K is zero-padded to Kp = ceil(K/M)*M. values: float32[M_rows, Kp/M*N];
    indices: uint8[M_rows, Kp/M*N], the offset (0..M-1) of each value inside its
    run of M columns, ascending inside a run. Runs with fewer than N kept
    entries are filled with explicit zeros at unused offsets (in-range columns
    first). Fill slots inside K are indistinguishable from kept zeros, so
    ``structure()`` counts them as stored: it has exactly N per run wherever K allows.
    """

    name: ClassVar[str] = "nm"
    n: int
    m: int
    values: torch.Tensor
    indices: torch.Tensor

    def slots(self) -> Slots:
        rows_n, K = self.shape
        runs = self.values.shape[1] // self.n
        run = torch.arange(runs).repeat_interleave(self.n)
        cols = (run * self.m)[None, :] + self.indices.long()
        rows = torch.arange(rows_n)[:, None].expand_as(cols)
        cols, rows = cols.reshape(-1), rows.reshape(-1)
        return Slots((rows_n, runs * self.m), rows, cols, self.values.reshape(-1), cols < K)


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
    For gs_free, index and lane_index share one dtype: int16 when max(M, K) < 32768.
    """

    name: ClassVar[str] = "gs"
    variant: str
    V: int
    B: int
    band_ptr: torch.Tensor
    values: torch.Tensor
    index: torch.Tensor
    lane_index: torch.Tensor | None = None

    @property
    def n_groups(self) -> int:
        return self.values.shape[0]

    def group_band(self) -> torch.Tensor:
        """int64[G]: the band of each group."""
        n_bands = self.band_ptr.numel() - 1
        return torch.repeat_interleave(torch.arange(n_bands), self.band_ptr.diff())

    def slots(self) -> Slots:
        M, K = self.shape
        V = self.V
        # lane: int64[G, V], the row (gs) or column (gs_scatter) each lane owns.
        lane = self.group_band()[:, None] * V + torch.arange(V)
        index = self.index.long()
        if self.variant == "gs":
            rows, cols = lane, index
        elif self.variant == "gs_scatter":
            rows, cols = index, lane
        else:
            rows, cols = self.lane_index.long(), index
        rows, cols = rows.reshape(-1), cols.reshape(-1)
        # Padding lanes sit past the edge (gs, gs_scatter); grow the grid to hold them.
        padded = (_extent(rows, M), _extent(cols, K))
        return Slots(padded, rows, cols, self.values.reshape(-1), (rows < M) & (cols < K))


def _extent(index: torch.Tensor, dim: int) -> int:
    """The smallest size >= ``dim`` that holds every entry of ``index``."""
    return max(dim, int(index.max()) + 1) if index.numel() else dim


@dataclass(frozen=True)
class FormatSpec:
    """A registry entry: the format class, its encoder and its structural check.

    ``encode(weight: float32[M, K], mask: bool[M, K], **format_params) -> cls``
    stores ``weight`` at the kept positions of ``mask``; ``check(fmt,
    **format_params) -> list[Violation]`` lists the format-level problems (array
    shapes and dtypes, index ranges, ordering, bank conflicts) and any mismatch
    with ``format_params``. ``format_params`` are what ``Pattern.format_params``
    returns: none for dense and csr, ``block=(R, C)`` for bsr, n and m for nm,
    V, B and variant for gs.
    """

    cls: type[SparseFormat]
    encode: Callable[..., SparseFormat]
    check: Callable[..., list[Violation]]


FORMATS: Registry[FormatSpec] = Registry("format")


def array_violations(
    name: str, tensor: Any, dtype: torch.dtype, shape: tuple[int, ...]
) -> list[Violation]:
    """Check one stored array's type, dtype and shape; empty list when it is right."""
    if not isinstance(tensor, torch.Tensor):
        return [Violation(f"{name} is a {type(tensor).__name__}, not a torch.Tensor")]
    found = []
    if tensor.dtype != dtype:
        found.append(Violation(f"{name} has dtype {tensor.dtype}, expected {dtype}"))
    if tuple(tensor.shape) != tuple(shape):
        found.append(Violation(f"{name} has shape {tuple(tensor.shape)}, expected {tuple(shape)}"))
    return found
