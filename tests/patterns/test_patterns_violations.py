"""Validators catch planted violations and say where; bad parameters raise ValueError."""

from __future__ import annotations

import pytest
import torch

import gsprune.patterns as patterns
from gsprune.views import gemm_view


def locations(name: str, mask: torch.Tensor, **params) -> list[dict[str, int]]:
    return [v.location for v in patterns.get(name).violations(mask, **params)]


def valid_gs_band() -> torch.Tensor:
    """V=4, B=4, K=8, k=2: row i keeps columns i and (i+1) mod 4, every bank holds 2."""
    mask = torch.zeros(4, 8, dtype=torch.bool)
    rows = torch.arange(4)
    mask[rows, rows] = True
    mask[rows, (rows + 1) % 4] = True
    return mask


def test_gs_band_bank_over_filled_by_a_moved_entry():
    mask = valid_gs_band()
    assert locations("gs", mask, V=4) == []
    mask[0, 0], mask[0, 6] = False, True  # row 0 moves its bank-0 entry into bank 2
    assert locations("gs", mask, V=4) == [{"band": 0, "bank": 2, "count": 3, "k": 2}]


def test_gs_band_row_with_an_extra_entry():
    mask = torch.cat([valid_gs_band(), valid_gs_band()])  # two bands
    mask[5, 7] = True  # band 1, row 5 (bank 3 gets 3 entries too)
    found = locations("gs", mask, V=4)
    assert {"band": 1, "row": 5, "count": 3, "k": 2} in found
    assert {"band": 1, "bank": 3, "count": 3, "k": 2} in found
    assert all(v["band"] == 1 for v in found)
    message = patterns.get("gs").violations(mask, V=4)[0].message
    assert "band 1" in message and "row 5" in message


def test_gs_uniform_bands_must_share_k_but_free_bands_need_not():
    band = valid_gs_band()
    mask = torch.cat([band, torch.zeros(4, 8, dtype=torch.bool), band])
    assert locations("gs", mask, V=4) == [{"band": 1, "k": 0, "layer_k": 2}]
    assert locations("gs", mask, V=4, band_k="free") == []


def test_gs_scatter_reports_columns():
    mask = valid_gs_band().T.contiguous()
    assert locations("gs_scatter", mask, V=4) == []
    mask[6, 1] = True
    assert {"band": 0, "column": 1, "count": 3, "k": 2} in locations("gs_scatter", mask, V=4)


def test_gs_free_needs_a_regular_bank_count_matrix():
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[torch.arange(8), torch.arange(8)] = True  # (r mod 4, c mod 4) pairs: 2 per diagonal cell
    assert locations("gs_free", mask, V=4) == []
    mask[0, 0], mask[0, 1] = False, True  # column banks 0 and 1 unbalanced
    assert locations("gs_free", mask, V=4) == [
        {"bank": 0, "count": 1, "k": 2},
        {"bank": 1, "count": 3, "k": 2},
    ]
    mask[0, 0], mask[0, 1] = True, False
    mask[2, 3] = True  # one entry too many: row bank 2 and column bank 3
    assert locations("gs_free", mask, V=4) == [
        {"row_bank": 2, "count": 3, "k": 2},
        {"bank": 3, "count": 3, "k": 2},
    ]


def test_nm_run_with_n_plus_one(gaussian):
    mask = patterns.get("nm").project(gaussian(3, 10), 0.5)
    mask[1, 4:8] = torch.tensor([True, True, True, False])
    assert locations("nm", mask) == [{"row": 1, "run": 1, "count": 3, "N": 2}]


def test_partial_block():
    mask = torch.zeros(5, 10, dtype=torch.bool)
    mask[:4, 4:8] = True  # block (0, 1) of 4x4, complete
    mask[4, 8:] = True  # edge block (1, 2) holds only 1x2 real entries: complete too
    assert locations("block", mask, R=4, C=4) == []
    mask[2, 5] = False
    assert locations("block", mask, R=4, C=4) == [
        {"block_row": 0, "block_col": 1, "count": 15, "size": 16}
    ]


def test_row_and_bank_balanced(gaussian):
    mask = patterns.get("row_balanced").project(gaussian(4, 16), 0.5)
    mask[2] = False
    assert locations("row_balanced", mask) == [{"row": 2, "count": 0, "k": 8}]
    mask = patterns.get("bank_balanced").project(gaussian(4, 16), 0.5, B=4)
    column = int(torch.nonzero(~mask[3, :4])[0])  # a dropped column of bank `column` in row 3
    mask[3, column] = True
    assert locations("bank_balanced", mask, B=4) == [{"row": 3, "bank": column, "count": 3, "k": 2}]


@pytest.mark.parametrize("sparsity", [1.2, -0.1, 1.0])
def test_sparsity_outside_the_unit_interval(gaussian, sparsity):
    with pytest.raises(ValueError, match=f"sparsity={sparsity}"):
        patterns.get("gs").project(gaussian(8, 8), sparsity)


@pytest.mark.parametrize(
    ("name", "params", "needle"),
    [
        ("gs", {"V": 6}, "V=6"),
        ("gs", {"V": 1}, "V=1"),
        ("gs", {"V": 128}, "V=128"),
        ("gs", {"V": 8.0}, "V=8.0"),
        ("gs", {"V": 8, "B": 4}, "B=4"),
        ("gs", {"V": 8, "B": 65}, "B=65"),
        ("gs", {"band_k": "global"}, "band_k='global'"),
        ("gs_scatter", {"V": 6}, "V=6"),
        ("gs_free", {"V": 4, "B": 8}, "gs_free supports B == V only"),
        ("nm", {"N": 5, "M": 4}, "N=5 is larger than M=4"),
        ("nm", {"N": 0}, "N=0"),
        ("nm", {"M": 1, "N": 1}, "M=1"),
        ("block", {"R": 0}, "R=0"),
        ("block", {"C": 0}, "C=0"),
        ("bank_balanced", {"B": 0}, "B=0"),
        ("unstructured", {"scope": "global"}, "scope='global'"),
        ("gs", {"lanes": 8}, "no parameter"),
    ],
)
def test_bad_parameters(gaussian, name, params, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        patterns.get(name).project(gaussian(16, 16), 0.5, **params)


@pytest.mark.parametrize(
    ("name", "shape", "needle"),
    [
        ("gs", (16, 4), "K=4 < V=8"),
        ("gs_scatter", (4, 16), "M=4 < V=8"),
        ("gs_free", (16, 7), "K=7 < V=8"),
    ],
)
def test_gs_shape_too_small(gaussian, name, shape, needle):
    with pytest.raises(ValueError, match=needle):
        patterns.get(name).project(gaussian(*shape), 0.5)


def test_gemm_view_of_a_vector():
    with pytest.raises(ValueError, match=r"shape \(5,\) has no GEMM view"):
        gemm_view(torch.zeros(5))
