"""Compact sparse formats, their encoders and the validator (DESIGN §4, §14).

``encode(weight, mask, pattern, **params)`` stores a masked GEMM view in the
format of ``pattern`` (``gsprune.patterns.get(pattern).format``);
``validate(obj, pattern, **params)`` says whether a mask or a format satisfies
the pattern, and where it does not. ``FORMATS`` maps each format name to its
``FormatSpec`` (class, encoder, structural check); each format registers itself
in its own module, so a new format is one file copied from a sibling.
"""

from __future__ import annotations

from typing import Any

import torch

from gsprune.formats import bsr, csr, dense, gs, nm  # noqa: F401  (each registers itself)
from gsprune.formats.base import (
    FORMATS,
    BSRMatrix,
    CSRMatrix,
    DenseMatrix,
    FormatSpec,
    GSMatrix,
    NMMatrix,
    SparseFormat,
    check_inputs,
)
from gsprune.formats.validate import MAX_LISTED, ValidationReport, validate


def encode(weight: torch.Tensor, mask: torch.Tensor, pattern: str, **params: Any) -> SparseFormat:
    """Store ``weight * mask`` in the compact format of ``pattern``.

    weight: float[M, K] (a GEMM view; stored as float32 on the CPU), mask: bool[M, K]
    satisfying ``pattern`` with ``params`` (defaults filled by the pattern). The
    mask is checked first: ValueError lists the first violations when it does not
    follow the pattern (a GS format cannot be built from a non-GS mask).
    ``encode(w, m, p).to_dense()`` equals ``w * m`` exactly.
    """
    # Imported here so the format dataclasses stay importable on their own.
    from gsprune import patterns

    pat = patterns.get(pattern)
    merged = pat.params(**params)
    weight, mask = check_inputs(weight, mask)
    pat.check_shape(tuple(mask.shape), merged)
    found = pat.violations(mask, **merged)
    if found:
        shown = "; ".join(v.message for v in found[:5])
        more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
        raise ValueError(
            f"the mask does not satisfy pattern {pattern!r} with {merged}, so it cannot be "
            f"stored in format {pat.format!r}: {shown}{more}. Project the scores with "
            f"gsprune.patterns.get({pattern!r}).project(...) to get a valid mask"
        )
    return FORMATS.get(pat.format).encode(weight, mask, **pat.format_params(merged))


__all__ = [
    "FORMATS",
    "MAX_LISTED",
    "BSRMatrix",
    "CSRMatrix",
    "DenseMatrix",
    "FormatSpec",
    "GSMatrix",
    "NMMatrix",
    "SparseFormat",
    "ValidationReport",
    "encode",
    "validate",
]
