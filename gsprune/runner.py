"""One gsprune run, top to bottom (DESIGN §8).

    plan (validate everything, no work) -> skip if the record exists
    -> dense model (trained once per task fingerprint, cached)
    -> prune + fine-tune (resumable from a per-run checkpoint)
    -> evaluate -> export pruned layers to their format -> latency -> record

The runner only composes the parts: patterns, formats, kernels/latency,
pruning and tasks hold all of the logic.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from gsprune import formats, latency, patterns, tasks
from gsprune.atomic import atomic_write
from gsprune.checkpoints import CheckpointError, file_lock, load_checked, save_atomic
from gsprune.patterns.base import Pattern, check_sparsity
from gsprune.pruning import Pruner, cubic_sparsity, pruning_steps
from gsprune.pruning.scores import SCORES
from gsprune.records import RUN_ONLY_KEYS, SCHEMA, read_record, record_path, write_record
from gsprune.tasks.base import Evaluation, Task, main_process, model_device
from gsprune.views import gemm_view, prunable_parameters

log = logging.getLogger("gsprune")

PRUNE_METHODS = ("gmp", "oneshot")


class RunError(Exception):
    """A problem the user can fix; the CLI prints it as one paragraph, without a trace."""


@dataclass
class RunPlan:
    """Everything a run needs, validated before any long work starts."""

    config: dict[str, Any]
    run_id: str
    task: Task
    pattern: Pattern
    pattern_params: dict[str, Any]
    sparsity: float
    results_dir: Path

    @property
    def record_file(self) -> Path:
        return record_path(self.results_dir / "records", self.run_id)

    @property
    def checkpoint_file(self) -> Path:
        return self.results_dir / "checkpoints" / f"{self.run_id}.pt"


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a resolved config without the run-only keys."""
    kept = {key: value for key, value in config.items() if key not in RUN_ONLY_KEYS}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan(cfg: DictConfig) -> RunPlan:
    """Validate every user-facing value; raise RunError naming the bad one."""
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    try:
        sparsity = check_sparsity(_as_float(config["sparsity"], "sparsity"))
        pattern_cfg = dict(config["pattern"])
        pattern = patterns.get(pattern_cfg.pop("name"))
        pattern_params = pattern.params(**pattern_cfg)
        _check_prune(config["prune"], sparsity)
        _check_latency(config["latency"])
        task = tasks.build(config["task"])
        task.check()
    except (ValueError, FileNotFoundError, KeyError) as err:
        raise RunError(str(err).strip("'\"")) from err
    return RunPlan(
        config=config,
        run_id=config_hash(config),
        task=task,
        pattern=pattern,
        pattern_params=pattern_params,
        sparsity=sparsity,
        results_dir=Path(config["results_dir"]),
    )


