"""The pattern interface: a projection from a score matrix onto a sparsity pattern.

Every pattern works on a GEMM view ``scores: float[M, K]`` (rows = outputs,
columns = inputs; see ``gsprune.views``) and returns ``mask: bool[M, K]`` that
keeps the most total score subject to the pattern's constraint.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

log = logging.getLogger(__name__)


def check_sparsity(sparsity: float) -> float:
    """Return ``sparsity`` as a float, or raise ValueError when it is outside [0, 1)."""
    value = float(sparsity)
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"sparsity={sparsity!r} is outside [0, 1); pass the fraction of weights to "
            "remove, e.g. 0.9 for 90% zeros"
        )
    return value


def check_scores(scores: torch.Tensor) -> torch.Tensor:
    """Validate a GEMM-view score matrix: 2-D, floating point, finite, non-empty."""
    if scores.dim() != 2 or scores.numel() == 0:
        raise ValueError(
            f"scores must be a non-empty 2-D GEMM view [M, K]; got shape {tuple(scores.shape)} "
            "(use gsprune.views.gemm_view for conv and LSTM weights)"
        )
    if not scores.is_floating_point():
        raise ValueError(f"scores must be floating point; got {scores.dtype}")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(
            "scores contain NaN or inf (a diverged weight or gradient?); accepted: finite values"
        )
    return scores


def achieved_sparsity(mask: torch.Tensor) -> float:
    """Fraction of False entries of a keep-mask."""
    return 1.0 - mask.count_nonzero().item() / mask.numel()


@dataclass(frozen=True)
class Violation:
    """One place where a mask breaks a pattern's constraint.

    ``message`` is a one-line human-readable sentence ("band 3: row 25 keeps 7
    non-zeros, the band's k is 8"); ``location`` holds the same facts as data,
    e.g. ``{"band": 3, "row": 25, "count": 7, "k": 8}`` or
    ``{"band": 3, "bank": 5, "count": 9, "k": 8}``.
    """

    message: str
    location: dict[str, int] = field(default_factory=dict)


class Pattern(ABC):
    """A sparsity pattern: a projection plus the name of its compact format.

    Subclasses set ``name``, ``format`` (a key of ``gsprune.formats``) and
    ``defaults`` (the parameters with their default values; the same keys appear
    in ``conf/pattern/<name>.yaml``), and implement ``_project``.
    """

    name: ClassVar[str]
    format: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def params(self, **params: Any) -> dict[str, Any]:
        """Fill defaults and validate; unknown keys and bad values raise ValueError."""
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"pattern {self.name!r} has no parameter(s) {sorted(unknown)}; "
                f"accepted: {sorted(self.defaults)}"
            )
        merged = {**self.defaults, **params}
        self.check_params(merged)
        return merged

    def check_params(self, params: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Raise ValueError naming the bad value and what is accepted. Default: no checks."""

    def check_shape(self, shape: tuple[int, int], params: dict[str, Any]) -> None:  # noqa: B027
        """Raise ValueError when the pattern cannot apply to a GEMM view of ``shape``."""

    def format_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The parameters the pattern's format needs (e.g. V and B for GS)."""
        return {}

    def project(self, scores: torch.Tensor, sparsity: float, **params: Any) -> torch.Tensor:
        """Return ``mask: bool[M, K]`` keeping the most score under the pattern.

        When the pattern cannot reach ``sparsity`` exactly (block, N:M, small
        shapes) it takes the nearest feasible sparsity and logs a warning that
        names both; ``achieved_sparsity(mask)`` gives the value reached.
        """
        check_scores(scores)
        sparsity = check_sparsity(sparsity)
        merged = self.params(**params)
        self.check_shape(tuple(scores.shape), merged)
        mask = self._project(scores.detach().float(), sparsity, merged)
        assert mask.shape == scores.shape and mask.dtype == torch.bool
        return mask

    def violations(self, mask: torch.Tensor, **params: Any) -> list[Violation]:
        """Every place where ``mask: bool[M, K]`` breaks the pattern (empty = valid).

        Default: no constraint (dense, unstructured). ``gsprune.formats.validate``
        calls this for masks and adds the format-level checks for formats.
        """
        return []

    @abstractmethod
    def _project(
        self, scores: torch.Tensor, sparsity: float, params: dict[str, Any]
    ) -> torch.Tensor:
        """Projection on validated input; ``params`` holds every default."""
