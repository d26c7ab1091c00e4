"""Checkpoint files: atomic saves, loads that fail with a clear message, file locks.

Used for the cached dense model (shared by every run of a sweep, also by
parallel jobs) and for the per-run resume checkpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from gsprune.atomic import atomic_write


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be used (corrupt, truncated, or for another key)."""


def save_atomic(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over it.

    A crash or a full disk leaves either the previous file or none, never a
    truncated one; the temporary file is removed on error.
    """
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def load_checked(path: str | os.PathLike, key: str) -> dict[str, Any]:
    """Load a checkpoint written by ``save_atomic`` whose ``"key"`` entry equals ``key``.

    Raises CheckpointError (never a bare unpickling trace) when the file is
    unreadable or belongs to another configuration.
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged zip/pickle
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'})"
        ) from err
    if not isinstance(obj, dict) or obj.get("key") != key:
        found = obj.get("key") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"checkpoint {path} belongs to another configuration (key {found!r}, expected {key!r})"
        )
    return obj


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Exclusive advisory lock on ``path`` (created if needed), released on exit.

    Parallel sweep jobs take it around the dense-model cache so the dense model
    is trained once while the other jobs wait and then load it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
