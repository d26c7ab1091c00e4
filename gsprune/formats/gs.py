"""GS format encoder: split every band's kept entries into conflict-free groups.

A band of the ``gs`` variant is V consecutive rows (lanes) over the column
banks ``bank(c) = c % B``. Its kept entries form a bipartite multigraph lanes x
banks in which every lane has degree k and every bank degree <= k (DESIGN §2).
Encoding = colouring its edges with k colours so that each colour class (a
group) is a matching that covers all V lanes with pairwise distinct banks.

Method, per band, exact:

1. counts ``n[lane, bank]`` (V x B);
2. make it a square k-regular B x B matrix: lanes past the matrix edge
   (phantom lanes of the last partial band) and, when B > V, B - V dummy rows
   take the banks' deficits ``k - load(bank)`` by the north-west-corner rule;
   phantom lanes come first and the non-empty banks (``b < K``) come first, so
   phantom lanes only land in banks that have a column to point at;
3. Birkhoff-von Neumann: find a perfect matching inside the support (the
   heaviest one, by ``scipy.optimize.linear_sum_assignment``; König's theorem
   guarantees one exists for a regular matrix), take it with multiplicity =
   its smallest count, subtract, repeat. Each round zeroes at least one cell,
   so at most B^2 rounds; bands with equal count matrices share one
   decomposition;
4. hand out the entries: for each lane, its kept columns sorted by (bank,
   column) go in order to the groups that send the lane to that bank (two
   stable sorts on the key ``lane * B + bank``, no Python loop over entries).
   Step 3 spreads each matching's groups evenly over the band, so each lane's
   columns rise with the group number in step with the other lanes.

Dummy rows are dropped; phantom lanes get value 0 and column ``bank`` (in range).
``gs_scatter`` encodes the transpose. ``gs_free`` is one band whose lanes are
the row banks ``r % V`` (B == V), with ``lane_index`` = row and ``index`` = column.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from gsprune.formats.base import (
    FORMATS,
    GS_VARIANTS,
    FormatSpec,
    GSMatrix,
    array_violations,
    check_inputs,
    index_dtype,
)
from gsprune.formats.validate import (
    listed,
    padding_violations,
    param_violations,
    ptr_violations,
    range_violations,
)
from gsprune.patterns.base import Violation


def resolve_gs_params(V: int, B: int | None, variant: str) -> tuple[int, int]:
    """Validate (V, B, variant) and return (V, B) with B defaulting to V."""
    if variant not in GS_VARIANTS:
        raise ValueError(f"GS variant {variant!r} is not known; accepted: {', '.join(GS_VARIANTS)}")
    if not isinstance(V, int) or V < 1:
        raise ValueError(f"GS lanes V={V!r} is not valid; V must be an integer >= 1 (e.g. 8)")
    B = V if B is None else B
    if not isinstance(B, int) or B < V:
        raise ValueError(f"GS banks B={B!r} is not valid for V={V}; B must be an integer >= V")
    if variant == "gs_free" and B != V:
        raise ValueError(f"gs_free supports B == V only; got V={V}, B={B}")
    return V, B


def encode_gs(
    weight: torch.Tensor,
    mask: torch.Tensor,
    V: int,
    B: int | None = None,
    variant: str = "gs",
) -> GSMatrix:
    """Encode ``weight: float32[M, K]`` at the kept positions of ``mask: bool[M, K]``.

    The mask must follow the variant's counting condition (module docstring);
    otherwise ValueError names the band and the lane or bank that breaks it.
    """
    V, B = resolve_gs_params(V, B, variant)
    weight, mask = check_inputs(weight, mask)
    M, K = mask.shape
    if variant == "gs_scatter":
        t = encode_gs(weight.T, mask.T, V, B, "gs")
        return GSMatrix(
            shape=(M, K),
            variant=variant,
            V=V,
            B=B,
            band_ptr=t.band_ptr,
            values=t.values,
            index=t.index,
        )
    rows, cols = (x.numpy() for x in mask.nonzero(as_tuple=True))
    values = weight[mask].numpy()
    if variant == "gs":
        n_bands = -(-M // V)
        lanes, real = rows, np.arange(n_bands * V) < M
    else:
        n_bands, lanes, real = 1, rows % V, np.ones(V, dtype=bool)
    band_ptr, bank, entry = _colour(lanes, cols % B, n_bands, V, B, real, n_banks=min(B, K))
    placed = entry >= 0
    # Phantom lanes: value 0 at column ``bank`` (< K: they only get non-empty banks).
    index = np.where(placed, cols[entry], bank)
    dtype = index_dtype(K if variant == "gs" else max(M, K))
    return GSMatrix(
        shape=(M, K),
        variant=variant,
        V=V,
        B=B,
        band_ptr=torch.from_numpy(band_ptr),
        values=torch.from_numpy(np.where(placed, values[entry], np.float32(0))),
        index=torch.from_numpy(index).to(dtype),
        lane_index=torch.from_numpy(rows[entry]).to(dtype) if variant == "gs_free" else None,
    )


def _colour(
    lanes: np.ndarray,
    banks: np.ndarray,
    n_bands: int,
    V: int,
    B: int,
    real: np.ndarray,
    n_banks: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split kept entries into conflict-free groups, band by band.

    lanes: int64[nnz], global lane ids (band * V + lane); banks: int64[nnz] in
    [0, n_banks); real: bool[n_bands * V], lanes that exist (phantom lanes keep
    nothing); the banks below ``n_banks`` are the non-empty ones.
    Returns band_ptr: int64[n_bands + 1], bank: int64[G, V] (each group's bank per
    lane) and entry: int64[G, V] (the entry each slot holds, -1 for phantom lanes).
    """
    counts = np.bincount(lanes * B + banks, minlength=n_bands * V * B).reshape(n_bands, V, B)
    k = _band_degrees(counts, real.reshape(n_bands, V))
    if k.max(initial=0) > 0 and n_banks < V:
        raise ValueError(
            f"a GS group needs V={V} distinct banks but the indexed dimension has only "
            f"{n_banks} non-empty bank(s); use a smaller V or a wider matrix"
        )
    square = _regularise(counts, real.reshape(n_bands, V), k, B)
    unique, inverse = np.unique(square.reshape(n_bands, B * B), axis=0, return_inverse=True)
    colourings = [_birkhoff(u.reshape(B, B))[:, :V] for u in unique]
    bank = np.concatenate([colourings[i] for i in inverse.reshape(-1)])
    band_ptr = np.concatenate([[0], np.cumsum(k)]).astype(np.int64)

    # Match slots to entries: both sorted by (lane, bank); ties keep group / column order.
    slot_lane = np.repeat(np.arange(n_bands), k)[:, None] * V + np.arange(V)
    slot_key = (slot_lane * B + bank).reshape(-1)
    real_slots = np.flatnonzero(real[slot_lane.reshape(-1)])
    slot_order = real_slots[np.argsort(slot_key[real_slots], kind="stable")]
    entry = np.full(slot_key.size, -1, dtype=np.int64)
    entry[slot_order] = np.argsort(lanes * B + banks, kind="stable")
    return band_ptr, bank.astype(np.int64), entry.reshape(-1, V)


