"""The H(V, B) step model: deterministic cost of y = W x on a gather-scatter machine.

DESIGN §1: a machine with V vector lanes and a scratchpad of B >= V
word-interleaved banks, ``bank(a) = a mod B``. x (K words) and y (M words)
sit in the scratchpad at addresses 0..K-1 and 0..M-1; the weights stream in
from the format with contiguous loads, which are never the bottleneck.

One *vector operation* takes up to V stored entries of W, gathers the
matching x words, multiplies and accumulates. Its cost in steps:

- a **gather** of V addresses costs ``max over banks of (addresses in that
  bank)`` steps; every lane counts, so two lanes reading the same word
  serialize like two words of one bank (the rule the GS validator checks);
- a **scatter-add** into y costs the same with y's addresses (row banks);
- a **contiguous** load of up to V consecutive words (B >= V, so they fall in
  distinct banks) or a **broadcast** of one word costs 1 step;
- an operation that gathers *and* scatters (``gs_free``) costs the larger of
  the two: gather and scatter are separate ports of the engine, so a stream of
  such operations is limited by the slower one;
- partly filled operations (fewer than V useful lanes) still cost a full step;
  that is the load-imbalance the GS patterns remove.

Horizontal reductions and the final stores of y are not counted (one per row
for every format, they do not separate the patterns). Only N = 1 is modelled.

Per format (``steps(fmt, V, B)``):

- ``dense`` / BSR blocks: an R x C tile is done either row-major (per row,
  ``ceil(C/V)`` contiguous loads of x) or lane-owns-row (per column, one
  broadcast of x[c] to ``ceil(R/V)`` vectors of rows), whichever is cheaper:
  ``min(R*ceil(C/V), C*ceil(R/V))``. Dense M x K is one tile, so
  ``dense_steps = M*ceil(K/V)`` whenever V divides K.
- ``csr``: row by row, each row's stored entries in order in chunks of V (the
  last chunk partly filled), rows never mixed; each chunk is a gather of its
  column addresses.
- ``nm``: as CSR, over every stored slot of a row (fill slots included: the
  kernel executes them).
- ``gs``: one operation per group (all V lanes, padding lanes included); a
  group gathers x at ``index``, y stays in registers (lane i owns row i of the
  band). A valid GS format costs exactly one step per group on its own
  H(V, B); an invalid one shows its bank conflicts. On a machine with other
  banks it shows the conflicts it gets there; on one with fewer lanes each
  group splits into ops of V consecutive lanes, on one with more lanes a group
  runs as one partly filled op (groups are not packed: in ``gs`` two groups of
  a band write the same rows).
- ``gs_scatter``: likewise; x is read contiguously (lane i owns column i of
  the band) and the group scatter-adds into y at ``index``.
- ``gs_free``: likewise; gathers x at ``index`` and scatter-adds y at
  ``lane_index``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from gsprune.registry import Registry

if TYPE_CHECKING:  # formats are dispatched on their ``name``; no import needed at run time
    from gsprune.formats.base import (
        BSRMatrix,
        CSRMatrix,
        DenseMatrix,
        GSMatrix,
        NMMatrix,
        SparseFormat,
    )


@dataclass(frozen=True)
class StepBreakdown:
    """Cost of one y = W x on H(V, B).

    ``ops`` vector operations cost ``steps >= ops`` steps; ``conflict_steps =
    steps - ops`` is what bank conflicts add. ``nnz`` counts the non-zeros of
    W; ``lane_utilization = nnz / (V * steps)`` (1.0 = every lane of every
    step does useful work; partly filled ops, padding and conflicts lower it).
    """

    V: int
    B: int
    steps: int
    ops: int
    nnz: int

    @property
    def conflict_steps(self) -> int:
        return self.steps - self.ops

    @property
    def lane_utilization(self) -> float:
        return self.nnz / (self.V * self.steps) if self.steps else 0.0


# Step functions per format name: (fmt, V, B) -> (steps, ops).
STEP_MODELS: Registry[Callable[[SparseFormat, int, int], tuple[int, int]]] = Registry(
    "step-model format"
)


def check_machine(V: object, B: object) -> tuple[int, int]:
    """Validate H(V, B): V a power of two >= 1, B an integer >= V. Returns (V, B)."""
    if not isinstance(V, int) or isinstance(V, bool) or V < 1 or V & (V - 1):
        raise ValueError(
            f"H(V, B): V={V!r} is not accepted; V (vector lanes) must be a power of two "
            "such as 4, 8, 16 or 32."
        )
    if not isinstance(B, int) or isinstance(B, bool) or B < V:
        raise ValueError(
            f"H(V, B): B={B!r} is not accepted with V={V}; B (scratchpad banks) must be an "
            "integer >= V."
        )
    return V, B


def tile_steps(rows: int, cols: int, V: int) -> int:
    """Steps for a dense rows x cols tile with contiguous loads / broadcasts of x.

    ``min(rows*ceil(cols/V), cols*ceil(rows/V))``: row-major or lane-owns-row,
    whichever is cheaper; 0 for an empty tile.
    """
    return min(rows * -(-cols // V), cols * -(-rows // V))


def op_costs(op_id: torch.Tensor, address: torch.Tensor, n_ops: int, B: int) -> torch.Tensor:
    """Steps of each of ``n_ops`` gathers (or scatters): its worst bank count.

    op_id, address: int[L], lane l of operation ``op_id[l]`` touches
    ``address[l]``. Returns int64[n_ops] with ``cost[op] = max_b #{l : op_id[l]
    = op, address[l] mod B = b}`` (0 for an operation with no lane).
    """
    key = op_id.to(torch.int64) * B + address.to(torch.int64).remainder(B)
    return torch.bincount(key, minlength=n_ops * B).view(n_ops, B).amax(dim=1)


def row_chunk_steps(row_ptr: torch.Tensor, cols: torch.Tensor, V: int, B: int) -> tuple[int, int]:
    """(steps, ops) of a row-by-row kernel: each row's entries in chunks of V, rows not mixed.

    row_ptr: int[M + 1] (CSR pointers), cols: int[row_ptr[-1]] the column of
    each stored entry in processing order. Chunk j of row r holds the entries
    ``row_ptr[r] + j*V ...`` and gathers their columns.
    """
    row_ptr = row_ptr.to(torch.int64)
    lengths = row_ptr[1:] - row_ptr[:-1]
    chunks_per_row = (lengths + V - 1) // V
    n_ops = int(chunks_per_row.sum())
    chunk_base = torch.cumsum(chunks_per_row, 0) - chunks_per_row
    row_of = torch.repeat_interleave(torch.arange(lengths.numel()), lengths)
    position = torch.arange(cols.numel()) - row_ptr[:-1][row_of]
    op_id = chunk_base[row_of] + position // V
    return int(op_costs(op_id, cols, n_ops, B).sum()), n_ops


@STEP_MODELS.register("dense")
def _dense(fmt: DenseMatrix, V: int, B: int) -> tuple[int, int]:
    steps = tile_steps(*fmt.shape, V)
    return steps, steps


@STEP_MODELS.register("csr")
def _csr(fmt: CSRMatrix, V: int, B: int) -> tuple[int, int]:
    return row_chunk_steps(fmt.crow_indices, fmt.col_indices, V, B)


@STEP_MODELS.register("bsr")
def _bsr(fmt: BSRMatrix, V: int, B: int) -> tuple[int, int]:
    steps = fmt.col_indices.numel() * tile_steps(*fmt.block, V)
    return steps, steps


@STEP_MODELS.register("nm")
def _nm(fmt: NMMatrix, V: int, B: int) -> tuple[int, int]:
    rows, slots = fmt.indices.shape
    run = torch.arange(slots) // fmt.n  # each run of m columns stores n slots
    cols = (run * fmt.m + fmt.indices.to(torch.int64)).reshape(-1)
    row_ptr = torch.arange(rows + 1) * slots
    return row_chunk_steps(row_ptr, cols, V, B)


@STEP_MODELS.register("gs")
def _gs(fmt: GSMatrix, V: int, B: int) -> tuple[int, int]:
    groups, width = fmt.index.shape  # width = fmt.V, the lanes of a group
    # A group wider than the machine runs as width/V ops of V consecutive lanes (both are
    # powers of two); a narrower one as one partly filled op.
    per_group = -(-width // V)
    lane = torch.arange(width)
    op_id = (torch.arange(groups)[:, None] * per_group + lane // V).reshape(-1)
    n_ops = groups * per_group
    # "gs" gathers x at index, "gs_scatter" scatter-adds y at index: the same bank count.
    costs = op_costs(op_id, fmt.index.reshape(-1), n_ops, B)
    if fmt.variant == "gs_free":
        costs = torch.maximum(costs, op_costs(op_id, fmt.lane_index.reshape(-1), n_ops, B))
    return int(costs.sum()), n_ops


def resolve_machine(fmt: SparseFormat, V: int | None, B: int | None) -> tuple[int, int]:
    """The H(V, B) a format is costed on.

    ``V=None`` takes a GS format's own ``fmt.V`` (other formats need V);
    ``B=None`` takes a GS format's ``fmt.B`` when V is its own, else V. A GS format may be costed
    on another machine: another B shows the conflicts its groups get there,
    another V splits each group into ops of V lanes (or runs it partly filled).
    """
    if fmt.name == "gs":
        V = fmt.V if V is None else V
        B = fmt.B if B is None and V == fmt.V else B
    if V is None:
        raise ValueError(
            f"H(V, B): V=None is not accepted for a {fmt.name!r} format; pass the number of "
            "vector lanes, a power of two such as 4, 8, 16 or 32."
        )
    return check_machine(V, V if B is None else B)


def breakdown(fmt: SparseFormat, V: int | None = None, B: int | None = None) -> StepBreakdown:
    """Steps, vector operations and lane utilization of ``fmt`` times x on H(V, B).

    The format's ``name`` selects its step function in ``STEP_MODELS``; see
    the module docstring for the convention per format.
    """
    V, B = resolve_machine(fmt, V, B)
    if fmt.name == "gs" and fmt.variant == "gs_free" and fmt.lane_index is None:
        raise ValueError("H(V, B): a gs_free format needs lane_index (each lane's row); got None.")
    n_steps, ops = STEP_MODELS.get(fmt.name)(fmt, V, B)
    return StepBreakdown(V=V, B=B, steps=n_steps, ops=ops, nnz=int(fmt.nnz))


def steps(fmt: SparseFormat, V: int | None = None, B: int | None = None) -> int:
    """Steps of y = W x (N = 1) on H(V, B) for the format ``fmt``; see ``breakdown``."""
    return breakdown(fmt, V, B).steps


def dense_steps(shape: tuple[int, int], V: int, B: int | None = None) -> int:
    """Steps of the dense y = W x for W of ``shape`` (M, K): ``tile_steps(M, K, V)``.

    Equals ``M * ceil(K / V)`` whenever V divides K. B (default V) is only
    validated: contiguous loads never conflict when B >= V.
    """
    V, _ = check_machine(V, V if B is None else B)
    M, K = shape
    return tile_steps(M, K, V)
