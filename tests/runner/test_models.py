"""Kept pruned models (``gsprune.load_run``) and runs that start from given dense weights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import gsprune
from gsprune import kernels
from gsprune.views import gemm_view
from gsprune.weights import read_state_dict

SWEEP = ("-m", "pattern=gs,unstructured", "sparsity=0.8")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, run_cli_in, tiny_args) -> tuple[Path, str]:
    """A finished two-cell sweep (nothing deleted afterwards): its results dir and log."""
    results = tmp_path_factory.mktemp("sweep") / "results"
    done = run_cli_in(results, *SWEEP, *tiny_args, "latency=model")
    assert done.returncode == 0, done.stdout[-3000:]
    return results, done.stdout


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "records").glob("*.json"))]


@pytest.mark.slow
def test_sweep_keeps_each_pruned_model_and_load_run_gives_the_record_back(sweep):
    results, log = sweep
    found = records(results)
    assert len(found) == 2
    assert "sparsity=0.80" in log, "the fine-tune progress bar shows the mask's sparsity"
    assert not list((results / "checkpoints").glob("*.pt")), "resume checkpoints are removed"
    torch.set_num_threads(1)  # the run evaluated with threads=1: the same reduction order
    for record in found:
        entry = record["model"]
        path = results / entry["file"]
        assert entry["file"] == f"models/{record['run_id']}.pt"
        assert path.stat().st_size == entry["bytes"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]

        loaded = gsprune.load_run(results / "records" / f"{record['run_id']}.json")
        assert not loaded.model.training
        assert loaded.task.test(loaded.model).value == record["metric"]["value"]
        assert set(loaded.formats) == set(record["sparsity"]["layers"])
        state = loaded.model.state_dict()
        x = torch.randn(max(f.shape[1] for f in loaded.formats.values()), 3)
        for name, fmt in loaded.formats.items():
            assert fmt.name == record["sparsity"]["layers"][name]["format"]
            weight = gemm_view(state[name]).float()
            mask = gemm_view(loaded.masks[name])
            assert torch.equal(weight, weight * mask), "pruned weights are exactly 0"
            assert 1 - int(mask.sum()) / mask.numel() == pytest.approx(0.8, abs=0.02)
            cols = x[: weight.shape[1]].contiguous()
            torch.testing.assert_close(kernels.matmul(fmt, cols), weight @ cols)
        # A model file path works as well, and finds the record beside it.
        again = gsprune.load_run(path)
        assert again.record == record


@pytest.mark.slow
def test_a_run_from_given_dense_weights_trains_no_dense_model(sweep, run_cli_in, tiny, tmp_path):
    """Edge values on the way: task.dense.epochs=0, task.finetune.epochs=0, keep_model=false."""
    results, _ = sweep
    (cache,) = (results / "cache" / "dense").glob("*.pt")
    trained = torch.load(cache, weights_only=True)
    plain = tmp_path / "dense_state_dict.pt"
    torch.save(trained["model"], plain)  # the plain torch form: just a state dict

    other = tmp_path / "results"
    given = ("task.dense.epochs=0", "task.finetune.epochs=0", f"task.dense.init={plain}")
    done = run_cli_in(other, *tiny, "latency=model", "keep_model=false", *given)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "dense 1/" not in done.stdout and "dense model trained" not in done.stdout
    assert "no dense training" in done.stdout
    (record,) = records(other)
    assert record["metric"]["dense_value"] == records(results)[0]["metric"]["dense_value"]
    init = record["dense"]["init"]
    assert init["source"] == str(plain) and init["path"] == str(plain.resolve())
    assert init["sha256"] == hashlib.sha256(plain.read_bytes()).hexdigest()
    (new_cache,) = (other / "cache" / "dense").glob("*.pt")
    assert torch.load(new_cache, weights_only=True)["fingerprint"].count(init["sha256"]) == 1

    assert record["model"] is None and not (other / "models").exists()
    with pytest.raises(FileNotFoundError, match="keep_model=false"):
        gsprune.load_run(record)


@pytest.mark.slow
def test_torchvision_weights_come_from_the_local_hub_cache_only(run_cli_in, results, tmp_path):
    data = tmp_path / "imagenet"  # the smallest ImageNet layout task.check() accepts
    for split in ("train", "val"):
        (data / split / "n01440764").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(data / split / "n01440764" / "a.JPEG")
    hub = tmp_path / "torch_home"  # empty: the weights are not there
    done = run_cli_in(
        results,
        "task=imagenet",
        f"task.data_dir={data}",
        "task.dense.init=torchvision",
        timeout=120,
        env={"TORCH_HOME": str(hub)},
    )
    assert done.returncode == 2, done.stdout[-3000:]
    assert "Traceback" not in done.stdout
    (message,) = [line for line in done.stdout.splitlines() if "gsprune: error:" in line]
    expected = hub / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    assert str(expected) in message and "never downloads" in message
    assert "curl -L https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in message
    assert not (hub / "hub").exists(), "nothing was downloaded"
    assert not (results / "cache").exists() and not (results / "records").exists()

    small = run_cli_in(results, "task.dense.init=torchvision", timeout=120)
    assert small.returncode == 2 and "resnet_small" in small.stdout
    assert "has no torchvision weights" in small.stdout


def test_read_state_dict_accepts_every_documented_form(tmp_path):
    state = {"weight": torch.ones(2, 3), "bias": torch.zeros(2)}
    forms = {
        "plain": state,
        "ddp": {f"module.{k}": v for k, v in state.items()},
        "dense_cache": {"key": "abc", "model": state, "metric": 1.0},
        "pruned_model": {"key": "abc", "state_dict": state, "masks": {}},
    }
    for name, obj in forms.items():
        torch.save(obj, tmp_path / f"{name}.pt")
        loaded = read_state_dict(tmp_path / f"{name}.pt")
        assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable torch file"):
        read_state_dict(tmp_path / "junk.pt")
    torch.save({"epoch": 3}, tmp_path / "none.pt")
    with pytest.raises(ValueError, match="holds no state dict"):
        read_state_dict(tmp_path / "none.pt")
