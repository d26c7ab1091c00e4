"""Importance scores: which weights a pattern projection should keep (DESIGN §5).

A score maps each prunable parameter to a non-negative tensor of the same
shape; the pruner projects its GEMM view onto the pattern. Config names:

- ``magnitude``: |w|, the classic magnitude pruning criterion;
- ``taylor``: the first-order Taylor estimate of the loss change when a weight
  is removed, |w * dL/dw|, averaged over the optimizer steps since the last
  pruning event (Molchanov et al., 2019). Gradients reach it through
  ``observe``, which the pruner calls from a hook after every backward pass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from gsprune.registry import Registry

SCORES: Registry[type[Score]] = Registry("score")


class Score(ABC):
    """A pruning criterion; ``needs_grad`` scores are fed gradients through ``observe``."""

    needs_grad: ClassVar[bool] = False

    def observe(self, name: str, param: nn.Parameter) -> None:  # noqa: B027 (optional hook)
        """Take note of ``param.grad`` (called after each backward pass). Default: nothing."""

    @abstractmethod
    def compute(self, name: str, param: nn.Parameter) -> torch.Tensor:
        """``float[param.shape]``, non-negative: larger means more worth keeping."""

    def reset(self) -> None:  # noqa: B027 (optional hook)
        """Forget what was observed (called after each pruning event)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Restore ``state_dict()`` output."""


@SCORES.register("magnitude")
class Magnitude(Score):
    """|w|."""

    def compute(self, name: str, param: nn.Parameter) -> torch.Tensor:
        return param.detach().abs().float()


@SCORES.register("taylor")
class Taylor(Score):
    """Mean of |w * grad| over the backward passes observed since the last ``reset``.

    The sum is kept per parameter in float32 on the parameter's device (one
    extra tensor per pruned weight); masked weights are zero and so score 0.
    """

    needs_grad = True

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def observe(self, name: str, param: nn.Parameter) -> None:
        if param.grad is None:
            return
        term = (param.detach() * param.grad.detach()).abs().float()
        if name in self.sums:
            # .to(): sums restored from a checkpoint sit on the CPU until the first backward.
            self.sums[name] = self.sums[name].to(term.device).add_(term)
        else:
            self.sums[name] = term
        self.counts[name] = self.counts.get(name, 0) + 1

    def compute(self, name: str, param: nn.Parameter) -> torch.Tensor:
        if not self.counts.get(name):
            raise ValueError(
                f"the taylor score of {name!r} has seen no gradient since the last pruning "
                "event; it needs at least one backward pass before prune() (with one-shot "
                "pruning, run a few training batches first, or use score=magnitude)"
            )
        return self.sums[name] / self.counts[name]

    def reset(self) -> None:
        self.sums.clear()
        self.counts.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums = dict(state.get("sums", {}))
        self.counts = {name: int(count) for name, count in state.get("counts", {}).items()}
