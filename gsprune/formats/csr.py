"""CSR format for unstructured, row-balanced and bank-balanced masks."""

from __future__ import annotations

import torch

from gsprune.formats.base import (
    FORMATS,
    BSRMatrix,
    CSRMatrix,
    FormatSpec,
    array_violations,
    check_inputs,
)
from gsprune.formats.validate import order_violations, ptr_violations, range_violations
from gsprune.patterns.base import Violation


def encode_csr(weight: torch.Tensor, mask: torch.Tensor) -> CSRMatrix:
    """Store every kept position of ``mask: bool[M, K]`` row by row, columns ascending.

    Built from the mask, not from the values, so a kept weight equal to 0 keeps
    its position (``structure()`` is the mask); int32 indices as torch.sparse takes them.
    """
    weight, mask = check_inputs(weight, mask)
    crow = torch.zeros(mask.shape[0] + 1, dtype=torch.int32)
    crow[1:] = mask.sum(dim=1).cumsum(0)
    # nonzero() walks row-major, so columns come out ascending inside each row.
    cols = mask.nonzero()[:, 1].to(torch.int32)
    return CSRMatrix(
        shape=tuple(mask.shape), crow_indices=crow, col_indices=cols, values=weight[mask]
    )


def compressed_row_violations(
    fmt: CSRMatrix | BSRMatrix,
    n_rows: int,
    n_cols: int,
    value_shape: tuple[int, ...],
    names: tuple[str, str, str],
) -> list[Violation]:
    """Checks shared by CSR and BSR (a CSR of blocks): dtypes and shapes, a pointer array
    consistent with the stored count, indices in ``[0, n_cols)``, and strictly ascending
    indices inside each (block) row. ``names`` = the words for a row, a column and a
    stored entry in messages and locations.
    """
    n = fmt.col_indices.numel() if isinstance(fmt.col_indices, torch.Tensor) else -1
    found = array_violations("crow_indices", fmt.crow_indices, torch.int32, (n_rows + 1,))
    found += array_violations("col_indices", fmt.col_indices, torch.int32, (n,))
    found += array_violations("values", fmt.values, torch.float32, (n, *value_shape))
    if found:
        return found
    row, column, entry = names
    found = ptr_violations("crow_indices", fmt.crow_indices, n, row)
    found += range_violations("col_indices", fmt.col_indices, n_cols, lambda p: {entry: p})
    if found:
        return found
    return order_violations(fmt.crow_indices, fmt.col_indices, row, column)


def check_csr(fmt: CSRMatrix) -> list[Violation]:
    """Pointer array, column range and strictly ascending columns inside each row."""
    M, K = fmt.shape
    return compressed_row_violations(fmt, M, K, (), ("row", "column", "entry"))


FORMATS.register("csr")(FormatSpec(CSRMatrix, encode_csr, check_csr))
