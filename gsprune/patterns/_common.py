"""Small helpers shared by the pattern modules: tiling a GEMM view, counting, checking ints."""

from __future__ import annotations

import math
from typing import Any

import torch


def check_int(pattern: str, name: str, value: Any, minimum: int, hint: str = "") -> int:
    """Return ``value`` as an int, or raise ValueError when it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"pattern {pattern!r}: {name}={value!r} is not accepted; {name} must be an integer "
            f">= {minimum}{hint}"
        )
    return value


def modal_count(counts: torch.Tensor) -> torch.Tensor:
    """The most common value along the last dim (the smallest one on a tie).

    Validators use it as "the count every member should have": the members that
    differ from the majority are the ones reported.
    """
    return counts.mode(dim=-1).values


def pad_grid(x: torch.Tensor, row_mult: int, col_mult: int, value: float | bool) -> torch.Tensor:
    """``x: [M, K]`` padded with ``value`` to multiples of ``row_mult`` x ``col_mult``.

    Every pattern module tiles its GEMM view this way (bands, banks, blocks, N:M runs);
    the padding value decides what the padding means (``-inf``: never kept; ``0``: no
    score; ``False``: not kept).
    """
    m, k = x.shape
    out = torch.full(
        (math.ceil(m / row_mult) * row_mult, math.ceil(k / col_mult) * col_mult),
        value,
        dtype=x.dtype,
    )
    out[:m, :k] = x
    return out


def bank_sizes(k: int, banks: int) -> torch.Tensor:
    """``int64[banks]``: how many of the columns ``0..k-1`` fall in each bank ``c mod banks``."""
    return torch.div(k - torch.arange(banks) + banks - 1, banks, rounding_mode="floor")
