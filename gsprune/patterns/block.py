"""``block``: whole R x C blocks of the GEMM view are kept or dropped (format BSR)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from gsprune.patterns import register
from gsprune.patterns._common import check_int, pad_grid
from gsprune.patterns.base import Pattern, Violation

log = logging.getLogger(__name__)

# The grid makes only multiples of a block reachable; a gap below one percentage point is the
# normal rounding and stays silent (the achieved sparsity is recorded anyway).
WARN_GAP = 0.01


def _block_sizes(rows: int, cols: int, r: int, c: int) -> torch.Tensor:
    """``int64[ceil(M/R), ceil(K/C)]``: how many real entries each block of the grid holds."""

    def spans(length: int, step: int) -> torch.Tensor:  # real length of each grid cell
        return (length - torch.arange(0, length, step)).clamp(max=step)

    return spans(rows, r)[:, None] * spans(cols, c)[None, :]


@register("block")
class Block(Pattern):
    """Keeps the R x C blocks with the largest score sums.

    The grid starts at (0, 0); edge blocks are cut by the matrix border (scores
    zero-padded, so an edge block's score is the sum of its real entries).
    Blocks are taken in decreasing score order, and the number taken is the one
    whose count of real entries is nearest to ``(1 - s) * M * K``: the achieved
    sparsity is the nearest feasible one along that order (within half a block of
    the target on a regular grid), and a warning names both when they differ by
    more than ``WARN_GAP`` (coarse blocks on a small matrix).
    """

    format = "bsr"
    defaults: dict[str, Any] = {"R": 1, "C": 8}

    def check_params(self, params: dict[str, Any]) -> None:
        for key in ("R", "C"):
            check_int(self.name, key, params[key], 1, " (the block is R rows x C columns)")

    def format_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"block": (params["R"], params["C"])}

    def _project(
        self, scores: torch.Tensor, sparsity: float, params: dict[str, Any]
    ) -> torch.Tensor:
        rows, cols = scores.shape
        r, c = params["R"], params["C"]
        padded = pad_grid(scores, r, c, 0.0)
        block_scores = padded.view(padded.shape[0] // r, r, -1, c).sum((1, 3))
        sizes = _block_sizes(rows, cols, r, c)
        order = block_scores.flatten().argsort(descending=True)
        kept_entries = torch.cat(
            [torch.zeros(1, dtype=torch.long), sizes.flatten()[order].cumsum(0)]
        )
        n_blocks = int((kept_entries - (1.0 - sparsity) * rows * cols).abs().argmin())
        keep = torch.zeros(block_scores.numel(), dtype=torch.bool)
        keep[order[:n_blocks]] = True
        achieved = 1.0 - int(kept_entries[n_blocks]) / (rows * cols)
        if abs(achieved - sparsity) > WARN_GAP:
            log.warning(
                "block %dx%d on a %dx%d matrix cannot reach sparsity %.4f; using %.4f",
                r,
                c,
                rows,
                cols,
                sparsity,
                achieved,
            )
        grid = keep.view(block_scores.shape[0], 1, -1, 1).expand(-1, r, -1, c)
        return grid.reshape(padded.shape)[:rows, :cols]

    def violations(self, mask: torch.Tensor, **params: Any) -> list[Violation]:
        """One violation per block that is partly kept (neither all nor none of its entries)."""
        merged = self.params(**params)
        r, c = merged["R"], merged["C"]
        padded = pad_grid(mask, r, c, False).long()
        kept = padded.view(padded.shape[0] // r, r, -1, c).sum((1, 3))
        sizes = _block_sizes(*mask.shape, r, c)
        return [
            Violation(
                f"block ({i}, {j}) keeps {int(kept[i, j])} of its {int(sizes[i, j])} entries",
                {
                    "block_row": i,
                    "block_col": j,
                    "count": int(kept[i, j]),
                    "size": int(sizes[i, j]),
                },
            )
            for i, j in ((kept > 0) & (kept < sizes)).nonzero().tolist()
        ]
