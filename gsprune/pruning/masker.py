"""The pruner: masks of the prunable weights, recomputed by pattern projection.

Pruning produces dense weights with zeros (the torchao way); exporting them to
a compact format is a separate step (``gsprune.formats``).

Usage inside a fine-tuning loop::

    pruner = Pruner(prunable_parameters(model, include, exclude), "gs", {"V": 8}, "magnitude")
    pruner.prune(0.5)               # at a pruning event: new masks, masked weights zeroed
    ...optimizer.step(); pruner.apply()   # after every step: masked weights back to 0

Only the weights are masked: optimizer state (SGD momentum, Adam moments) of a
masked weight is left alone, so ``optimizer.step()`` can move it off zero,
and ``apply()`` after every step puts it back to exactly 0. A weight that a
later event keeps again restarts from 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from gsprune import patterns
from gsprune.patterns.base import achieved_sparsity, check_sparsity
from gsprune.pruning.scores import SCORES
from gsprune.views import gemm_view


class Pruner:
    """Keep-masks for ``params`` under one pattern and one score.

    ``masks[name]``: ``bool[param.shape]`` on the parameter's device, True =
    kept; all True until the first ``prune``. ``pattern_params`` are validated
    (defaults filled) at construction. For scores that need gradients
    (``taylor``) a hook on each parameter feeds every backward pass to the
    score; ``remove_hooks()`` detaches them.
    """

    def __init__(
        self,
        params: Mapping[str, nn.Parameter],
        pattern: str,
        pattern_params: Mapping[str, Any] | None = None,
        score: str = "magnitude",
    ) -> None:
        if not params:
            raise ValueError(
                "no prunable parameters: the task's include/exclude patterns selected none; "
                "accepted: a non-empty dict of weights with at least 2 dims"
            )
        self.params: dict[str, nn.Parameter] = dict(params)
        for param in self.params.values():
            gemm_view(param)  # raises for 1-D parameters (biases, norms)
        self.pattern = patterns.get(pattern)
        self.pattern_params = self.pattern.params(**dict(pattern_params or {}))
        self.score_name = score
        self.score = SCORES.get(score)()
        self.target = 0.0
        self.masks: dict[str, torch.Tensor] = {
            name: torch.ones_like(param, dtype=torch.bool) for name, param in self.params.items()
        }
        self._hooks = []
        if self.score.needs_grad:
            for name, param in self.params.items():
                self._hooks.append(
                    param.register_post_accumulate_grad_hook(
                        lambda p, name=name: self.score.observe(name, p)
                    )
                )

    @torch.no_grad()
    def prune(self, sparsity: float) -> dict[str, float]:
        """Project every parameter's scores onto the pattern at ``sparsity``; zero the rest.

        Each layer is projected on its GEMM view ``[M, K]`` (see
        ``gsprune.views``). Sparsity 0 keeps everything. Returns the achieved
        sparsity per layer, which can differ from the target where the pattern
        cannot reach it exactly (the pattern logs a warning then). Resets the
        score's accumulated statistics.
        """
        self.target = check_sparsity(sparsity)
        achieved = {}
        for name, param in self.params.items():
            if self.target == 0.0:
                mask = torch.ones_like(param, dtype=torch.bool)
            else:
                scores = gemm_view(self.score.compute(name, param))
                mask = self.pattern.project(scores, self.target, **self.pattern_params)
                mask = mask.reshape(param.shape).to(param.device)
            self.masks[name] = mask
            achieved[name] = achieved_sparsity(mask)
        self.score.reset()
        self.apply()
        return achieved

    @torch.no_grad()
    def apply(self) -> None:
        """Set every masked weight to exactly 0 (call after each ``optimizer.step()``)."""
        for name, param in self.params.items():
            param.masked_fill_(~self.masks[name], 0.0)

    def sparsity(self) -> float:
        """Fraction of masked entries over all pruned parameters together."""
        total = sum(mask.numel() for mask in self.masks.values())
        kept = sum(int(mask.count_nonzero()) for mask in self.masks.values())
        return 1.0 - kept / total

    def remove_hooks(self) -> None:
        """Detach the gradient hooks of grad-based scores (no-op for magnitude)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def state_dict(self) -> dict[str, Any]:
        """Masks, target, pattern, score and its statistics: only tensors and plain values,
        so ``torch.load(..., weights_only=True)`` reads it back."""
        return {
            "pattern": self.pattern.name,
            "pattern_params": dict(self.pattern_params),
            "score": self.score_name,
            "target": self.target,
            "masks": {name: mask.cpu() for name, mask in self.masks.items()},
            "score_state": self.score.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()`` output and re-apply the masks to the weights.

        Raises ValueError when the state was saved for another pattern, score,
        parameter set or shape, naming the first mismatch.
        """
        mine = (self.pattern.name, dict(self.pattern_params), self.score_name)
        theirs = (state.get("pattern"), state.get("pattern_params"), state.get("score"))
        if mine != theirs:
            raise ValueError(
                f"pruner state was saved for pattern/params/score {theirs}, this pruner uses "
                f"{mine}; accepted: a state_dict() of a pruner with the same settings"
            )
        masks = state["masks"]
        if set(masks) != set(self.params):
            diff = sorted(set(masks) ^ set(self.params))[:5]
            raise ValueError(
                f"pruner state holds masks for other parameters than this model's prunable "
                f"ones (differing names, e.g. {diff})"
            )
        for name, param in self.params.items():
            mask = masks[name]
            if mask.shape != param.shape or mask.dtype != torch.bool:
                raise ValueError(
                    f"pruner state mask for {name!r} is {mask.dtype} {tuple(mask.shape)}; the "
                    f"parameter needs torch.bool {tuple(param.shape)}"
                )
        self.masks = {name: masks[name].to(param.device) for name, param in self.params.items()}
        self.target = float(state["target"])
        self.score.load_state_dict(state["score_state"])
        self.apply()
