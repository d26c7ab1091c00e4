"""Every kernel against the float64 product of the matrix its format holds.

Shapes include ones that V, the blocks and m do not divide; N in {1, 3, 17, 49, 64, 100}
covers the GEMV path, column tiles narrower than a vector, tiles that end inside a vector
(masked), one tile and several balanced ones (100 columns: three tiles of 2, 2 and 3
16-float vectors), of 8- and 16-float vectors (every vector build this CPU runs is tested
by name);
threads 1 and 2 cover the serial and the split paths (gs_scatter, gs_free and CSR run
through row plans, split by bands like gs; where each thread's share of a wide x still
packs, every format's threads split the columns: test_threads_split_packed_columns). x tiles
are packed when the weights of a call read each x row at least 12 times on average
(kernels.h): the 203-row CSR, BSR and 2:4
matrices and the dense-banded GS matrices of test_gs_packed_tiles take packed tiles on one
and two threads; the 5-row matrices and the other GS matrices (at most 6 groups a band,
41 in test_gs_many_groups_per_band) read x in place.
"""

from __future__ import annotations

import pytest
import torch

from gsprune import kernels

from .conftest import COMPILED

SHAPES = [(37, 50), (64, 64), (5, 3), (203, 129)]
NS = (1, 3, 17, 49, 64, 100)
THREADS = (1, 2)


def assert_product(y: torch.Tensor, W: torch.Tensor, x: torch.Tensor, what: str) -> None:
    """y ~= W @ x elementwise within 1e-4 of sum_k |W[m, k] x[k, n]| (fp32 accumulation)."""
    x64 = x.double()
    truth = W @ x64
    scale = W.abs() @ x64.abs()
    assert y.dtype == torch.float32 and y.shape == truth.shape, what
    err = (y.double() - truth).abs()
    ok = err <= 1e-4 * scale
    assert bool(ok.all()), f"{what}: max error {err.max().item():.3g} (NaN: {y.isnan().any()})"


def check_all(fmt, W, backend: str, gen: torch.Generator) -> None:
    K = fmt.shape[1]
    for N in NS:
        x = torch.randn(K, N, generator=gen)
        for threads in THREADS:
            y = kernels.matmul(fmt, x, threads=threads, backend=backend)
            assert_product(y, W, x, f"{kernels.kernel_name(fmt, backend)} N={N} t={threads}")
    x1 = torch.randn(K, generator=gen)
    y1 = kernels.matmul(fmt, x1, backend=backend)
    assert y1.shape == (fmt.shape[0],)
    assert_product(y1[:, None], W, x1[:, None], f"{backend} 1-D x")


@pytest.fixture(params=["reference", *COMPILED])
def backend(request) -> str:
    if request.param in COMPILED:
        request.getfixturevalue("compiled")
    return request.param


@pytest.mark.parametrize("variant", ["gs", "gs_scatter", "gs_free"])
@pytest.mark.parametrize("V", [4, 8, 16, 32])
@pytest.mark.parametrize("index_dtype", [torch.int16, torch.int32])
def test_gs(variant, V, index_dtype, backend, gen, by_hand):
    for M, K in SHAPES:
        fmt, W = by_hand.gs(M, K, V, variant, gen, index_dtype=index_dtype)
        check_all(fmt, W, backend, gen)


@pytest.mark.parametrize("variant", ["gs", "gs_scatter", "gs_free"])
@pytest.mark.parametrize("N", [1, 9, 40])
@pytest.mark.parametrize(("indexed", "dtype"), [(32767, torch.int16), (40000, torch.int32)])
def test_gs_index_dtype_boundary(variant, N, indexed, dtype, backend, gen, by_hand):
    # The indexed dimension (K, or M for gs_scatter) up to 32767 takes int16 indices (the
    # largest, 32766, must not sign-extend), from 32768 on int32.
    M, K = (indexed, 20) if variant == "gs_scatter" else (20, indexed)
    fmt, W = by_hand.gs(M, K, 8, variant, gen, max_k=3)
    assert fmt.index.dtype == dtype
    x = torch.randn(K, N, generator=gen)
    assert_product(kernels.matmul(fmt, x, threads=2, backend=backend), W, x, variant)


def test_gs_many_groups_per_band(backend, gen, by_hand):
    # Long bands: the two-accumulator GEMV loop and its odd remainder, uneven bands split.
    fmt, W = by_hand.gs(123, 300, 8, "gs", gen, max_k=41)
    check_all(fmt, W, backend, gen)


@pytest.mark.parametrize("variant", ["gs", "gs_scatter", "gs_free"])
@pytest.mark.parametrize("V", [8, 16])
def test_gs_packed_tiles(variant, V, backend, gen, by_hand):
    # About 30 groups a band: each of the 129 x rows is read about 47 times (gs: 24 a
    # thread on 2 threads), so the SpMM kernel copies x's tiles first.
    fmt, W = by_hand.gs(203, 129, V, variant, gen, max_k=60)
    check_all(fmt, W, backend, gen)


@pytest.mark.parametrize(
    "matrix", ["gs", "gs_scatter", "gs_free", "bsr_1x8", "bsr_3x5", "nm_2:4", "nm_3:8"]
)
@pytest.mark.parametrize("N", [150, 257])
def test_threads_split_packed_columns(matrix, N, backend, gen, by_hand):
    # Wide enough that each of two threads still packs several column tiles of x (each
    # of the 129 x rows is read at least 12 times): the threads then split x's columns
    # (each runs every row) instead of the rows (kernels.h: split_packed_columns); N = 257
    # ends in a one-column vector, so the second share ends masked.
    kind, _, shape = matrix.partition("_")
    if kind == "bsr":
        fmt, W = by_hand.bsr(203, 129, *map(int, shape.split("x")), gen)
    elif kind == "nm":
        fmt, W = by_hand.nm(203, 129, *map(int, shape.split(":")), gen)
    else:
        fmt, W = by_hand.gs(203, 129, 8, matrix, gen, max_k=60)
    x = torch.randn(129, N, generator=gen)
    for threads in (1, 2):
        y = kernels.matmul(fmt, x, threads=threads, backend=backend)
        assert_product(y, W, x, f"{kernels.kernel_name(fmt, backend)} N={N} t={threads}")


