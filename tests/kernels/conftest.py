"""Fixtures for the kernel tests: the compiled extension and formats built by hand.

The compiled kernels are built once per machine and cached on disk
(``gsprune.kernels.build.build_root()``), so the session fixture costs a second after
the first build.

The ``by_hand`` builders make random format objects from the layouts documented in
gsprune/formats/base.py, independent of the encoders. Each returns ``(fmt, W)`` with
``W: float64[M, K]`` the matrix the format holds, accumulated straight from the stored
entries. Padding outside the matrix (GS lanes past the edge, the BSR block overhang,
the N:M run that overhangs K) holds NaN instead of the documented 0, so a kernel that
reads or adds it shows NaN in its result.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

from gsprune import kernels
from gsprune.formats.base import BSRMatrix, CSRMatrix, DenseMatrix, GSMatrix, NMMatrix
from gsprune.kernels import build

# Every vector build this CPU runs (an AVX-512 machine runs the AVX2 build too), by name,
# plus the portable path; on a CPU without AVX2, "cpu" is the portable build.
SIMD_BACKENDS = tuple(f"cpu_{isa}" for isa in build.supported_isas() if isa != "portable")
COMPILED = (*(SIMD_BACKENDS or ("cpu",)), "cpu_scalar")


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def accumulate(M: int, K: int, rows, cols, values) -> torch.Tensor:
    """float64[M, K] summing ``values`` at (rows, cols); entries outside the matrix dropped."""
    rows, cols, values = rows.reshape(-1), cols.reshape(-1), values.reshape(-1).double()
    keep = (rows < M) & (cols < K)
    W = torch.zeros(M, K, dtype=torch.float64)
    W.index_put_((rows[keep], cols[keep]), values[keep], accumulate=True)
    return W


def gs(M: int, K: int, V: int, variant: str, gen: torch.Generator, index_dtype=None, max_k=6):
    """A GSMatrix with random k per band (0..max_k) and random indices (kernels need no banks)."""
    if variant == "gs_free":
        G = int(torch.randint(0, max_k * ceil_div(M, V) + 2, (1,), generator=gen))
        band_ptr = torch.tensor([0, G], dtype=torch.int64)
        rows = torch.randint(0, M, (G, V), generator=gen)
        cols = torch.randint(0, K, (G, V), generator=gen)
        index, lane_index = cols, rows
    else:
        owned_dim, other_dim = (M, K) if variant == "gs" else (K, M)
        n_bands = ceil_div(owned_dim, V)
        ks = torch.randint(0, max_k + 1, (n_bands,), generator=gen)
        band_ptr = torch.cat([torch.zeros(1, dtype=torch.int64), ks.cumsum(0)])
        band = torch.repeat_interleave(torch.arange(n_bands), ks)
        owned = band[:, None] * V + torch.arange(V)
        other = torch.randint(0, other_dim, owned.shape, generator=gen)
        rows, cols = (owned, other) if variant == "gs" else (other, owned)
        index, lane_index = other, None
    values = torch.randn(rows.shape, generator=gen)
    values[(rows >= M) | (cols >= K)] = float("nan")
    indexed = K if variant != "gs_scatter" else M
    if index_dtype is None:
        index_dtype = torch.int16 if max(indexed, M) < 32768 else torch.int32
    fmt = GSMatrix(
        shape=(M, K),
        variant=variant,
        V=V,
        B=V,
        band_ptr=band_ptr,
        values=values.contiguous(),
        index=index.to(index_dtype).contiguous(),
        lane_index=None if lane_index is None else lane_index.to(index_dtype).contiguous(),
    )
    return fmt, accumulate(M, K, rows, cols, values)


def masked_dense(M: int, K: int, density: float, gen: torch.Generator) -> torch.Tensor:
    mask = torch.rand(M, K, generator=gen) < density
    return torch.randn(M, K, generator=gen) * mask


def csr(M: int, K: int, gen: torch.Generator, density: float = 0.3):
    W = masked_dense(M, K, density, gen)
    rows, cols = W.nonzero(as_tuple=True)  # row-major: columns ascend inside a row
    crow = torch.cat(
        [torch.zeros(1, dtype=torch.int64), torch.bincount(rows, minlength=M).cumsum(0)]
    )
    fmt = CSRMatrix(
        shape=(M, K),
        crow_indices=crow.to(torch.int32),
        col_indices=cols.to(torch.int32),
        values=W[rows, cols].contiguous(),
    )
    return fmt, W.double()


def bsr(M: int, K: int, R: int, C: int, gen: torch.Generator, density: float = 0.4):
    grid = torch.rand(ceil_div(M, R), ceil_div(K, C), generator=gen) < density
    block_rows, block_cols = grid.nonzero(as_tuple=True)
    values = torch.randn(block_rows.numel(), R, C, generator=gen)
    rows = block_rows[:, None, None] * R + torch.arange(R)[:, None]
    cols = block_cols[:, None, None] * C + torch.arange(C)
    rows, cols = rows.expand_as(values), cols.expand_as(values)
    values[(rows >= M) | (cols >= K)] = float("nan")
    crow = torch.cat(
        [
            torch.zeros(1, dtype=torch.int64),
            torch.bincount(block_rows, minlength=grid.shape[0]).cumsum(0),
        ]
    )
    fmt = BSRMatrix(
        shape=(M, K),
        block=(R, C),
        crow_indices=crow.to(torch.int32),
        col_indices=block_cols.to(torch.int32),
        values=values.contiguous(),
    )
    return fmt, accumulate(M, K, rows, cols, values)


def nm(M: int, K: int, n: int, m: int, gen: torch.Generator):
    runs = ceil_div(K, m)
    offsets = torch.rand(M, runs, m, generator=gen).argsort(-1)[..., :n].sort(-1).values
    values = torch.randn(M, runs, n, generator=gen)
    values[torch.rand(M, runs, n, generator=gen) < 0.2] = 0.0  # runs with fewer than n kept
    cols = torch.arange(runs)[None, :, None] * m + offsets
    values[cols >= K] = float("nan")
    rows = torch.arange(M)[:, None, None].expand_as(cols)
    fmt = NMMatrix(
        shape=(M, K),
        n=n,
        m=m,
        values=values.reshape(M, runs * n).contiguous(),
        indices=offsets.reshape(M, runs * n).to(torch.uint8).contiguous(),
    )
    return fmt, accumulate(M, K, rows, cols, values)


def dense(M: int, K: int, gen: torch.Generator):
    W = torch.randn(M, K, generator=gen)
    return DenseMatrix(shape=(M, K), values=W), W.double()


@pytest.fixture(scope="session")
def compiled() -> None:
    """Require the compiled kernels; skip only when GSPRUNE_ALLOW_REFERENCE=1 says so.

    The first session on a machine compiles them (about a minute); later sessions load
    the cached build from ``gsprune.kernels.build.build_root()``.
    """
    if kernels.cpu_available():
        return
    if os.environ.get("GSPRUNE_ALLOW_REFERENCE") == "1":
        pytest.skip(f"compiled kernels unavailable ({build.build_error()}); allowed by env")
    pytest.fail(f"the compiled CPU kernels failed to build: {build.build_error()}")


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture(scope="session")
def by_hand() -> SimpleNamespace:
    """The random format builders of this module: gs, csr, bsr, nm, dense."""
    return SimpleNamespace(gs=gs, csr=csr, bsr=bsr, nm=nm, dense=dense)
