"""The kernels' public API: backends, names, threads, the build, and every error case."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, replace

import pytest
import torch

from gsprune import kernels
from gsprune.formats.base import SparseFormat
from gsprune.kernels import build


def test_compiled_kernels_are_built(compiled):
    # CI fails here when the build breaks, unless GSPRUNE_ALLOW_REFERENCE=1 (then skipped).
    assert kernels.cpu_available()
    best = build.supported_isas()[0]
    assert kernels.simd_isa() == {"portable": "scalar"}.get(best, best)
    assert build.build_error() is None
    assert build.extension_name(best).startswith(f"gsprune_cpu_{best}_")


def test_a_build_lock_left_by_a_killed_build_does_not_hang_the_next_load(compiled):
    """torch's build lock file outlives a process killed while compiling; the next load
    must clear it (under gsprune's own lock) instead of waiting on it forever."""
    isa = build.best_isa()
    stale = build.build_root() / build.extension_name(isa) / "lock"
    stale.write_text("")
    code = f"from gsprune.kernels import build; assert build.load({isa!r}) is not None"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not stale.exists()


def test_isa_is_chosen_at_run_time(compiled, monkeypatch, by_hand, gen):
    supported = build.supported_isas()
    assert supported[-1] == "portable" and set(supported) <= set(build.ISAS)
    fmt, _ = by_hand.gs(20, 30, 8, "gs", gen)
    for isa in supported:
        monkeypatch.setenv(build.ISA_ENV, isa)
        assert build.best_isa() == isa
        if isa != "portable":  # the portable build is not compiled where a vector one runs
            assert kernels.kernel_name(fmt) == f"gs_cpu_{isa}"
    monkeypatch.setenv(build.ISA_ENV, "sse9")
    with pytest.raises(ValueError, match="unknown CPU kernel build 'sse9'"):
        kernels.matmul(fmt, torch.randn(30))
    monkeypatch.delenv(build.ISA_ENV)
    # A build this CPU lacks is refused by name, with the flags it misses.
    monkeypatch.setattr(build, "cpu_flags", lambda: frozenset({"sse2"}))
    assert build.supported_isas() == ["portable"]
    with pytest.raises(ValueError, match="avx512 CPU kernels need CPU flags.*avx512f"):
        kernels.matmul(fmt, torch.randn(30), backend="cpu_avx512")


def test_build_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GSPRUNE_BUILD_DIR", str(tmp_path))
    assert build.build_root() == tmp_path
    monkeypatch.delenv("GSPRUNE_BUILD_DIR")
    assert build.build_root().parts[-3:] == (".cache", "gsprune", "torch_extensions")


def test_backends_and_kernel_names(compiled, by_hand, gen):
    names = {"cpu", "cpu_avx512", "cpu_avx2", "cpu_scalar", "reference", "dense"}
    assert names | {"torch_sparse_csr"} <= set(kernels.backends())
    isa = kernels.simd_isa()
    gs, _ = by_hand.gs(20, 30, 8, "gs_scatter", gen)
    csr, _ = by_hand.csr(20, 30, gen)
    dense, _ = by_hand.dense(20, 30, gen)
    rows, _ = by_hand.gs(20, 30, 8, "gs", gen)
    # The compiled kernels run gs_scatter, gs_free and CSR from row plans, and say so.
    assert kernels.kernel_name(gs) == f"gs_scatter_cpu_{isa}_row_plan"
    assert kernels.kernel_name(gs, "cpu_scalar") == "gs_scatter_cpu_scalar_row_plan"
    assert kernels.kernel_name(gs, "reference") == "gs_scatter_reference"
    assert kernels.kernel_name(rows) == f"gs_cpu_{isa}"
    assert kernels.kernel_name(csr) == f"csr_cpu_{isa}_row_plan"
    assert kernels.kernel_name(csr, "torch_sparse_csr") == "csr_torch_sparse_csr"
    assert kernels.kernel_name(dense) == "dense_torch_linear"
    assert kernels.kernel_name(dense, "dense") == "dense_torch_linear"


def test_threads_are_restored(compiled, by_hand, gen):
    fmt, _ = by_hand.dense(30, 40, gen)
    before = torch.get_num_threads()
    x = torch.randn(40, 3, generator=gen)
    for backend in ("dense", "cpu", "reference"):
        kernels.matmul(fmt, x, threads=1, backend=backend)
        assert torch.get_num_threads() == before


def test_results_are_fresh_tensors(compiled, by_hand, gen):
    # y must not alias x or the format, and a second call must not see the first's y.
    fmt, W = by_hand.gs(16, 16, 8, "gs", gen)
    x = torch.randn(16, 5, generator=gen)
    y1 = kernels.matmul(fmt, x)
    y1.fill_(1e9)
    y2 = kernels.matmul(fmt, x)
    torch.testing.assert_close(y2.double(), W @ x.double(), rtol=1e-4, atol=1e-4)


@pytest.fixture
def small(by_hand, gen):
    fmt, _ = by_hand.gs(12, 10, 4, "gs", gen)
    return fmt


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.randn(10, 3, dtype=torch.float64), "float32"),
        (torch.randn(10, 3, dtype=torch.float16), "float32"),
        (torch.randn(3, 10).T, "contiguous"),
        (torch.randn(11, 3), "K=10"),
        (torch.randn(9), "K=10"),
        (torch.randn(10, 3, 2), "1-D"),
        ([1.0] * 10, "torch.Tensor"),
    ],
)
@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_bad_x_is_rejected(small, x, message, backend):
    with pytest.raises(ValueError, match=message):
        kernels.matmul(small, x, backend=backend)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_threads_are_rejected(small, threads):
    with pytest.raises(ValueError, match="threads"):
        kernels.matmul(small, torch.randn(10), threads=threads)


