"""The 'cuda' latency backend: refused up front without a GPU; on a GPU (marker ``gpu``)
CUDA-event timing of the run's format beside cuBLAS and cuSPARSE, with the GPU's facts."""

from __future__ import annotations

import pytest
import torch

from gsprune import formats, patterns
from gsprune.latency import check_backend, gpu_facts, machine, machine_facts, measure, summarize
from gsprune.latency.cuda_timing import time_cuda_interleaved

HAS_CUDA = torch.cuda.is_available()
TIMED_KEYS = {"sparse", "dense", "speedup", "sparse_spread", "dense_spread", "repeats", "kernel"}


def encoded(pattern: str, shape=(96, 128), sparsity=0.75, **params):
    torch.manual_seed(5)
    weight = torch.randn(*shape)
    mask = patterns.get(pattern).project(weight.abs(), sparsity, **params)
    return formats.encode(weight, mask, pattern, **params), weight * mask


def test_check_backend_accepts_cpu_and_model_and_names_unknown_ones() -> None:
    assert check_backend("cpu", "gs").unit == "ms"
    assert check_backend("model", "nm").unit == "steps"
    with pytest.raises(ValueError, match="unknown latency backend 'tpu'"):
        check_backend("tpu", "gs")


@pytest.mark.skipif(HAS_CUDA, reason="checks the refusal without a CUDA device")
def test_cuda_is_refused_up_front_without_a_gpu() -> None:
    for format_name in ("gs", "nm", None):
        with pytest.raises(ValueError, match="needs a CUDA device") as err:
            check_backend("cuda", format_name)
        assert "latency=cpu" in str(err.value) and "latency=model" in str(err.value)
    fmt, weight = encoded("gs", V=8)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        measure(fmt, weight, backend="cuda")
    with pytest.raises(ValueError, match="gpu_facts"):
        gpu_facts()
    assert machine_facts()["cuda"] is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fns": {}}, "fns is empty"),
        ({"fns": {"a": 3}}, "not a callable"),
        ({"repeats": 0}, "repeats=0"),
        ({"min_sample_ms": -1.0}, "min_sample_ms"),
    ],
)
def test_time_cuda_interleaved_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"fns": {"a": lambda: None}} | kwargs
    with pytest.raises(ValueError, match=match):
        time_cuda_interleaved(**args)


def test_summarize_lifts_the_device_into_settings() -> None:
    device = {"name": "some GPU", "sm_clock_mhz": 1980.0}
    layers = {
        "fc1": {"sparse": 1.0, "dense": 2.0, "kernel": "gs_triton", "device": device},
        "fc2": {"sparse": 1.0, "dense": 2.0, "kernel": "gs_triton", "device": device},
    }
    entry = summarize(layers, "cuda", {"batch": 1})
    assert entry["settings"] == {"batch": 1, "kernel": "gs_triton", "device": device}


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_time_cuda_interleaved_orders_work_and_uses_graphs() -> None:
    small = torch.randn(256, 256, device="cuda")
    large = torch.randn(4096, 4096, device="cuda")
    timed = time_cuda_interleaved(
        {"small": lambda: small @ small, "large": lambda: large @ large}, warmup=2, repeats=10
    )
    assert list(timed) == ["small", "large"]
    assert timed["large"].stats.median_ms > 10 * timed["small"].stats.median_ms
    assert all(t.graph and t.calls >= 1 and t.stats.repeats == 10 for t in timed.values())


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
@pytest.mark.parametrize(
    ("pattern", "params", "kernel"),
    [
        ("gs", {"V": 32}, "gs_triton"),
        ("gs_scatter", {"V": 8}, "gs_scatter_triton"),
        ("unstructured", {}, "csr_cusparse"),
        ("block", {"R": 4, "C": 4}, "bsr_torch"),
        ("block", {"R": 1, "C": 8}, "csr_cusparse"),
        ("dense", {}, "dense_cublas"),
    ],
)
def test_cuda_backend_times_the_format_beside_cublas_and_cusparse(pattern, params, kernel) -> None:
    fmt, weight = encoded(pattern, **params)
    result = measure(fmt, weight, backend="cuda", batch=3, warmup=2, repeats=5)
    extra = {"cuda_graphs", "device"} | (
        {"torch_csr", "torch_csr_spread"} if pattern != "dense" else set()
    )
    assert set(result) == TIMED_KEYS | extra
    assert result["kernel"] == kernel
    assert result["sparse"] > 0 and result["dense"] > 0 and result["repeats"] == 5
    assert result["speedup"] == pytest.approx(result["dense"] / result["sparse"])
    assert result["device"]["name"] == torch.cuda.get_device_name()
    with pytest.raises(ValueError, match="does not hold"):
        measure(fmt, weight + 1, backend="cuda", warmup=0, repeats=1)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_cuda_backend_refuses_nm_up_front() -> None:
    with pytest.raises(ValueError, match="no GPU kernel for format 'nm'"):
        check_backend("cuda", "nm")
    facts = gpu_facts()
    assert facts["name"] and facts["multiprocessors"] > 0
    assert machine_facts()["cuda"]["name"] == facts["name"]


def test_gpu_clocks_are_read_from_nvidia_smi(tmp_path, monkeypatch) -> None:
    # A stand-in nvidia-smi that answers only for one UUID, as the real one does for
    # --id=GPU-<uuid>; the reader asks by UUID first, then by index.
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        '#!/bin/sh\ncase "$1" in --id=GPU-abc|--id=3) '
        'echo "580.159.04, 1980, 3201, 1980, 3201, 35, [N/A]";; *) exit 6;; esac\n'
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    expected = {
        "driver": "580.159.04",
        "sm_clock_mhz": 1980.0,
        "mem_clock_mhz": 3201.0,
        "max_sm_clock_mhz": 1980.0,
        "max_mem_clock_mhz": 3201.0,
        "temperature_c": 35.0,
        "power_w": None,
    }
    assert machine._smi("abc", 0) == expected
    assert machine._smi("", 3) == expected
    assert machine._smi("other", 1) == {}