@pytest.mark.parametrize(
    "matrix", ["gs", "gs_scatter", "gs_free", "csr", "bsr_1x8", "bsr_3x5", "nm_2:4", "nm_3:8"]
)
def test_x_with_padded_rows(matrix, backend, gen, by_hand):
    # x's rows need only be contiguous: rows padded to cache lines (kernels.aligned_rows,
    # as the latency harness gives them) and a column range of a wider matrix (an odd row
    # stride), read in place and packed (N = 150 on the 203-row matrices), on both threads'
    # splits; a one-column range is read as a vector.
    kind, _, shape = matrix.partition("_")
    if kind == "bsr":
        fmt, W = by_hand.bsr(203, 129, *map(int, shape.split("x")), gen)
    elif kind == "nm":
        fmt, W = by_hand.nm(203, 129, *map(int, shape.split(":")), gen)
    elif kind == "csr":
        fmt, W = by_hand.csr(203, 129, gen)
    else:
        fmt, W = by_hand.gs(203, 129, 8, matrix, gen, max_k=60)
    for N in (1, 3, 17, 49, 150):
        wide = torch.randn(129, N + 21, generator=gen)
        for x in (kernels.aligned_rows(torch.randn(129, N, generator=gen)), wide[:, 7 : 7 + N]):
            assert x.stride(1) == 1 or N == 1
            for threads in THREADS:
                y = kernels.matmul(fmt, x, threads=threads, backend=backend)
                label = f"{kernels.kernel_name(fmt, backend)} N={N} ld={x.stride(0)} t={threads}"
                assert_product(y, W, x, label)


def test_aligned_rows_keeps_values_and_aligns_rows():
    x = torch.randn(5, 49)
    padded = kernels.aligned_rows(x)
    assert torch.equal(padded, x) and padded.stride() == (64, 1)
    assert padded.data_ptr() % 64 == 0
    for N in (1, 16, 64):
        same = torch.randn(5, N)
        assert kernels.aligned_rows(same) is same


def test_csr(backend, gen, by_hand):
    for M, K in SHAPES:
        check_all(*by_hand.csr(M, K, gen), backend, gen)
    # Rows longer than 8 (full gathers) and empty rows.
    check_all(*by_hand.csr(40, 90, gen, density=0.5), backend, gen)
    check_all(*by_hand.csr(40, 90, gen, density=0.0), backend, gen)


@pytest.mark.parametrize("block", [(1, 8), (4, 4), (2, 16), (3, 5)])
def test_bsr(block, backend, gen, by_hand):
    for M, K in SHAPES:
        check_all(*by_hand.bsr(M, K, *block, gen), backend, gen)


@pytest.mark.parametrize(
    "nm", [(2, 4), (1, 4), (4, 8), (3, 8), (1, 1), (1, 8), (2, 5), (3, 32), (5, 33), (20, 24)]
)
def test_nm(nm, backend, gen, by_hand):
    # The GEMV's permute path (AVX-512, m <= 32) takes P slots of whole runs spanning at
    # most 32 columns a step (2:4: 16; 2:5: 12; 3:32: 3), two steps a loop, then one, then
    # slot by slot from where 32 columns pass K; m = 33 and n = 20 (a run's 20 slots do not
    # fit a 16-slot step) take the gather path or the visitor. K = 300 gives several loop
    # turns and every remainder.
    for M, K in [*SHAPES, (9, 300)]:
        check_all(*by_hand.nm(M, K, *nm, gen), backend, gen)


@pytest.mark.parametrize("backend_name", ["dense", "cpu", "reference"])
def test_dense(backend_name, gen, by_hand):
    for M, K in SHAPES:
        check_all(*by_hand.dense(M, K, gen), backend_name, gen)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_torch_sparse_csr(gen, by_hand):
    for M, K in SHAPES:
        check_all(*by_hand.csr(M, K, gen), "torch_sparse_csr", gen)


@pytest.mark.parametrize(
    ("pattern", "params"),
    [
        ("unstructured", {}),
        ("row_balanced", {}),
        ("block", {"R": 1, "C": 8}),
        ("block", {"R": 4, "C": 4}),
        ("nm", {"N": 2, "M": 4}),
        ("gs", {"V": 8}),
        ("gs", {"V": 4, "B": 8}),
        ("gs_scatter", {"V": 16}),
        ("gs_free", {"V": 8}),
    ],
)
def test_encoded_formats(pattern, params, backend, gen):
    # The real pipeline: project |w| onto the pattern, encode, multiply.
    from gsprune import formats, patterns

    w = torch.randn(70, 52, generator=gen)
    mask = patterns.get(pattern).project(w.abs(), 0.75, **params)
    fmt = formats.encode(w, mask, pattern, **params)
    check_all(fmt, (w * mask).double(), backend, gen)


@pytest.fixture(autouse=True)
def split_every_call(monkeypatch):
    """Small test matrices would run on one thread (GRAIN_SIZE): force the split paths."""
    monkeypatch.setattr(kernels, "GRAIN_SIZE", 0)
