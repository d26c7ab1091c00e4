"""Dense, CSR, BSR and N:M: exact round trips, layouts and byte counts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gsprune import formats, patterns
from gsprune.formats import FORMATS

shapes = st.tuples(st.integers(1, 40), st.integers(1, 40))
seeds = st.integers(0, 2**31 - 1)


def _random(shape: tuple[int, int], seed: int, density: float = 0.3):
    """(weight, mask) with some kept weights exactly 0: positions must survive them."""
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(shape, generator=g)
    weight[torch.rand(shape, generator=g) < 0.05] = 0.0
    return weight, torch.rand(shape, generator=g) < density


def _round_trip(fmt, weight: torch.Tensor, mask: torch.Tensor) -> None:
    assert fmt.shape == tuple(mask.shape)
    assert torch.equal(fmt.to_dense(), weight * mask)
    assert fmt.nnz == int((weight * mask).count_nonzero())


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=seeds)
def test_csr_round_trip_and_layout(shape, seed):
    weight, mask = _random(shape, seed)
    fmt = FORMATS.get("csr").encode(weight, mask)
    _round_trip(fmt, weight, mask)
    assert torch.equal(fmt.structure(), mask)
    assert fmt.crow_indices.dtype == fmt.col_indices.dtype == torch.int32
    n = int(mask.sum())
    assert fmt.nbytes == 4 * (shape[0] + 1) + 8 * n
    assert torch.equal(fmt.to_torch().to_dense(), weight * mask)
    assert not FORMATS.get("csr").check(fmt)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, block=st.tuples(st.integers(1, 6), st.integers(1, 9)), seed=seeds)
def test_bsr_round_trip_and_layout(shape, block, seed):
    R, C = block
    weight, _ = _random(shape, seed)
    # A block mask: whole blocks of the padded grid, cropped at the edges.
    g = torch.Generator().manual_seed(seed + 1)
    grid = torch.rand(-(-shape[0] // R), -(-shape[1] // C), generator=g) < 0.4
    mask = grid.repeat_interleave(R, 0).repeat_interleave(C, 1)[: shape[0], : shape[1]]
    fmt = FORMATS.get("bsr").encode(weight, mask, block=(R, C))
    _round_trip(fmt, weight, mask)
    assert torch.equal(fmt.structure(), mask)
    n_blocks = int(grid.sum())
    assert fmt.values.shape == (n_blocks, R, C)
    assert fmt.nbytes == 4 * (grid.shape[0] + 1) + 4 * n_blocks + 4 * n_blocks * R * C
    assert not FORMATS.get("bsr").check(fmt, block=(R, C))
    if shape[0] % R == 0 and shape[1] % C == 0:
        assert torch.equal(fmt.to_torch().to_dense(), weight * mask)
    else:
        with pytest.raises(ValueError, match="divide the shape"):
            fmt.to_torch()


@settings(max_examples=40, deadline=None)
@given(shape=shapes, nm=st.sampled_from([(1, 2), (2, 4), (1, 4), (4, 8), (3, 5)]), seed=seeds)
def test_nm_round_trip_and_layout(shape, nm, seed):
    n, m = nm
    weight, dense_mask = _random(shape, seed, density=0.7)
    # Keep at most n per run of m: drop the rest of each run (by position rank).
    runs = -(-shape[1] // m)
    padded = torch.nn.functional.pad(dense_mask, (0, runs * m - shape[1])).reshape(
        *shape[:1], runs, m
    )
    mask = (padded & (padded.cumsum(2) <= n)).reshape(shape[0], -1)[:, : shape[1]]
    fmt = FORMATS.get("nm").encode(weight, mask, n=n, m=m)
    _round_trip(fmt, weight, mask)
    assert fmt.values.shape == fmt.indices.shape == (shape[0], runs * n)
    assert fmt.indices.dtype == torch.uint8
    assert fmt.nbytes == shape[0] * runs * n * 5
    offsets = fmt.indices.long().reshape(shape[0], runs, n)
    assert (offsets.diff(dim=2) > 0).all() and (offsets < m).all()
    # The stored positions cover the mask; fill slots prefer columns inside K.
    assert (fmt.structure() | ~mask).all()
    assert not FORMATS.get("nm").check(fmt, n=n, m=m)


def test_nm_rejects_a_crowded_run():
    mask = torch.tensor([[True, True, True, False]])
    with pytest.raises(ValueError, match="row 0, run 0 .* keeps 3 entries"):
        FORMATS.get("nm").encode(torch.ones(1, 4), mask, n=2, m=4)
    with pytest.raises(ValueError, match="n=5, m=4"):
        FORMATS.get("nm").encode(torch.ones(1, 4), mask, n=5, m=4)


@settings(max_examples=20, deadline=None)
@given(shape=shapes, seed=seeds)
def test_dense_round_trip(shape, seed):
    weight, mask = _random(shape, seed)
    fmt = FORMATS.get("dense").encode(weight, mask)
    _round_trip(fmt, weight, mask)
    assert fmt.nbytes == 4 * shape[0] * shape[1] and fmt.bytes_per_nnz >= 4


@pytest.mark.parametrize(
    ("pattern", "params", "fmt_name"),
    [
        ("dense", {}, "dense"),
        ("unstructured", {}, "csr"),
        ("row_balanced", {}, "csr"),
        ("bank_balanced", {"B": 8}, "csr"),
        ("block", {"R": 4, "C": 4}, "bsr"),
        ("block", {"R": 1, "C": 8}, "bsr"),
        ("nm", {"N": 2, "M": 4}, "nm"),
    ],
)
def test_encode_projected_masks(pattern, params, fmt_name):
    weight = torch.randn(70, 90, generator=torch.Generator().manual_seed(0))
    mask = patterns.get(pattern).project(weight.abs(), 0.5, **params)
    fmt = formats.encode(weight, mask, pattern, **params)
    assert fmt.name == fmt_name
    _round_trip(fmt, weight, mask)
    assert formats.validate(fmt, pattern, **params).ok


def test_encode_rejects_bad_inputs():
    with pytest.raises(ValueError, match="2-D GEMM view"):
        formats.encode(torch.randn(3, 4, 5), torch.ones(3, 4, 5, dtype=torch.bool), "unstructured")
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        formats.encode(torch.randn(3, 4), torch.ones(3, 4), "unstructured")
    with pytest.raises(ValueError, match="unknown pattern 'diagonal'"):
        formats.encode(torch.randn(3, 4), torch.ones(3, 4, dtype=torch.bool), "diagonal")
