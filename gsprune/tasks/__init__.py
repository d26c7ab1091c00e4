"""Task registry: ``gsprune.tasks.build(cfg)`` makes the task of kind ``cfg["kind"]``.

Each task kind lives in its own module and registers its class with
``@register("kind")``; importing this package imports them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gsprune.registry import Registry
from gsprune.tasks.base import Task

TASKS: Registry[type[Task]] = Registry("task")


def register(kind: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator filing a Task subclass under its config ``kind``."""
    return TASKS.register(kind)


def build(cfg: Mapping[str, Any]) -> Task:
    """The task for a config node; an unknown or missing ``kind`` raises ValueError."""
    if not isinstance(cfg, Mapping) or "kind" not in cfg:
        raise ValueError(
            f"a task config needs a 'kind' key (one of {', '.join(TASKS.names())}); got {cfg!r}"
        )
    return TASKS.get(cfg["kind"])(cfg)


from gsprune.tasks import image, speech  # noqa: E402,F401
from gsprune.tasks.translation import task as translation  # noqa: E402,F401

__all__ = ["TASKS", "Task", "build", "register"]
