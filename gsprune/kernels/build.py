"""Build and load the compiled CPU kernels (``csrc/*.cpp``) with torch's extension builder.

The extension is compiled once per instruction set (``ISAS``) and the best one the CPU
runs is chosen at run time (:func:`best_isa`): ``avx512`` (``-march=x86-64-v4``: the
SpMM tiles use 16-float zmm vectors and 32 registers), ``avx2`` (``-march=x86-64-v3``:
8-float ymm vectors, AVX2 + FMA) or ``portable`` (the compiler's baseline, for CPUs
without AVX2 and non-x86 machines; only the portable C++ path). Every build also holds
the portable path (``simd=False``, the "cpu_scalar" backend), and an AVX-512 machine
runs and tests all three. ``GSPRUNE_CPU_ISA`` forces the "cpu" backend's choice.

Builds live in ``$GSPRUNE_BUILD_DIR`` (default ``~/.cache/gsprune/torch_extensions``), a
cache that persists across runs and test sessions, one directory per (sources, flags,
torch version); later loads take well under a second. The flags name an architecture
level, not ``-march=native``, so a build never depends on which CPU compiled it.

OpenMP: torch's wheel ships its GNU OpenMP runtime as ``libgomp.so.1``, the same soname
the extension links, so kernels and torch share one runtime and thread pool.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from gsprune.checkpoints import file_lock

CSRC = Path(__file__).parent / "csrc"
SOURCES = ("bindings.cpp", "gs.cpp", "rows.cpp")
HEADERS = ("kernels.h",)
CFLAGS = ("-O3", "-fopenmp", "-std=c++17")
LDFLAGS = ("-fopenmp",)


@dataclass(frozen=True)
class Isa:
    """One build of the extension: its extra compiler flags and the CPU flags it needs
    (``/proc/cpuinfo`` names; an x86-64 micro-architecture level)."""

    cflags: tuple[str, ...]
    cpu_flags: frozenset[str]


_V3 = frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"})
# Best first. "portable" needs nothing: it is what every machine can run.
ISAS: dict[str, Isa] = {
    "avx512": Isa(
        ("-march=x86-64-v4",),
        _V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
    ),
    "avx2": Isa(("-march=x86-64-v3",), _V3),
    "portable": Isa((), frozenset()),
}
ISA_ENV = "GSPRUNE_CPU_ISA"

_build_errors: dict[str, str] = {}


def build_root() -> Path:
    """The build cache: ``$GSPRUNE_BUILD_DIR`` or ``~/.cache/gsprune/torch_extensions``."""
    configured = os.environ.get("GSPRUNE_BUILD_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "gsprune" / "torch_extensions"


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def supported_isas() -> list[str]:
    """The builds this CPU runs, best first (always ends with "portable")."""
    return list(_supported(cpu_flags(), platform.machine()))


@functools.cache
def _supported(flags: frozenset[str], machine: str) -> tuple[str, ...]:
    # Cached: every kernel call asks, and a small layer's product takes microseconds.
    x86 = machine.lower() in ("x86_64", "amd64")
    return tuple(
        name for name, isa in ISAS.items() if not isa.cpu_flags or (x86 and isa.cpu_flags <= flags)
    )


def best_isa() -> str:
    """The build the "cpu" backend runs: ``$GSPRUNE_CPU_ISA`` if set, else the best supported.

    Raises ValueError for an unknown name or one this CPU cannot run.
    """
    forced = os.environ.get(ISA_ENV)
    if not forced:
        return _supported(cpu_flags(), platform.machine())[0]
    check_isa(forced)
    return forced


def check_isa(name: str) -> None:
    """ValueError unless ``name`` is a build this CPU runs."""
    if name not in ISAS:
        raise ValueError(f"unknown CPU kernel build {name!r}; known: {', '.join(ISAS)}")
    if name not in _supported(cpu_flags(), platform.machine()):
        missing = sorted(ISAS[name].cpu_flags - cpu_flags())
        raise ValueError(
            f"the {name} CPU kernels need CPU flags this machine lacks ({', '.join(missing)}); "
            f"it runs: {', '.join(supported_isas())}"
        )


def extension_name(isa: str) -> str:
    """``gsprune_cpu_<isa>_<hash>``: the hash covers sources, flags and torch version."""
    digest = hashlib.sha256()
    for name in SOURCES + HEADERS:
        digest.update((CSRC / name).read_bytes())
    digest.update(repr((CFLAGS, ISAS[isa].cflags, LDFLAGS, torch.__version__)).encode())
    return f"gsprune_cpu_{isa}_{digest.hexdigest()[:12]}"


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
def _load_isa(isa: str) -> ModuleType | None:
    name = extension_name(isa)
    directory = build_root() / name
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not (directory / f"{name}.so").exists():
            print(
                f"gsprune: compiling CPU kernels ({isa}; once, ~1 min)...",
                file=sys.stderr,
                flush=True,
            )
        # torch's own build lock (the file "lock" in the build folder) outlives a process
        # killed mid-build, and every later load then waits on it forever. Our lock is
        # released by the kernel when its holder dies; whoever holds it knows that no
        # other gsprune process is building, so a "lock" file left there is stale.
        with file_lock(directory.parent / f"{name}.build-lock"):
            (directory / "lock").unlink(missing_ok=True)
            return _import_cpp_extension().load(
                name=name,
                sources=[str(CSRC / source) for source in SOURCES],
                extra_cflags=[*CFLAGS, *ISAS[isa].cflags],
                extra_ldflags=list(LDFLAGS),
                extra_include_paths=[str(CSRC)],
                build_directory=str(directory),
                with_cuda=False,
                verbose=False,
            )
    except Exception as err:  # noqa: BLE001 - any build failure means "use the fallback"
        lines = str(err).strip().splitlines()
        _build_errors[isa] = f"{type(err).__name__}: {lines[0] if lines else ''}"
        warnings.warn(
            f"gsprune: could not build the compiled CPU kernels ({isa}: {_build_errors[isa]}); "
            f"backend 'cpu' falls back to the pure-torch 'reference' kernels (build dir "
            f"{directory})",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def load(isa: str | None = None) -> ModuleType | None:
    """The compiled extension for ``isa`` (default :func:`best_isa`), built on first use.

    Returns None when the build fails: a failed build (no compiler, a compile error)
    gives one RuntimeWarning and the reason stays available from :func:`build_error`;
    callers then fall back to the pure-torch reference kernels and label them as such.
    Raises ValueError for a build this CPU cannot run.
    """
    name = best_isa() if isa is None else isa
    check_isa(name)
    return _load_isa(name)


def build_error(isa: str | None = None) -> str | None:
    """Why :func:`load` returned None (one line), or None when it has not failed."""
    return _build_errors.get(best_isa() if isa is None else isa)
