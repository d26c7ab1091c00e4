"""The shared-memory GS kernel (``csrc/gs_smem.cu``): build, load and run it.

The extension is compiled by torch's extension builder with nvcc on first use, into
``gsprune.kernels.build.build_root()`` like the CPU kernels, under a name that hashes the
sources, torch, its CUDA version and the device's compute capability. It needs nvcc of
the CUDA version torch was built with (torch refuses another major version).

Kernel (see gs_smem.cu): a block owns 32 rows (32 / V bands), stages BN columns of x in
shared memory with an odd row stride, and lane l of each warp owns row l, so with V = 32
the 32 shared loads of one step are one GS group in 32 distinct banks. BN (1, 2, 4 or 8,
at most N rounded up to a power of two) is the largest that fits the device's shared
memory per block: K * (BN | 1) + 32 * BN floats.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch

from gsprune.formats.base import GSMatrix
from gsprune.kernels import build

CSRC = Path(__file__).resolve().parents[1] / "csrc"
SOURCES = ("gs_smem.cu", "gs_smem_bindings.cpp")
HEADERS = ("gs_smem.h",)
BN_CHOICES = (8, 4, 2, 1)


def extension_name(capability: tuple[int, int]) -> str:
    digest = hashlib.sha256()
    for name in SOURCES + HEADERS:
        digest.update((CSRC / name).read_bytes())
    digest.update(repr((torch.__version__, torch.version.cuda, capability)).encode())
    return f"gsprune_cuda_{digest.hexdigest()[:12]}"


@functools.cache
def load(capability: tuple[int, int]) -> ModuleType:
    """The compiled extension for devices of ``capability``; ValueError when it cannot build."""
    name = extension_name(capability)
    directory = build.build_root() / name
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return build._import_cpp_extension().load(
            name=name,
            sources=[str(CSRC / source) for source in SOURCES],
            extra_include_paths=[str(CSRC)],
            extra_cuda_cflags=["-O3"],  # torch adds its own -std and arch flags
            extra_cflags=["-O3"],
            build_directory=str(directory),
            with_cuda=True,
            verbose=False,
        )
    except Exception as err:  # noqa: BLE001 - any build failure: say why, name the remedy
        lines = str(err).strip().splitlines() or [""]
        reason = next((line for line in lines if "error" in line.lower()), lines[-1]).strip()
        raise ValueError(
            f"the CUDA kernel gs_cuda_smem could not be built ({type(err).__name__}: "
            f"{reason}); it needs nvcc for CUDA {torch.version.cuda} "
            f"(torch's CUDA version) on PATH or in CUDA_HOME. Build dir: {directory}. The "
            "Triton kernel gs_triton needs no compiler"
        ) from err


def choose_bn(K: int, N: int, smem_limit: int) -> int:
    """The largest BN in (8, 4, 2, 1), at most N rounded up to a power of two, that fits."""
    for bn in BN_CHOICES:
        # bn < 2N: bn is at most the power of two that covers N
        if bn < 2 * N and (K * (bn | 1) + 32 * bn) * 4 <= smem_limit:
            return bn
    raise ValueError(
        f"gs_cuda_smem stages x in shared memory, and K={K} rows of x do not fit in "
        f"{smem_limit} bytes per block even one column at a time; use gs_triton"
    )


def prepare(
    fmt: GSMatrix, device: torch.device, dtype: torch.dtype
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Copy ``fmt`` (variant gs, V dividing 32) to the CUDA ``device``; return ``run(x)``."""
    if device.type != "cuda":
        raise ValueError(f"gs_cuda_smem runs on a CUDA device only; got device {device}")
    if fmt.variant != "gs" or 32 % fmt.V:
        raise ValueError(
            f"gs_cuda_smem runs variant 'gs' with V dividing 32 (a warp's lanes); got "
            f"variant {fmt.variant!r} with V={fmt.V} (gs_triton runs every variant and V)"
        )
    props = torch.cuda.get_device_properties(device)
    smem_limit = int(getattr(props, "shared_memory_per_block_optin", 48 * 1024))
    module = load((props.major, props.minor))
    band_ptr = fmt.band_ptr.to(device)
    values = fmt.values.to(device=device, dtype=dtype)
    index = fmt.index.to(device)
    M, K = fmt.shape
    choose_bn(K, 1, smem_limit)  # refuse a K that never fits now, not at the first call

    def run(x: torch.Tensor) -> torch.Tensor:
        bn = choose_bn(K, x.shape[1], smem_limit)
        return module.gs_smem_matmul(band_ptr, values, index, x, M, fmt.V, bn)

    return run
