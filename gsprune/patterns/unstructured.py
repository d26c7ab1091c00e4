"""``unstructured``: top-k of the layer, no constraint on where the non-zeros sit."""

from __future__ import annotations

from typing import Any

import torch

from gsprune.patterns import register
from gsprune.patterns.base import Pattern


def top_fraction(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """``bool`` mask of the same shape as ``scores`` with its ``keep`` largest entries set."""
    flat = torch.zeros(scores.numel(), dtype=torch.bool)
    if keep > 0:
        flat[scores.reshape(-1).topk(keep, sorted=False).indices] = True
    return flat.view(scores.shape)


@register("unstructured")
class Unstructured(Pattern):
    """Keeps the ``round((1 - s) * M * K)`` highest scores of the layer (format CSR).

    ``scope`` accepts only ``"layer"``: a global top-k over several layers needs
    all of them at once and is done by the pruner, which then projects each layer.
    Achieved sparsity: within ``0.5 / (M * K)`` of the target.
    """

    format = "csr"
    defaults: dict[str, Any] = {"scope": "layer"}

    def check_params(self, params: dict[str, Any]) -> None:
        if params["scope"] != "layer":
            raise ValueError(
                f"unstructured scope={params['scope']!r} is not handled by the projection; "
                "accepted: 'layer' (a global top-k across layers belongs to the pruner)"
            )

    def _project(
        self, scores: torch.Tensor, sparsity: float, params: dict[str, Any]
    ) -> torch.Tensor:
        return top_fraction(scores, round((1.0 - sparsity) * scores.numel()))