def _as_float(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number") from None


def _check_prune(prune: dict[str, Any], sparsity: float) -> None:
    if prune["method"] not in PRUNE_METHODS:
        raise ValueError(f"prune.method={prune['method']!r} is unknown; accepted: {PRUNE_METHODS}")
    score = SCORES.get(prune["score"])
    if score.needs_grad and float(prune["end"]) == 0.0:
        raise ValueError(
            f"prune.score={prune['score']} needs gradients before the first prune, but "
            "prune.end=0 prunes before any training step; set prune.end to a small "
            "fraction of the fine-tuning steps (e.g. prune.end=0.05)"
        )
    initial = _as_float(prune["initial_sparsity"], "prune.initial_sparsity")
    if not 0.0 <= initial <= sparsity:
        raise ValueError(f"prune.initial_sparsity={initial} must lie in [0, sparsity={sparsity}]")
    if int(prune["events"]) < 1:
        raise ValueError(f"prune.events={prune['events']} must be at least 1")
    if not 0.0 <= float(prune["begin"]) <= float(prune["end"]) <= 1.0:
        raise ValueError(
            f"prune.begin={prune['begin']} and prune.end={prune['end']} must satisfy "
            "0 <= begin <= end <= 1 (fractions of the fine-tuning steps)"
        )


def _check_latency(settings: dict[str, Any]) -> None:
    for backend in settings["backends"]:
        latency.BACKENDS.get(backend)
    for key in ("batch", "threads"):
        if int(settings[key]) < 1:
            raise ValueError(f"latency.{key}={settings[key]} must be at least 1")


def run(cfg: DictConfig) -> dict[str, Any] | None:
    """Execute one run and return its record (the existing one when skipped).

    Under torchrun only rank 0 measures and writes the record; other ranks return None.
    """
    started = time.time()
    run_plan = plan(cfg)
    if run_plan.record_file.exists() and not run_plan.config["force"]:
        log.info("record %s exists: skipping (force=true reruns)", run_plan.record_file)
        return read_record(run_plan.record_file)
    if run_plan.config.get("threads"):
        torch.set_num_threads(int(run_plan.config["threads"]))
    device = setup_device()

    model, dense = dense_model(run_plan, device)
    pruner = prune_and_finetune(run_plan, model)
    result = run_plan.task.test(model)
    if not main_process():
        return None
    columns = run_plan.task.latency_columns(model, list(pruner.params))
    sparsity, latency_entries = export_and_measure(run_plan, pruner, columns)

    record = {
        "schema": SCHEMA,
        "run_id": run_plan.run_id,
        "config_hash": run_plan.run_id,
        "config": run_plan.config,
        "task": run_plan.task.describe(),
        "pattern": {
            "name": run_plan.pattern.name,
            "params": run_plan.pattern_params,
            "format": run_plan.pattern.format,
        },
        "prune": run_plan.config["prune"],
        "sparsity": sparsity,
        "metric": {
            "name": run_plan.task.metric_name,
            "value": result.value,
            "higher_is_better": run_plan.task.higher_is_better,
            "details": result.details,
            "dense_value": dense.value,
            "dense_details": dense.details,
            "baseline": run_plan.task.baseline(),
        },
        "outputs": {},
        "latency": latency_entries,
        "machine": latency.machine_facts(),
        "versions": latency.versions(),
        "git_commit": git_commit(),
        "wall_time_s": round(time.time() - started, 2),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        record["outputs"] = write_outputs(run_plan, result.outputs)
        write_record(run_plan.record_file, record)
    except OSError as err:
        raise RunError(
            f"could not write the run record {run_plan.record_file} ({err}); records "
            "already written are untouched and the fine-tuned checkpoint "
            f"{run_plan.checkpoint_file} is kept: free space and rerun to finish"
        ) from err
    run_plan.checkpoint_file.unlink(missing_ok=True)
    print(summary(record, run_plan.record_file))
    return record


def setup_device() -> torch.device:
    """This process's device; under torchrun (WORLD_SIZE > 1) also the process group.

    GPUs: ``cuda:LOCAL_RANK`` and NCCL; CPUs: gloo (used by the tests). Training
    then runs DistributedDataParallel; rank 0 alone writes caches, checkpoints
    and the record, and measures latency.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def trainable(model: torch.nn.Module) -> torch.nn.Module:
    """The module to train: DDP around ``model`` under torchrun, else ``model`` itself."""
    if not dist.is_initialized():
        return model
    device_ids = [model_device(model)] if model_device(model).type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def dense_model(run_plan: RunPlan, device: torch.device) -> tuple[torch.nn.Module, Evaluation]:
    """The trained dense model for this task on ``device``, from the cache or trained once.

    The cache key hashes ``task.fingerprint()`` and the seed. A lock makes
    parallel sweep jobs wait for one training instead of each training (under
    torchrun every rank trains together and rank 0 writes the cache). A corrupt
    or mismatched cache file is reported and retrained. The cache also holds the
    dense model's test scores (``Task.test``: value and details, no outputs).
    """
    task = run_plan.task
    fingerprint = {"task": task.fingerprint(), "seed": run_plan.config["seed"]}
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode())
    key_text = key.hexdigest()[:16]
    path = run_plan.results_dir / "cache" / "dense" / f"{key_text}.pt"
    torch.manual_seed(int(run_plan.config["seed"]))
    model = task.build_model().to(device)
    lock_path = path.with_suffix(".lock")
    with contextlib.nullcontext() if dist.is_initialized() else file_lock(lock_path):
        if path.exists():
            try:
                cached = load_checked(path, key_text)
                model.load_state_dict(cached["model"])
                dense = Evaluation(float(cached["metric"]), dict(cached["details"]))
                log.info("dense model from cache %s (%s %.2f)", path, task.metric_name, dense.value)
                return model, dense
            except (CheckpointError, RuntimeError, KeyError) as err:
                log.warning("%s; retraining the dense model", str(err).splitlines()[0])
                if main_process():
                    path.unlink(missing_ok=True)
        train_loader, _ = task.loaders()
        epochs = int(task.cfg["dense"]["epochs"])
        optimizer, scheduler = task.make_optimizer(model, "dense", epochs * len(train_loader))
        for epoch in range(epochs):
            _train_epoch(
                task, model, train_loader, optimizer, scheduler, None, f"dense {epoch + 1}/{epochs}"
            )
        dense = task.test(model)
        save_atomic(
            {
                "key": key_text,
                "model": model.state_dict(),
                "metric": dense.value,
                "details": dense.details,
                "fingerprint": json.dumps(fingerprint, default=str),
            },
            path,
        )
        log.info("dense model trained: %s %.2f, cached at %s", task.metric_name, dense.value, path)
    return model, dense


def _train_epoch(task: Task, model, loader, optimizer, scheduler, after_step, desc: str) -> None:
    try:
        task.train_one_epoch(model, loader, optimizer, scheduler, after_step, desc)
    except FloatingPointError as err:
        raise RunError(
            f"training diverged during {desc} ({err}); the last good checkpoint is kept "
            "(cache/ for the dense model, checkpoints/ for this run): lower the learning "
            "rate in the task config and rerun"
        ) from err


def prune_and_finetune(run_plan: RunPlan, model: torch.nn.Module) -> Pruner:
    """Gradual (cubic) or one-shot pruning during fine-tuning; resumes per epoch.

    The per-run checkpoint (model, optimizer, scheduler, masks, epoch) is written
    after every fine-tuning epoch, so a killed run restarts at its last epoch.
    """
    task, prune_cfg = run_plan.task, run_plan.config["prune"]
    params = prunable_parameters(model, list(task.cfg["include"]), list(task.cfg["exclude"]))
    pruner = Pruner(params, run_plan.pattern.name, run_plan.pattern_params, prune_cfg["score"])
    train_loader, _ = task.loaders()
    epochs = int(task.cfg["finetune"]["epochs"])
    total_steps = max(1, epochs * len(train_loader))
    optimizer, scheduler = task.make_optimizer(model, "finetune", total_steps)
    begin = int(float(prune_cfg["begin"]) * total_steps)
    end = int(float(prune_cfg["end"]) * total_steps)
    events = set(pruning_steps(begin, end, int(prune_cfg["events"])))

    def sparsity_at(step: int) -> float:
        return cubic_sparsity(
            step, begin, end, float(prune_cfg["initial_sparsity"]), run_plan.sparsity
        )

    start_epoch = 0
    if run_plan.checkpoint_file.exists():
        try:
            state = load_checked(run_plan.checkpoint_file, run_plan.run_id)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            pruner.load_state_dict(state["pruner"])
            start_epoch = int(state["epoch"])
            log.info("resuming %s after fine-tuning epoch %d", run_plan.run_id, start_epoch)
        except (ValueError, RuntimeError, KeyError) as err:
            log.warning("%s; starting this run's fine-tuning afresh", str(err).splitlines()[0])
    if start_epoch == 0 and 0 in events:
        pruner.prune(sparsity_at(0))

    def after_step(step: int) -> None:
        if step in events:
            pruner.prune(sparsity_at(step))
            log.info(
                "pruning event at step %d/%d: sparsity %.3f", step, total_steps, pruner.sparsity()
            )
        else:
            pruner.apply()

    for epoch in range(start_epoch, epochs):
        offset = epoch * len(train_loader)
        _train_epoch(
            task,
            model,
            train_loader,
            optimizer,
            scheduler,
            lambda step, offset=offset: after_step(offset + step),
            f"fine-tune {epoch + 1}/{epochs} @ {pruner.sparsity():.2f}",
        )
        save_atomic(
            {
                "key": run_plan.run_id,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "pruner": pruner.state_dict(),
                "epoch": epoch + 1,
            },
            run_plan.checkpoint_file,
        )
    # The schedule ends at the target; this also covers epochs == 0 and end == total.
    pruner.prune(run_plan.sparsity)
    return pruner


def write_outputs(run_plan: RunPlan, outputs: dict[str, list[str]]) -> dict[str, str]:
    """Write each per-example output file beside the record, atomically.

    ``outputs``: file suffix -> lines; the file is ``records/<run_id>.<suffix>``.
    Returns suffix -> path relative to the results dir (what the record names).
    """
    written = {}
    for suffix, lines in outputs.items():
        path = run_plan.record_file.with_name(f"{run_plan.run_id}.{suffix}")
        text = "".join(f"{line}\n" for line in lines).encode("utf-8")
        atomic_write(path, lambda handle, text=text: handle.write(text))
        written[suffix] = path.relative_to(run_plan.results_dir).as_posix()
    return written


def export_and_measure(
    run_plan: RunPlan, pruner: Pruner, columns: dict[str, int]
) -> tuple[dict, dict]:
    """Encode every pruned layer in its pattern's format and time it per backend.

    Each layer is timed as ``W @ X`` with ``latency.batch * columns[name]``
    columns (``columns``: GEMM columns per example). Achieved sparsity is
    recomputed from the formats (stored non-zeros), not copied from the target.
    """
    settings = run_plan.config["latency"]
    layers: dict[str, dict[str, Any]] = {}
    per_backend: dict[str, dict[str, dict]] = {name: {} for name in settings["backends"]}
    for name, param in tqdm(
        pruner.params.items(), desc="export + latency", unit="layer", file=sys.stderr
    ):
        weight = gemm_view(param.detach()).float().cpu().contiguous()
        mask = gemm_view(pruner.masks[name]).cpu()
        fmt = formats.encode(weight, mask, run_plan.pattern.name, **run_plan.pattern_params)
        layers[name] = {
            "shape": list(weight.shape),
            "achieved": 1.0 - fmt.nnz / weight.numel(),
            "nnz": fmt.nnz,
            "format": fmt.name,
            "nbytes": fmt.nbytes,
            "dense_nbytes": weight.numel() * weight.element_size(),
            "columns": int(settings["batch"]) * columns[name],
        }
        for backend in settings["backends"]:
            per_backend[backend][name] = latency.measure(
                fmt,
                weight,
                backend=backend,
                batch=layers[name]["columns"],
                threads=int(settings["threads"]),
                warmup=int(settings["warmup"]),
                repeats=int(settings["repeats"]),
                V=int(settings["model"]["V"]),
                B=int(settings["model"]["B"]),
            )
    total = sum(layer["shape"][0] * layer["shape"][1] for layer in layers.values())
    nnz = sum(layer["nnz"] for layer in layers.values())
    achieved = 1.0 - nnz / total if total else 0.0
    sparsity = {
        "target": run_plan.sparsity,
        "achieved": achieved,
        "feasible": all(
            abs(layer["achieved"] - run_plan.sparsity) <= 0.01 for layer in layers.values()
        ),
        "layers": layers,
    }
    entries = {
        backend: latency.summarize(results, backend, _backend_settings(settings, backend))
        for backend, results in per_backend.items()
    }
    return sparsity, entries


def _backend_settings(settings: dict[str, Any], backend: str) -> dict[str, Any]:
    if backend == "model":
        return dict(settings["model"])
    return {key: settings[key] for key in ("batch", "threads", "warmup", "repeats")}


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def summary(record: dict[str, Any], path: Path) -> str:
    """A one-screen summary of a finished run."""
    metric, sparsity = record["metric"], record["sparsity"]
    pattern = record["pattern"]
    params = " ".join(f"{k}={v}" for k, v in pattern["params"].items() if v is not None)
    lines = [
        "=" * 64,
        f"gsprune run {record['run_id']}  task={record['task']['name']}  "
        f"pattern={pattern['name']} {params}",
        f"  {metric['name']}: {metric['value']:.2f} (dense {metric['dense_value']:.2f}"
        + (
            f", {metric['baseline']['name']} baseline {metric['baseline']['value']:.2f})"
            if metric.get("baseline")
            else ")"
        ),
        f"  sparsity: target {sparsity['target']:.3f}, achieved {sparsity['achieved']:.3f} "
        f"over {len(sparsity['layers'])} layers",
    ]
    for backend, entry in record["latency"].items():
        lines.append(
            f"  latency[{backend}]: sparse {entry['sparse']:.4g} {entry['unit']}, dense "
            f"{entry['dense']:.4g} {entry['unit']}, speedup {entry['speedup']:.2f}x"
        )
    for suffix, relative in record.get("outputs", {}).items():
        lines.append(f"  outputs[{suffix}]: {relative} (relative to the results dir)")
    lines.append(f"  wall time {record['wall_time_s']:.0f} s; record {path}")
    lines.append("=" * 64)
    return "\n".join(lines)
