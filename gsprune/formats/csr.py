"""CSR format for unstructured, row-balanced and bank-balanced masks.

Unstructured and row-balanced rows store ascending columns; bank-balanced rows store
their columns bank-interleaved (``CSRMatrix.banks = B``: each run of B entries takes one
column from every bank), so a gather of B consecutive entries never hits one bank
twice and the H(V, B) step model charges no conflicts the pattern does not have.
"""

from __future__ import annotations

import torch

from gsprune.formats.base import (
    FORMATS,
    BSRMatrix,
    CSRMatrix,
    FormatSpec,
    array_violations,
    bank_order,
    check_inputs,
)
from gsprune.formats.validate import listed, order_violations, ptr_violations, range_violations
from gsprune.patterns.base import Violation


def encode_csr(weight: torch.Tensor, mask: torch.Tensor, banks: int = 1) -> CSRMatrix:
    """Store every kept position of ``mask: bool[M, K]`` row by row, in the bank order
    over ``banks`` column banks (``CSRMatrix``; 1: ascending columns).

    Built from the mask, not from the values, so a kept weight equal to 0 keeps
    its position (``structure()`` is the mask); int32 indices as torch.sparse takes them.
    """
    weight, mask = check_inputs(weight, mask)
    if isinstance(banks, bool) or not isinstance(banks, int) or banks < 1:
        raise ValueError(f"CSR banks must be an integer >= 1, got {banks!r}")
    crow = torch.zeros(mask.shape[0] + 1, dtype=torch.int32)
    crow[1:] = mask.sum(dim=1).cumsum(0)
    # nonzero() walks row-major, so columns come out ascending inside each row.
    cols = mask.nonzero()[:, 1].to(torch.int32)
    values = weight[mask]
    if banks > 1:
        order = bank_order(crow, cols, banks)
        cols, values = cols[order], values[order]
    return CSRMatrix(tuple(mask.shape), crow, cols, values, banks)


def compressed_row_violations(
    fmt: CSRMatrix | BSRMatrix,
    n_rows: int,
    n_cols: int,
    value_shape: tuple[int, ...],
    names: tuple[str, str, str],
    banks: int = 1,
) -> list[Violation]:
    """Checks shared by CSR and BSR (a CSR of blocks): dtypes and shapes, a pointer array
    consistent with the stored count, indices in ``[0, n_cols)``, and indices inside each
    (block) row strictly ascending, or for ``banks > 1`` distinct and in CSR bank order.
    ``names`` = the words for a row, a column and a stored entry in messages and locations.
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
    if banks == 1:
        return order_violations(fmt.crow_indices, fmt.col_indices, row, column)
    ascending = bank_order(fmt.crow_indices, fmt.col_indices, 1)
    found = order_violations(fmt.crow_indices, fmt.col_indices[ascending], row, column)
    if found:  # repeated columns
        return found
    expected = bank_order(fmt.crow_indices, fmt.col_indices, banks)
    out_of_order = (expected != torch.arange(expected.numel())).nonzero()[:, 0]
    segment = torch.repeat_interleave(
        torch.arange(fmt.crow_indices.numel() - 1), fmt.crow_indices.long().diff()
    )
    return listed(
        out_of_order,
        lambda p: Violation(
            f"{row} {int(segment[p])}: {column} {int(fmt.col_indices[p])} is out of bank "
            f"order (banks={banks}: by rank in its bank, then bank)",
            {row: int(segment[p]), column: int(fmt.col_indices[p])},
        ),
        f"{column}s out of bank order",
    )


def check_csr(fmt: CSRMatrix, banks: int = 1) -> list[Violation]:
    """Pointer array, column range, the columns' order inside each row (ascending, or
    bank-interleaved for ``banks > 1``) and ``fmt.banks == banks``."""
    M, K = fmt.shape
    if fmt.banks != banks:
        return [
            Violation(
                f"the CSR stores its rows in bank order over {fmt.banks!r} banks, the "
                f"pattern asks for {banks}",
                {"banks": fmt.banks},
            )
        ]
    return compressed_row_violations(fmt, M, K, (), ("row", "column", "entry"), banks)


FORMATS.register("csr")(FormatSpec(CSRMatrix, encode_csr, check_csr))
