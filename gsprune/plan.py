"""Planning a run: every user-facing value validated before any long work (DESIGN §11).

``plan(cfg)`` checks the top-level keys, the pattern, the pruning and latency
settings, the task (its own ``check()``: values and data), the prunable set
of the task's model, the pattern against every pruned layer's shape, the
given dense weights (``task.dense.init``: the file, its fit to the model) and
the pruning schedule against the real number of fine-tuning steps. A bad value
raises RunError with one paragraph naming it and what is accepted; nothing is
written before that.

Cost: the task's loaders are built once here (their length gives the
fine-tuning steps; the datasets are cached on the task, so the run reuses
them), and the task's model is built once on the CPU to select the prunable
weights (milliseconds for the embedded models, about a second for ResNet-50).
A run whose record exists skips the data-dependent checks: it does no work.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from gsprune import latency, patterns, tasks
from gsprune.patterns.base import Pattern, check_sparsity
from gsprune.pruning import pruning_steps
from gsprune.pruning.scores import SCORES
from gsprune.records import RUN_ONLY_KEYS, record_path
from gsprune.tasks.base import Task, check_choice, check_flag, check_number
from gsprune.views import gemm_view, prunable_parameters
from gsprune.weights import DenseInit, check_fits, read_state_dict, resolve_init

PRUNE_METHODS = ("gmp", "oneshot")
# Timing backends take warm-up and repeat counts; the step model does not.
TIMED_BACKENDS = ("cpu", "cuda")
MAX_THREADS = 1024
MAX_LATENCY_BATCH = 4096
MAX_REPEATS = 100_000


class RunError(Exception):
    """A problem the user can fix; the CLI prints it as one paragraph, without a trace."""


@dataclass(frozen=True)
class Schedule:
    """The fine-tuning steps and the optimizer steps where pruning events happen.

    ``total = max(1, epochs * steps_per_epoch)``; ``begin``/``end`` are
    ``prune.begin``/``prune.end`` times ``total``, rounded down; ``events``
    the steps from ``gsprune.pruning.pruning_steps`` (none without fine-tuning:
    the final projection at the target covers that case).
    """

    epochs: int
    steps_per_epoch: int
    begin: int
    end: int
    events: tuple[int, ...]

    @property
    def total(self) -> int:
        return max(1, self.epochs * self.steps_per_epoch)


@dataclass
class RunPlan:
    """Everything a run needs, validated before any long work starts.

    ``schedule`` is None only for a plan of a run that will be skipped (its
    record exists and ``force`` is false).
    """

    config: dict[str, Any]
    run_id: str
    task: Task
    pattern: Pattern
    pattern_params: dict[str, Any]
    sparsity: float
    results_dir: Path
    schedule: Schedule | None = None
    dense_init: DenseInit | None = None

    @property
    def record_file(self) -> Path:
        return record_path(self.results_dir / "records", self.run_id)

    @property
    def checkpoint_file(self) -> Path:
        return self.results_dir / "checkpoints" / f"{self.run_id}.pt"

    @property
    def model_file(self) -> Path:
        return self.results_dir / "models" / f"{self.run_id}.pt"

    @property
    def skip(self) -> bool:
        return self.record_file.exists() and not self.config["force"]


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a resolved config without the run-only keys."""
    kept = {key: value for key, value in config.items() if key not in RUN_ONLY_KEYS}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan(cfg: DictConfig) -> RunPlan:
    """Validate every user-facing value; raise RunError naming the bad one."""
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(config, dict)
        _check_top_level(config)
        sparsity = check_sparsity(check_number(config["sparsity"], "sparsity", minimum=0.0))
        pattern_cfg = dict(config["pattern"])
        pattern = patterns.get(pattern_cfg.pop("name"))
        pattern_params = pattern.params(**pattern_cfg)
        _check_prune(config["prune"], sparsity)
        _check_latency(config["latency"], pattern.format)
        task = tasks.build(config["task"])
        task.check()
        run_plan = RunPlan(
            config=config,
            run_id=config_hash(config),
            task=task,
            pattern=pattern,
            pattern_params=pattern_params,
            sparsity=sparsity,
            results_dir=Path(config["results_dir"]),
        )
        if run_plan.skip:
            return run_plan
        model = task.build_model()
        _check_prunable(run_plan, model)
        init = task.cfg["dense"].get("init")
        if init is not None:
            run_plan.dense_init = resolve_init(task, init)
            state = read_state_dict(run_plan.dense_init.path)
            check_fits(model, state, f"task.dense.init={init!r} ({run_plan.dense_init.path})")
        run_plan.schedule = fine_tuning_schedule(task, config["prune"])
        _check_forward(task, model)
    except (ValueError, TypeError, FileNotFoundError, KeyError, OverflowError) as err:
        raise RunError(str(err).strip("'\"")) from err
    return run_plan


def _check_top_level(config: dict[str, Any]) -> None:
    seed = check_number(config["seed"], "seed", minimum=0, integer=True)
    if seed >= 2**63:
        raise ValueError(f"seed={seed} is too large; accepted: an integer in [0, 2**63)")
    for key in ("force", "keep_model"):
        check_flag(config[key], key)
    if not isinstance(config["results_dir"], str) or not config["results_dir"].strip():
        raise ValueError(
            f"results_dir={config['results_dir']!r} is not accepted; it must be a directory path"
        )
    if config["threads"] is not None:
        _check_threads(config["threads"], "threads")


