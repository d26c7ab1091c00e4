"""Kernel registries and the argument checks every backend shares.

Registries: one :class:`~gsprune.registry.Registry` of kernels per backend, filed in
``BACKENDS`` under the backend name and keyed by format name (``"gs"``, ``"csr"``,
``"bsr"``, ``"nm"``, ``"dense"``); the GS kernels dispatch on ``fmt.variant`` inside.
A kernel is called as ``kernel.run(kernel.prepare(fmt), x, threads)`` with ``x:
float32[K, N]`` (its rows contiguous, possibly padded; already checked: :func:`check_x`)
and ``threads`` the resolved thread count, and returns ``y: float32[M, N]``. ``prepare``
(the identity unless a kernel has one) is the kernel's analysis phase, run once per
matrix by ``kernels.bind`` and at every call of ``kernels.matmul`` (e.g. the row plans
of ``gsprune.kernels.row_plan``). To add a backend or a format, copy a sibling entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from gsprune.formats.base import (
    BSRMatrix,
    CSRMatrix,
    DenseMatrix,
    GSMatrix,
    NMMatrix,
    SparseFormat,
)
from gsprune.registry import Registry

GS_VARIANTS = ("gs", "gs_scatter", "gs_free")


@dataclass(frozen=True)
class Kernel:
    """One product ``y = W @ x`` for one format on one backend.

    ``compiled``: needs the compiled extension (falls back to "reference" without it).
    ``label``: names the implementation in :func:`gsprune.kernels.kernel_name`; None
    means the backend's own label. ``isa``: the compiled build it needs
    (``gsprune.kernels.build.ISAS``); None means the best this CPU runs. ``prepare``:
    what ``run`` takes instead of the format (made once per matrix); None: the format.
    ``suffix``: what :func:`gsprune.kernels.kernel_name` appends for a format (e.g.
    "_row_plan" when ``prepare`` makes one), so records say how a layer was run.
    """

    run: Callable[[object, torch.Tensor, int], torch.Tensor]
    compiled: bool = False
    label: str | None = None
    isa: str | None = None
    prepare: Callable[[SparseFormat], object] | None = None
    suffix: Callable[[SparseFormat], str] | None = None

    def operand(self, fmt: SparseFormat) -> object:
        """What :attr:`run` takes for ``fmt``: ``prepare(fmt)``, or ``fmt`` itself."""
        return fmt if self.prepare is None else self.prepare(fmt)


BACKENDS: Registry[Registry[Kernel]] = Registry("kernel backend")


def backend_registry(backend: str) -> Registry[Kernel]:
    """The kernels of ``backend``, created on first use."""
    if backend not in BACKENDS:
        BACKENDS.register(backend)(Registry(f"format for kernel backend {backend!r}"))
    return BACKENDS.get(backend)


def register(backend: str, fmt_name: str, **kernel_fields: object) -> Callable:
    """Decorator: file ``fn(fmt, x, threads) -> y`` as the ``fmt_name`` kernel of ``backend``."""

    def add(fn: Callable[[SparseFormat, torch.Tensor, int], torch.Tensor]) -> Callable:
        backend_registry(backend).register(fmt_name)(Kernel(fn, **kernel_fields))
        return fn

    return add


def check_threads(threads: int | None) -> int:
    """``threads`` or, when None, torch's current thread count; must be an int >= 1."""
    if threads is None:
        return torch.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads={threads!r} is not valid; pass None or an int >= 1")
    return threads


def rows_contiguous(x: torch.Tensor) -> bool:
    """Whether ``x: [K, N]`` (or ``[K]``) is row-major with contiguous rows, possibly padded:
    strides ``(ld, 1)`` with ``ld >= N``, as a column range of a wider matrix. A caller may
    pad x's rows to whole cache lines (``gsprune.latency`` does): the SpMM kernels read x's
    rows in place where they do not pack them, and a 784-byte row (N = 196) makes most
    of those reads straddle two cache lines."""
    if x.dim() == 1 or x.shape[0] <= 1 or x.shape[1] <= 1:
        return True  # a single row or column: any stride (the kernels copy it if they must)
    return x.stride(1) == 1 and x.stride(0) >= x.shape[1]


