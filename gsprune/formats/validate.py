"""Does a mask or a format satisfy pattern P? And if not, where (DESIGN §4).

``validate(obj, pattern, **params)`` takes a keep-mask ``bool[M, K]`` or a
format object. A mask is checked by the pattern's own ``violations``. A format
is first checked structurally by its registry entry (array layouts, index
ranges, ordering, GS bank conflicts, parameters matching the pattern's
``format_params``); when that passes, its stored positions (``structure()``,
which does not depend on the values, some of which may be 0) go through the
same mask check. Structural problems stop there: positions read from a broken
layout would only repeat them.

The helpers below are shared by the formats' ``check`` functions: each lists at
most ``MAX_LISTED`` places per kind of problem and then one summary with the count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from gsprune.formats.base import FORMATS, SparseFormat
from gsprune.patterns.base import Violation

MAX_LISTED = 20


@dataclass
class ValidationReport:
    """The outcome of ``validate``: ``ok`` when ``violations`` is empty."""

    subject: str
    pattern: str
    params: dict[str, Any]
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        head = f"{self.subject} vs pattern {self.pattern}({args})"
        if self.ok:
            return f"{head}: ok"
        lines = [f"{head}: {len(self.violations)} violation(s)"]
        lines += [f"  - {v.message}" for v in self.violations]
        return "\n".join(lines)


def validate(obj: torch.Tensor | SparseFormat, pattern: str, **params: Any) -> ValidationReport:
    """Check a keep-mask ``bool[M, K]`` or a format object against ``pattern`` with ``params``.

    Raises ValueError for an unknown pattern, bad parameters, an object that is
    neither, or a format that is not the pattern's format (a CSRMatrix against "gs").
    """
    # Imported here so the format dataclasses stay importable on their own.
    from gsprune import patterns

    pat = patterns.get(pattern)
    merged = pat.params(**params)
    if isinstance(obj, torch.Tensor):
        if obj.dtype != torch.bool or obj.dim() != 2:
            raise ValueError(
                f"validate takes a keep-mask bool[M, K] or a format object; got a tensor of "
                f"dtype {obj.dtype} and shape {tuple(obj.shape)}"
            )
        pat.check_shape(tuple(obj.shape), merged)
        subject = f"mask {tuple(obj.shape)}"
        return ValidationReport(subject, pattern, merged, pat.violations(obj, **merged))
    if not isinstance(obj, SparseFormat):
        raise ValueError(
            f"validate takes a keep-mask bool[M, K] or a format object (gsprune.formats); "
            f"got a {type(obj).__name__}"
        )
    if obj.name != pat.format:
        raise ValueError(
            f"a {type(obj).__name__} (format {obj.name!r}) cannot satisfy pattern {pattern!r}, "
            f"whose format is {pat.format!r}; encode the mask with "
            f"gsprune.formats.encode(weight, mask, {pattern!r}) or validate against a pattern "
            f"that uses {obj.name!r}"
        )
    subject = f"{type(obj).__name__} {tuple(obj.shape)}"
    found = FORMATS.get(obj.name).check(obj, **pat.format_params(merged))
    if not found:
        found = pat.violations(obj.structure(), **merged)
    return ValidationReport(subject, pattern, merged, found)


def listed(
    positions: torch.Tensor, describe: Callable[[int], Violation], what: str
) -> list[Violation]:
    """``describe(p)`` for the first ``MAX_LISTED`` of ``positions: int[n]``, then a count."""
    found = [describe(int(p)) for p in positions[:MAX_LISTED]]
    rest = positions.numel() - MAX_LISTED
    if rest > 0:
        found.append(Violation(f"... and {rest} more {what}", {"count": rest}))
    return found


def param_violations(fmt: SparseFormat, expected: dict[str, Any]) -> list[Violation]:
    """One violation per format field that differs from the pattern's format parameter."""
    return [
        Violation(f"format has {name}={getattr(fmt, name)!r}, the pattern asks {name}={want!r}")
        for name, want in expected.items()
        if getattr(fmt, name) != want
    ]


def ptr_violations(name: str, ptr: torch.Tensor, total: int, unit: str) -> list[Violation]:
    """A pointer array must start at 0, never decrease and end at ``total``."""
    found = []
    if ptr[0] != 0:
        found.append(Violation(f"{name}[0] is {int(ptr[0])}, expected 0", {"value": int(ptr[0])}))
    if ptr[-1] != total:
        found.append(
            Violation(
                f"{name}[-1] is {int(ptr[-1])}, expected {total} (the stored count)",
                {"value": int(ptr[-1]), "count": total},
            )
        )
    drops = (ptr.diff() < 0).nonzero()[:, 0]
    found += listed(
        drops,
        lambda t: Violation(
            f"{name} decreases at {unit} {t}: {int(ptr[t])} -> {int(ptr[t + 1])}", {unit: t}
        ),
        f"{unit}s where {name} decreases",
    )
    return found


def range_violations(
    name: str, index: torch.Tensor, dim: int, locate: Callable[[int], dict[str, int]]
) -> list[Violation]:
    """Entries of ``index`` (any shape, read flat) outside [0, dim); ``locate`` names the place."""
    flat = index.reshape(-1).long()
    bad = ((flat < 0) | (flat >= dim)).nonzero()[:, 0]

    def describe(p: int) -> Violation:
        where = locate(p)
        place = ", ".join(f"{k} {v}" for k, v in where.items())
        return Violation(
            f"{name} out of range at {place}: {int(flat[p])} not in [0, {dim})",
            {**where, "value": int(flat[p])},
        )

    return listed(bad, describe, f"{name} entries out of range")


def order_violations(
    ptr: torch.Tensor, index: torch.Tensor, unit: str, what: str
) -> list[Violation]:
    """Inside every segment ``ptr[t]:ptr[t+1]`` of ``index`` the entries strictly ascend."""
    index = index.long()
    segment = torch.repeat_interleave(torch.arange(ptr.numel() - 1), ptr.long().diff())
    bad = ((index.diff() <= 0) & (segment.diff() == 0)).nonzero()[:, 0] + 1
    return listed(
        bad,
        lambda p: Violation(
            f"{unit} {int(segment[p])}: {what} {int(index[p])} follows {int(index[p - 1])}, "
            f"{what}s must strictly ascend",
            {unit: int(segment[p]), what: int(index[p])},
        ),
        f"{what}s out of order",
    )


def padding_violations(fmt: SparseFormat) -> list[Violation]:
    """Padding slots (past the matrix edge, fill slots) must hold exactly 0."""
    slots = fmt.slots()
    bad = (~slots.real & (slots.values != 0)).nonzero()[:, 0]
    return listed(
        bad,
        lambda p: Violation(
            f"padding slot at row {int(slots.rows[p])}, column {int(slots.cols[p])} holds "
            f"{float(slots.values[p])!r}, padding must hold 0",
            {"row": int(slots.rows[p]), "column": int(slots.cols[p])},
        ),
        "non-zero padding slots",
    )
