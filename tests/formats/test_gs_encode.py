"""GS encoder: exact round trips, conflict-free groups, layout and the encoder's own errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gsprune import formats, patterns
from gsprune.formats import FORMATS, GSMatrix

LANES_BANKS = [(4, 4), (8, 8), (16, 16), (32, 32), (4, 8), (8, 16), (4, 12)]


def _weight(shape: tuple[int, int], mask: torch.Tensor, seed: int) -> torch.Tensor:
    """A Gaussian weight with one kept entry set to exactly 0 (its position must survive)."""
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    kept = mask.nonzero()
    if len(kept):
        w[tuple(kept[0])] = 0.0
    return w


def _distinct(banks: torch.Tensor) -> bool:
    """``banks: int[G, V]``: True when no group has two lanes in one bank."""
    ordered = banks.sort(dim=1).values
    return bool((ordered[:, 1:] != ordered[:, :-1]).all())


def _check_layout(fmt: GSMatrix, mask: torch.Tensor, weight: torch.Tensor) -> None:
    """Everything that must hold for an encoded GS matrix, read from its arrays."""
    M, K = mask.shape
    assert torch.equal(fmt.to_dense(), weight * mask)
    assert torch.equal(fmt.structure(), mask)
    assert fmt.nnz == int((weight * mask).count_nonzero())
    G, V = fmt.values.shape
    assert V == fmt.V and fmt.index.shape == (G, V) and fmt.band_ptr[-1] == G
    assert _distinct(fmt.index.long() % fmt.B)
    if fmt.variant == "gs_free":
        assert _distinct(fmt.lane_index.long() % fmt.B)
        return
    # Lanes past the edge of the last band: value 0, index in range.
    lane = fmt.group_band()[:, None] * V + torch.arange(V)
    edge = lane >= (M if fmt.variant == "gs" else K)
    assert (fmt.values[edge] == 0).all()
    assert (fmt.index.long() >= 0).all()
    assert (fmt.index.long() < (K if fmt.variant == "gs" else M)).all()


@st.composite
def band_cases(draw):
    V, B = draw(st.sampled_from(LANES_BANKS))
    M = draw(st.integers(1, 3 * V + V - 1))  # partial last band most of the time
    K = draw(st.integers(V, 3 * B + 5))
    k_max = max(1, K // B)
    ks = draw(st.lists(st.integers(0, k_max), min_size=-(-M // V), max_size=-(-M // V)))
    return V, B, M, K, ks, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=40, deadline=None)
@given(band_cases())
def test_gs_round_trip_on_built_masks(gs_masks, case):
    V, B, M, K, ks, seed = case
    mask = gs_masks.band(M, K, V, B, ks, seed)
    weight = _weight((M, K), mask, seed)
    fmt = formats.encode(weight, mask, "gs", V=V, B=B, band_k="free")
    assert fmt.band_ptr.diff().tolist() == ks
    _check_layout(fmt, mask, weight)
    assert formats.validate(fmt, "gs", V=V, B=B, band_k="free").ok


@settings(max_examples=25, deadline=None)
@given(band_cases())
def test_gs_scatter_round_trip_on_built_masks(gs_masks, case):
    V, B, K, M, ks, seed = case  # bands run along the columns
    mask = gs_masks.band(K, M, V, B, ks, seed).T.contiguous()
    weight = _weight((M, K), mask, seed)
    fmt = formats.encode(weight, mask, "gs_scatter", V=V, B=B, band_k="free")
    assert fmt.variant == "gs_scatter" and fmt.shape == (M, K)
    _check_layout(fmt, mask, weight)
    assert formats.validate(fmt, "gs_scatter", V=V, B=B, band_k="free").ok


@settings(max_examples=25, deadline=None)
@given(
    V=st.sampled_from([4, 8, 16]),
    extra=st.tuples(st.integers(0, 20), st.integers(0, 20)),
    k=st.integers(0, 6),
    seed=st.integers(0, 2**31 - 1),
)
def test_gs_free_round_trip_on_built_masks(gs_masks, V, extra, k, seed):
    M, K = V + extra[0], V + extra[1]
    k = min(k, (M // V) * (K // V))  # a cell (row bank, column bank) must hold k positions
    mask = gs_masks.free(M, K, V, k, seed)
    weight = _weight((M, K), mask, seed)
    fmt = formats.encode(weight, mask, "gs_free", V=V)
    assert fmt.band_ptr.tolist() == [0, k] and fmt.lane_index is not None
    _check_layout(fmt, mask, weight)
    assert formats.validate(fmt, "gs_free", V=V).ok


@pytest.mark.parametrize("pattern", ["gs", "gs_scatter", "gs_free"])
@pytest.mark.parametrize("V", [4, 8, 16, 32])
@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_gs_round_trip_on_projected_masks(pattern, V, sparsity):
    weight = torch.randn(83, 150, generator=torch.Generator().manual_seed(V))
    mask = patterns.get(pattern).project(weight.abs(), sparsity, V=V)
    fmt = formats.encode(weight, mask, pattern, V=V)
    _check_layout(fmt, mask, weight)
    assert formats.validate(fmt, pattern, V=V).ok


def test_gs_with_more_banks_than_columns_points_padding_lanes_at_real_columns(gs_masks):
    # K = 10 < B = 16: banks 10..15 are empty; the partial band's missing lanes need real columns.
    mask = gs_masks.band(6, 10, 4, 16, [2, 2], seed=3)
    weight = torch.randn(6, 10)
    fmt = formats.encode(weight, mask, "gs", V=4, B=16)
    _check_layout(fmt, mask, weight)


def test_empty_mask_gives_no_groups():
    mask = torch.zeros(13, 40, dtype=torch.bool)
    fmt = FORMATS.get("gs").encode(torch.randn(13, 40), mask, V=8)
    assert fmt.values.shape == (0, 8) and fmt.band_ptr.tolist() == [0, 0, 0]
    assert fmt.nnz == 0 and fmt.bytes_per_nnz == math.inf
    assert torch.equal(fmt.to_dense(), torch.zeros(13, 40))


@pytest.mark.parametrize(
    ("variant", "shape", "dtype"),
    [
        ("gs", (4, 32767), torch.int16),
        ("gs", (4, 32768), torch.int32),
        ("gs_scatter", (32767, 4), torch.int16),
        ("gs_scatter", (32768, 4), torch.int32),
        ("gs_free", (32767, 4), torch.int16),
        ("gs_free", (32768, 4), torch.int32),  # lane_index holds rows: the larger side decides
    ],
)
def test_index_dtype_follows_the_indexed_dimension(gs_masks, variant, shape, dtype):
    if variant == "gs_free":
        mask = gs_masks.free(*shape, 4, 1, seed=0)
    else:
        mask = gs_masks.band(4, max(shape), 4, 4, [1], seed=0)
        mask = mask if variant == "gs" else mask.T
    fmt = FORMATS.get("gs").encode(torch.ones(shape), mask, V=4, variant=variant)
    assert fmt.index.dtype == dtype
    if variant == "gs_free":
        assert fmt.lane_index.dtype == dtype


def test_gs_nbytes_formula(gs_masks):
    mask = gs_masks.band(20, 64, 8, 8, [3, 3, 3], seed=1)  # 3 bands, last one partial
    fmt = formats.encode(torch.randn(20, 64), mask, "gs", V=8)
    G = 9
    assert fmt.nbytes == 8 * 4 + G * 8 * (4 + 2)  # band_ptr int64[4]; values f32, index i16
    free = formats.encode(torch.randn(16, 16), gs_masks.free(16, 16, 8, 2, 0), "gs_free", V=8)
    assert free.nbytes == 8 * 2 + 2 * 8 * (4 + 2 + 2)  # plus lane_index i16


def test_encoder_rejects_masks_that_break_the_counting_rule(gs_masks):
    encode = FORMATS.get("gs").encode
    mask = gs_masks.band(8, 32, 8, 8, [2], seed=0)
    uneven = mask.clone()
    uneven[3, uneven[3].nonzero()[0]] = False
    with pytest.raises(ValueError, match="band 0: lane 3 keeps 1 entries"):
        encode(torch.randn(8, 32), uneven, V=8)
    crowded = torch.zeros(8, 32, dtype=torch.bool)
    crowded[:, 0] = True  # k = 1 but all eight entries in bank 0
    with pytest.raises(ValueError, match="bank 0 holds 8 entries"):
        encode(torch.randn(8, 32), crowded, V=8)
    with pytest.raises(ValueError, match="only 4 non-empty bank"):  # a partial band, K < V
        encode(torch.randn(3, 4), torch.eye(3, 4, dtype=torch.bool), V=8)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"V": 8, "variant": "gs_diagonal"}, "GS variant 'gs_diagonal'"),
        ({"V": 0}, "V=0"),
        ({"V": 8, "B": 4}, "B=4"),
        ({"V": 8, "B": 16, "variant": "gs_free"}, "B == V only"),
    ],
)
def test_encoder_rejects_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        FORMATS.get("gs").encode(torch.randn(8, 8), torch.zeros(8, 8, dtype=torch.bool), **params)


def test_encode_rejects_a_mask_that_breaks_the_pattern(gs_masks):
    mask = gs_masks.band(16, 32, 8, 8, [2, 2], seed=0)
    mask[0, mask[0].nonzero()[0]] = False
    with pytest.raises(ValueError, match="does not satisfy pattern 'gs'"):
        formats.encode(torch.randn(16, 32), mask, "gs", V=8)
