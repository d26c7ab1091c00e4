"""GPU products ``y = W @ x`` for the formats: the kernels of the ``cuda`` latency backend.

The CPU kernels (``gsprune.kernels.matmul``) read a format's CPU arrays on every call. A
GPU kernel first copies the format to the device once, and the copy is then called:

    run = gpu.prepare(fmt, "cuda")            # the format's default GPU kernel
    y = run(x)                                # x: [K] or [K, N] on that device

``y`` is float32 ``[M]`` or ``[M, N]``. Kernels (``KERNELS``, by name):

- ``gs_triton``: Triton (``triton_gs``), all three GS variants; values float32 or
  bfloat16 (``dtype``), x float32 or bfloat16, float32 accumulation;
- ``gs_cuda_smem``: CUDA C++ with x staged in shared memory (``cuda_smem``), variant
  ``gs`` with V dividing 32; the kernel in which GS groups make bank-conflict-free
  shared-memory gathers;
- ``dense_cublas``: ``torch.matmul`` with the dense matrix of any format (cuBLAS);
- ``csr_cusparse``: ``torch.matmul`` with the torch CSR tensor of any format's non-zero
  structure (cuSPARSE);
- ``bsr_torch``: ``torch.matmul`` with the torch BSR tensor of a BSR format.

``kernel_for(fmt)`` is the kernel the ``cuda`` latency backend times for a run's own
format: ``default_kernel(fmt.name)`` (gs, csr, bsr, dense; N:M has no GPU kernel here),
except BSR with non-square blocks, which torch's BSR products do not take: those run
``csr_cusparse`` on the same matrix, and the record's kernel name says so.

Devices: a CUDA device runs everything. The CPU runs the torch baselines, and the Triton
kernels only inside Triton's interpreter, which Triton turns on when ``TRITON_INTERPRET=1``
is in the environment before it is first imported (the CPU tests do so in a subprocess).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from gsprune.formats.base import BSRMatrix, GSMatrix, SparseFormat
from gsprune.kernels.base import check_format
from gsprune.kernels.gpu import torch_ops
from gsprune.registry import Registry

FLOAT_DTYPES = (torch.float32, torch.bfloat16)


@dataclass(frozen=True)
class GPUKernel:
    """One GPU product: ``prepare(fmt, device, dtype) -> run`` with ``run(x: [K, N]) -> y``.

    ``prepare`` copies what the kernel reads to ``device`` once and raises ValueError for
    a format, device or value dtype it cannot run; ``run`` gets x already checked against
    ``x_dtypes`` and returns ``y: float32[M, N]``. ``label(fmt)`` names it in records.
    """

    prepare: Callable[[SparseFormat, torch.device, torch.dtype], Callable]
    x_dtypes: tuple[torch.dtype, ...]
    label: Callable[[SparseFormat], str]


KERNELS: Registry[GPUKernel] = Registry("GPU kernel")
DEFAULT_KERNELS = {
    "gs": "gs_triton",
    "csr": "csr_cusparse",
    "bsr": "bsr_torch",
    "dense": "dense_cublas",
}


def _gs_label(impl: str) -> Callable[[SparseFormat], str]:
    return lambda fmt: f"{fmt.variant}_{impl}"


def _fixed_label(label: str) -> Callable[[SparseFormat], str]:
    return lambda fmt: label


def _prepare_triton(fmt: SparseFormat, device: torch.device, dtype: torch.dtype) -> Callable:
    from gsprune.kernels.gpu import triton_gs  # imports triton; only GS GPU runs need it

    gs = _require_gs(fmt, "gs_triton")
    if device.type == "cpu" and not triton_gs.interpreted():
        raise ValueError(
            "gs_triton on the CPU runs only in Triton's interpreter, which needs "
            "TRITON_INTERPRET=1 in the environment before triton is first imported; use a "
            "CUDA device, or start Python with TRITON_INTERPRET=1"
        )
    if device.type == "cuda" and triton_gs.interpreted():
        raise ValueError(
            "gs_triton: TRITON_INTERPRET=1 was set when triton was imported, so the Triton "
            "kernels run in the CPU interpreter and cannot take CUDA tensors; unset it"
        )
    return triton_gs.prepare(gs, device, dtype)


def _prepare_smem(fmt: SparseFormat, device: torch.device, dtype: torch.dtype) -> Callable:
    from gsprune.kernels.gpu import cuda_smem  # builds a CUDA extension on first use

    return cuda_smem.prepare(_require_gs(fmt, "gs_cuda_smem"), device, dtype)


def _require_gs(fmt: SparseFormat, kernel: str) -> GSMatrix:
    if not isinstance(fmt, GSMatrix):
        raise ValueError(f"GPU kernel {kernel!r} runs GS formats only; got {fmt.name!r}")
    return fmt


KERNELS.register("gs_triton")(GPUKernel(_prepare_triton, FLOAT_DTYPES, _gs_label("triton")))
KERNELS.register("gs_cuda_smem")(GPUKernel(_prepare_smem, (torch.float32,), _gs_label("cuda_smem")))
KERNELS.register("dense_cublas")(
    GPUKernel(torch_ops.prepare_dense, (torch.float32,), _fixed_label("dense_cublas"))
)
KERNELS.register("csr_cusparse")(
    GPUKernel(torch_ops.prepare_csr, (torch.float32,), _fixed_label("csr_cusparse"))
)
KERNELS.register("bsr_torch")(
    GPUKernel(torch_ops.prepare_bsr, (torch.float32,), _fixed_label("bsr_torch"))
)


def default_kernel(format_name: str) -> str:
    """The GPU kernel that runs a format of this name in the ``cuda`` latency backend."""
    if format_name not in DEFAULT_KERNELS:
        raise ValueError(
            f"no GPU kernel for format {format_name!r}; the 'cuda' latency backend runs the "
            f"formats {', '.join(sorted(DEFAULT_KERNELS))} (patterns gs, gs_scatter, gs_free, "
            "unstructured, row_balanced, bank_balanced, block, dense); time N:M patterns "
            "with latency=cpu or latency=model"
        )
    return DEFAULT_KERNELS[format_name]


def kernel_for(fmt: SparseFormat) -> str:
    """The GPU kernel for this format (see module docstring: non-square BSR -> CSR)."""
    name = default_kernel(fmt.name)
    if isinstance(fmt, BSRMatrix) and fmt.block[0] != fmt.block[1]:
        return "csr_cusparse"
    return name


@dataclass(frozen=True)
class Prepared:
    """A format copied to ``device`` for ``kernel``; call it with x to get ``y = W @ x``."""

    kernel: str
    label: str
    shape: tuple[int, int]
    device: torch.device
    dtype: torch.dtype
    x_dtypes: tuple[torch.dtype, ...]
    run: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: [K] or [K, N] contiguous on ``device`` -> y: float32 [M] or [M, N]."""
        x2 = _check_x(x, self)
        y = self.run(x2)
        return y if x.dim() == 2 else y.reshape(self.shape[0])


