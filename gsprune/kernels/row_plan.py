"""Row plans: how the CPU runs the scatter GS variants, as bands of rows in registers.

``gs_scatter`` and ``gs_free`` put each group's V non-zeros in V distinct rows but
let a row's non-zeros spread over many groups, so a kernel that follows the format
adds every product into y where it lands: a load and a store of a y row per FMA.
That, not the gathers, is what bounds them on a CPU (``scripts/bench_scatter.py`` on a
2-core Zen 5, one thread, AVX-512: the scatter loop took 1.4-2.4x the time of ``gs``;
the same loop without its y loads and stores took 0.84-1.5x). A CPU has no scratchpad banks
for the group structure to serve, so it runs them the way ``gs`` runs: a row plan,
made once per matrix (:func:`row_plan`, at ``kernels.bind``), regroups the stored
entries by row into bands of V_PLAN rows of similar count, each row's entries in
ascending column order, zero-padded to the band's longest row; the ``gs`` kernel
then keeps each band's rows in registers and writes each y row once, through
``row_of``.

Invariants of a :class:`RowPlan` for a matrix of shape (M, K): ``row_of`` is a
permutation of [0, M) (lane j of the bands, band j // V_PLAN, owns y row
``row_of[j]``; rows with more entries first); ``band_ptr[t+1] - band_ptr[t]`` is
the entry count of band t's first (longest) row; every stored slot past a row's
own entries holds value 0 and column 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gsprune.formats.base import Slots, index_dtype

V_PLAN = 8  # rows per band: the GS GEMV's 8-lane gathers, two 4-row SpMM register tiles


@dataclass(frozen=True)
class RowPlan:
    """A matrix W: [M, K] as ``gs`` bands of V_PLAN rows (module docstring).

    band_ptr: int64[n_bands + 1]; values: float32[G, V_PLAN]; index: int16[G, V_PLAN]
    (columns; int32 when K >= 32768); row_of: int32[M]; n_bands = ceil(M / V_PLAN);
    entries: the matrix's stored entries the plan holds.
    """

    shape: tuple[int, int]
    band_ptr: torch.Tensor
    values: torch.Tensor
    index: torch.Tensor
    row_of: torch.Tensor
    entries: int

    @property
    def padding(self) -> float:
        """The fraction of the real rows' lane slots that hold padding (the FMAs a plan
        adds; 0 when the rows of every band have equal counts)."""
        M = self.shape[0]
        k = self.band_ptr.diff()
        lanes = torch.clamp(M - torch.arange(k.numel()) * V_PLAN, max=V_PLAN)
        capacity = int((k * lanes).sum())
        return 0.0 if capacity == 0 else 1.0 - self.entries / capacity


def row_plan(slots: Slots, shape: tuple[int, int]) -> RowPlan:
    """The row plan of the matrix whose stored slots are ``slots`` (``fmt.slots()``).

    Slots that are not ``real`` (padding past the matrix edge) are left out; every real
    slot is kept, also one whose value is 0.
    """
    M, K = shape
    real = slots.real.numpy()
    rows, cols, values = (t.numpy()[real] for t in (slots.rows, slots.cols, slots.values))
    counts = np.bincount(rows, minlength=M)
    row_of = np.argsort(-counts, kind="stable")  # longest rows first
    rank = np.empty(M, dtype=np.int64)
    rank[row_of] = np.arange(M)
    # Entries by (lane, column): one int64 key; stable is a radix/merge sort, fast on the
    # nearly sorted input formats hand out.
    order = np.argsort(rank[rows] * K + cols, kind="stable")
    sorted_counts = counts[row_of]
    lane = np.repeat(np.arange(M), sorted_counts)  # the sorted entries' lanes
    first = np.cumsum(sorted_counts) - sorted_counts
    position = np.arange(lane.size) - np.repeat(first, sorted_counts)  # rank inside its row

    k = sorted_counts[::V_PLAN]  # each band's first row is its longest
    band_ptr = np.concatenate([[0], np.cumsum(k)]).astype(np.int64)
    destination = (band_ptr[lane // V_PLAN] + position) * V_PLAN + lane % V_PLAN
    plan_values = np.zeros((int(band_ptr[-1]), V_PLAN), dtype=np.float32)
    plan_index = torch.zeros((int(band_ptr[-1]), V_PLAN), dtype=index_dtype(K)).numpy()
    plan_values.reshape(-1)[destination] = values[order]
    plan_index.reshape(-1)[destination] = cols[order]
    return RowPlan(
        shape=(M, K),
        band_ptr=torch.from_numpy(band_ptr),
        values=torch.from_numpy(plan_values),
        index=torch.from_numpy(plan_index),
        row_of=torch.from_numpy(row_of.astype(np.int32)),
        entries=int(lane.size),
    )