def _band_degrees(counts: np.ndarray, real: np.ndarray) -> np.ndarray:
    """k per band from ``counts: int[n_bands, V, B]``; ValueError when a band breaks the rule."""
    row_sums, bank_loads = counts.sum(axis=2), counts.sum(axis=1)
    k = row_sums[:, 0]  # lane 0 of every band exists
    bad = np.argwhere(real & (row_sums != k[:, None]))
    if bad.size:
        t, lane = bad[0]
        raise ValueError(
            f"band {t}: lane {lane} keeps {row_sums[t, lane]} entries but lane 0 keeps {k[t]}; "
            "a GS band needs the same count on every lane (mask does not follow the pattern)"
        )
    bad = np.argwhere(bank_loads > k[:, None])
    if bad.size:
        t, b = bad[0]
        raise ValueError(
            f"band {t}: bank {b} holds {bank_loads[t, b]} entries, more than the band's "
            f"k={k[t]}; a GS band allows at most k per bank (mask does not follow the pattern)"
        )
    return k


def _regularise(counts: np.ndarray, real: np.ndarray, k: np.ndarray, B: int) -> np.ndarray:
    """Pad ``counts: int[n_bands, V, B]`` to k-regular ``int[n_bands, B, B]`` (north-west corner).

    Rows needing entries (phantom lanes, then the B - V dummy rows) take the
    banks' deficits in bank order, so phantom lanes get the low (non-empty) banks.
    """
    n_bands, V, _ = counts.shape
    need = np.concatenate([np.where(real, 0, k[:, None]), np.repeat(k[:, None], B - V, 1)], 1)
    deficit = k[:, None] - counts.sum(axis=1)
    row_cum = np.concatenate([np.zeros((n_bands, 1), int), need.cumsum(1)], 1)
    bank_cum = np.concatenate([np.zeros((n_bands, 1), int), deficit.cumsum(1)], 1)
    lo = np.maximum(row_cum[:, :-1, None], bank_cum[:, None, :-1])
    hi = np.minimum(row_cum[:, 1:, None], bank_cum[:, None, 1:])
    square = np.clip(hi - lo, 0, None)
    square[:, :V] += counts
    return square


