"""``gs``, ``gs_scatter``, ``gs_free``: load-balanced gather-scatter patterns (DESIGN §2).

All three share the format ``gs`` and the exact projection of ``transport.py``:
the kept entries of a cell (a row, or a row bank, crossed with a column bank)
are always its top scores, and the per-cell counts solve a concave
transportation problem exactly.

Choices made here (the paper's text is not at hand):

- ``gs`` bands are V consecutive rows; the last band may be partial. Its missing
  rows are phantom rows that keep nothing, and its bank rule is ``count <= k``
  (the format fills the other lanes with explicit zeros).
- ``band_k="uniform"``: every band keeps ``k = round((1 - s) * K)`` per row, so the
  achieved sparsity ``1 - k/K`` is within ``0.5 / K`` of the target.
  ``band_k="free"``: the layer's global top ``round((1 - s) * M * K)`` scores are
  counted per band and band t keeps ``k_t = round(count_t / rows_t)`` per row;
  the achieved sparsity is within ``0.5 / K + 0.5 / (M * K)`` of the target.
- A k that no mask can reach (banks of unequal size when B does not divide K,
  e.g. K=10, B=8 allows at most k=8) is clipped to the largest feasible k and a
  warning names the target and the achieved sparsity.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from gsprune.patterns import register
from gsprune.patterns._common import bank_sizes, check_int, modal_count, pad_grid
from gsprune.patterns.base import Pattern, Violation
from gsprune.patterns.transport import max_feasible_supply, one_thread, project_cells
from gsprune.patterns.unstructured import top_fraction

log = logging.getLogger(__name__)

MAX_LANES = 64
MAX_BANKS = 64  # the exact solver runs shortest paths over B nodes per unit moved


def _check_lanes_and_banks(pattern: str, params: dict[str, Any]) -> None:
    lanes, banks = params["V"], params["B"]
    if (
        isinstance(lanes, bool)
        or not isinstance(lanes, int)
        or not (2 <= lanes <= MAX_LANES and lanes & (lanes - 1) == 0)
    ):
        raise ValueError(
            f"pattern {pattern!r}: V={lanes!r} is not accepted; V (the lanes of a "
            f"gather/scatter) must be a power of two from 2 to {MAX_LANES} (DESIGN uses 4, 8, "
            "16, 32)"
        )
    if banks is not None:
        check_int(pattern, "B", banks, lanes, f" (at least V={lanes} banks, at most {MAX_BANKS})")
        if banks > MAX_BANKS:
            raise ValueError(
                f"pattern {pattern!r}: B={banks} banks is not accepted; B must be an integer "
                f"from V={lanes} to {MAX_BANKS}"
            )


def _banks(params: dict[str, Any]) -> int:
    """The number of banks: ``B``, or ``V`` when B is left at its default (null)."""
    return params["V"] if params["B"] is None else params["B"]


def _check_dimension(pattern: str, shape: tuple[int, int], dim: int, lanes: int) -> None:
    name = "MK"[dim]
    if shape[dim] < lanes:
        raise ValueError(
            f"pattern {pattern!r} needs {name} >= V: the GEMM view {shape[0]}x{shape[1]} has "
            f"{name}={shape[dim]} < V={lanes} (a group needs V distinct banks); use a smaller V "
            "or leave this layer dense"
        )


def _warn_clipped(pattern: str, shape: tuple[int, int], sparsity: float, kept: int) -> None:
    achieved = 1.0 - kept / (shape[0] * shape[1])
    log.warning(
        "pattern %s cannot reach sparsity %.4f on a %dx%d matrix with these banks; "
        "the densest feasible mask has sparsity %.4f",
        pattern,
        sparsity,
        shape[0],
        shape[1],
        achieved,
    )


@one_thread()
def project_bands(
    scores: torch.Tensor, sparsity: float, lanes: int, banks: int, band_k: str, pattern: str
) -> torch.Tensor:
    """Exact GS projection with bands of ``lanes`` rows: ``scores: float[M, K] -> bool[M, K]``.

    Invariants of the result: inside band t every real row keeps exactly k_t
    entries, and every column bank ``c mod banks`` holds at most k_t of the
    band's entries; with ``band_k="uniform"`` all k_t are equal.
    """
    rows, cols = scores.shape
    bands = math.ceil(rows / lanes)
    real_rows = torch.full((bands,), lanes)
    real_rows[-1] = rows - (bands - 1) * lanes
    sizes = bank_sizes(cols, banks)
    # Only the full bands and the last one can differ in their largest feasible k.
    k_max = torch.tensor(
        [
            max_feasible_supply(torch.ones(int(n), dtype=torch.long), sizes, cols)
            for n in sorted({lanes, int(real_rows[-1])})
        ]
    )
    k_max = torch.where(real_rows == lanes, k_max[-1], k_max[0])
    if band_k == "uniform":
        wanted = torch.full((bands,), round((1.0 - sparsity) * cols))
        k = wanted.clamp(max=int(k_max.min()))
    else:
        budget = top_fraction(scores, round((1.0 - sparsity) * rows * cols))
        per_band = pad_grid(budget, lanes, 1, False).view(bands, -1).sum(1)
        wanted = (per_band / real_rows).round().long()
        k = torch.minimum(wanted, k_max)
    if (k < wanted).any():
        _warn_clipped(pattern, (rows, cols), sparsity, int((k * real_rows).sum()))

    padded = pad_grid(scores, lanes, banks, -torch.inf)
    cells = padded.view(bands, lanes, -1, banks).permute(0, 1, 3, 2)  # [T, V, B, L]
    supply = k[:, None].expand(bands, lanes).clone()
    supply[-1, int(real_rows[-1]) :] = 0  # phantom rows of a partial band keep nothing
    keep = project_cells(cells, supply, k[:, None].expand(bands, banks))
    return keep.permute(0, 1, 3, 2).reshape(padded.shape)[:rows, :cols]


def band_violations(
    mask: torch.Tensor, lanes: int, banks: int, band_k: str, lane_axis: str, bank_axis: str
) -> list[Violation]:
    """Every place where ``mask: bool[M, K]`` breaks the band rule of ``project_bands``.

    A band's k is the most common count of its real rows; reported are the rows
    that differ from it, the banks holding more than k of the band's entries,
    and (uniform) the bands whose k differs from the most common band k.
    ``lane_axis``/``bank_axis`` name the axes in messages ("row"/"column" for gs).
    """
    rows = mask.shape[0]
    bands = math.ceil(rows / lanes)
    row_counts = mask.sum(1)
    full = rows // lanes * lanes
    parts = [modal_count(row_counts[:full].view(-1, lanes))] if full else []
    if full < rows:
        parts.append(modal_count(row_counts[full:]).view(1))
    k = torch.cat(parts)
    bank_counts = pad_grid(mask, lanes, banks, False).view(bands, lanes, -1, banks).sum((1, 2))
    found = [
        Violation(
            f"{lane_axis} band {row // lanes}: {lane_axis} {row} keeps {int(row_counts[row])} "
            f"non-zeros, the band's k is {int(k[row // lanes])}",
            {
                "band": row // lanes,
                lane_axis: row,
                "count": int(row_counts[row]),
                "k": int(k[row // lanes]),
            },
        )
        for row in (row_counts != k.repeat_interleave(lanes)[:rows]).nonzero().flatten().tolist()
    ]
    found += [
        Violation(
            f"{lane_axis} band {t}: {bank_axis} bank {b} holds {int(bank_counts[t, b])} of the "
            f"band's non-zeros, at most k={int(k[t])} allowed",
            {"band": t, "bank": b, "count": int(bank_counts[t, b]), "k": int(k[t])},
        )
        for t, b in (bank_counts > k[:, None]).nonzero().tolist()
    ]
    if band_k == "uniform":
        layer_k = int(modal_count(k))
        found += [
            Violation(
                f"{lane_axis} band {t} keeps k={int(k[t])} per {lane_axis}, the layer's k is "
                f"{layer_k} (band_k='uniform')",
                {"band": t, "k": int(k[t]), "layer_k": layer_k},
            )
            for t in (k != layer_k).nonzero().flatten().tolist()
        ]
    return found


@register("gs")
class GS(Pattern):
    """GS with lanes owning rows: bands of V rows, each group one entry per row.

    Params: ``V`` lanes (power of two, 2..64), ``B`` banks (``None`` = V,
    V <= B <= 64), ``band_k`` ("uniform" or "free"). ``mask: bool[M, K]``: in
    every band of V rows each row keeps k entries and every column bank
    ``c mod B`` holds at most k of them (exactly k when B == V and the band is
    full). Needs K >= V.
    """

    format = "gs"
    defaults: dict[str, Any] = {"V": 8, "B": None, "band_k": "uniform"}

    def check_params(self, params: dict[str, Any]) -> None:
        _check_lanes_and_banks(self.name, params)
        if params["band_k"] not in ("uniform", "free"):
            raise ValueError(
                f"pattern {self.name!r}: band_k={params['band_k']!r} is not accepted; "
                "accepted: 'uniform' (one k for all bands) or 'free' (k per band)"
            )

    def check_shape(self, shape: tuple[int, int], params: dict[str, Any]) -> None:
        _check_dimension(self.name, shape, 1, params["V"])

    def format_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"variant": self.name, "V": params["V"], "B": _banks(params)}

    def _project(
        self, scores: torch.Tensor, sparsity: float, params: dict[str, Any]
    ) -> torch.Tensor:
        return project_bands(
            scores, sparsity, params["V"], _banks(params), params["band_k"], self.name
        )

    def violations(self, mask: torch.Tensor, **params: Any) -> list[Violation]:
        merged = self.params(**params)
        return band_violations(mask, merged["V"], _banks(merged), merged["band_k"], "row", "column")


@register("gs_scatter")
class GSScatter(GS):
    """The transpose of ``gs``: bands of V columns, each column keeps k entries,
    every row bank ``r mod B`` holds at most k of a band's entries. Needs M >= V.
    """

    def check_shape(self, shape: tuple[int, int], params: dict[str, Any]) -> None:
        _check_dimension(self.name, shape, 0, params["V"])

    def _project(
        self, scores: torch.Tensor, sparsity: float, params: dict[str, Any]
    ) -> torch.Tensor:
        return super()._project(scores.T, sparsity, params).T.contiguous()

    def violations(self, mask: torch.Tensor, **params: Any) -> list[Violation]:
        merged = self.params(**params)
        return band_violations(
            mask.T, merged["V"], _banks(merged), merged["band_k"], "column", "row"
        )


@register("gs_free")
class GSFree(Pattern):
    """GS without bands: any V entries with distinct row banks and distinct column banks.

    With B == V (the only supported case) a mask is valid iff the V x V matrix
    counting kept entries per (row bank ``r mod V``, column bank ``c mod V``) is
    k'-regular: all its row and column sums equal k'. The projection uses
    ``k' = round((1 - s) * M * K / V)`` (achieved sparsity within ``V / (2MK)``
    of the target), clipped to the largest feasible k'. Needs M >= V and K >= V.
    """

    format = "gs"
    defaults: dict[str, Any] = {"V": 8, "B": None}

    def check_params(self, params: dict[str, Any]) -> None:
        _check_lanes_and_banks(self.name, params)
        if _banks(params) != params["V"]:
            raise ValueError(
                f"gs_free supports B == V only; got V={params['V']}, B={params['B']} "
                "(leave B unset or set it to V)"
            )

    def check_shape(self, shape: tuple[int, int], params: dict[str, Any]) -> None:
        _check_dimension(self.name, shape, 0, params["V"])
        _check_dimension(self.name, shape, 1, params["V"])

    def format_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"variant": self.name, "V": params["V"], "B": params["V"]}

    @one_thread()
    def _project(
        self, scores: torch.Tensor, sparsity: float, params: dict[str, Any]
    ) -> torch.Tensor:
        lanes = params["V"]
        rows, cols = scores.shape
        row_sizes, col_sizes = bank_sizes(rows, lanes), bank_sizes(cols, lanes)
        wanted = round((1.0 - sparsity) * rows * cols / lanes)
        k = min(wanted, max_feasible_supply(row_sizes, col_sizes, int(row_sizes.min()) * cols))
        if k < wanted:
            _warn_clipped(self.name, (rows, cols), sparsity, k * lanes)
        padded = pad_grid(scores, lanes, lanes, -torch.inf)
        p, q = padded.shape[0] // lanes, padded.shape[1] // lanes
        # One problem whose "rows" are the row banks and whose cells hold all their entries.
        cells = padded.view(p, lanes, q, lanes).permute(1, 3, 0, 2).reshape(1, lanes, lanes, -1)
        quota = torch.full((1, lanes), k)
        keep = project_cells(cells, quota, quota)
        keep = keep.view(lanes, lanes, p, q).permute(2, 0, 3, 1).reshape(padded.shape)
        return keep[:rows, :cols]

    def violations(self, mask: torch.Tensor, **params: Any) -> list[Violation]:
        """The row banks (``row_bank``) and column banks (``bank``) whose count is not
        k' = round(nnz / V)."""
        lanes = self.params(**params)["V"]
        padded = pad_grid(mask, lanes, lanes, False)
        counts = padded.view(padded.shape[0] // lanes, lanes, -1, lanes).sum((0, 2))
        k = round(int(counts.sum()) / lanes)
        found = []
        for axis, key, sums in (
            ("row", "row_bank", counts.sum(1)),
            ("column", "bank", counts.sum(0)),
        ):
            found += [
                Violation(
                    f"{axis} bank {b} holds {int(sums[b])} non-zeros, every bank must hold "
                    f"k'={k} (nnz / V)",
                    {key: b, "count": int(sums[b]), "k": k},
                )
                for b in (sums != k).nonzero().flatten().tolist()
            ]
        return found
