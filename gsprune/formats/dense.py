"""Dense format: the baseline every sparse kernel is timed against."""

from __future__ import annotations

import torch

from gsprune.formats.base import FORMATS, DenseMatrix, FormatSpec, array_violations, check_inputs
from gsprune.patterns.base import Violation


def encode_dense(weight: torch.Tensor, mask: torch.Tensor) -> DenseMatrix:
    """``weight: float32[M, K]`` with the unkept entries of ``mask: bool[M, K]`` set to 0."""
    weight, mask = check_inputs(weight, mask)
    values = torch.where(mask, weight, torch.zeros((), dtype=weight.dtype))
    return DenseMatrix(shape=tuple(weight.shape), values=values.contiguous())


def check_dense(fmt: DenseMatrix) -> list[Violation]:
    return array_violations("values", fmt.values, torch.float32, fmt.shape)


FORMATS.register("dense")(FormatSpec(DenseMatrix, encode_dense, check_dense))
