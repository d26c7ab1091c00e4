"""Exact concave transportation solver shared by the GS projections.

A GS projection decides, for every *cell* (a row, or a row bank, crossed with a
column bank), how many of the cell's entries to keep. Inside a cell the best
choice of ``n`` entries is always its top-``n`` scores, so the kept score of a
cell is the prefix sum of its scores sorted in descending order: a concave
function of ``n``. The projection is therefore a transportation problem with
concave gains::

    maximise   sum_{r, c} prefix(S[r, c])[n[r, c]]
    subject to sum_c n[r, c] == supply[r]          (every row keeps exactly its count)
               sum_r n[r, c] <= capacity[c]        (no column bank over-full)
               0 <= n[r, c] <= size of cell (r, c)

``solve_concave_transport`` solves it exactly, batched over independent
problems (the bands of a layer), by successive shortest paths for convex-cost
flow: start from the optimum without bank capacities (every row takes its own
top-``supply`` scores) and move one unit at a time from an over-full bank to a
bank with spare capacity along the cheapest chain of row exchanges. Each unit
follows a shortest path in the residual graph, so no negative cycle ever
appears and the final counts are optimal (the constraint matrix is a network
matrix, so the optimum is integral).

``project_cells`` wraps it for score tensors: counts move only a few units
away from the unconstrained start, so it orders only a window of ``w``
entries on each side of every cell's start boundary, and widens the window when a
count reaches its edge (the restricted optimum is the true one when no count
sits on a window edge, because the residual graphs then coincide).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F


class InfeasibleTransport(RuntimeError):
    """No over-full column can pass a unit on to a column with spare capacity."""


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread, then restore the previous count.

    The exchange loop issues thousands of tiny ops and the rest of a projection
    is memory-bound; on a loaded machine every multi-threaded op pays a fork/join
    that costs more than the op itself. Measured on 2 shared cores (load ~5):
    projecting ResNet-50 to GS V=8 ran 5x slower on two threads than on one.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def max_feasible_supply(row_sizes: torch.Tensor, col_sizes: torch.Tensor, limit: int) -> int:
    """Largest ``k <= limit`` for which every row can send exactly ``k`` units.

    ``row_sizes: int[R]`` and ``col_sizes: int[C]``: cell ``(i, j)`` holds
    ``row_sizes[i] * col_sizes[j]`` entries, every column receives at most ``k``.
    By max-flow/min-cut the problem is feasible iff for every ``x`` the ``x``
    smallest rows, of total size ``A_x``, satisfy ``sum_j min(k, A_x c_j) >= x k``.
    The left side minus the right is concave in ``k`` and zero at 0, so the
    feasible ``k`` form an interval ``[0, k_max]``: found by bisection.
    """
    prefix = torch.sort(row_sizes.long()).values.cumsum(0)  # A_x for x = 1..R
    x = torch.arange(1, prefix.numel() + 1)
    reach = prefix[:, None] * col_sizes.long()[None, :]  # [R, C]

    def feasible(k: int) -> bool:
        return bool((reach.clamp(max=k).sum(1) >= x * k).all())

    lo, hi = 0, int(limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if feasible(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def solve_concave_transport(
    scores: torch.Tensor, counts: torch.Tensor, capacity: torch.Tensor
) -> torch.Tensor:
    """Exact optimal counts ``int64[T, R, C]`` for T independent problems.

    ``scores: float[T, R, C, L]``: each cell's scores sorted descending;
    ``-inf`` marks entries that cannot be added and ``+inf`` entries that cannot
    be removed. ``counts: int[T, R, C]``: a start in which every row holds its
    own best entries (``scores[t, r, c, n - 1] >= scores[t, r, c', n']`` for all
    cells of a row), which fixes the row sums. ``capacity: int[T, C]``: upper
    bounds on the column sums. The caller guarantees feasibility (see
    ``max_feasible_supply``); an infeasible one raises ``InfeasibleTransport``.

    Iterations: one unit per problem each, as many as the largest total
    over-fill of the start (tens on Gaussian layers).
    """
    t, r, c, length = scores.shape
    counts = counts.long().clone()
    capacity = capacity.long()
    finite = scores[torch.isfinite(scores)]
    # Ties between floating-point path costs within this tolerance are not improvements.
    tol = 1e-9 * (float(finite.abs().max()) if finite.numel() else 1.0) + 1e-30
    # With +inf before and -inf after every cell, the entry a row gives up by removing one
    # unit sits at position n and the one it gains by adding a unit at n + 1, for every
    # count 0 <= n <= L; impossible moves come out infinitely expensive.
    fenced = F.pad(F.pad(scores.double(), (1, 0), value=torch.inf), (0, 1), value=-torch.inf)
    fenced = fenced.flatten()
    cell_start = torch.arange(t * r * c) * (length + 2)
    flat_counts = counts.view(-1)
    # The current drop/add entry of every cell, refreshed only where a unit moved.
    drop_all, add_all = fenced[cell_start + flat_counts], fenced[cell_start + flat_counts + 1]
    while True:
        excess = counts.sum(1) - capacity  # [T, C]
        active = (excess > 0).any(1).nonzero().squeeze(1)
        if active.numel() == 0:
            return counts
        excess = excess[active]
        drop, add = drop_all.view(t, r, c)[active], add_all.view(t, r, c)[active]  # [A, R, C]
        # Moving one unit of row r from bank u to bank v costs drop[r, u] - add[r, v].
        # Bellman-Ford from all over-full banks at once (costs may turn negative after
        # augmentations, but the residual graph never has a negative cycle). A round
        #   dist'[v] = min_u dist[u] + min_r (drop[r, u] - add[r, v])
        #            = min_r (min_u (dist[u] + drop[r, u])) - add[r, v]
        # costs O(R C) per problem, never building the C x C edge matrix. The u = v term
        # is never an improvement (drop >= add inside a cell), so it needs no masking.
        dist = torch.where(excess > 0, 0.0, torch.inf).to(torch.float64)
        parent = torch.full_like(excess, -1)  # bank a unit comes from
        via = torch.full_like(excess, -1)  # row that moves it
        for _ in range(c):
            leave, leave_bank = (dist[:, None, :] + drop).min(2)  # [A, R]
            best, row = (leave[:, :, None] - add).min(1)  # [A, C]
            better = best < dist - tol
            if not better.any():
                break
            dist = torch.where(better, best, dist)
            parent = torch.where(better, leave_bank.gather(1, row), parent)
            via = torch.where(better, row, via)
        end_dist, cur = dist.masked_fill(excess >= 0, torch.inf).min(1)
        if not torch.isfinite(end_dist).all():
            raise InfeasibleTransport(
                "concave transport is infeasible: an over-full bank cannot reach a bank with "
                "spare capacity; the caller must clip the supply with max_feasible_supply"
            )
        # Walk each path back from its spare end, moving one unit along every edge.
        index = torch.arange(active.numel())
        touched = []
        for _ in range(c):
            prev = parent[index, cur]
            moving = (prev >= 0).nonzero().squeeze(1)
            if moving.numel() == 0:
                break
            u, v = prev[moving], cur[moving]
            first = (active[moving] * r + via[moving, v]) * c  # flat cell (band, row, 0)
            flat_counts[first + u] -= 1
            flat_counts[first + v] += 1
            touched += [first + u, first + v]
            cur[moving] = u
        else:
            raise RuntimeError("concave transport: the shortest-path tree has a cycle")
        cells = torch.cat(touched)
        at = cell_start[cells] + flat_counts[cells]
        drop_all[cells], add_all[cells] = fenced[at], fenced[at + 1]


def top_per_row(cells: torch.Tensor, supply: torch.Tensor) -> torch.Tensor:
    """``bool[T, R, C, L]``: the ``supply[t, r]`` best entries of each row ``(t, r)``."""
    t, r, c, length = cells.shape
    keep = torch.zeros(t, r, c * length, dtype=torch.bool)
    k = int(supply.max()) if supply.numel() else 0
    if k > 0:
        uneven = bool((supply != k).any())  # then rows with a smaller supply stop early
        top = cells.reshape(t, r, -1).topk(k, dim=-1, sorted=uneven).indices
        keep.scatter_(2, top, torch.arange(k) < supply[..., None])
    return keep.view(cells.shape)


@one_thread()
def project_cells(
    cells: torch.Tensor, supply: torch.Tensor, capacity: torch.Tensor
) -> torch.Tensor:
    """Optimal keep-mask ``bool[T, R, C, L]``: the top ``n[t, r, c]`` entries of every cell.

    ``cells: float[T, R, C, L]`` unsorted scores, ``-inf`` where a cell is
    padded; ``supply: int[T, R]`` exact row counts, ``capacity: int[T, C]``
    column limits (feasible, see ``max_feasible_supply``). Every row ``(t, r)``
    keeps ``supply[t, r]`` entries and column ``c`` holds at most
    ``capacity[t, c]`` of problem t's entries, with the largest total score.
    """
    length = cells.shape[-1]
    start = top_per_row(cells, supply)
    n0 = start.sum(-1)
    size = torch.isfinite(cells).sum(-1)
    # Counts move by about the square root of a cell's size; x4 per retry.
    width = min(max(16, round(length**0.5)), length)
    while True:
        # The `width` weakest kept and the `width` best dropped entries of every cell, as one
        # descending list; +inf/-inf fill the slots past either end of a cell.
        weak_vals, weak_idx = cells.masked_fill(~start, torch.inf).topk(width, largest=False)
        best_vals, best_idx = cells.masked_fill(start, -torch.inf).topk(width)
        window = torch.cat([weak_vals.flip(-1), best_vals], dim=-1)
        # In window coordinates every cell starts at `width`; shift the capacities alike.
        shifted = capacity - n0.sum(1) + width * n0.shape[1]
        try:
            counts = solve_concave_transport(window, torch.full_like(n0, width), shifted)
        except InfeasibleTransport:
            if width == length:
                raise
            width = min(4 * width, length)  # the window, not the problem, was too tight
            continue
        change = counts - width
        on_edge = ((change == -width) & (n0 > width)) | ((change == width) & (n0 + width < size))
        if width == length or not on_edge.any():
            break
        width = min(4 * width, length)
    slot = torch.arange(width)
    # Dropped slots of the weak list and added slots of the best list (padding slots of
    # either list are never selected: they lie past the change).
    delta = torch.zeros(cells.shape, dtype=torch.int8)
    delta.scatter_add_(-1, weak_idx, -(slot < -change[..., None]).to(torch.int8))
    delta.scatter_add_(-1, best_idx, (slot < change[..., None]).to(torch.int8))
    return (start & (delta >= 0)) | (delta > 0)
