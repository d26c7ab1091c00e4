"""The validator: planted violations are found and located; mismatches raise ValueError."""

from __future__ import annotations

import pytest
import torch

from gsprune import formats, patterns
from gsprune.formats import FORMATS, MAX_LISTED

M, K, V = 20, 64, 8  # three bands of rows, the last one partial (rows 16..19)


@pytest.fixture
def gs_fmt(gs_masks):
    mask = gs_masks.band(M, K, V, V, [3, 3, 3], seed=7)
    return formats.encode(torch.randn(M, K), mask, "gs", V=V)


def _located(report, **where) -> bool:
    """True when some violation's location holds every key/value of ``where``."""
    return any(where.items() <= v.location.items() for v in report.violations)


def test_valid_formats_pass(gs_fmt):
    report = formats.validate(gs_fmt, "gs", V=V)
    assert report.ok and str(report).endswith(": ok")


def test_two_lanes_of_a_group_in_one_bank(gs_fmt):
    gs_fmt.index[4, 1] = gs_fmt.index[4, 0]  # same column, so same bank
    bank = int(gs_fmt.index[4, 0]) % V
    report = formats.validate(gs_fmt, "gs", V=V)
    assert not report.ok
    assert _located(report, band=1, group=4, lane=1, bank=bank, count=2)
    assert f"band 1, group 4: lanes [0, 1] share column bank {bank}" in str(report)


def test_a_lane_storing_an_entry_twice_leaves_its_group_not_full(gs_fmt):
    gs_fmt.index[1, 2] = gs_fmt.index[0, 2]  # lane 2 = row 2 in both groups
    report = formats.validate(gs_fmt, "gs", V=V)
    assert _located(report, band=0, group=1, lane=2, count=2)


def test_groups_with_missing_lanes(gs_fmt):
    gs_fmt.values = gs_fmt.values[:, : V - 1].contiguous()
    report = formats.validate(gs_fmt, "gs", V=V)
    assert "values has shape (9, 7), expected (9, 8)" in str(report)


@pytest.mark.parametrize(
    ("band_ptr", "message"),
    [
        ([0, 3, 6, 8], "band_ptr[-1] is 8, expected 9"),
        ([0, 4, 3, 9], "band_ptr decreases at band 1"),
        ([0, 3, 9], "band_ptr has shape (3,), expected (4,)"),
    ],
)
def test_broken_band_ptr(gs_fmt, band_ptr, message):
    gs_fmt.band_ptr = torch.tensor(band_ptr)
    assert message in str(formats.validate(gs_fmt, "gs", V=V))


def test_band_ptr_that_moves_a_group_to_another_band(gs_fmt):
    # Consistent pointers, wrong split: band 0 gets 2 groups, band 1 gets 4.
    gs_fmt.band_ptr = torch.tensor([0, 2, 6, 9])
    assert not formats.validate(gs_fmt, "gs", V=V).ok


def test_index_out_of_range(gs_fmt):
    gs_fmt.index[5, 3] = K
    report = formats.validate(gs_fmt, "gs", V=V)
    assert _located(report, band=1, group=5, lane=3, value=K)


def test_padding_lane_with_a_value(gs_fmt):
    gs_fmt.values[8, 6] = 1.5  # band 2 has real lanes 0..3 only
    report = formats.validate(gs_fmt, "gs", V=V)
    assert _located(report, row=22)


def test_index_dtype_and_parameters_are_checked(gs_fmt):
    gs_fmt.index = gs_fmt.index.to(torch.int32)
    assert "index has dtype torch.int32, expected torch.int16" in str(
        formats.validate(gs_fmt, "gs", V=V)
    )
    assert "format has V=8, the pattern asks V=4" in str(formats.validate(gs_fmt, "gs", V=4))
    assert "variant='gs'" in str(formats.validate(gs_fmt, "gs_scatter", V=V))


def test_gs_free_row_bank_conflict(gs_masks):
    fmt = formats.encode(torch.randn(24, 24), gs_masks.free(24, 24, V, 2, seed=1), "gs_free", V=V)
    assert formats.validate(fmt, "gs_free", V=V).ok
    fmt.lane_index[0, 1] = (int(fmt.lane_index[0, 0]) + V) % 24  # another row, same row bank
    report = formats.validate(fmt, "gs_free", V=V)
    assert "share row bank" in str(report)


def test_listing_is_capped_with_a_count(gs_masks):
    mask = gs_masks.band(64, 64, V, V, [4] * 8, seed=0)
    fmt = formats.encode(torch.randn(64, 64), mask, "gs", V=V)
    fmt.index[:, 1] = fmt.index[:, 0]
    report = formats.validate(fmt, "gs", V=V)
    assert len(report.violations) == MAX_LISTED + 1
    assert report.violations[-1].location == {"count": 32 - MAX_LISTED}


def test_masks_are_checked_by_the_pattern(gs_masks):
    mask = gs_masks.band(16, 32, V, V, [2, 2], seed=0)
    assert formats.validate(mask, "gs", V=V).ok
    mask[9, mask[9].nonzero()[0]] = False
    report = formats.validate(mask, "gs", V=V)
    assert not report.ok and _located(report, band=1)
    nm_mask = torch.tensor([[True, True, True, False]])
    assert not formats.validate(nm_mask, "nm", N=2, M=4).ok


