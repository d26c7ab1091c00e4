"""Row plans (gsprune/kernels/row_plan.py): their invariants, the matrix they hold, and the
compiled kernel run from them on rows the format leaves empty."""

from __future__ import annotations

import pytest
import torch

from gsprune import formats, kernels, patterns
from gsprune.formats.base import CSRMatrix
from gsprune.kernels.row_plan import V_PLAN, row_plan

from .conftest import COMPILED


def uneven_csr(M: int, K: int, gen: torch.Generator) -> CSRMatrix:
    """A CSR matrix whose rows keep 0 to K entries (many lengths, some rows empty)."""
    keep = torch.rand(M, K, generator=gen) < torch.rand(M, 1, generator=gen) ** 2
    keep[:: max(1, M // 4)] = False  # empty rows
    weight = torch.randn(M, K, generator=gen)
    return formats.encode(weight, keep, "unstructured")


def plan_matrix(plan) -> torch.Tensor:
    """float64[M, K] from the plan's own arrays: lane j of band t adds into row row_of[j]."""
    M, K = plan.shape
    G = plan.values.shape[0]
    band = torch.repeat_interleave(torch.arange(plan.band_ptr.numel() - 1), plan.band_ptr.diff())
    lane = (band[:, None] * V_PLAN + torch.arange(V_PLAN)).reshape(-1)
    real = lane < M
    rows = plan.row_of.long()[lane[real]]
    cols = plan.index.long().reshape(-1)[real]
    W = torch.zeros(M, K, dtype=torch.float64)
    W.index_put_((rows, cols), plan.values.reshape(-1)[real].double(), accumulate=True)
    assert G == int(plan.band_ptr[-1])
    return W


@pytest.mark.parametrize("shape", [(1, 1), (7, 30), (64, 64), (203, 129)])
def test_plan_invariants_and_matrix(shape, gen):
    fmt = uneven_csr(*shape, gen)
    plan = row_plan(fmt.slots(), fmt.shape)
    M, K = shape
    assert sorted(plan.row_of.tolist()) == list(range(M))
    counts = torch.bincount(fmt.slots().rows, minlength=M)[plan.row_of.long()]
    assert (counts[:-1] >= counts[1:]).all(), "rows are not longest first"
    k = plan.band_ptr.diff()
    assert torch.equal(k, counts[::V_PLAN]), "a band's k is not its first row's count"
    assert plan.entries == fmt.slots().rows.numel()
    assert torch.allclose(plan_matrix(plan), fmt.to_dense().double())
    # Slots past a row's own entries: value 0 at column 0; a row's columns ascend.
    for t in range(k.numel()):
        band_values = plan.values[plan.band_ptr[t] : plan.band_ptr[t + 1]]
        band_index = plan.index[plan.band_ptr[t] : plan.band_ptr[t + 1]].long()
        for i in range(min(V_PLAN, M - t * V_PLAN)):
            n = int(counts[t * V_PLAN + i])
            assert (band_values[n:, i] == 0).all() and (band_index[n:, i] == 0).all()
            assert (band_index[:n, i].diff() > 0).all()
    capacity = sum(int(k[t]) * min(V_PLAN, M - t * V_PLAN) for t in range(k.numel()))
    assert plan.padding == pytest.approx(1 - plan.entries / capacity if capacity else 0.0)


def test_plan_of_gs_free_has_little_padding(gen):
    """The case the plans are for: a gs_free matrix (rows of similar length)."""
    weight = torch.randn(256, 512, generator=gen)
    mask = patterns.get("gs_free").project(weight.abs(), 0.9, V=8)
    fmt = formats.encode(weight, mask, "gs_free", V=8)
    plan = row_plan(fmt.slots(), fmt.shape)
    assert torch.allclose(plan_matrix(plan), fmt.to_dense().double())
    assert 0 <= plan.padding < 0.05


def test_wide_matrices_get_int32_columns(gen):
    fmt = uneven_csr(3, 40000, gen)
    assert row_plan(fmt.slots(), fmt.shape).index.dtype == torch.int32
    assert row_plan(uneven_csr(3, 100, gen).slots(), (3, 100)).index.dtype == torch.int16


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("N", [1, 3, 17])
def test_planned_kernels_write_every_row(backend, N, gen):
    """Empty rows come out 0 (y starts uninitialised), also when no row keeps anything."""
    nothing = torch.zeros(9, 5, dtype=torch.bool)
    for fmt in (uneven_csr(45, 70, gen), formats.encode(torch.ones(9, 5), nothing, "unstructured")):
        x = torch.randn(fmt.shape[1], N, generator=gen)
        truth = fmt.to_dense() @ x
        assert torch.allclose(kernels.bind(fmt, 1, backend)(x), truth, atol=1e-4), backend
        assert torch.allclose(kernels.matmul(fmt, x, 1, backend), truth, atol=1e-4), backend
