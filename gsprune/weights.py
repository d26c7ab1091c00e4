"""Given dense weights (``task.dense.init``): find the file, read its state dict, check the fit.

``task.dense.init`` is either a name the task publishes weights under
(``Task.weight_sources``, e.g. ``torchvision`` for the image task, read from
the local torch hub cache only) or a path to one of:

- a plain torch state-dict file (``torch.save(model.state_dict(), path)``),
  also wrapped as ``{"state_dict": ...}`` or ``{"model": ...}``, keys optionally
  prefixed ``module.`` (saved from DistributedDataParallel);
- a gsprune dense cache file (``results/cache/dense/<key>.pt``: ``{"model": ...}``);
- a gsprune pruned-model file (``results/models/<run_id>.pt``: ``{"state_dict": ...}``).
  Its zeros are kept as they are: the weights are loaded as dense weights, the
  old masks are not carried over, and the new run projects its own masks from
  them (under magnitude scores the old zeros are the first to go again).

Files are read with ``torch.load(weights_only=True)``: tensors and plain
containers only, never arbitrary pickled code.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from gsprune.tasks.base import Task

ACCEPTED = (
    "a path to a torch state-dict file, a gsprune dense cache file (results/cache/dense/*.pt) "
    "or a pruned-model file (results/models/*.pt)"
)


@dataclass(frozen=True)
class DenseInit:
    """Where the dense weights come from: ``source`` as given, the file read, its sha256."""

    source: str
    path: Path
    sha256: str

    def describe(self) -> dict[str, str]:
        return {"source": self.source, "path": str(self.path), "sha256": self.sha256}


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (model files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_init(task: Task, source: str) -> DenseInit:
    """The file behind ``task.dense.init=source`` and its sha256; FileNotFoundError if none."""
    named = source.partition(":")[0] in task.weight_sources
    path = task.named_weights(source) if named else Path(source)
    if not path.is_file():
        names = f", or one of: {', '.join(task.weight_sources)}" if task.weight_sources else ""
        raise FileNotFoundError(
            f"task.dense.init={source!r}: no such file; accepted: {ACCEPTED}{names}"
        )
    return DenseInit(source, path.resolve(), file_sha256(path))


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model state dict held by ``path`` (any form listed in the module doc), on the CPU."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged or foreign file
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"task.dense.init: {path} is not a readable torch file ({first}); accepted: {ACCEPTED}"
        ) from err
    for candidate in (obj, *(obj.get(k) for k in ("state_dict", "model") if isinstance(obj, dict))):
        if _is_state_dict(candidate):
            prefix = "module."
            if all(key.startswith(prefix) for key in candidate):
                return {key[len(prefix) :]: value for key, value in candidate.items()}
            return dict(candidate)
    raise ValueError(
        f"task.dense.init: {path} holds no state dict (a mapping of names to tensors at the "
        f"top level or under 'state_dict' or 'model'); accepted: {ACCEPTED}"
    )


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def check_fits(model: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """ValueError unless ``state`` has exactly ``model``'s keys with the same shapes."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        problems = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
            if items:
                problems.append(f"{len(items)} {label} (e.g. {', '.join(items[:3])})")
        raise ValueError(
            f"{where} does not fit the task's model {type(model).__name__}: "
            f"{'; '.join(problems)}; accepted: a state dict of the same architecture and "
            "config (task.model, task.model_args, number of classes)"
        )
