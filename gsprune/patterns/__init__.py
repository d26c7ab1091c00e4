"""Pattern registry: ``gsprune.patterns.get(name).project(scores, sparsity, **params)``.

Each pattern family lives in its own module and registers itself with
``@register("name")``; importing this package imports them all.
"""

from __future__ import annotations

from gsprune.patterns.base import Pattern, achieved_sparsity, check_sparsity
from gsprune.registry import Registry

PATTERNS: Registry[Pattern] = Registry("pattern")


def register(name: str):
    """Class decorator: instantiate the pattern class and file it under ``name``."""

    def add(cls: type[Pattern]) -> type[Pattern]:
        cls.name = name
        PATTERNS.register(name)(cls())
        return cls

    return add


def get(name: str) -> Pattern:
    return PATTERNS.get(name)


def names() -> list[str]:
    return PATTERNS.names()


# Pattern families register themselves on import (one module per family).
from gsprune.patterns import (  # noqa: E402,F401
    balanced,
    block,
    dense,
    gs,
    nm,
    unstructured,
)

__all__ = ["PATTERNS", "Pattern", "achieved_sparsity", "check_sparsity", "get", "names", "register"]
