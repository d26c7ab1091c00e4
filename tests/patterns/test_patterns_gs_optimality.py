"""The GS projections keep the most score: equal to an LP optimum, >= 99% of row-balanced."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

import gsprune.patterns as patterns
from gsprune.patterns.transport import max_feasible_supply, project_cells


def lp_optimum(
    scores: torch.Tensor,
    row_group: np.ndarray,
    row_supply: np.ndarray,
    bank_group: np.ndarray,
    bank_capacity: np.ndarray,
) -> float:
    """max sum(s * x), 0 <= x <= 1, row groups sum to their supply, bank groups stay in capacity.

    ``row_group[i, j]`` / ``bank_group[i, j]`` index the constraint each entry belongs to.
    Each entry is in one equality and one inequality, so the matrix is the incidence matrix
    of a bipartite multigraph: totally unimodular, and the LP optimum is integral.
    """
    n = scores.numel()
    entries = np.arange(n)

    def incidence(groups: np.ndarray, count: int) -> coo_matrix:
        return coo_matrix((np.ones(n), (groups.ravel(), entries)), shape=(count, n))

    result = linprog(
        -scores.double().numpy().ravel(),
        A_eq=incidence(row_group, len(row_supply)),
        b_eq=row_supply,
        A_ub=incidence(bank_group, len(bank_capacity)),
        b_ub=bank_capacity,
        bounds=(0, 1),
        method="highs",
    )
    assert result.status == 0, result.message
    return -result.fun


def band_lp(scores: torch.Tensor, mask: torch.Tensor, lanes: int, banks: int) -> float:
    """LP optimum of the gs band problem with the per-row counts the projection chose."""
    rows, cols = scores.shape
    band = np.arange(rows)[:, None] // lanes
    k = mask.sum(1).numpy()  # every row of a band keeps its band's k
    bank_group = band * banks + np.arange(cols)[None, :] % banks
    row_group = np.broadcast_to(np.arange(rows)[:, None], (rows, cols))
    capacity = np.repeat(k[::lanes], banks)  # a band's banks hold at most its k
    return lp_optimum(scores, row_group, k, bank_group, capacity)


@pytest.mark.parametrize(
    ("rows", "cols", "lanes", "banks", "band_k", "sparsity"),
    [
        (16, 64, 4, 4, "uniform", 0.5),
        (16, 64, 4, 4, "uniform", 0.8),
        (16, 64, 4, 8, "uniform", 0.7),  # B > V
        (14, 40, 4, 4, "uniform", 0.6),  # partial band of 2 rows
        (24, 50, 8, 8, "free", 0.75),  # free k per band, K not a multiple of B
        (21, 37, 4, 6, "free", 0.5),  # everything ragged
    ],
)
def test_gs_equals_the_lp_optimum(gaussian, kept_score, rows, cols, lanes, banks, band_k, sparsity):
    scores = gaussian(rows, cols, seed=rows * cols)
    mask = patterns.get("gs").project(scores, sparsity, V=lanes, B=banks, band_k=band_k)
    optimum = band_lp(scores, mask, lanes, banks)
    assert kept_score(scores, mask) == pytest.approx(optimum, rel=1e-6)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(
    st.integers(1, 20),
    st.integers(0, 30),
    st.floats(0.0, 0.95),
    st.integers(0, 2**16),
    st.sampled_from([(4, 4), (4, 5), (8, 8), (8, 12), (2, 2)]),
    st.sampled_from(["uniform", "free"]),
)
def test_gs_equals_the_lp_optimum_on_random_shapes(
    gaussian, kept_score, rows, extra_cols, sparsity, seed, vb, band_k
):
    lanes, banks = vb
    scores = gaussian(rows, lanes + extra_cols, seed)
    mask = patterns.get("gs").project(scores, sparsity, V=lanes, B=banks, band_k=band_k)
    optimum = band_lp(scores, mask, lanes, banks)
    assert kept_score(scores, mask) == pytest.approx(optimum, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(
    ("rows", "cols", "lanes", "sparsity"), [(16, 24, 4, 0.7), (19, 13, 4, 0.5)]
)
def test_gs_free_equals_the_lp_optimum(gaussian, kept_score, rows, cols, lanes, sparsity):
    scores = gaussian(rows, cols, seed=7)
    mask = patterns.get("gs_free").project(scores, sparsity, V=lanes)
    k = int(mask.sum()) // lanes
    row_bank = np.broadcast_to(np.arange(rows)[:, None] % lanes, (rows, cols))
    col_bank = np.broadcast_to(np.arange(cols)[None, :] % lanes, (rows, cols))
    optimum = lp_optimum(scores, row_bank, np.full(lanes, k), col_bank, np.full(lanes, k))
    assert kept_score(scores, mask) == pytest.approx(optimum, rel=1e-6)


def test_solver_on_ties_and_tight_capacities():
    # All-equal scores: every feasible answer is optimal, the counts must still be exact.
    cells = torch.ones(3, 4, 4, 5)
    supply = torch.full((3, 4), 5)
    keep = project_cells(cells, supply, torch.full((3, 4), 5))
    assert keep.sum((2, 3)).eq(5).all() and keep.sum((1, 3)).eq(5).all()


def test_max_feasible_supply_matches_brute_force():
    # Bank sizes 2, 2, 1, 1, 1 (K=7, B=5); a band of 4 rows.
    sizes = torch.tensor([2, 2, 1, 1, 1])
    rows = torch.ones(4, dtype=torch.long)
    brute = max(k for k in range(8) if sum(min(k, 4 * int(s)) for s in sizes) >= 4 * k)
    assert max_feasible_supply(rows, sizes, 7) == brute == 6


@pytest.mark.parametrize("sparsity", [0.5, 0.75, 0.9, 0.95])
def test_gs_keeps_99_percent_of_row_balanced_on_gaussian_1024(gaussian, kept_score, sparsity):
    scores = gaussian(1024, 1024, seed=1)
    reference = kept_score(scores, patterns.get("row_balanced").project(scores, sparsity))
    for name in ("gs", "gs_scatter"):
        ratio = kept_score(scores, patterns.get(name).project(scores, sparsity, V=8)) / reference
        assert ratio >= 0.99, (name, ratio)
    assert math.isfinite(reference)
