"""One gsprune run, top to bottom (DESIGN §8).

    plan (validate everything, no work; gsprune.plan) -> skip if the record exists
    -> dense model (cached: trained once, resumably, or given; gsprune.dense)
    -> prune + fine-tune (resumable from a per-run checkpoint)
    -> evaluate -> export pruned layers to their format -> latency
    -> pruned-model file (gsprune.models) -> record

The runner only composes the parts: patterns, formats, kernels/latency,
pruning and tasks hold all of the logic.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig
from tqdm import tqdm

from gsprune import formats, latency
from gsprune.atomic import atomic_write
from gsprune.checkpoints import load_checked, save_atomic
from gsprune.dense import dense_cache_file, dense_model, train_epoch
from gsprune.formats import SparseFormat
from gsprune.models import save_model
from gsprune.plan import RunError, RunPlan, plan
from gsprune.pruning import Pruner, cubic_sparsity
from gsprune.records import SCHEMA, read_record, write_record
from gsprune.tasks.base import main_process, trainable
from gsprune.views import gemm_view, prunable_parameters

log = logging.getLogger("gsprune")

__all__ = ["RunError", "RunPlan", "plan", "run"]


def run(cfg: DictConfig) -> dict[str, Any] | None:
    """Execute one run and return its record (the existing one when skipped).

    Under torchrun only rank 0 measures and writes the record; other ranks return None.
    """
    started = time.time()
    run_plan = plan(cfg)
    if run_plan.skip:
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
    sparsity, latency_entries, compact = export_and_measure(run_plan, pruner, columns)

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
        "amp": run_plan.task.amp(),  # task.amp resolved: trained and scored under bfloat16
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
        "model": None,
        "dense": {
            "cache": dense_cache_file(run_plan).relative_to(run_plan.results_dir).as_posix(),
            "init": run_plan.dense_init.describe() if run_plan.dense_init else None,
        },
        "latency": latency_entries,
        "machine": latency.machine_facts(),
        "versions": latency.versions(),
        "git_commit": git_commit(),
        "wall_time_s": round(time.time() - started, 2),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        record["outputs"] = write_outputs(run_plan, result.outputs)
        if run_plan.config["keep_model"]:
            record["model"] = keep_model(run_plan, model, pruner, compact)
        write_record(run_plan.record_file, record)
    except OSError as err:
        raise RunError(
            f"could not write the run's files (outputs, model, record {run_plan.record_file}: "
            f"{err}); records already written are untouched and the fine-tuned checkpoint "
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


def prune_and_finetune(run_plan: RunPlan, model: torch.nn.Module) -> Pruner:
    """Gradual (cubic) or one-shot pruning during fine-tuning; resumes per epoch.

    The per-run checkpoint (model, optimizer, scheduler, masks, epoch, the
    loop's RNG states) is written after every fine-tuning epoch, so a killed
    run restarts at its last epoch. The progress bar shows the mask's
    sparsity, updated at each pruning event.
    """
    task, prune_cfg, schedule = run_plan.task, run_plan.config["prune"], run_plan.schedule
    assert schedule is not None, "plan() computes the schedule of every run it does not skip"
    params = prunable_parameters(model, list(task.cfg["include"]), list(task.cfg["exclude"]))
    pruner = Pruner(params, run_plan.pattern.name, run_plan.pattern_params, prune_cfg["score"])
    train_loader, _ = task.loaders()
    optimizer, scheduler = task.make_optimizer(model, "finetune", schedule.total)
    events = set(schedule.events)

    def sparsity_at(step: int) -> float:
        initial = float(prune_cfg["initial_sparsity"])
        return cubic_sparsity(step, schedule.begin, schedule.end, initial, run_plan.sparsity)

    start_epoch = 0
    if run_plan.checkpoint_file.exists():
        try:
            state = load_checked(run_plan.checkpoint_file, run_plan.run_id)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            pruner.load_state_dict(state["pruner"])
            if "loop" in state:
                task.load_loop_state(state["loop"])
            start_epoch = int(state["epoch"])
            log.info("resuming %s after fine-tuning epoch %d", run_plan.run_id, start_epoch)
        except (ValueError, RuntimeError, KeyError, TypeError) as err:
            log.warning("%s; starting this run's fine-tuning afresh", str(err).splitlines()[0])
    if start_epoch == 0 and 0 in events:
        pruner.prune(sparsity_at(0))
    shown = {"sparsity": f"{pruner.sparsity():.2f}"}

    def after_step(step: int) -> dict[str, str]:
        if step in events:
            pruner.prune(sparsity_at(step))
            shown["sparsity"] = f"{pruner.sparsity():.2f}"
            log.info(
                "pruning event at step %d/%d: sparsity %s", step, schedule.total, shown["sparsity"]
            )
        else:
            pruner.apply()
        return shown

    net = trainable(model)
    for epoch in range(start_epoch, schedule.epochs):
        offset = epoch * schedule.steps_per_epoch
        train_epoch(
            task,
            net,
            train_loader,
            optimizer,
            scheduler,
            lambda step, offset=offset: after_step(offset + step),
            epoch,
            schedule.epochs,
            "fine-tune",
        )
        if main_process():
            save_atomic(
                {
                    "key": run_plan.run_id,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "pruner": pruner.state_dict(),
                    "loop": task.loop_state(),
                    "epoch": epoch + 1,
                },
                run_plan.checkpoint_file,
            )
    # The schedule ends at the target; this also covers epochs == 0 and end == total.
    pruner.prune(run_plan.sparsity)
    return pruner


def keep_model(
    run_plan: RunPlan, model: torch.nn.Module, pruner: Pruner, compact: dict[str, SparseFormat]
) -> dict[str, Any]:
    """Write ``models/<run_id>.pt`` (``gsprune.models``); the record's ``model`` entry."""
    entry = save_model(
        run_plan.model_file, run_plan.run_id, run_plan.config, model, pruner.masks, compact
    )
    entry["file"] = run_plan.model_file.relative_to(run_plan.results_dir).as_posix()
    return entry


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
) -> tuple[dict, dict, dict[str, SparseFormat]]:
    """Encode every pruned layer in its pattern's format and time it per backend.

    Returns the record's ``sparsity`` and ``latency`` entries and the formats by name.

    Each layer is timed as ``W @ X`` with ``latency.batch * columns[name]``
    columns (``columns``: GEMM columns per example; :func:`time_layers`). Achieved
    sparsity is recomputed from the formats (stored non-zeros), not copied from the target.
    """
    settings = run_plan.config["latency"]
    layers: dict[str, dict[str, Any]] = {}
    weights: dict[str, torch.Tensor] = {}
    compact: dict[str, SparseFormat] = {}
    for name, param in pruner.params.items():
        weight = gemm_view(param.detach()).float().cpu().contiguous()
        mask = gemm_view(pruner.masks[name]).cpu()
        fmt = formats.encode(weight, mask, run_plan.pattern.name, **run_plan.pattern_params)
        compact[name], weights[name] = fmt, weight
        layers[name] = {
            "shape": list(weight.shape),
            "achieved": 1.0 - fmt.nnz / weight.numel(),
            "nnz": fmt.nnz,
            "format": fmt.name,
            "nbytes": fmt.nbytes,
            "dense_nbytes": weight.numel() * weight.element_size(),
            "columns": int(settings["batch"]) * columns[name],
        }
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
    columns_timed = {name: layer["columns"] for name, layer in layers.items()}
    return sparsity, time_layers(compact, weights, columns_timed, settings), compact


