"""measure() per backend and summarize() into the run record's latency entry."""

from __future__ import annotations

import pytest
import torch

from gsprune import formats, patterns
from gsprune.latency import BACKENDS, measure, model, summarize

TIMED_KEYS = {"sparse", "dense", "speedup", "sparse_spread", "dense_spread", "repeats", "kernel"}


@pytest.fixture(scope="module")
def layer() -> tuple[formats.GSMatrix, torch.Tensor]:
    """A small GS(8, 8) layer at 75% sparsity and its pruned dense weight [40, 64]."""
    torch.manual_seed(3)
    weight = torch.randn(40, 64)
    mask = patterns.get("gs").project(weight.abs(), 0.75, V=8)
    return formats.encode(weight, mask, "gs", V=8), weight * mask


def test_backends_registered() -> None:
    assert {"cpu", "cuda", "model"} <= set(BACKENDS.names())
    assert BACKENDS.get("cpu").unit == "ms"
    assert BACKENDS.get("model").unit == "steps"


def test_model_backend(layer) -> None:
    fmt, weight = layer
    # The runner's model-only config sets warmup = repeats = 0: they do not apply here.
    result = measure(fmt, weight, backend="model", warmup=0, repeats=0)
    groups = fmt.values.shape[0]
    assert result["sparse"] == groups  # valid GS: one step per group
    assert result["dense"] == model.dense_steps((40, 64), 8) == 40 * 8
    assert result["speedup"] == pytest.approx(40 * 8 / groups)
    assert (result["V"], result["B"], result["conflict_steps"]) == (8, 8, 0)


def test_model_backend_dense_format_is_the_baseline() -> None:
    weight = torch.randn(24, 40)
    fmt = formats.encode(weight, torch.ones_like(weight, dtype=torch.bool), "dense")
    result = measure(fmt, weight, backend="model", V=8)
    assert result["sparse"] == result["dense"] == 24 * 5 and result["speedup"] == 1.0


def test_model_backend_needs_V_for_csr() -> None:
    weight = torch.eye(8)
    fmt = formats.encode(weight, weight != 0, "unstructured")
    assert measure(fmt, weight, backend="model", V=4)["sparse"] == 8  # one chunk per row
    with pytest.raises(ValueError, match="V=None"):
        measure(fmt, weight, backend="model")


def test_cpu_backend(layer) -> None:
    fmt, weight = layer
    result = measure(fmt, weight, backend="cpu", batch=3, threads=1, warmup=1, repeats=3)
    assert set(result) == TIMED_KEYS
    assert result["sparse"] > 0 and result["dense"] > 0 and result["repeats"] == 3
    assert result["speedup"] == pytest.approx(result["dense"] / result["sparse"])
    assert result["kernel"].startswith("gs_")  # e.g. gs_cpu_avx2, or gs_reference


def test_cpu_backend_restores_threads(layer) -> None:
    fmt, weight = layer
    before = torch.get_num_threads()
    measure(fmt, weight, backend="cpu", threads=1, warmup=0, repeats=1)
    assert torch.get_num_threads() == before


def test_cpu_backend_rejects_a_weight_the_format_does_not_hold(layer) -> None:
    fmt, weight = layer
    with pytest.raises(ValueError, match="does not hold"):
        measure(fmt, weight + 1, backend="cpu", warmup=0, repeats=1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a CUDA device")
def test_cuda_backend_without_device(layer) -> None:
    fmt, weight = layer
    with pytest.raises(ValueError, match="CUDA device"):
        measure(fmt, weight, backend="cuda")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backend": "tpu"}, "unknown latency backend 'tpu'"),
        ({"backend": "cpu", "batch": 0}, "batch=0"),
        ({"backend": "cpu", "threads": 0}, "threads=0"),
        ({"backend": "cpu", "repeats": 0}, "repeats=0"),
        ({"backend": "model", "batch": 0}, "batch=0"),
    ],
)
def test_measure_bad_arguments(layer, kwargs: dict, match: str) -> None:
    fmt, weight = layer
    with pytest.raises(ValueError, match=match):
        measure(fmt, weight, **kwargs)


def test_measure_shape_mismatch(layer) -> None:
    fmt, weight = layer
    with pytest.raises(ValueError, match=r"shape \(64, 40\)"):
        measure(fmt, weight.T, backend="model")


def test_summarize_sums_layers() -> None:
    layers = {
        "fc1": {"sparse": 1.0, "dense": 4.0, "speedup": 4.0, "kernel": "gs_cpu_avx2"},
        "fc2": {"sparse": 3.0, "dense": 4.0, "speedup": 4 / 3, "kernel": "reference"},
    }
    entry = summarize(layers, "cpu", {"batch": 1, "threads": 2})
    assert set(entry) == {"unit", "sparse", "dense", "speedup", "settings", "layers"}
    assert entry["unit"] == "ms"
    assert (entry["sparse"], entry["dense"], entry["speedup"]) == (4.0, 8.0, 2.0)
    assert entry["settings"] == {"batch": 1, "threads": 2, "kernel": "gs_cpu_avx2+reference"}
    assert entry["layers"] == layers and entry["layers"] is not layers


def test_summarize_model_steps_stay_integers() -> None:
    layers = {"a": {"sparse": 5, "dense": 40}, "b": {"sparse": 0, "dense": 8}}
    entry = summarize(layers, "model", {"V": 8, "B": 8})
    assert entry["unit"] == "steps" and entry["sparse"] == 5 and entry["dense"] == 48
    assert isinstance(entry["sparse"], int) and entry["speedup"] == pytest.approx(9.6)
    assert summarize({"b": layers["b"]}, "model", {})["speedup"] == float("inf")


@pytest.mark.parametrize(
    ("layers", "backend", "match"),
    [
        ({}, "cpu", "no layer results"),
        ({"fc": {"sparse": 1.0}}, "cpu", "'fc' lacks \\['dense'\\]"),
        ({"fc": {"sparse": 1.0, "dense": 2.0}}, "gpu", "unknown latency backend"),
    ],
)
def test_summarize_bad_input(layers: dict, backend: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        summarize(layers, backend, {})
