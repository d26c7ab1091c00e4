"""GEMM views of weights and the list of prunable parameters of a model.

Patterns work on a 2-D *GEMM view* ``[M, K]`` of a weight, rows = outputs:

- ``nn.Linear``: ``weight`` is already ``[out, in]``;
- ``nn.Conv1d`` / ``nn.Conv2d``: ``[out, in/groups * kw (* kh)]``, the im2col view;
- ``nn.LSTM``: ``weight_ih_l*`` ``[4H, in]`` and ``weight_hh_l*`` ``[4H, H]``, the four
  gates already stacked along the rows.

``gemm_view`` is a reshape, so for a contiguous weight it shares storage with it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

import torch
from torch import nn

PRUNABLE_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.LSTM)
LSTM_WEIGHT_PREFIXES = ("weight_ih_l", "weight_hh_l")


def gemm_view(weight: torch.Tensor) -> torch.Tensor:
    """``weight: [out, ...] -> [out, prod(rest)]``, a view when ``weight`` is contiguous."""
    if weight.dim() < 2:
        raise ValueError(
            f"a tensor of shape {tuple(weight.shape)} has no GEMM view; accepted: weights with "
            "at least 2 dims (Linear [out, in], Conv [out, in, k...], LSTM [4H, in]); biases and "
            "norm parameters are not prunable"
        )
    return weight.reshape(weight.shape[0], -1)


def from_gemm(matrix: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Inverse of ``gemm_view``: ``matrix: [M, K] -> shape`` with ``shape[0] == M``."""
    shape = tuple(shape)
    if matrix.dim() != 2 or len(shape) < 2 or matrix.shape[0] != shape[0]:
        raise ValueError(
            f"cannot turn a GEMM view of shape {tuple(matrix.shape)} into a weight of shape "
            f"{shape}; accepted: a 2-D [M, K] matrix and a shape with at least 2 dims whose "
            "first dim is M"
        )
    if matrix.numel() != torch.Size(shape).numel():
        raise ValueError(
            f"a GEMM view of shape {tuple(matrix.shape)} has {matrix.numel()} entries, the "
            f"weight shape {shape} needs {torch.Size(shape).numel()}"
        )
    return matrix.reshape(shape)


def _weights(module: nn.Module) -> list[str]:
    """Names of the prunable weights held directly by ``module`` (never biases)."""
    if isinstance(module, nn.LSTM):
        return [
            name
            for name, _ in module.named_parameters(recurse=False)
            if name.startswith(LSTM_WEIGHT_PREFIXES)
        ]
    return ["weight"] if getattr(module, "weight", None) is not None else []


def prunable_parameters(
    model: nn.Module, include: list[str], exclude: list[str]
) -> dict[str, nn.Parameter]:
    """The prunable weights of ``model`` selected by fnmatch patterns, in model order.

    A weight is prunable when it is the ``weight`` of a Linear, Conv1d or Conv2d
    module or a ``weight_ih_l*`` / ``weight_hh_l*`` of an LSTM. It is selected
    when its qualified name (e.g. ``"layer1.0.conv1.weight"``) matches some
    pattern of ``include`` and none of ``exclude``. An include pattern that
    matches no prunable weight raises ValueError (a typo would silently leave
    layers dense).
    """
    candidates: dict[str, nn.Parameter] = {}
    for module_name, module in model.named_modules():
        if isinstance(module, PRUNABLE_MODULES):
            for name in _weights(module):
                qualified = f"{module_name}.{name}" if module_name else name
                candidates[qualified] = getattr(module, name)
    for pattern in include:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in candidates):
            examples = ", ".join(list(candidates)[:5]) or "none"
            raise ValueError(
                f"include pattern {pattern!r} matches no prunable weight of "
                f"{type(model).__name__}; accepted: fnmatch patterns over qualified weight "
                f"names of Linear/Conv1d/Conv2d/LSTM modules, e.g. {examples}"
            )
    return {
        name: param
        for name, param in candidates.items()
        if any(fnmatch.fnmatchcase(name, p) for p in include)
        and not any(fnmatch.fnmatchcase(name, p) for p in exclude)
    }


def gemm_columns(
    model: nn.Module, names: list[str], forward: Callable[[], object]
) -> dict[str, int]:
    """Columns N of each named weight's GEMM ``Y[M, N] = W[M, K] X[K, N]`` in one forward.

    A Conv's N is batch x output positions (its im2col view), a Linear's the
    rows it sees (batch x positions), an LSTM weight's batch x time steps.
    ``forward()`` runs ``model`` once on the input to measure; the counts are
    read off forward hooks on the modules that own the weights (output numel
    divided by its channel size), which are removed again afterwards.
    """
    modules = dict(model.named_modules())
    counts: dict[str, int] = {}
    hooks = []
    for name in names:
        module = modules[name.rpartition(".")[0]]

        def record(mod: nn.Module, inputs: object, output: object, name: str = name) -> None:
            out = output[0] if isinstance(output, tuple) else output
            if isinstance(out, nn.utils.rnn.PackedSequence):
                out = out.data
            channels = out.shape[1] if isinstance(mod, (nn.Conv1d, nn.Conv2d)) else out.shape[-1]
            counts[name] = out.numel() // channels

        hooks.append(module.register_forward_hook(record))
    try:
        forward()
    finally:
        for hook in hooks:
            hook.remove()
    missing = [name for name in names if name not in counts]
    if missing:
        raise ValueError(f"the forward pass did not run the modules of {missing[:3]}")
    return counts
