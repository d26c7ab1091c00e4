"""A run killed during dense training resumes at its last finished dense epoch, exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# No fine-tuning and only the step model: the test is about the dense phase.
FAST = ("task.finetune.epochs=0", "latency=model")


def dense_files(results: Path) -> tuple[list[Path], list[Path]]:
    """(published cache entries, partial checkpoints) under ``results``."""
    folder = results / "cache" / "dense"
    partial = sorted(folder.glob("*.partial.pt"))
    return [p for p in sorted(folder.glob("*.pt")) if p not in partial], partial


@pytest.mark.slow
def test_dense_training_killed_after_an_epoch_resumes_to_the_same_weights(
    popen_cli, start_cli, run_cli, results, tiny, tmp_path, kill_process_when
):
    # 1024 training images: 16 steps per epoch (the killed window is still ~1 s wide).
    tiny = [arg for arg in tiny if not arg.startswith("task.fashion_mnist.train_subset=")]
    tiny.append("task.fashion_mnist.train_subset=1024")
    # The uninterrupted run of the same seed, beside the one that gets killed.
    reference = tmp_path / "reference"
    uninterrupted = popen_cli(reference, *tiny, *FAST)
    killed = start_cli(*tiny, *FAST, log=tmp_path / "killed.log")
    kill_process_when(killed, lambda: bool(dense_files(results)[1]), 300, poll=0.02)
    published, partial = dense_files(results)
    assert len(partial) == 1, (tmp_path / "killed.log").read_text()[-3000:]
    assert not published, "the cache entry is published only when dense training ends"

    resumed = run_cli(*tiny, *FAST)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert "resuming dense training after epoch 1/2" in resumed.stdout
    assert "dense 1/2" not in resumed.stdout and "dense 2/2" in resumed.stdout
    published, partial = dense_files(results)
    assert len(published) == 1 and not partial, "the partial checkpoint is removed at the end"

    out, _ = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, out[-3000:]
    (expected,) = dense_files(reference)[0]
    assert expected.name == published[0].name, "same task and seed: the same cache key"
    mine = torch.load(published[0], weights_only=True)
    theirs = torch.load(expected, weights_only=True)
    assert mine["model"].keys() == theirs["model"].keys()
    for name, tensor in theirs["model"].items():
        assert torch.equal(mine["model"][name], tensor), name
    assert mine["metric"] == theirs["metric"]
