"""The task interface: model, data, training loop and metric of one task kind.

A task is built from its config node (``conf/task/<name>.yaml`` as a plain
dict) and exposes what the runner composes (DESIGN §14). The training loop is
shared by every kind and reads like torchvision's ``references/classification/
train.py``: a task only says how one batch becomes a loss (``loss``) and how a
model is scored (``evaluate``).

Optimizer sections (``dense:`` and ``finetune:`` of a task config)::

    epochs: 3              # passes over the training set
    optimizer: sgd         # sgd | adamw
    lr: 0.1                # peak learning rate (after warm-up)
    reference_batch: null  # when set, lr is scaled by global_batch / reference_batch
    momentum: 0.9          # sgd only
    nesterov: false        # sgd only
    weight_decay: 5.0e-4
    schedule: cosine       # constant | cosine | linear | step (per optimizer step)
    warmup: 0.0            # fraction of the steps with a linear warm-up from ~0
    milestones: []         # step schedule: fractions of the steps where lr *= gamma
    gamma: 0.1
    clip_norm: null        # clip the gradients' global L2 norm to this (null: no clipping)
    init: null             # dense only: start from given weights instead of training

``dense.init`` is a path to a state-dict file (see ``gsprune.weights``) or a name
from the task's ``weight_sources`` (image: ``torchvision``); with it the dense
phase trains nothing and ``dense.epochs`` may be 0.
"""

from __future__ import annotations

import copy
import math
import random
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler
from torch.utils.data import DataLoader
from tqdm import tqdm

from gsprune.kernels.build import cpu_flags
from gsprune.tasks.data import distributed
from gsprune.views import gemm_columns

PHASES = ("dense", "finetune")
MAX_EPOCHS = 10_000
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "cosine", "linear", "step")
PHASE_DEFAULTS: dict[str, Any] = {
    "reference_batch": None,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 0.0,
    "schedule": "cosine",
    "warmup": 0.0,
    "milestones": [],
    "gamma": 0.1,
    "clip_norm": None,
}


def lr_factor(
    step: int, steps: int, schedule: str, warmup: float, milestones: Sequence[float], gamma: float
) -> float:
    """Multiplier of the peak lr after ``step`` of ``steps`` optimizer steps.

    A linear warm-up over the first ``round(warmup * steps)`` steps, then the
    schedule over the rest, with progress p in [0, 1]: constant 1, cosine
    (1 + cos(pi p)) / 2, linear 1 - p, or step: ``gamma ** (number of
    milestones <= step / steps)``. Milestones count from the first step.
    """
    warm = round(warmup * steps)
    if step < warm:
        return (step + 1) / (warm + 1)
    progress = min(1.0, (step - warm) / max(1, steps - warm))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "step":
        return gamma ** sum(step >= m * steps for m in milestones)
    return 1.0


def world_size() -> int:
    return dist.get_world_size() if distributed() else 1


def main_process() -> bool:
    """Rank 0, or the only process: the one that shows progress bars."""
    return not distributed() or dist.get_rank() == 0


def trainable(model: nn.Module) -> nn.Module:
    """The module to train: DistributedDataParallel around ``model`` under torchrun, else
    ``model`` itself (the wrapper shares its parameters, so masks and checkpoints use
    ``model``)."""
    if not distributed():
        return model
    device = model_device(model)
    device_ids = [device] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def map_batch(batch: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """Apply ``fn`` to every tensor of a (nested tuple/list/dict) batch; keep the rest."""
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, list | tuple):
        return type(batch)(map_batch(item, fn) for item in batch)
    if isinstance(batch, Mapping):
        return {key: map_batch(value, fn) for key, value in batch.items()}
    return batch


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested tuple/list/dict) batch to ``device``."""
    return map_batch(batch, lambda tensor: tensor.to(device, non_blocking=True))


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the runner places the model)."""
    return next(model.parameters()).device


@dataclass
class Evaluation:
    """A model's score on the task's test data, plus what a user needs to check it.

    ``value`` is the task's metric (``Task.metric_name``: top-1, BLEU, WER);
    ``details`` holds other JSON-able scores (chrF and sacrebleu signatures, WER
    per test set, ...); ``outputs`` maps a file suffix to the per-example lines
    (no trailing newlines) that the runner writes beside the run record as
    ``records/<run_id>.<suffix>``, e.g. ``{"hyp.en": [...]}`` in test order.
    """

    value: float
    details: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, list[str]] = field(default_factory=dict)


