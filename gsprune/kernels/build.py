"""Build and load the compiled CPU kernels (``csrc/*.cpp``) with torch's extension builder.

The extension is compiled once per (sources, flags, torch version, CPU flags) into
``$GSPRUNE_BUILD_DIR`` (default ``~/.cache/gsprune/torch_extensions``), a cache that
persists across runs and test sessions; later loads take well under a second. Flags are
``-O3 -march=native -fopenmp``: the compiler sees the building CPU, so the AVX2/FMA
paths are compiled in exactly when that CPU has AVX2 and FMA (else only the portable
path exists) and the cache key includes the CPU flags so a cache shared between
different machines never loads a build for the wrong CPU.

OpenMP: torch's wheel ships its GNU OpenMP runtime as ``libgomp.so.1``, the same soname
the extension links, so kernels and torch share one runtime and thread pool.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

import torch

CSRC = Path(__file__).parent / "csrc"
SOURCES = ("bindings.cpp", "gs.cpp", "gs_scatter.cpp", "rows.cpp")
HEADERS = ("kernels.h",)
CFLAGS = ("-O3", "-march=native", "-fopenmp", "-std=c++17")
LDFLAGS = ("-fopenmp",)

_build_error: str | None = None


def build_root() -> Path:
    """The build cache: ``$GSPRUNE_BUILD_DIR`` or ``~/.cache/gsprune/torch_extensions``."""
    configured = os.environ.get("GSPRUNE_BUILD_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "gsprune" / "torch_extensions"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    import platform

    return f"{platform.machine()} {platform.processor()}"


def extension_name() -> str:
    """``gsprune_cpu_<hash>``: the hash covers sources, flags, torch version and CPU flags."""
    digest = hashlib.sha256()
    for name in SOURCES + HEADERS:
        digest.update((CSRC / name).read_bytes())
    digest.update(repr((CFLAGS, LDFLAGS, torch.__version__, _cpu_flags())).encode())
    return f"gsprune_cpu_{digest.hexdigest()[:12]}"


def _import_cpp_extension() -> ModuleType:
    # Importing it logs "No CUDA runtime is found" on CPU-only machines; irrelevant here.
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        logger.setLevel(level)
    return cpp_extension


@functools.cache
def load() -> ModuleType | None:
    """The compiled extension, building it on first use; None when the build fails.

    A failed build (no compiler, a compile error) gives one RuntimeWarning and the
    reason stays available from :func:`build_error`; callers then fall back to the
    pure-torch reference kernels and label them as such.
    """
    global _build_error
    name = extension_name()
    directory = build_root() / name
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not (directory / f"{name}.so").exists():
            print("gsprune: compiling CPU kernels (once, ~1 min)...", file=sys.stderr, flush=True)
        return _import_cpp_extension().load(
            name=name,
            sources=[str(CSRC / source) for source in SOURCES],
            extra_cflags=list(CFLAGS),
            extra_ldflags=list(LDFLAGS),
            extra_include_paths=[str(CSRC)],
            build_directory=str(directory),
            with_cuda=False,
            verbose=False,
        )
    except Exception as err:  # noqa: BLE001 - any build failure means "use the fallback"
        lines = str(err).strip().splitlines()
        _build_error = f"{type(err).__name__}: {lines[0] if lines else ''}"
        warnings.warn(
            f"gsprune: could not build the compiled CPU kernels ({_build_error}); backend "
            f"'cpu' falls back to the pure-torch 'reference' kernels (build dir {directory})",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


def build_error() -> str | None:
    """Why :func:`load` returned None (one line), or None when it has not failed."""
    return _build_error