def prepare(
    fmt: SparseFormat,
    device: torch.device | str = "cuda",
    kernel: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Prepared:
    """Copy ``fmt`` to ``device`` for ``kernel`` (default: ``kernel_for(fmt)``).

    dtype: the stored values' dtype on the device, float32 or bfloat16 (bfloat16 only
    for the GS kernels; products still accumulate in float32). ValueError names a bad
    kernel, device, dtype or a format the kernel cannot run.
    """
    check_format(fmt)
    name = kernel_for(fmt) if kernel is None else kernel
    entry = KERNELS.get(name)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device} was asked for GPU kernel {name!r}, but torch.cuda.is_available() "
            "is False on this machine; pass device='cpu' for the interpreter/CPU baselines"
        )
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"device {device} is not supported; use 'cuda' (or 'cpu')")
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype={dtype} is not supported; use torch.float32 or torch.bfloat16")
    run = entry.prepare(fmt, device, dtype)
    return Prepared(name, entry.label(fmt), tuple(fmt.shape), device, dtype, entry.x_dtypes, run)


def matmul(
    fmt: SparseFormat,
    x: torch.Tensor,
    kernel: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``prepare(fmt, x.device, kernel, dtype)(x)``: one product, copying the format each call."""
    return prepare(fmt, x.device, kernel, dtype)(x)


def _check_x(x: object, prepared: Prepared) -> torch.Tensor:
    """Validate ``x: [K] or [K, N]`` for ``prepared`` and return it as ``[K, N]``."""
    K = prepared.shape[1]
    if not isinstance(x, torch.Tensor) or x.dim() not in (1, 2) or x.shape[0] != K:
        raise ValueError(
            f"x must be a tensor [K] or [K, N] with K={K} for GPU kernel {prepared.kernel!r}; "
            f"got {type(x).__name__} of shape {tuple(getattr(x, 'shape', ()))}"
        )
    if x.dtype not in prepared.x_dtypes:
        accepted = ", ".join(str(d) for d in prepared.x_dtypes)
        raise ValueError(f"x has dtype {x.dtype}; {prepared.kernel!r} accepts {accepted}")
    if x.device != prepared.device and not (
        x.device.type == prepared.device.type == "cuda" and prepared.device.index is None
    ):
        raise ValueError(
            f"x is on {x.device} but the format was prepared on {prepared.device}; move x there"
        )
    if not x.is_contiguous():
        raise ValueError(f"x must be contiguous (row-major [K, N]); got strides {x.stride()}")
    return x if x.dim() == 2 else x.unsqueeze(1)


__all__ = [
    "DEFAULT_KERNELS",
    "KERNELS",
    "GPUKernel",
    "Prepared",
    "default_kernel",
    "kernel_for",
    "matmul",
    "prepare",
]
