"""The H(V, B) step model on small hand-counted formats (bank(a) = a mod B)."""

from __future__ import annotations

import pytest
import torch

from gsprune.formats.base import BSRMatrix, CSRMatrix, DenseMatrix, GSMatrix, NMMatrix
from gsprune.latency import model


def i32(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int32)


def csr(shape: tuple[int, int], rows: list[list[int]]) -> CSRMatrix:
    """A CSR matrix with value 1 at the given columns of each row."""
    lengths = torch.tensor([len(r) for r in rows])
    crow = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    cols = [c for r in rows for c in r]
    return CSRMatrix(shape, crow.to(torch.int32), i32(cols), torch.ones(len(cols)))


def gs(
    variant: str, shape: tuple[int, int], index: list[list[int]], V: int, B: int, **kw
) -> GSMatrix:
    """One band of groups with all-one values."""
    groups = len(index)
    return GSMatrix(
        shape,
        variant=variant,
        V=V,
        B=B,
        band_ptr=torch.tensor([0, groups]),
        values=torch.ones(groups, V),
        index=torch.tensor(index, dtype=torch.int16),
        **kw,
    )


def test_csr_rows_in_chunks_of_V() -> None:
    # V = B = 4. Row 0: chunk [0,1,4,5] -> banks 0,1,0,1 (2 steps), chunk [2] (1 step).
    # Row 1: [3,7] -> banks 3,3 (2 steps). Row 2 is empty (0 steps).
    fmt = csr((3, 8), [[0, 1, 4, 5, 2], [3, 7], []])
    cost = model.breakdown(fmt, V=4, B=4)
    assert (cost.steps, cost.ops, cost.conflict_steps, cost.nnz) == (5, 3, 2, 7)
    assert cost.lane_utilization == pytest.approx(7 / (4 * 5))
    # With B = 8 every chunk is conflict-free (row 1: columns 3, 7 in banks 3, 7).
    assert model.steps(fmt, V=4, B=8) == 3


