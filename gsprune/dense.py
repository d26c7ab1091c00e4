"""The dense model of a run: from the cache, from given weights, or trained once (resumably).

The cache file ``results/cache/dense/<key>.pt`` holds the dense weights and
their test scores. Its key hashes the task's fingerprint and the seed, or,
with ``task.dense.init``, the fingerprint without its dense recipe plus the
init source and the file's sha256 (nothing is trained then, so the recipe and
the seed do not matter). A file lock makes parallel sweep jobs wait for one
training (under torchrun every rank trains together; rank 0 writes files).

Dense training writes ``<key>.partial.pt`` after every epoch but the last
(model, optimizer, scheduler, the finished epoch and the loop's RNG states,
``Task.loop_state``), so a killed run resumes at its last finished epoch with
the same shuffling and augmentation as an uninterrupted one; the cache entry
is published only when training ends, and the partial file is removed then.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from gsprune.checkpoints import CheckpointError, file_lock, load_checked, save_atomic
from gsprune.plan import RunError, RunPlan
from gsprune.tasks.base import Evaluation, Task, main_process, trainable
from gsprune.weights import read_state_dict

log = logging.getLogger("gsprune")


def dense_key(run_plan: RunPlan) -> tuple[str, dict[str, Any]]:
    """``(key, fingerprint)`` of this run's dense model (see the module doc)."""
    fingerprint: dict[str, Any] = {"task": run_plan.task.fingerprint()}
    recipe = fingerprint["task"].get("dense")
    if isinstance(recipe, dict):
        # The init source is keyed below (with its sha256); without one the key stays
        # what it was before task.dense.init existed, so existing caches stay valid.
        fingerprint["task"]["dense"] = {k: v for k, v in recipe.items() if k != "init"}
    if run_plan.dense_init is None:
        fingerprint["seed"] = run_plan.config["seed"]
    else:
        fingerprint["task"].pop("dense", None)
        fingerprint["init"] = {
            "source": run_plan.dense_init.source,
            "sha256": run_plan.dense_init.sha256,
        }
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16], fingerprint


def dense_cache_file(run_plan: RunPlan) -> Path:
    return run_plan.results_dir / "cache" / "dense" / f"{dense_key(run_plan)[0]}.pt"


def dense_model(run_plan: RunPlan, device: torch.device) -> tuple[torch.nn.Module, Evaluation]:
    """The dense model for this run on ``device`` and its test scores (value and details)."""
    task = run_plan.task
    key, fingerprint = dense_key(run_plan)
    path = dense_cache_file(run_plan)
    torch.manual_seed(int(run_plan.config["seed"]))
    model = task.build_model().to(device)
    lock = path.with_suffix(".lock")
    with contextlib.nullcontext() if dist.is_initialized() else file_lock(lock):
        if path.exists():
            try:
                cached = load_checked(path, key)
                model.load_state_dict(cached["model"])
                dense = Evaluation(float(cached["metric"]), dict(cached["details"]))
                log.info("dense model from cache %s (%s %.2f)", path, task.metric_name, dense.value)
                return model, dense
            except (CheckpointError, RuntimeError, KeyError) as err:
                log.warning("%s; retraining the dense model", str(err).splitlines()[0])
                if main_process():
                    path.unlink(missing_ok=True)
        if run_plan.dense_init is not None:
            init = run_plan.dense_init
            model.load_state_dict(read_state_dict(init.path))
            log.info("dense weights from %s (sha256 %s); no dense training", init.path, init.sha256)
        else:
            train_dense(run_plan, model, key, path.with_suffix(".partial.pt"))
        dense = task.test(model)
        if main_process():
            save_atomic(
                {
                    "key": key,
                    "model": model.state_dict(),
                    "metric": dense.value,
                    "details": dense.details,
                    "fingerprint": json.dumps(fingerprint, default=str),
                },
                path,
            )
            path.with_suffix(".partial.pt").unlink(missing_ok=True)
        log.info("dense model ready: %s %.2f, cached at %s", task.metric_name, dense.value, path)
    return model, dense


def train_dense(run_plan: RunPlan, model: torch.nn.Module, key: str, partial: Path) -> None:
    """Train ``model`` for ``task.dense.epochs``, resuming from ``partial`` when it is there."""
    task = run_plan.task
    train_loader, _ = task.loaders()
    epochs = int(task.cfg["dense"]["epochs"])
    optimizer, scheduler = task.make_optimizer(model, "dense", epochs * len(train_loader))
    start = 0
    if partial.exists():
        fresh = copy.deepcopy(model.state_dict())
        try:
            state = load_checked(partial, key)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            task.load_loop_state(state["loop"])
            start = int(state["epoch"])
            log.info("resuming dense training after epoch %d/%d (%s)", start, epochs, partial)
        except (CheckpointError, RuntimeError, KeyError, ValueError, TypeError) as err:
            log.warning("%s; training the dense model from scratch", str(err).splitlines()[0])
            model.load_state_dict(fresh)
            optimizer, scheduler = task.make_optimizer(model, "dense", epochs * len(train_loader))
    net = trainable(model)
    for epoch in range(start, epochs):
        train_epoch(task, net, train_loader, optimizer, scheduler, None, epoch, epochs, "dense")
        if epoch + 1 < epochs and main_process():
            save_atomic(
                {
                    "key": key,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "loop": task.loop_state(),
                    "epoch": epoch + 1,
                },
                partial,
            )
    log.info("dense model trained for %d epochs", epochs)


def train_epoch(
    task: Task, model, loader, optimizer, scheduler, after_step, epoch: int, epochs: int, phase: str
) -> None:
    """One epoch of ``phase`` ("dense" | "fine-tune"); a diverged loss becomes a RunError."""
    desc = f"{phase} {epoch + 1}/{epochs}"
    section = task.cfg["dense" if phase == "dense" else "finetune"]
    try:
        task.train_one_epoch(
            model, loader, optimizer, scheduler, after_step, desc, section.get("clip_norm")
        )
    except FloatingPointError as err:
        raise RunError(
            f"training diverged during {desc} ({err}); the last good checkpoint is kept "
            "(cache/ for the dense model, checkpoints/ for this run): lower the learning "
            "rate in the task config and rerun"
        ) from err
