"""Pruning building blocks (DESIGN §5): the cubic schedule, scores and the masker.

The runner composes them: a ``Pruner`` over the task's prunable weights, its
``prune(cubic_sparsity(step, ...))`` at each of ``pruning_steps(...)``, and
``apply()`` after every other optimizer step.
"""

from __future__ import annotations

from gsprune.pruning.masker import Pruner
from gsprune.pruning.schedule import cubic_sparsity, pruning_steps
from gsprune.pruning.scores import SCORES, Score

__all__ = ["SCORES", "Pruner", "Score", "cubic_sparsity", "pruning_steps"]
