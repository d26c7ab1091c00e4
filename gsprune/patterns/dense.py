"""``dense``: the baseline that keeps every weight."""

from __future__ import annotations

import logging
from typing import Any

import torch

from gsprune.patterns import register
from gsprune.patterns.base import Pattern

log = logging.getLogger(__name__)


@register("dense")
class Dense(Pattern):
    """Keeps all entries; the requested sparsity is ignored (and said so in the log)."""

    format = "dense"
    defaults: dict[str, Any] = {}

    def _project(
        self, scores: torch.Tensor, sparsity: float, params: dict[str, Any]
    ) -> torch.Tensor:
        if sparsity > 0:
            log.info("pattern 'dense' ignores sparsity=%g and keeps every weight", sparsity)
        return torch.ones_like(scores, dtype=torch.bool)
