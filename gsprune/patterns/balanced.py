"""``row_balanced`` and ``bank_balanced``: equal counts per row (and per column bank)."""

from __future__ import annotations

from typing import Any

import torch

from gsprune.patterns import register
from gsprune.patterns._common import bank_sizes, check_int, modal_count, pad_grid
from gsprune.patterns.base import Pattern, Violation


@register("row_balanced")
class RowBalanced(Pattern):
    """Every row keeps its ``k = round((1 - s) * K)`` highest scores (format CSR).

    Invariant: ``mask.sum(1)`` is constant. Achieved sparsity ``1 - k/K``,
    within ``0.5 / K`` of the target.
    """

    format = "csr"
    defaults: dict[str, Any] = {}

    def _project(
        self, scores: torch.Tensor, sparsity: float, params: dict[str, Any]
    ) -> torch.Tensor:
        k = round((1.0 - sparsity) * scores.shape[1])
        mask = torch.zeros_like(scores, dtype=torch.bool)
        if k > 0:
            mask.scatter_(1, scores.topk(k, dim=1, sorted=False).indices, True)
        return mask

    def violations(self, mask: torch.Tensor, **params: Any) -> list[Violation]:
        """One violation per row whose count differs from the most common row count."""
        self.params(**params)
        counts = mask.sum(1)
        k = int(modal_count(counts))
        return [
            Violation(
                f"row {row} keeps {int(counts[row])} non-zeros, the other rows keep {k}",
                {"row": row, "count": int(counts[row]), "k": k},
            )
            for row in (counts != k).nonzero().flatten().tolist()
        ]


@register("bank_balanced")
class BankBalanced(Pattern):
    """Bank-balanced sparsity (Cao et al. 2019): equal counts per row and column bank.

    Columns are split into ``B`` banks by ``bank(c) = c mod B``. Every row keeps
    its top ``k_b = round((1 - s) * K / B)`` scores inside each bank. When B does
    not divide K the banks differ in size by one column; a bank smaller than
    ``k_b`` keeps all its columns (the count is capped at the bank size), so the
    achieved sparsity is ``1 - sum_b min(k_b, |bank b|) / K``, within
    ``B / (2K)`` of the target plus the capping. The CSR format stores each row
    bank-interleaved (``banks = B``): a gather of B consecutive entries takes one
    column from every bank, which is the point of the pattern.
    """

    format = "csr"
    defaults: dict[str, Any] = {"B": 8}

    def check_params(self, params: dict[str, Any]) -> None:
        check_int(self.name, "B", params["B"], 1)

    def format_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"banks": params["B"]}

    def _project(
        self, scores: torch.Tensor, sparsity: float, params: dict[str, Any]
    ) -> torch.Tensor:
        rows, cols = scores.shape
        banks = params["B"]
        cells = pad_grid(scores, 1, banks, -torch.inf).view(rows, -1, banks)  # [M, L, B]
        k_b = min(round((1.0 - sparsity) * cols / banks), cells.shape[1])
        keep = torch.zeros_like(cells, dtype=torch.bool)
        if k_b > 0:
            keep.scatter_(1, cells.topk(k_b, dim=1, sorted=False).indices, True)
        # A short bank's padding (-inf) may be among its top k_b: never keep padding.
        keep &= torch.isfinite(cells)
        return keep.view(rows, -1)[:, :cols]

    def violations(self, mask: torch.Tensor, **params: Any) -> list[Violation]:
        """One violation per (row, bank) whose count is not ``min(k_b, bank size)``.

        ``k_b`` is the most common count among the cells of the largest banks.
        """
        banks = self.params(**params)["B"]
        rows, cols = mask.shape
        counts = pad_grid(mask, 1, banks, False).view(rows, -1, banks).sum(1)  # [M, B]
        sizes = bank_sizes(cols, banks)
        k_b = int(modal_count(counts[:, sizes == sizes.max()].flatten()))
        expected = sizes.clamp(max=k_b)
        return [
            Violation(
                f"row {row}: bank {bank} keeps {int(counts[row, bank])} non-zeros, "
                f"expected {int(expected[bank])}",
                {
                    "row": row,
                    "bank": bank,
                    "count": int(counts[row, bank]),
                    "k": int(expected[bank]),
                },
            )
            for row, bank in (counts != expected).nonzero().tolist()
        ]