class Task(ABC):
    """One task kind: subclasses set ``kind``, ``metric_name``, ``higher_is_better``.

    ``cfg`` is the task's config node as a plain dict (a deep copy of what was
    passed). The constructor reads no data; ``check()`` validates every value
    and the data's presence, before any long work.
    """

    kind: ClassVar[str]
    metric_name: ClassVar[str]
    higher_is_better: ClassVar[bool]

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.cfg: dict[str, Any] = copy.deepcopy(dict(cfg))
        self._epochs_started = 0

    # -- what each task provides -------------------------------------------------

    @abstractmethod
    def check(self) -> None:
        """Validate config values and data presence; ValueError/FileNotFoundError if bad."""

    @abstractmethod
    def describe(self) -> dict[str, str]:
        """``{"name", "kind", "scale": "embedded" | "paper", "model", "dataset"}``."""

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Everything that determines the trained dense model (the cache key; no seed)."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (on the CPU; the caller moves it)."""

    @abstractmethod
    def loaders(self) -> tuple[DataLoader, DataLoader]:
        """``(train, eval)`` loaders; sharded by DistributedSampler under torchrun."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Mean loss of one batch (already on the model's device): a scalar tensor."""

    @abstractmethod
    def evaluate(self, model: nn.Module, loader: DataLoader) -> float:
        """The task's metric of ``model`` on ``loader`` (over all ranks)."""

    # -- what a task may refine --------------------------------------------------------

    def test(self, model: nn.Module) -> Evaluation:
        """Final scoring on the eval split, with per-example outputs where the task has them.

        Called for the dense model (cached with it) and for the pruned model
        (the run record). Default: the ``evaluate`` metric alone.
        """
        return Evaluation(self.evaluate(model, self.loaders()[1]))

    def baseline(self) -> dict[str, Any] | None:
        """A trivial baseline's score on the same test data, from the data alone.

        ``{"name": "copy-source", "value": float, ...}`` in the task metric's
        units, or None when the task has none.
        """
        return None

    def first_example(self) -> Any:
        """The first example of the eval loader: its first batch cut to row 0 of every tensor."""
        _, loader = self.loaders()
        return map_batch(next(iter(loader)), lambda tensor: tensor[:1])

    def latency_columns(self, model: nn.Module, names: list[str]) -> dict[str, int]:
        """GEMM columns N of each pruned weight for one example, as latency times it.

        The harness times ``W[M, K] @ X[K, N]`` with ``latency.batch * N``
        columns. Default: one forward pass on the first example of the eval
        loader, counted by forward hooks (``gsprune.views.gemm_columns``): a
        conv layer multiplies by one column per output position, so an image's
        latency is that of an SpMM with H_out * W_out columns, not a GEMV.
        """
        example = self.first_example()
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return gemm_columns(
                    model, names, lambda: self.loss(model, to_device(example, model_device(model)))
                )
        finally:
            model.train(was_training)

    # Names ``task.dense.init`` accepts besides a path (see ``named_weights``).
    weight_sources: ClassVar[tuple[str, ...]] = ()

    def named_weights(self, source: str) -> Path:
        """The local file of the published dense weights called ``source``.

        Only names in ``weight_sources``; nothing is downloaded: a missing file
        raises FileNotFoundError saying where it was looked for and how to put
        it there. Default: the task kind names no weights (ValueError).
        """
        raise ValueError(
            f"task.dense.init={source!r}: task kind {self.kind!r} names no published "
            "weights; accepted: a path to a state-dict file"
        )

    # -- shared by every task ------------------------------------------------------

    def loop_state(self) -> dict[str, Any]:
        """The training loop's randomness between two epochs, for exact resumption.

        The global torch (and CUDA), numpy and Python RNG states (shuffling,
        augmentation and dropout draw from them) and the epoch counter that
        seeds DistributedSampler; only tensors and plain values, so it loads
        with ``torch.load(weights_only=True)``.
        """
        name, keys, pos, has_gauss, cached = np.random.get_state()
        return {
            "epochs_started": self._epochs_started,
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
            "python": random.getstate(),
        }

    def load_loop_state(self, state: Mapping[str, Any]) -> None:
        """Restore ``loop_state()``: the next epoch draws what it would have drawn."""
        self._epochs_started = int(state["epochs_started"])
        torch.set_rng_state(state["torch"])
        if state["cuda"]:
            torch.cuda.set_rng_state_all(state["cuda"])
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))

    def check_common(self, scales: Sequence[str]) -> None:
        """The keys every task config has: ``kind``, ``scale`` (one of ``scales``),
        ``amp``, the ``include``/``exclude`` fnmatch lists and the optimizer sections."""
        cfg = self.cfg
        check_choice(cfg.get("kind"), "task.kind", (self.kind,))
        check_choice(cfg.get("scale"), "task.scale", tuple(scales))
        amp = cfg.get("amp", False)
        if not isinstance(amp, bool) and amp != "auto":
            raise ValueError(
                f"task.amp={amp!r} is not accepted; it must be true, false or auto (bfloat16 "
                "autocast where the device computes bfloat16 natively)"
            )
        for key in ("include", "exclude"):
            patterns = cfg.get(key)
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                raise ValueError(
                    f"task.{key}={patterns!r} must be a list of fnmatch patterns over parameter "
                    "names, e.g. ['*'] or ['conv1.weight', 'fc.weight']"
                )
        self.check_phases()

    def check_phases(self) -> None:
        """Validate the ``dense`` and ``finetune`` optimizer sections (see the module doc)."""
        for phase in PHASES:
            section = self.cfg.get(phase)
            if not isinstance(section, Mapping):
                raise ValueError(
                    f"task {self.cfg.get('name')!r}: the config has no {phase}: section; "
                    "it needs epochs, optimizer and lr (see gsprune/tasks/base.py)"
                )
            merged = {**PHASE_DEFAULTS, **section}
            where = f"task.{phase}"
            init = section.get("init")
            if init is not None and (phase != "dense" or not isinstance(init, str) or not init):
                raise ValueError(
                    f"{where}.init={init!r} is not accepted; accepted: null, or (task.dense "
                    "only) a path to a state-dict file or a named source "
                    f"({', '.join(self.weight_sources) or 'none for this task'})"
                )
            # Zero dense epochs would cache an untrained model as the dense baseline,
            # unless the dense weights are given (then nothing is trained).
            least = 1 if phase == "dense" and init is None else 0
            epochs = merged.get("epochs")
            if least and epochs == 0:
                raise ValueError(
                    f"{where}.epochs=0 is accepted only with {where}.init (given dense weights); "
                    f"without it the dense model must train: an integer in 1..{MAX_EPOCHS}"
                )
            check_number(epochs, f"{where}.epochs", least, integer=True, maximum=MAX_EPOCHS)
            check_flag(merged["nesterov"], f"{where}.nesterov")
            check_number(merged.get("lr"), f"{where}.lr", minimum=0.0, strict=True)
            check_number(merged["weight_decay"], f"{where}.weight_decay", minimum=0.0)
            check_number(merged["momentum"], f"{where}.momentum", minimum=0.0)
            check_choice(merged.get("optimizer"), f"{where}.optimizer", OPTIMIZERS)
            check_choice(merged["schedule"], f"{where}.schedule", SCHEDULES)
            warmup = check_number(merged["warmup"], f"{where}.warmup", minimum=0.0)
            if warmup >= 1.0:
                raise ValueError(f"{where}.warmup={warmup} must be a fraction of steps in [0, 1)")
            for m in merged["milestones"]:
                if not 0.0 < check_number(m, f"{where}.milestones", minimum=0.0) < 1.0:
                    raise ValueError(
                        f"{where}.milestones={merged['milestones']} must be fractions in (0, 1)"
                    )
            if merged["reference_batch"] is not None:
                check_number(
                    merged["reference_batch"], f"{where}.reference_batch", minimum=1, integer=True
                )
            if merged["clip_norm"] is not None:
                check_number(merged["clip_norm"], f"{where}.clip_norm", minimum=0.0, strict=True)

    def make_optimizer(
        self, model: nn.Module, phase: str, steps: int
    ) -> tuple[Optimizer, LRScheduler]:
        """Optimizer and per-step lr scheduler for ``phase`` ("dense" | "finetune").

        ``steps`` is the number of ``optimizer.step()`` calls the phase will
        make; the scheduler is stepped once after each.
        """
        check_choice(phase, "phase", PHASES)
        settings = {**PHASE_DEFAULTS, **self.cfg[phase]}
        lr = float(settings["lr"])
        if settings["reference_batch"]:
            lr *= int(self.cfg["batch_size"]) * world_size() / int(settings["reference_batch"])
        decay = float(settings["weight_decay"])
        if settings["optimizer"] == "sgd":
            optimizer: Optimizer = torch.optim.SGD(
                model.parameters(),
                lr=lr,
                momentum=float(settings["momentum"]),
                nesterov=bool(settings["nesterov"]),
                weight_decay=decay,
            )
        else:
            optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=decay)
        milestones = [float(m) for m in settings["milestones"]]

        def factor(step: int) -> float:
            return lr_factor(
                step,
                max(1, steps),
                settings["schedule"],
                float(settings["warmup"]),
                milestones,
                float(settings["gamma"]),
            )

        return optimizer, LambdaLR(optimizer, factor)

    def amp(self, device_type: str | None = None) -> bool:
        """Whether training and scoring run under bfloat16 autocast on ``device_type``.

        ``amp: true`` / ``false`` say so; ``amp: auto`` means "where bfloat16 is
        native" (``bf16_native``): a CUDA device with bfloat16, or a CPU with
        AVX-512 BF16 or AMX (Zen 4: 1.65x faster Jasper training steps; on a
        CPU without them oneDNN emulates bfloat16 and runs slower than float32).
        ``device_type`` defaults to the one the runner uses (CUDA if present).
        """
        setting = self.cfg.get("amp", False)
        if setting != "auto":
            return bool(setting)
        return bf16_native(device_type or ("cuda" if torch.cuda.is_available() else "cpu"))

    def autocast(self, model: nn.Module) -> torch.autocast:
        """bfloat16 autocast on the model's device when ``amp`` says so."""
        device_type = model_device(model).type
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.amp(device_type))

    def fingerprint_of(self, keys: Sequence[str]) -> dict[str, Any]:
        """``{key: config value}`` for a fingerprint, with ``amp`` resolved to true / false
        (a dense model trained under bfloat16 is keyed apart from a float32 one)."""
        fingerprint = {key: self.cfg.get(key) for key in keys}
        if "amp" in fingerprint:
            fingerprint["amp"] = self.amp()
        return fingerprint

    def train_one_epoch(
        self,
        model: nn.Module,
        loader: DataLoader,
        optimizer: Optimizer,
        scheduler: LRScheduler,
        after_step: Callable[[int], Mapping[str, str] | None] | None = None,
        desc: str = "train",
        clip_norm: float | None = None,
    ) -> float:
        """One pass over ``loader``; returns the mean training loss.

        After every ``optimizer.step()`` (and ``scheduler.step()``) it calls
        ``after_step(k)`` with k = 1, 2, ... the optimizer steps taken so far in
        this epoch; the runner adds the epoch's offset and re-applies masks or
        runs pruning events there. What ``after_step`` returns (e.g.
        ``{"sparsity": "0.60"}``) is shown in the progress bar's postfix, which
        is refreshed at once when it changes. A non-finite loss raises FloatingPointError
        before its backward pass, so the parameters stay those of the last good
        step (buffers such as BatchNorm statistics have seen the bad batch; the
        runner restores its last checkpoint). ``clip_norm`` (the phase's
        ``clip_norm`` setting) clips the gradients' global L2 norm before each step.
        """
        model.train()
        device = model_device(model)
        # Samplers that shuffle per epoch (DistributedSampler, token batch samplers) are
        # told the epoch, so a resumed run draws the order the uninterrupted one drew.
        for sampler in (loader.sampler, loader.batch_sampler):
            if callable(getattr(sampler, "set_epoch", None)):
                sampler.set_epoch(self._epochs_started)
        self._epochs_started += 1
        total = 0.0
        progress = tqdm(
            loader, desc=desc, unit="batch", file=sys.stderr, disable=not main_process()
        )
        step = 0
        shown: dict[str, str] = {}
        for step, batch in enumerate(progress, start=1):
            batch = to_device(batch, device)
            optimizer.zero_grad(set_to_none=True)
            with self.autocast(model):
                loss = self.loss(model, batch)
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"loss is {value} at step {step} of {desc}")
            loss.backward()
            if clip_norm is not None:  # LSTMs (GNMT) train with clipped gradients
                nn.utils.clip_grad_norm_(model.parameters(), float(clip_norm))
            optimizer.step()
            scheduler.step()
            extra = after_step(step) if after_step is not None else None
            changed = bool(extra) and any(shown.get(k) != v for k, v in extra.items())
            shown.update(extra or {})
            total += value
            if step % 10 == 0 or changed:
                progress.set_postfix(
                    loss=f"{total / step:.4f}", lr=f"{scheduler.get_last_lr()[0]:.3g}", **shown
                )
        return total / max(1, step)


def bf16_native(device_type: str) -> bool:
    """Whether ``device_type`` ("cpu" | "cuda") computes bfloat16 natively on this machine."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def check_number(
    value: Any,
    name: str,
    minimum: float,
    strict: bool = False,
    integer: bool = False,
    maximum: float | None = None,
) -> float:
    """``value`` as a finite number >= ``minimum`` (> when ``strict``) and <= ``maximum``,
    or a ValueError naming it.

    Strings, booleans, lists and NaN/inf are refused (Hydra parses ``x=abc`` as a string).
    """
    kind = "an integer" if integer else "a finite number"
    bound = f"{'>' if strict else '>='} {minimum}"
    if maximum is not None:
        bound += f" and <= {maximum}"
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok or (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name}={value!r} is not accepted; it must be {kind} {bound}")
    return value


def check_flag(value: Any, name: str) -> bool:
    """``value`` if it is a boolean, else a ValueError naming it (``x=abc`` is a string)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not accepted; it must be true or false")
    return value


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is unknown; accepted: {', '.join(choices)}")
    return value