def _birkhoff(square: np.ndarray) -> np.ndarray:
    """Split a k-regular ``int[B, B]`` into k permutations, returned as ``int[k, B]``.

    Row i of the result maps each row to its column in one permutation; each
    permutation appears as often as its multiplicity, its copies spread evenly over the
    k rows. Each round takes the heaviest perfect matching inside the support (cells off
    the support cost more than any matching on it): heavy cells first roughly halves the rounds
    against any matching on the support (e.g. 20 instead of 40 for B = 8, k = 100).
    """
    square = square.copy()
    rows = np.arange(square.shape[0])
    perms, mults = [np.zeros((0, rows.size), dtype=np.int64)], []
    remaining = int(square[0].sum())  # k: every permutation taken lowers each row sum
    off_support = rows.size * remaining + 1
    while remaining:
        cols = linear_sum_assignment(np.where(square > 0, -square, off_support))[1]
        mult = int(square[rows, cols].min())
        # A regular matrix always has a perfect matching on its support (König).
        assert mult > 0, "Birkhoff-von Neumann found no perfect matching on the support"
        square[rows, cols] -= mult
        remaining -= mult
        perms.append(cols[None])
        mults.append(mult)
    # Spread each permutation's copies evenly over the band (copy j of m at (j + 1/2) / m)
    # instead of in runs: with step 4's column-sorted hand-out, every lane then sweeps its
    # columns in step with the others, so a CPU kernel's x (gs) or y (gs_scatter, gs_free)
    # accesses stay in a narrow window that fits the L1 cache (measured 1.3-2x on K >= 2304).
    spread = np.concatenate([(np.arange(m) + 0.5) / m for m in mults] or [np.zeros(0)])
    order = np.argsort(spread, kind="stable")
    return np.repeat(np.concatenate(perms), mults, axis=0)[order]


def check_gs(fmt: GSMatrix, V: int, B: int | None = None, variant: str = "gs") -> list[Violation]:
    """Parameters, array layouts, band_ptr, index ranges, bank conflicts, duplicates, padding."""
    V, B = resolve_gs_params(V, B, variant)
    found = param_violations(fmt, {"V": V, "B": B, "variant": variant})
    if found:
        return found
    M, K = fmt.shape
    n_bands = {"gs": -(-M // V), "gs_scatter": -(-K // V), "gs_free": 1}[variant]
    G = fmt.values.shape[0] if isinstance(fmt.values, torch.Tensor) else -1
    dtype = index_dtype({"gs": K, "gs_scatter": M, "gs_free": max(M, K)}[variant])
    found = array_violations("band_ptr", fmt.band_ptr, torch.int64, (n_bands + 1,))
    found += array_violations("values", fmt.values, torch.float32, (G, V))
    found += array_violations("index", fmt.index, dtype, (G, V))
    if variant == "gs_free":
        found += array_violations("lane_index", fmt.lane_index, dtype, (G, V))
    elif fmt.lane_index is not None:
        found.append(Violation(f"lane_index must be None for variant {variant!r}"))
    if found:
        return found
    found = ptr_violations("band_ptr", fmt.band_ptr, G, "band")
    if found:
        return found
    band = fmt.group_band()

    def locate(p: int) -> dict[str, int]:
        return {"band": int(band[p // V]), "group": p // V, "lane": p % V}

    found = range_violations("index", fmt.index, M if variant == "gs_scatter" else K, locate)
    if variant == "gs_free":
        found += range_violations("lane_index", fmt.lane_index, M, locate)
    if found:
        return found
    found = _conflicts(fmt.index.long() % B, band, "column" if variant != "gs_scatter" else "row")
    if variant == "gs_free":
        found += _conflicts(fmt.lane_index.long() % B, band, "row")
    return found + _duplicates(fmt, band) + padding_violations(fmt)


def _conflicts(banks: torch.Tensor, band: torch.Tensor, what: str) -> list[Violation]:
    """Groups of ``banks: int[G, V]`` with two lanes in one bank."""
    ordered = banks.sort(dim=1).values
    clash = ordered[:, 1:] == ordered[:, :-1]

    def describe(g: int) -> Violation:
        bank = int(ordered[g, 1:][clash[g]][0])
        lanes = (banks[g] == bank).nonzero()[:, 0].tolist()
        return Violation(
            f"band {int(band[g])}, group {g}: lanes {lanes} share {what} bank {bank} "
            f"({len(lanes)} accesses to one bank)",
            {"band": int(band[g]), "group": g, "lane": lanes[1], "bank": bank, "count": len(lanes)},
        )

    return listed(clash.any(dim=1).nonzero()[:, 0], describe, f"groups with {what} bank conflicts")


def _duplicates(fmt: GSMatrix, band: torch.Tensor) -> list[Violation]:
    """Real slots that store the same (row, column) twice: the group is not full."""
    slots = fmt.slots()
    real = slots.real.nonzero()[:, 0]
    key = slots.rows[real] * slots.padded[1] + slots.cols[real]
    key, order = key.sort(stable=True)
    twice = (key[1:] == key[:-1]).nonzero()[:, 0]
    V = fmt.V

    def describe(i: int) -> Violation:
        first, again = int(real[order[i]]), int(real[order[i + 1]])
        g, lane = again // V, again % V
        return Violation(
            f"band {int(band[g])}, group {g}, lane {lane} stores row {int(slots.rows[again])}, "
            f"column {int(slots.cols[again])} again (first at group {first // V}, lane "
            f"{first % V}); every lane of a group must hold its own non-zero",
            {"band": int(band[g]), "group": g, "lane": lane, "count": 2},
        )

    return listed(twice, describe, "slots storing a position twice")


FORMATS.register("gs")(FormatSpec(GSMatrix, encode_gs, check_gs))