def test_csr_planted_violations():
    weight = torch.randn(6, 10)
    mask = torch.rand(6, 10, generator=torch.Generator().manual_seed(0)) < 0.5
    fresh = lambda: FORMATS.get("csr").encode(weight, mask)  # noqa: E731
    fmt = fresh()
    start = int(fmt.crow_indices[2])
    fmt.col_indices[start : start + 2] = fmt.col_indices[start : start + 2].flip(0).clone()
    assert _located(formats.validate(fmt, "unstructured"), row=2)
    fmt = fresh()
    fmt.col_indices[0] = 10
    assert _located(formats.validate(fmt, "unstructured"), entry=0, value=10)
    fmt = fresh()
    fmt.crow_indices[-1] += 1
    assert "crow_indices[-1]" in str(formats.validate(fmt, "unstructured"))


@pytest.mark.parametrize(("shape", "B"), [((9, 64), 8), ((5, 50), 4), ((3, 23), 8)])
def test_bank_balanced_csr_is_stored_bank_interleaved(shape, B):
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(shape, generator=gen)
    mask = patterns.get("bank_balanced").project(weight.abs(), 0.6, B=B)
    fmt = formats.encode(weight, mask, "bank_balanced", B=B)
    assert fmt.banks == B and torch.equal(fmt.to_dense(), weight * mask)
    assert formats.validate(fmt, "bank_balanced", B=B).ok
    for r in range(shape[0]):
        cols = fmt.col_indices[fmt.crow_indices[r] : fmt.crow_indices[r + 1]].long()
        banks = (cols % B).tolist()
        # Entry j of a row is the (j // B)-th column of bank j % B among the full banks:
        # every run of B entries meets B distinct banks while all banks still have columns.
        full = min(banks.count(b) for b in range(B))
        assert banks[: full * B] == list(range(B)) * full
        for b in range(B):  # inside a bank, columns ascend
            mine = cols[cols % B == b]
            assert bool((mine.diff() > 0).all())
    # torch's CSR gets ascending columns, the same matrix.
    assert torch.equal(fmt.to_torch().to_dense(), weight * mask)
    assert torch.equal(
        fmt.ascending().col_indices, FORMATS.get("csr").encode(weight, mask).col_indices
    )


def test_bank_order_and_banks_are_checked():
    weight = torch.randn(4, 32, generator=torch.Generator().manual_seed(4))
    mask = patterns.get("bank_balanced").project(weight.abs(), 0.5, B=8)
    ascending = FORMATS.get("csr").encode(weight, mask)
    found = formats.validate(ascending, "bank_balanced", B=8)
    assert not found.ok and "bank order over 1 banks, the pattern asks for 8" in str(found)
    fmt = formats.encode(weight, mask, "bank_balanced", B=8)
    start = int(fmt.crow_indices[1])
    fmt.col_indices[start : start + 2] = fmt.col_indices[start : start + 2].flip(0).clone()
    found = formats.validate(fmt, "bank_balanced", B=8)
    assert _located(found, row=1) and "out of bank order" in str(found)
    fmt = formats.encode(weight, mask, "bank_balanced", B=8)
    fmt.col_indices[start + 1] = fmt.col_indices[start]
    assert "must strictly ascend" in str(formats.validate(fmt, "bank_balanced", B=8))
    with pytest.raises(ValueError, match="banks must be an integer >= 1"):
        FORMATS.get("csr").encode(weight, mask, banks=0)


def test_csr_stored_positions_go_through_the_pattern_check():
    mask = torch.zeros(4, 8, dtype=torch.bool)
    mask[:, :2] = True
    mask[0, 2] = True  # row 0 keeps 3, the others 2
    fmt = FORMATS.get("csr").encode(torch.randn(4, 8), mask)
    assert formats.validate(fmt, "unstructured").ok
    assert not formats.validate(fmt, "row_balanced").ok


def test_bsr_and_nm_planted_violations():
    weight = torch.randn(5, 7)
    bsr = FORMATS.get("bsr").encode(weight, torch.ones(5, 7, dtype=torch.bool), block=(2, 4))
    assert formats.validate(bsr, "block", R=2, C=4).ok
    bsr.values[-1, 1, 3] = 2.0  # row 5, column 7: padding of the corner block
    assert _located(formats.validate(bsr, "block", R=2, C=4), row=5, column=7)
    assert "block=(2, 4)" in str(formats.validate(bsr, "block", R=4, C=4))
    nm = FORMATS.get("nm").encode(weight, torch.zeros(5, 7, dtype=torch.bool), n=2, m=4)
    assert formats.validate(nm, "nm", N=2, M=4).ok
    nm.indices[3, 2:4] = torch.tensor([3, 1], dtype=torch.uint8)
    assert _located(formats.validate(nm, "nm", N=2, M=4), row=3, run=1)
    nm.indices[3, 2:4] = torch.tensor([1, 9], dtype=torch.uint8)
    assert "offset 9 is not in [0, 4)" in str(formats.validate(nm, "nm", N=2, M=4))


def test_format_and_pattern_mismatch_raises(gs_fmt):
    csr = FORMATS.get("csr").encode(torch.randn(4, 8), torch.ones(4, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="format 'csr'.*pattern 'gs'"):
        formats.validate(csr, "gs", V=8)
    with pytest.raises(ValueError, match="format 'gs'.*pattern 'block'"):
        formats.validate(gs_fmt, "block")
    with pytest.raises(ValueError, match="keep-mask bool"):
        formats.validate(torch.ones(4, 8), "unstructured")
    with pytest.raises(ValueError, match="got a list"):
        formats.validate([[True]], "unstructured")
