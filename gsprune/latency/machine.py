"""Facts about the machine and software a timing was taken on (DESIGN §6, §8).

``machine_facts()`` fills the run record's ``"machine"`` entry and
``versions()`` its ``"versions"`` entry; benchmarks print both beside their
tables so a number is never separated from where it was measured.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

import gsprune

# Environment variables that change how the BLAS/OpenMP runtimes use threads. The wait
# policy matters on a loaded machine: spinning OpenMP workers lose the CPU to other
# processes, and a parallel region then stalls for a scheduler time slice.
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "KMP_AFFINITY",
)


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str]]:
    """CPU model name and the feature flags of the first processor.

    Off Linux (no /proc/cpuinfo) the model comes from ``platform.processor()``
    and the flags are empty.
    """
    model, flags = "", set()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor(), flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
        if model and flags:
            break
    return model or platform.processor(), flags


def machine_facts() -> dict[str, Any]:
    """Where the code runs: CPU, cores, SIMD features, threads and their env settings.

    ``usable_cores`` is the CPU affinity of this process (what a container or
    ``taskset`` allows), which can be smaller than ``logical_cores``.
    ``load_average`` (1, 5, 15 minutes) says whether other work shared the
    CPUs while timings were taken: above ``usable_cores`` they are unreliable.
    """
    model, flags = _cpuinfo()
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "avx2": "avx2" in flags,
        "avx512f": "avx512f" in flags,
        "fma": "fma" in flags,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "env": {name: os.environ.get(name) for name in THREAD_ENV},
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def versions() -> dict[str, str | None]:
    """Versions of the software that decides speed and numerics."""
    return {
        "python": platform.python_version(),
        "python_implementation": sys.implementation.name,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "numpy": np.__version__,
        "gsprune": gsprune.__version__,
        "torch_libraries": _torch_libraries(),
    }


def _torch_libraries() -> list[str]:
    """The parallel runtime and math libraries torch was built with (OpenMP, MKL, oneDNN).

    Taken from the unindented lines of ``torch.__config__.parallel_info()``,
    minus its section headers.
    """
    lines = torch.__config__.parallel_info().splitlines()
    return [
        line.strip()
        for line in lines
        if line
        and not line[0].isspace()
        and not line.rstrip().endswith(":")
        and "hardware_concurrency" not in line
    ]
