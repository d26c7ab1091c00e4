"""``nm``: N of every M consecutive weights along K (format N:M)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from gsprune.patterns import register
from gsprune.patterns._common import check_int, pad_grid
from gsprune.patterns.base import Pattern, Violation

log = logging.getLogger(__name__)


@register("nm")
class NM(Pattern):
    """Every run of M consecutive columns keeps its N highest scores.

    Decision: N:M has one natural sparsity, ``1 - N/M``, and the projection
    always returns it; the requested sparsity is ignored with a warning naming
    both when they differ (a gradual schedule therefore jumps to ``1 - N/M`` at
    its first event). K is padded to a multiple of M; the last, shorter run keeps
    ``min(N, its length)``.
    """

    format = "nm"
    defaults: dict[str, Any] = {"N": 2, "M": 4}

    def check_params(self, params: dict[str, Any]) -> None:
        m = check_int(self.name, "M", params["M"], 2, " (the run length along K)")
        n = check_int(self.name, "N", params["N"], 1, " (the kept count per run)")
        if n > m:
            raise ValueError(
                f"pattern 'nm': N={n} is larger than M={m}; N:M keeps N of every M "
                "consecutive weights, so 1 <= N <= M (e.g. 2:4, 1:4, 4:8)"
            )

    def format_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"n": params["N"], "m": params["M"]}

    def _project(
        self, scores: torch.Tensor, sparsity: float, params: dict[str, Any]
    ) -> torch.Tensor:
        n, m = params["N"], params["M"]
        natural = 1.0 - n / m
        if abs(sparsity - natural) > 1e-9:
            log.warning(
                "pattern nm %d:%d has the fixed sparsity %.4f; requested %.4f is ignored",
                n,
                m,
                natural,
                sparsity,
            )
        rows, cols = scores.shape
        runs = pad_grid(scores, 1, m, -torch.inf).view(rows, -1, m)
        keep = torch.zeros_like(runs, dtype=torch.bool)
        keep.scatter_(2, runs.topk(n, dim=2, sorted=False).indices, True)
        keep &= torch.isfinite(runs)  # the padded tail of the last run is never kept
        return keep.view(rows, -1)[:, :cols]

    def violations(self, mask: torch.Tensor, **params: Any) -> list[Violation]:
        """One violation per run of M columns that keeps more than N entries."""
        merged = self.params(**params)
        n, m = merged["N"], merged["M"]
        counts = pad_grid(mask, 1, m, False).view(mask.shape[0], -1, m).sum(2)
        return [
            Violation(
                f"row {row}: run {run} (columns {run * m}..{run * m + m - 1}) keeps "
                f"{int(counts[row, run])} non-zeros, at most {n} allowed",
                {"row": row, "run": run, "count": int(counts[row, run]), "N": n},
            )
            for row, run in (counts > n).nonzero().tolist()
        ]