def _check_threads(value: Any, name: str) -> None:
    threads = check_number(value, name, minimum=1, integer=True)
    if threads > MAX_THREADS:
        raise ValueError(f"{name}={value} is too large; accepted: an integer in 1..{MAX_THREADS}")


def _check_prune(prune: dict[str, Any], sparsity: float) -> None:
    check_choice(prune["method"], "prune.method", PRUNE_METHODS)
    score = SCORES.get(check_choice(prune["score"], "prune.score", tuple(SCORES.names())))
    initial = check_number(prune["initial_sparsity"], "prune.initial_sparsity", minimum=0.0)
    if not 0.0 <= initial <= sparsity:
        raise ValueError(f"prune.initial_sparsity={initial} must lie in [0, sparsity={sparsity}]")
    check_number(prune["events"], "prune.events", minimum=1, integer=True)
    begin = check_number(prune["begin"], "prune.begin", minimum=0.0)
    end = check_number(prune["end"], "prune.end", minimum=0.0)
    if not 0.0 <= begin <= end <= 1.0:
        raise ValueError(
            f"prune.begin={begin} and prune.end={end} must satisfy "
            "0 <= begin <= end <= 1 (fractions of the fine-tuning steps)"
        )
    if score.needs_grad and end == 0.0:
        raise ValueError(
            f"prune.score={prune['score']} needs gradients before the first prune, but "
            "prune.end=0 prunes before any training step; set prune.end to a small "
            "fraction of the fine-tuning steps (e.g. prune.end=0.05)"
        )


def _check_latency(settings: dict[str, Any], format_name: str) -> None:
    backends = settings["backends"]
    if not isinstance(backends, list) or not backends:
        raise ValueError(
            f"latency.backends={backends!r} is not accepted; it must be a non-empty list of "
            f"backend names from: {', '.join(latency.BACKENDS.names())}"
        )
    for backend in backends:
        check_choice(backend, "latency.backends", tuple(latency.BACKENDS.names()))
        latency.check_backend(backend, format_name)  # e.g. cuda without a CUDA device
    batch = check_number(settings["batch"], "latency.batch", minimum=1, integer=True)
    if batch > MAX_LATENCY_BATCH:
        raise ValueError(
            f"latency.batch={batch} is too large; accepted: an integer in 1..{MAX_LATENCY_BATCH}"
        )
    _check_threads(settings["threads"], "latency.threads")
    timed = any(backend in TIMED_BACKENDS for backend in backends)
    check_number(settings["warmup"], "latency.warmup", 0, integer=True, maximum=MAX_REPEATS)
    least = 1 if timed else 0
    check_number(settings["repeats"], "latency.repeats", least, integer=True, maximum=MAX_REPEATS)
    model = settings["model"]
    latency.model.check_machine(model["V"], model["B"])


def _check_prunable(run_plan: RunPlan, model: torch.nn.Module) -> None:
    """A non-empty prunable set, and the pattern applicable to every pruned layer's shape."""
    cfg = run_plan.task.cfg
    params = prunable_parameters(model, list(cfg["include"]), list(cfg["exclude"]))
    if not params:
        raise ValueError(
            f"task.include={cfg['include']} with task.exclude={cfg['exclude']} leaves no "
            "prunable weight; accepted: fnmatch patterns over weight names that select at "
            "least one Linear/Conv/LSTM weight (e.g. task.include=['*'])"
        )
    for name, param in params.items():
        try:
            run_plan.pattern.check_shape(tuple(gemm_view(param).shape), run_plan.pattern_params)
        except ValueError as err:
            raise ValueError(f"layer {name}: {err}") from None


def _check_forward(task: Task, model: torch.nn.Module) -> None:
    """One eval example through ``task.loss``: a model that cannot run on the data fails here."""
    example = task.first_example()
    model.eval()
    try:
        with torch.no_grad():
            task.loss(model, example)
    except (RuntimeError, ValueError, TypeError, IndexError, OverflowError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "no detail"
        raise ValueError(
            f"the task's model does not run on one example of its data ({type(err).__name__}: "
            f"{first}); accepted: task.model and task.model_args that fit the data "
            f"(task.model={task.cfg.get('model')!r}, task.model_args={task.cfg.get('model_args')})"
        ) from err


def fine_tuning_schedule(task: Task, prune: dict[str, Any]) -> Schedule:
    """The schedule of ``prune`` over the task's real fine-tuning steps (builds the loaders)."""
    train_loader, _ = task.loaders()
    steps_per_epoch = len(train_loader)
    if steps_per_epoch < 1:
        raise ValueError(
            f"task.batch_size={task.cfg.get('batch_size')} leaves the training loader without "
            f"a full batch ({len(train_loader.dataset)} training examples); accepted: a batch "
            "size of at most the number of training examples"
        )
    epochs = int(task.cfg["finetune"]["epochs"])
    total = max(1, epochs * steps_per_epoch)
    begin = int(float(prune["begin"]) * total)
    end = int(float(prune["end"]) * total)
    events, fit = int(prune["events"]), end - begin + 1
    if epochs and events > 1 and events > fit:
        raise ValueError(
            f"prune.events={events} do not fit: fine-tuning has {total} optimizer steps "
            f"({epochs} epoch(s) of {steps_per_epoch}) and prune.begin={prune['begin']} to "
            f"prune.end={prune['end']} spans steps {begin}..{end}; accepted: at most {fit} "
            "events, or a wider begin..end window, or more fine-tuning epochs"
        )
    steps = tuple(pruning_steps(begin, end, events)) if epochs else ()
    return Schedule(epochs, steps_per_epoch, begin, end, steps)
