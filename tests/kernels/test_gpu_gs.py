"""GPU kernels (``gsprune.kernels.gpu``) against the float64 product of the matrix they hold.

Where the cases run:

- ``[interpreter]``: the Triton kernels in Triton's interpreter on CPU tensors. Triton
  decides at import whether it interprets (``TRITON_INTERPRET=1``), so these run only in a
  process started with it: ``test_triton_interpreter_in_a_subprocess`` starts one that
  runs ``-k interpreter`` on this file. They are skipped in the parent process.
- ``[cuda]`` (marker ``gpu``): the same cases plus the CUDA C++ kernel on the device;
  skipped without one.
- the torch baselines run on the CPU in the parent process too, and the Triton kernels
  and the CUDA source are compiled for sm_90 here without a GPU (``slow``).

Shapes are odd on purpose: partial last bands (M or K not a multiple of V), empty bands,
N = 1 (GEMV), 3 and 17 (partial column tiles) and 70 (more than one column tile), int16
and int32 indices, float32 and bfloat16 values. Padding lanes of the hand-made formats
hold NaN (tests/kernels/conftest.py), so a kernel that adds one shows NaN.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gsprune import formats, patterns
from gsprune.formats.base import GSMatrix
from gsprune.kernels import gpu
from gsprune.kernels.reference import gs_entries

INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
HAS_CUDA = torch.cuda.is_available()
REPO = Path(__file__).resolve().parents[2]
SHAPES = [(37, 50), (70, 45)]
NS = (1, 3, 17)

DEVICES = [
    pytest.param(
        "cpu",
        id="interpreter",
        marks=pytest.mark.skipif(not INTERPRETING, reason="runs under TRITON_INTERPRET=1"),
    ),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")],
    ),
]
BASELINE_DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")],
    ),
]


def assert_product(y: torch.Tensor, W: torch.Tensor, x: torch.Tensor, what: str) -> None:
    """y ~= W @ x within 1e-4 of sum |W x| (float32 accumulation) and 1e-5 absolute."""
    x64 = x.double().cpu()
    truth, scale = W @ x64, W.abs() @ x64.abs()
    y = y.cpu()
    assert y.dtype == torch.float32 and y.shape == truth.shape, f"{what}: {y.dtype} {y.shape}"
    err = (y.double() - truth).abs()
    ok = err <= 1e-4 * scale + 1e-5
    assert bool(ok.all()), f"{what}: max error {err.max().item():.3g} (NaN: {y.isnan().any()})"


def held(fmt: GSMatrix, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """float64[M, K]: the sum of the stored entries, values rounded to ``dtype`` first (as a
    kernel that reads them in that dtype sees them); padding lanes dropped."""
    rows, cols, values = gs_entries(fmt)
    M, K = fmt.shape
    keep = (rows < M) & (cols < K)
    W = torch.zeros(M, K, dtype=torch.float64)
    values = values.to(dtype).double()
    W.index_put_((rows[keep], cols[keep]), values[keep], accumulate=True)
    return W


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", ["gs", "gs_scatter", "gs_free"])
@pytest.mark.parametrize("V", [8, 32])
@pytest.mark.parametrize("index_dtype", [torch.int16, torch.int32])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gs_triton(device, variant, V, index_dtype, dtype, by_hand, gen):
    for M, K in SHAPES:
        fmt, _ = by_hand.gs(M, K, V, variant, gen, index_dtype=index_dtype)
        run = gpu.prepare(fmt, device, "gs_triton", dtype=dtype)
        assert run.label == f"{variant}_triton"
        for N in NS:
            x = torch.randn(K, N, generator=gen)
            y = run(x.to(device))
            assert_product(y, held(fmt, dtype), x, f"{variant} V={V} {M}x{K} N={N}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gs_triton_splits_long_bands(device, dtype, by_hand, gen):
    # Few bands with many groups: the groups of a band are split over programs that add
    # into y (atomics); k differs between bands, so slices end at different groups.
    from gsprune.kernels.gpu import triton_gs

    fmt, _ = by_hand.gs(40, 300, 8, "gs", gen, max_k=41)
    max_k = int(fmt.band_ptr.diff().max())
    assert triton_gs.split(5, 1, max_k) > 1 and triton_gs.split(5, 2, max_k) > 1
    run = gpu.prepare(fmt, device, "gs_triton", dtype=dtype)
    for N in (1, 70):
        x = torch.randn(300, N, generator=gen)
        assert_product(run(x.to(device)), held(fmt, dtype), x, f"split bands N={N}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", ["gs", "gs_scatter", "gs_free"])
def test_gs_triton_on_encoded_patterns(device, variant, gen):
    # Formats from the real projection and encoder: padding lanes hold 0, not NaN.
    weight = torch.randn(45, 70, generator=gen)
    mask = patterns.get(variant).project(weight.abs(), 0.7, V=8)
    fmt = formats.encode(weight, mask, variant, V=8)
    for N, x_dtype in ((1, torch.float32), (70, torch.float32), (5, torch.bfloat16)):
        x = torch.randn(70, N, generator=gen).to(x_dtype)
        y = gpu.matmul(fmt, x.to(device), kernel="gs_triton")
        assert_product(y, fmt.to_dense().double(), x.float(), f"{variant} N={N} x {x_dtype}")
    x1 = torch.randn(70, generator=gen)
    y1 = gpu.prepare(fmt, device)(x1.to(device))  # gs_triton is the GS default
    assert y1.shape == (45,)
    assert_product(y1[:, None], fmt.to_dense().double(), x1[:, None], f"{variant} 1-D x")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", ["gs", "gs_scatter", "gs_free"])
def test_gs_triton_int32_indices_past_32767(device, variant, by_hand, gen):
    M, K = (40000, 20) if variant == "gs_scatter" else (20, 40000)
    fmt, W = by_hand.gs(M, K, 8, variant, gen, max_k=3)
    assert fmt.index.dtype == torch.int32
    x = torch.randn(K, 3, generator=gen)
    assert_product(gpu.matmul(fmt, x.to(device), "gs_triton"), W, x, variant)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
@pytest.mark.parametrize("V", [4, 8, 32])
@pytest.mark.parametrize("index_dtype", [torch.int16, torch.int32])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gs_cuda_smem(V, index_dtype, dtype, by_hand, gen):
    for M, K in [*SHAPES, (64, 4096)]:
        fmt, _ = by_hand.gs(M, K, V, "gs", gen, index_dtype=index_dtype, max_k=40)
        run = gpu.prepare(fmt, "cuda", "gs_cuda_smem", dtype=dtype)
        for N in (*NS, 70):
            x = torch.randn(K, N, generator=gen)
            assert_product(run(x.cuda()), held(fmt, dtype), x, f"smem V={V} {M}x{K} N={N}")


@pytest.mark.parametrize("device", BASELINE_DEVICES)
def test_torch_baselines(device, by_hand, gen):
    weight = torch.randn(37, 50, generator=gen)
    gs = formats.encode(weight, patterns.get("gs").project(weight.abs(), 0.6, V=8), "gs", V=8)
    csr, W_csr = by_hand.csr(37, 50, gen)
    bsr, W_bsr = by_hand.bsr(37, 50, 4, 4, gen)  # padded grid: 4 divides neither
    bsr_even, W_even = by_hand.bsr(40, 48, 8, 8, gen)
    cases = [
        ("dense_cublas", gs, gs.to_dense().double()),
        ("csr_cusparse", gs, gs.to_dense().double()),
        ("csr_cusparse", csr, W_csr),
        ("dense_cublas", csr, W_csr),
        ("bsr_torch", bsr, W_bsr),
        ("bsr_torch", bsr_even, W_even),
    ]
    for kernel, fmt, W in cases:
        run = gpu.prepare(fmt, device, kernel)
        for N in (1, 5):
            x = torch.randn(fmt.shape[1], N, generator=gen)
            assert_product(run(x.to(device)), W, x, f"{kernel} on {fmt.name} N={N}")


def test_csr_baseline_of_a_gs_format_keeps_its_structure(gen):
    weight = torch.randn(24, 40, generator=gen)
    mask = patterns.get("gs").project(weight.abs(), 0.75, V=8)
    fmt = formats.encode(weight, mask, "gs", V=8)
    csr = gpu.torch_ops.as_csr(fmt)
    assert torch.equal(csr.structure(), fmt.structure())
    assert torch.equal(csr.to_dense(), fmt.to_dense())


def test_default_kernels(by_hand, gen):
    bsr_1x8, W = by_hand.bsr(20, 32, 1, 8, gen)
    assert gpu.kernel_for(bsr_1x8) == "csr_cusparse"  # torch BSR takes square blocks only
    assert gpu.kernel_for(by_hand.bsr(20, 32, 4, 4, gen)[0]) == "bsr_torch"
    x = torch.randn(32, 3, generator=gen)
    assert_product(gpu.prepare(bsr_1x8, "cpu")(x), W, x, "1x8 BSR through CSR")
    assert [gpu.default_kernel(name) for name in ("gs", "csr", "bsr", "dense")] == [
        "gs_triton",
        "csr_cusparse",
        "bsr_torch",
        "dense_cublas",
    ]
    with pytest.raises(ValueError, match="no GPU kernel for format 'nm'"):
        gpu.default_kernel("nm")
    assert set(gpu.KERNELS.names()) == {
        "gs_triton",
        "gs_cuda_smem",
        "dense_cublas",
        "csr_cusparse",
        "bsr_torch",
    }


def test_prepare_and_call_errors(by_hand, gen):
    gs, _ = by_hand.gs(20, 30, 8, "gs", gen)
    scatter, _ = by_hand.gs(20, 30, 8, "gs_scatter", gen)
    csr, _ = by_hand.csr(20, 30, gen)
    nm, _ = by_hand.nm(20, 30, 2, 4, gen)
    bsr_1x8, _ = by_hand.bsr(20, 30, 1, 8, gen)
    with pytest.raises(ValueError, match="unknown GPU kernel 'nope'"):
        gpu.prepare(gs, "cpu", "nope")
    with pytest.raises(ValueError, match="no GPU kernel for format 'nm'"):
        gpu.prepare(nm, "cpu")
    with pytest.raises(ValueError, match="runs GS formats only"):
        gpu.prepare(csr, "cpu", "gs_triton")
    with pytest.raises(ValueError, match="runs BSR formats only"):
        gpu.prepare(csr, "cpu", "bsr_torch")
    with pytest.raises(ValueError, match="square blocks only"):
        gpu.prepare(bsr_1x8, "cpu", "bsr_torch")
    with pytest.raises(ValueError, match="float32 baseline"):
        gpu.prepare(csr, "cpu", "csr_cusparse", dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="dtype=torch.float16 is not supported"):
        gpu.prepare(gs, "cpu", "dense_cublas", dtype=torch.float16)
    with pytest.raises(ValueError, match="device meta"):
        gpu.prepare(gs, "meta", "dense_cublas")
    with pytest.raises(ValueError, match="CUDA device only"):
        gpu.prepare(gs, "cpu", "gs_cuda_smem")
    if not HAS_CUDA:
        with pytest.raises(ValueError, match=r"torch.cuda.is_available\(\) is False"):
            gpu.prepare(gs, "cuda", "gs_triton")
    if not INTERPRETING:
        with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
            gpu.prepare(gs, "cpu", "gs_triton")
    run = gpu.prepare(csr, "cpu", "csr_cusparse")
    for bad, match in [
        (torch.randn(31, 2), "K=30"),
        (torch.randn(30, 2, 2), "K=30"),
        (torch.randn(30, 2).double(), "dtype torch.float64"),
        (torch.randn(2, 30).T, "contiguous"),
        ([0.0] * 30, "got list"),
    ]:
        with pytest.raises(ValueError, match=match):
            run(bad)
    if HAS_CUDA:
        with pytest.raises(ValueError, match="move x there"):
            run(torch.randn(30, 2, device="cuda"))
        with pytest.raises(ValueError, match="variant 'gs' with V dividing 32"):
            gpu.prepare(scatter, "cuda", "gs_cuda_smem")


@pytest.mark.slow
@pytest.mark.skipif(INTERPRETING, reason="this is the parent of the interpreter run")
def test_triton_interpreter_in_a_subprocess():
    # Triton reads TRITON_INTERPRET when this file's kernels are decorated (at import),
    # so the interpreter cases need a fresh process with it set.
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__]
        + ["-k", "interpreter and not subprocess"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    tail = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, tail
    assert " passed" in done.stdout and "skipped" not in done.stdout.splitlines()[-1], tail


def _compile_sm90(kernel, signature: dict[str, str], constexprs: dict[str, object]):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    return triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})


@pytest.mark.slow
@pytest.mark.skipif(INTERPRETING, reason="the interpreter does not compile")
def test_triton_kernels_compile_for_sm90_without_a_gpu():
    # The interpreter does not run Triton's compiler; this does (to PTX and SASS, with the
    # ptxas Triton ships), so a kernel that only the compiler rejects fails here.
    from gsprune.kernels.gpu import triton_gs

    rows = _compile_sm90(
        triton_gs._gs_rows,
        {
            "band_ptr": "*i64",
            "values": "*bf16",
            "index": "*i16",
            "x": "*fp32",
            "y": "*fp32",
            "M": "i32",
            "N": "i32",
            "SPLIT": "i32",
            "V": "constexpr",
            "BG": "constexpr",
            "BN": "constexpr",
            "ATOMIC": "constexpr",
        },
        {"V": 32, "BG": 8, "BN": 1, "ATOMIC": True},
    )
    assert "ld.global" in rows.asm["ptx"]
    scatter = _compile_sm90(
        triton_gs._gs_scatter,
        {
            "group_band": "*i32",
            "values": "*fp32",
            "index": "*i32",
            "lane_index": "*i32",
            "x": "*fp32",
            "y": "*fp32",
            "G": "i32",
            "K": "i32",
            "N": "i32",
            "V": "constexpr",
            "BG": "constexpr",
            "BN": "constexpr",
            "FREE": "constexpr",
        },
        {"V": 8, "BG": 4, "BN": 16, "FREE": False},
    )
    assert "red.global" in scatter.asm["ptx"] or "atom.global" in scatter.asm["ptx"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed here")
def test_cuda_kernel_source_compiles_for_sm90(tmp_path):
    # The kernel file includes no torch header, so nvcc alone checks it (seconds); the
    # binding is compiled with it by torch's extension builder on a machine with a GPU.
    from gsprune.kernels.gpu import cuda_smem

    done = subprocess.run(
        ["nvcc", "-std=c++17", "-O3", "-arch=sm_90", "-c", str(cuda_smem.CSRC / "gs_smem.cu")]
        + ["-o", str(tmp_path / "gs_smem.o"), "-Xptxas", "-warn-spills"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "spill" not in done.stderr.lower(), done.stderr[-4000:]