def time_layers(
    compact: dict[str, SparseFormat],
    weights: dict[str, torch.Tensor],
    columns: dict[str, int],
    settings: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """The record's ``latency`` entries: each layer ``name`` (its format ``compact[name]``,
    its pruned dense weight ``weights[name]: float32[M, K]``) timed as ``W @ X`` with
    ``columns[name]`` columns on every backend of ``settings["backends"]``
    (``latency.measure``), summed per backend (``latency.summarize``). ``settings``: the
    run config's ``latency`` section. Used by runs and by ``gsprune.remeasure``.
    """
    per_backend: dict[str, dict[str, dict]] = {name: {} for name in settings["backends"]}
    for name, fmt in tqdm(compact.items(), desc="latency", unit="layer", file=sys.stderr):
        for backend in settings["backends"]:
            per_backend[backend][name] = latency.measure(
                fmt,
                weights[name],
                backend=backend,
                batch=columns[name],
                threads=int(settings["threads"]),
                warmup=int(settings["warmup"]),
                repeats=int(settings["repeats"]),
                V=int(settings["model"]["V"]),
                B=int(settings["model"]["B"]),
            )
    return {
        backend: latency.summarize(results, backend, _backend_settings(settings, backend))
        for backend, results in per_backend.items()
    }


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
    if record.get("model"):
        model = record["model"]
        size = model["bytes"] / 1e6
        lines.append(f"  model: {model['file']} ({size:.2f} MB, relative to the results dir)")
    for suffix, relative in record.get("outputs", {}).items():
        lines.append(f"  outputs[{suffix}]: {relative} (relative to the results dir)")
    lines.append(f"  wall time {record['wall_time_s']:.0f} s; record {path}")
    lines.append("=" * 64)
    return "\n".join(lines)
