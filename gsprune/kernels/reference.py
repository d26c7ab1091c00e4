"""The "reference" backend: each format's product in plain torch, from its own arrays.

Every sparse format is read as its list of stored entries (row, column, value) --
built with gathers and ``repeat_interleave`` from the format's pointers and indices,
never through ``to_dense()`` -- and multiplied by one shared :func:`entry_product`
(``index_add_`` of value * x row). This is the ground truth the compiled kernels are
tested against beside the dense product, and the labelled fallback when the compiled
kernels cannot be built. Padding entries (rows >= M or columns >= K, e.g. the lanes of
a partial GS band or the block overhang of BSR) are dropped.
"""

from __future__ import annotations

import torch

from gsprune.formats.base import BSRMatrix, CSRMatrix, DenseMatrix, GSMatrix, NMMatrix
from gsprune.kernels.base import register

# Entries multiplied per chunk: bounds the gathered x rows to ~2**22 floats.
_CHUNK_FLOATS = 1 << 22


def entry_product(
    rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, x: torch.Tensor, M: int
) -> torch.Tensor:
    """``y: float32[M, N]`` with ``y[rows[e]] += values[e] * x[cols[e]]`` for every entry e.

    rows, cols: int64[E]; values: float32[E]; x: float32[K, N]. Entries with a row
    outside [0, M) or a column outside [0, K) are padding and skipped.
    """
    K, N = x.shape
    keep = (rows >= 0) & (rows < M) & (cols >= 0) & (cols < K)
    rows, cols, values = rows[keep], cols[keep], values[keep]
    y = x.new_zeros((M, N))
    step = max(1, _CHUNK_FLOATS // max(N, 1))
    for start in range(0, rows.numel(), step):
        part = slice(start, start + step)
        y.index_add_(0, rows[part], values[part, None] * x[cols[part]])
    return y


def _per_pointer(ptr: torch.Tensor) -> torch.Tensor:
    """For a prefix-sum pointer ``ptr[n+1]``: the owning unit of each of its ptr[-1] items."""
    counts = (ptr[1:] - ptr[:-1]).long()
    return torch.repeat_interleave(torch.arange(counts.numel()), counts)


def gs_entries(fmt: GSMatrix) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, cols, values) of every lane of every group, each of shape [G * V]."""
    lane = torch.arange(fmt.V)
    owned = (_per_pointer(fmt.band_ptr)[:, None] * fmt.V + lane).reshape(-1)
    index = fmt.index.long().reshape(-1)
    if fmt.variant == "gs":
        rows, cols = owned, index
    elif fmt.variant == "gs_scatter":
        rows, cols = index, owned
    else:
        rows, cols = fmt.lane_index.long().reshape(-1), index
    return rows, cols, fmt.values.reshape(-1)


@register("reference", "gs")
def gs(fmt: GSMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
    return entry_product(*gs_entries(fmt), x, fmt.shape[0])


@register("reference", "csr")
def csr(fmt: CSRMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
    rows = _per_pointer(fmt.crow_indices)
    return entry_product(rows, fmt.col_indices.long(), fmt.values, x, fmt.shape[0])


@register("reference", "bsr")
def bsr(fmt: BSRMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
    R, C = fmt.block
    block_rows = _per_pointer(fmt.crow_indices)
    rows = (block_rows[:, None, None] * R + torch.arange(R)[None, :, None]).expand(-1, R, C)
    cols = (fmt.col_indices.long()[:, None, None] * C + torch.arange(C)).expand(-1, R, C)
    return entry_product(
        rows.reshape(-1), cols.reshape(-1), fmt.values.reshape(-1), x, fmt.shape[0]
    )


@register("reference", "nm")
def nm(fmt: NMMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
    M = fmt.shape[0]
    slots = fmt.values.shape[1]
    run_start = torch.arange(slots) // fmt.n * fmt.m
    cols = run_start + fmt.indices.long()
    rows = torch.arange(M)[:, None].expand(M, slots)
    return entry_product(rows.reshape(-1), cols.reshape(-1), fmt.values.reshape(-1), x, M)


@register("reference", "dense")
def dense(fmt: DenseMatrix, x: torch.Tensor, threads: int) -> torch.Tensor:
    return fmt.values @ x
