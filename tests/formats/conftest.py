"""Shared test helpers for tests/formats (pytest runs with --import-mode=importlib, so they
reach the tests as the session fixture ``gs_masks``): GS masks built directly from random
matchings, independent of the projections.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch


def gs_band_mask(M: int, K: int, V: int, B: int, ks: list[int], seed: int) -> torch.Tensor:
    """A valid ``gs`` mask ``bool[M, K]``: band t is the union of ``ks[t]`` random groups.

    Each group sends the band's V lanes to V distinct non-empty banks (a random
    matching lanes -> banks); each lane then takes that many distinct random
    columns inside each bank. A group is redrawn when it would overfill a
    (row, bank) cell, so ``ks[t]`` must stay small next to the bank sizes.
    """
    rng = np.random.default_rng(seed)
    banks = [np.arange(b, K, B) for b in range(min(B, K))]
    mask = np.zeros((M, K), dtype=bool)
    for t, k in enumerate(ks):
        lanes = min(V, M - t * V)
        counts = np.zeros((lanes, len(banks)), dtype=int)
        for _ in range(k):
            while True:
                pick = rng.permutation(len(banks))[:V][:lanes]
                if all(counts[i, b] < banks[b].size for i, b in enumerate(pick)):
                    break
            counts[np.arange(lanes), pick] += 1
        for i in range(lanes):
            for b, n in enumerate(counts[i]):
                mask[t * V + i, rng.choice(banks[b], size=n, replace=False)] = True
    return torch.from_numpy(mask)


def gs_free_mask(M: int, K: int, V: int, k: int, seed: int) -> torch.Tensor:
    """A valid ``gs_free`` mask: k groups, each pairing the V row banks with V column banks.

    Every (row bank, column bank) cell gets as many distinct random positions as
    groups pair them, so the V x V count matrix is k-regular. Needs M, K >= V.
    """
    rng = np.random.default_rng(seed)
    counts = np.zeros((V, V), dtype=int)
    for _ in range(k):
        counts[np.arange(V), rng.permutation(V)] += 1
    mask = np.zeros((M, K), dtype=bool)
    for a in range(V):
        for b in range(V):
            rows, cols = np.arange(a, M, V), np.arange(b, K, V)
            cells = rng.choice(rows.size * cols.size, size=counts[a, b], replace=False)
            mask[rows[cells // cols.size], cols[cells % cols.size]] = True
    return torch.from_numpy(mask)


@pytest.fixture(scope="session")
def gs_masks() -> SimpleNamespace:
    """``gs_masks.band`` and ``gs_masks.free``: the mask builders above."""
    return SimpleNamespace(band=gs_band_mask, free=gs_free_mask)
