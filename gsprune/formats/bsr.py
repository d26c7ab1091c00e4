"""BSR format for block masks: whole R x C blocks on a zero-padded grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gsprune.formats.base import FORMATS, BSRMatrix, FormatSpec, check_inputs
from gsprune.formats.csr import compressed_row_violations
from gsprune.formats.validate import padding_violations, param_violations
from gsprune.patterns.base import Violation


def _check_block(block: tuple[int, int]) -> tuple[int, int]:
    """Return ``block`` as (R, C) or raise ValueError."""
    if not (len(block) == 2 and all(isinstance(x, int) and x >= 1 for x in block)):
        raise ValueError(f"BSR block={block!r} is not valid; pass (R, C) with integers >= 1")
    return tuple(block)


def _blocked(x: torch.Tensor, R: int, C: int) -> torch.Tensor:
    """``x: [M, K]`` zero-padded to the block grid, as ``[M/R, K/C, R, C]``."""
    M, K = x.shape
    x = F.pad(x, (0, -K % C, 0, -M % R))
    return x.reshape(x.shape[0] // R, R, x.shape[1] // C, C).permute(0, 2, 1, 3)


def encode_bsr(weight: torch.Tensor, mask: torch.Tensor, block: tuple[int, int]) -> BSRMatrix:
    """Store every block of the ``block = (R, C)`` grid that holds a kept position of ``mask``.

    A stored block holds ``weight`` at its kept positions and 0 elsewhere (also
    in the padding past M or K), so the round trip gives exactly ``weight * mask``.
    """
    R, C = _check_block(block)
    weight, mask = check_inputs(weight, mask)
    kept = _blocked(mask, R, C)
    present = kept.any(dim=(2, 3))  # [M/R, K/C]
    crow = torch.zeros(present.shape[0] + 1, dtype=torch.int32)
    crow[1:] = present.sum(dim=1).cumsum(0)
    brow, bcol = present.nonzero(as_tuple=True)  # row-major: block columns ascend
    values = torch.where(kept, _blocked(weight, R, C), torch.zeros((), dtype=weight.dtype))
    return BSRMatrix(
        shape=tuple(mask.shape),
        block=(R, C),
        crow_indices=crow,
        col_indices=bcol.to(torch.int32),
        values=values[brow, bcol].contiguous(),
    )


def check_bsr(fmt: BSRMatrix, block: tuple[int, int]) -> list[Violation]:
    """Block size, pointer array, block-column range and order, zero padding."""
    R, C = _check_block(block)
    found = param_violations(fmt, {"block": (R, C)})
    if found:
        return found
    (M, K) = fmt.shape
    n_brows, n_bcols = -(-M // R), -(-K // C)
    found = compressed_row_violations(
        fmt, n_brows, n_bcols, (R, C), ("block_row", "block_column", "block")
    )
    # The padding check reads the arrays: only once they are well formed.
    return found or padding_violations(fmt)


FORMATS.register("bsr")(FormatSpec(BSRMatrix, encode_bsr, check_bsr))
