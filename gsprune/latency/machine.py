"""Facts about the machine and software a timing was taken on (DESIGN §6, §8).

``machine_facts()`` fills the run record's ``"machine"`` entry and
``versions()`` its ``"versions"`` entry; benchmarks print both beside their
tables so a number is never separated from where it was measured.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
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
    """CPU model and the feature flags of the first processor.

    The model is the model name plus "(family F, model M)" when cpuinfo gives them
    (virtual machines often name only "Intel(R) Xeon(R) Processor"; family and model
    tell the generation). Off Linux (no /proc/cpuinfo) the model comes from
    ``platform.processor()`` and the flags are empty.
    """
    fields: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor(), set()
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor only
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name") or platform.processor()
    if "cpu family" in fields and "model" in fields:
        model = f"{model} (family {fields['cpu family']}, model {fields['model']})"
    return model, set(fields.get("flags", "").split())


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
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "env": {name: os.environ.get(name) for name in THREAD_ENV},
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda": gpu_facts() if torch.cuda.is_available() else None,
    }


# nvidia-smi fields read by gpu_facts, under the names the record uses.
SMI_FIELDS = {
    "driver_version": "driver",
    "clocks.sm": "sm_clock_mhz",
    "clocks.mem": "mem_clock_mhz",
    "clocks.max.sm": "max_sm_clock_mhz",
    "clocks.max.mem": "max_mem_clock_mhz",
    "temperature.gpu": "temperature_c",
    "power.draw": "power_w",
}


def gpu_facts(device: int = 0) -> dict[str, Any]:
    """The CUDA device a timing ran on: name, capability, size, and its clocks right now.

    Clocks, driver, temperature and power come from ``nvidia-smi`` (absent keys when it is
    not installed or fails): read them right after timing to see the clocks the kernels
    ran at (an idle GPU drops its SM clock). ValueError when torch sees no CUDA device.
    """
    if not torch.cuda.is_available():
        raise ValueError("gpu_facts: torch.cuda.is_available() is False on this machine")
    props = torch.cuda.get_device_properties(device)
    facts: dict[str, Any] = {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "multiprocessors": props.multi_processor_count,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "l2_cache_mib": round(getattr(props, "L2_cache_size", 0) / 2**20, 1),
        "torch_cuda": torch.version.cuda,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
    }
    return facts | _smi(str(getattr(props, "uuid", "")), device)


def _smi(uuid: str, device: int) -> dict[str, Any]:
    """``SMI_FIELDS`` of one GPU from nvidia-smi, or {}: found by its UUID when torch gives
    one (CUDA_VISIBLE_DEVICES may renumber), else by torch's index."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {}
    targets = [f"GPU-{uuid}" if uuid and not uuid.startswith("GPU-") else uuid, str(device)]
    for target in filter(None, targets):
        command = [smi, f"--id={target}", f"--query-gpu={','.join(SMI_FIELDS)}"]
        try:
            out = subprocess.run(
                [*command, "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        values = [value.strip() for value in out.splitlines()[0].split(",")] if out else []
        if len(values) == len(SMI_FIELDS):
            return {
                key: value if key == "driver" else _number(value)
                for key, value in zip(SMI_FIELDS.values(), values, strict=True)
            }
    return {}


def _number(text: str) -> float | None:
    """nvidia-smi's value as a number; None for "[N/A]" and other non-numbers."""
    try:
        return float(text)
    except ValueError:
        return None


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
