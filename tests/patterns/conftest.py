"""Shared helpers for tests/patterns, handed to the tests as session fixtures (so they
work under any pytest import mode and beside hypothesis' ``@given``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


@pytest.fixture(scope="session")
def gaussian() -> Callable[..., torch.Tensor]:
    """``gaussian(rows, cols, seed=0)``: reproducible ``|N(0, 1)|`` scores [rows, cols]."""

    def make(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
        return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)).abs()

    return make


@pytest.fixture(scope="session")
def kept_score() -> Callable[[torch.Tensor, torch.Tensor], float]:
    """``kept_score(scores, mask)``: the total score a mask keeps, in float64."""
    return lambda scores, mask: float(scores.double()[mask].sum())