def check_x(x: object, K: int) -> torch.Tensor:
    """Validate ``x: float32[K] or [K, N]`` (CPU, rows contiguous: :func:`rows_contiguous`)
    and return it as ``[K, N]``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor [K, N]; got {type(x).__name__}")
    if x.dtype != torch.float32:
        raise ValueError(f"x must be float32; got {x.dtype} (convert with x.float())")
    if not x.is_cpu:
        raise ValueError(f"x must be on the CPU for these kernels; got device {x.device}")
    if x.dim() not in (1, 2):
        raise ValueError(f"x must be 1-D [K] or 2-D [K, N]; got shape {tuple(x.shape)}")
    if not rows_contiguous(x):
        raise ValueError(
            f"x must be row-major with contiguous rows ([K, N], strides (ld >= N, 1)); got "
            f"strides {x.stride()} for shape {tuple(x.shape)} (call x.contiguous())"
        )
    if x.shape[0] != K:
        raise ValueError(
            f"x has {x.shape[0]} rows but the matrix has K={K} columns; x must be [K] or [K, N]"
        )
    return x if x.dim() == 2 else x.unsqueeze(1)


def _expect(fmt: SparseFormat, name: str, tensor: object, dtypes: tuple, shape: tuple) -> None:
    ok = (
        isinstance(tensor, torch.Tensor)
        and tensor.dtype in dtypes
        and tuple(tensor.shape) == shape
        and tensor.is_cpu  # (not .device.type: that costs microseconds per call)
        and tensor.is_contiguous()
    )
    if not ok:
        got = (
            f"{tensor.dtype} {tuple(tensor.shape)} on {tensor.device}"
            + ("" if tensor.is_contiguous() else ", not contiguous")
            if isinstance(tensor, torch.Tensor)
            else type(tensor).__name__
        )
        want = " or ".join(str(d) for d in dtypes)
        raise ValueError(
            f"malformed {type(fmt).__name__} {fmt.shape}: {name} must be a contiguous CPU "
            f"tensor of {want} with shape {shape}; got {got}"
        )


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def check_format(fmt: object) -> SparseFormat:
    """Check a format's metadata (dtypes, shapes, counts) before a kernel reads its arrays.

    Cost is O(1) beyond reading the last pointer entry: the index values themselves are
    trusted (the encoders produce them and ``gsprune.formats.validate`` checks them).
    """
    if not isinstance(fmt, SparseFormat):
        raise ValueError(
            f"expected a gsprune format (DenseMatrix, CSRMatrix, BSRMatrix, NMMatrix, "
            f"GSMatrix); got {type(fmt).__name__}"
        )
    M, K = fmt.shape
    if isinstance(fmt, DenseMatrix):
        _expect(fmt, "values", fmt.values, (torch.float32,), (M, K))
    elif isinstance(fmt, CSRMatrix):
        _expect(fmt, "crow_indices", fmt.crow_indices, (torch.int32,), (M + 1,))
        nnz = int(fmt.crow_indices[-1])
        _expect(fmt, "col_indices", fmt.col_indices, (torch.int32,), (nnz,))
        _expect(fmt, "values", fmt.values, (torch.float32,), (nnz,))
    elif isinstance(fmt, BSRMatrix):
        R, C = fmt.block
        if R < 1 or C < 1:
            raise ValueError(f"malformed BSRMatrix: block={fmt.block}; R and C must be >= 1")
        _expect(fmt, "crow_indices", fmt.crow_indices, (torch.int32,), (_ceil(M, R) + 1,))
        blocks = int(fmt.crow_indices[-1])
        _expect(fmt, "col_indices", fmt.col_indices, (torch.int32,), (blocks,))
        _expect(fmt, "values", fmt.values, (torch.float32,), (blocks, R, C))
    elif isinstance(fmt, NMMatrix):
        if not 1 <= fmt.n <= fmt.m <= 256:
            raise ValueError(f"malformed NMMatrix: n={fmt.n}, m={fmt.m}; need 1 <= n <= m <= 256")
        slots = (M, _ceil(K, fmt.m) * fmt.n)
        _expect(fmt, "values", fmt.values, (torch.float32,), slots)
        _expect(fmt, "indices", fmt.indices, (torch.uint8,), slots)
    elif isinstance(fmt, GSMatrix):
        _check_gs(fmt)
    else:
        raise ValueError(f"no kernels for format {type(fmt).__name__} ({fmt.name!r})")
    return fmt


def _check_gs(fmt: GSMatrix) -> None:
    M, K = fmt.shape
    if fmt.variant not in GS_VARIANTS:
        raise ValueError(f"unknown GS variant {fmt.variant!r}; accepted: {', '.join(GS_VARIANTS)}")
    if not isinstance(fmt.V, int) or fmt.V < 1:
        raise ValueError(f"malformed GSMatrix: V={fmt.V!r}; V must be an int >= 1")
    banded = {"gs": M, "gs_scatter": K}.get(fmt.variant)
    # gs_free has no banded dimension: any band count >= 1 (the encoder writes one).
    n_bands = _ceil(banded, fmt.V) if banded is not None else max(fmt.band_ptr.numel() - 1, 1)
    _expect(fmt, "band_ptr", fmt.band_ptr, (torch.int64,), (n_bands + 1,))
    groups = int(fmt.band_ptr[-1])
    shape = (groups, fmt.V)
    _expect(fmt, "values", fmt.values, (torch.float32,), shape)
    _expect(fmt, "index", fmt.index, (torch.int16, torch.int32), shape)
    if fmt.variant == "gs_free":
        _expect(fmt, "lane_index", fmt.lane_index, (fmt.index.dtype,), shape)