def test_unknown_backend_and_unsupported_format(small, by_hand, gen):
    with pytest.raises(ValueError, match="unknown kernel backend 'gpu'.*accepted: .*cpu"):
        kernels.matmul(small, torch.randn(10), backend="gpu")
    # torch.sparse only has CSR; the dense baseline only the dense format.
    with pytest.raises(ValueError, match="'gs'.*accepted: csr"):
        kernels.matmul(small, torch.randn(10), backend="torch_sparse_csr")
    csr, _ = by_hand.csr(5, 10, gen)
    with pytest.raises(ValueError, match="'csr'.*accepted: dense"):
        kernels.matmul(csr, torch.randn(10), backend="dense")


def test_unknown_format_objects_are_rejected():
    @dataclass
    class Diagonal(SparseFormat):
        name = "diagonal"
        values: torch.Tensor

    with pytest.raises(ValueError, match="no kernels for format Diagonal"):
        kernels.matmul(Diagonal((3, 3), torch.ones(3)), torch.randn(3))
    with pytest.raises(ValueError, match="expected a gsprune format"):
        kernels.matmul(torch.eye(3), torch.randn(3))


def test_malformed_formats_are_rejected(small, by_hand, gen):
    bad = [
        (replace(small, index=small.index.long()), "index must be .*int16 or torch.int32"),
        (replace(small, values=small.values[:-1]), "values must be"),
        (replace(small, band_ptr=small.band_ptr[:-1]), "band_ptr must be"),
        (replace(small, variant="gs_diagonal"), "unknown GS variant 'gs_diagonal'"),
        (replace(small, variant="gs_free", band_ptr=small.band_ptr[[0, -1]]), "lane_index"),
        (replace(small, values=small.values.T.contiguous().T), "not contiguous"),
    ]
    csr, _ = by_hand.csr(5, 10, gen)
    bad.append((replace(csr, col_indices=csr.col_indices.long()), "col_indices must be"))
    nm, _ = by_hand.nm(5, 10, 2, 4, gen)
    bad.append((replace(nm, n=5), "n=5, m=4"))
    bsr, _ = by_hand.bsr(5, 10, 2, 2, gen)
    bad.append((replace(bsr, block=(2, 3)), "values must be"))
    for fmt, message in bad:
        for backend in ("cpu", "reference"):
            with pytest.raises(ValueError, match=message):
                kernels.matmul(fmt, torch.randn(fmt.shape[1]), backend=backend)


def test_fallback_names_the_reference_kernel(monkeypatch, by_hand, gen):
    # A failed build must never pass silently as "cpu": the name says "reference".
    monkeypatch.setattr(kernels, "cpu_available", lambda isa=None: False)
    fmt, _ = by_hand.gs(9, 7, 4, "gs", gen)
    assert kernels.kernel_name(fmt) == "gs_reference"
    x = torch.randn(7, 2, generator=gen)
    assert torch.equal(kernels.matmul(fmt, x), kernels.matmul(fmt, x, backend="reference"))


@pytest.mark.parametrize("backend", ["cpu", "cpu_scalar", "reference", "torch_sparse_csr"])
def test_bind_runs_what_matmul_runs(compiled, backend, by_hand, gen):
    csr, _ = by_hand.csr(40, 70, gen)
    gs, _ = by_hand.gs(40, 70, 8, "gs_free", gen)
    for fmt in (csr, gs) if backend != "torch_sparse_csr" else (csr,):
        run = kernels.bind(fmt, threads=2, backend=backend)
        for N in (1, 9, 600):  # 600 columns pass the grain size: two threads
            x = torch.randn(70, N, generator=gen)
            assert torch.equal(run(x), kernels.matmul(fmt, x, threads=2, backend=backend))
    with pytest.raises(ValueError, match="threads=0"):
        kernels.bind(csr, threads=0)
    with pytest.raises(ValueError, match="unknown kernel backend"):
        kernels.bind(csr, backend="tpu")