def test_csr_without_conflicts_costs_its_chunks() -> None:
    # B >= K puts every column in its own bank: steps = sum over rows of ceil(len / V).
    torch.manual_seed(0)
    mask = torch.rand(16, 40) < 0.3
    rows = [torch.nonzero(row).flatten().tolist() for row in mask]
    fmt = csr((16, 40), rows)
    expected = sum(-(-len(r) // 8) for r in rows)
    assert model.steps(fmt, V=8, B=64) == expected
    assert model.steps(fmt, V=8, B=8) >= expected


def test_gs_valid_band_costs_one_step_per_group() -> None:
    # V = B = 4, band of 4 rows with k = 2: each group's columns in banks 0..3.
    fmt = gs("gs", (4, 8), [[0, 5, 2, 7], [4, 1, 6, 3]], V=4, B=4)
    cost = model.breakdown(fmt)
    assert (cost.V, cost.B, cost.steps, cost.ops, cost.conflict_steps) == (4, 4, 2, 2, 0)
    assert cost.lane_utilization == 1.0


def test_gs_invalid_group_shows_its_conflicts() -> None:
    # Group 0's columns [0, 4, 2, 7] fall in banks [0, 0, 2, 3]: 2 steps; group 1: 1 step.
    fmt = gs("gs", (4, 8), [[0, 4, 2, 7], [4, 1, 6, 3]], V=4, B=4)
    assert model.steps(fmt) == 3


def test_gs_format_on_fewer_banks() -> None:
    # Conflict-free for B = 8 (banks 0,4,1,5) but two conflicts for B = 4 (banks 0,0,1,1).
    fmt = gs("gs", (4, 8), [[0, 4, 1, 5]], V=4, B=8)
    assert model.steps(fmt) == 1
    assert model.steps(fmt, B=4) == 2


def test_gs_format_on_other_lane_counts() -> None:
    # A V = 8 group on 4 lanes: two ops, columns [0..3] and [4, 9, 6, 7] (banks 0,1,2,3).
    wide = gs("gs", (8, 16), [[0, 1, 2, 3, 4, 9, 6, 7]], V=8, B=8)
    cost = model.breakdown(wide, V=4, B=4)
    assert (cost.steps, cost.ops) == (2, 2)
    # On H(4, 8) the second op's columns [4, 9, 6, 7] fall in banks 4, 1, 6, 7: 1 step.
    assert model.steps(wide, V=4) == 2
    # A V = 4 group on 8 lanes: one half-filled op per group.
    narrow = gs("gs", (4, 8), [[0, 5, 2, 7], [4, 1, 6, 3]], V=4, B=4)
    cost = model.breakdown(narrow, V=8)
    assert (cost.B, cost.steps, cost.ops, cost.lane_utilization) == (8, 2, 2, 0.5)


def test_gs_scatter_counts_row_banks() -> None:
    # Lanes own columns 0..3; index holds rows: banks of rows [0, 2, 4, 6] at B = 4 are
    # 0,2,0,2 -> 2 steps; second group rows [1, 3, 5, 7] -> banks 1,3,1,3 -> 2 steps.
    fmt = gs("gs_scatter", (8, 4), [[0, 2, 4, 6], [1, 3, 5, 7]], V=4, B=4)
    assert model.steps(fmt) == 4


def test_gs_free_costs_the_slower_side() -> None:
    # Group 0: columns [0, 1] conflict-free at B = 2, rows [0, 2] share bank 0: 2 steps.
    # Group 1: columns [2, 3] and rows [1, 2] conflict-free: 1 step.
    fmt = gs(
        "gs_free",
        (4, 4),
        [[0, 1], [2, 3]],
        V=2,
        B=2,
        lane_index=torch.tensor([[0, 2], [1, 2]], dtype=torch.int16),
    )
    assert model.breakdown(fmt).steps == 2 + 1


def test_dense_steps() -> None:
    assert model.dense_steps((64, 64), 8) == 64 * 8
    assert model.dense_steps((3, 10), 4) == 3 * 3  # rows x ceil(K/V)
    assert model.dense_steps((8, 1), 8) == 1  # one broadcast of x[0] to 8 row lanes
    assert model.steps(DenseMatrix((6, 16), torch.ones(6, 16)), V=8) == 12


def test_bsr_block_steps() -> None:
    # 2 block rows x 2 block columns, 3 stored blocks.
    crow, cols = i32([0, 2, 3]), i32([0, 1, 1])

    def bsr(R: int, C: int) -> BSRMatrix:
        return BSRMatrix((2 * R, 2 * C), (R, C), crow, cols, torch.ones(3, R, C))

    assert model.steps(bsr(1, 8), V=8) == 3  # one contiguous load of x per block
    assert model.steps(bsr(8, 1), V=8) == 3  # one broadcast of x per block
    assert model.steps(bsr(4, 4), V=8) == 3 * 4
    assert model.steps(bsr(2, 16), V=8) == 3 * 4


def test_nm_slots_in_chunks_of_V() -> None:
    # 2:4 on K = 8, V = B = 4. Row 0 offsets [0,1 | 2,3] -> columns 0,1,6,7 (banks 0,1,2,3);
    # row 1 offsets [0,2 | 0,2] -> columns 0,2,4,6 (banks 0,2,0,2: 2 steps).
    fmt = NMMatrix(
        (2, 8),
        n=2,
        m=4,
        values=torch.ones(2, 4),
        indices=torch.tensor([[0, 1, 2, 3], [0, 2, 0, 2]], dtype=torch.uint8),
    )
    cost = model.breakdown(fmt, V=4, B=4)
    assert (cost.steps, cost.ops) == (3, 2)


@pytest.mark.parametrize(
    ("V", "B", "match"),
    [(3, 4, "V=3"), (0, 4, "V=0"), (8, 4, "B=4"), (True, 4, "V=True"), (4, 4.0, "B=4.0")],
)
def test_bad_machine_raises(V: object, B: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        model.steps(csr((1, 4), [[0]]), V=V, B=B)


def test_format_errors() -> None:
    with pytest.raises(ValueError, match="V=None"):
        model.steps(csr((1, 4), [[0]]))
    with pytest.raises(ValueError, match="lane_index"):
        model.steps(gs("gs_free", (4, 8), [[0, 5, 2, 7]], V=4, B=4))


@pytest.mark.parametrize(
    ("variant", "shape", "V", "B"),
    [
        ("gs", (37, 50), 8, 8),
        ("gs", (64, 40), 4, 16),
        ("gs_scatter", (45, 33), 8, 8),
        ("gs_free", (32, 48), 8, 8),
    ],
)
def test_encoded_gs_is_conflict_free(variant: str, shape: tuple[int, int], V: int, B: int) -> None:
    """What the GS encoder emits costs exactly one step per group, also on padded shapes."""
    from gsprune import formats, patterns

    torch.manual_seed(1)
    weight = torch.randn(shape)
    mask = patterns.get(variant).project(weight.abs(), 0.75, V=V, B=B)
    fmt = formats.encode(weight, mask, variant, V=V, B=B)
    cost = model.breakdown(fmt)
    assert cost.steps == cost.ops == fmt.values.shape[0]
    assert cost.nnz == int(mask.sum())


@pytest.mark.parametrize(("shape", "B"), [((16, 64), 8), ((7, 96), 4)])
def test_bank_balanced_is_conflict_free_on_its_banks(shape: tuple[int, int], B: int) -> None:
    """Stored bank-interleaved, a bank-balanced row costs one step per B entries on
    H(B, B); ascending columns (plain CSR) would pay conflicts on the same mask."""
    from gsprune import formats, patterns

    weight = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    mask = patterns.get("bank_balanced").project(weight.abs(), 0.75, B=B)
    cost = model.breakdown(formats.encode(weight, mask, "bank_balanced", B=B), V=B, B=B)
    assert cost.steps == cost.ops == int(mask.sum()) // B
    ascending = model.breakdown(formats.encode(weight, mask, "unstructured"), V=B, B=B)
    assert ascending.steps > cost.steps


def test_unstructured_pays_for_conflicts_and_partial_chunks() -> None:
    """On the same weights and sparsity, GS needs fewer steps than CSR of unstructured."""
    from gsprune import formats, patterns

    torch.manual_seed(2)
    weight = torch.randn(64, 128)
    counts = {}
    for name in ("unstructured", "gs"):
        params = {"V": 8} if name == "gs" else {}
        mask = patterns.get(name).project(weight.abs(), 0.875, **params)
        counts[name] = model.steps(formats.encode(weight, mask, name, **params), V=8)
    assert counts["gs"] == 64 * 128 // 8 // 8  # nnz / V
    assert counts["unstructured"] > 1.5 * counts["gs"]
