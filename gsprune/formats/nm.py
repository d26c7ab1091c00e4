"""N:M format: at most n kept in every run of m consecutive columns, uint8 offsets."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gsprune.formats.base import FORMATS, FormatSpec, NMMatrix, array_violations, check_inputs
from gsprune.formats.validate import listed, padding_violations, param_violations
from gsprune.patterns.base import Violation


def _check_nm(n: int, m: int) -> None:
    if not (isinstance(n, int) and isinstance(m, int) and 1 <= n <= m <= 256):
        raise ValueError(
            f"N:M format n={n!r}, m={m!r} is not valid; need integers 1 <= n <= m <= 256 "
            "(offsets are stored as uint8)"
        )


def encode_nm(weight: torch.Tensor, mask: torch.Tensor, n: int, m: int) -> NMMatrix:
    """Store n slots per run of m columns of ``mask: bool[M, K]`` (K zero-padded to m).

    The slots of a run are its kept offsets plus, when it keeps fewer than n, the
    lowest unkept offsets as fill (columns inside K before padding columns), all
    ascending. Raises ValueError when a run keeps more than n.
    """
    _check_nm(n, m)
    weight, mask = check_inputs(weight, mask)
    M, K = mask.shape
    kept = F.pad(mask, (0, -K % m)).reshape(M, -1, m)  # [M, runs, m]
    counts = kept.sum(dim=2)
    if (counts > n).any():
        row, run = (counts > n).nonzero()[0].tolist()
        raise ValueError(
            f"row {row}, run {run} (columns {run * m}..{run * m + m - 1}) keeps "
            f"{int(counts[row, run])} entries; the N:M format stores at most n={n} per run of m={m}"
        )
    offset = torch.arange(m)
    padding = (torch.arange(kept.shape[1])[:, None] * m + offset) >= K  # [runs, m]
    # Rank slots: kept offsets first, then unkept ones inside K, then padding; by offset.
    rank = offset + m * (~kept) + 2 * m * padding
    chosen = rank.argsort(dim=2)[:, :, :n].sort(dim=2).values  # [M, runs, n]
    values = torch.where(mask, weight, torch.zeros((), dtype=weight.dtype))
    values = F.pad(values, (0, -K % m)).reshape(M, -1, m).gather(2, chosen)
    return NMMatrix(
        shape=(M, K),
        n=n,
        m=m,
        values=values.reshape(M, -1).contiguous(),
        indices=chosen.reshape(M, -1).to(torch.uint8),
    )


def check_nm(fmt: NMMatrix, n: int, m: int) -> list[Violation]:
    """n and m, array layouts, offsets in [0, m) and strictly ascending per run, zero padding."""
    found = param_violations(fmt, {"n": n, "m": m})
    if found:
        return found
    M, K = fmt.shape
    runs = -(-K // m)
    found = array_violations("values", fmt.values, torch.float32, (M, runs * n))
    found += array_violations("indices", fmt.indices, torch.uint8, (M, runs * n))
    if found:
        return found
    offsets = fmt.indices.long().reshape(M, runs, n)
    out = (offsets >= m).reshape(-1).nonzero()[:, 0]
    found = listed(
        out,
        lambda p: Violation(
            f"row {p // (runs * n)}, run {p % (runs * n) // n}: offset "
            f"{int(offsets.reshape(-1)[p])} is not in [0, {m})",
            {"row": p // (runs * n), "run": p % (runs * n) // n},
        ),
        "offsets out of range",
    )
    if found:
        return found
    unordered = (offsets.diff(dim=2) <= 0).any(dim=2).reshape(-1).nonzero()[:, 0]
    found = listed(
        unordered,
        lambda p: Violation(
            f"row {p // runs}, run {p % runs}: offsets {offsets[p // runs, p % runs].tolist()} "
            "do not strictly ascend",
            {"row": p // runs, "run": p % runs},
        ),
        "runs with offsets out of order",
    )
    return found + padding_violations(fmt)


FORMATS.register("nm")(FormatSpec(NMMatrix, encode_nm, check_nm))
