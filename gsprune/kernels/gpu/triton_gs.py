"""GS products in Triton: ``y = W @ x`` for the three GS variants (DESIGN §2, §4, §6).

Layout (``gsprune.formats.base.GSMatrix``): per group V values (contiguous) and V indices
(int16 or int32); ``band_ptr`` gives each band's groups. x: [K, N] row-major, y: [M, N]
float32. Values may be float32 or bfloat16, x float32 or bfloat16; every product and sum
is float32.

- ``gs`` (:func:`_gs_rows`): one program per band of V rows, tile of BN columns and
  slice of the band's groups (SPLIT slices, see :func:`split`). The program walks its
  groups BG at a time as a [BG, V, BN] tile: lane i of a group is row i of the band, so
  the V lanes gather the V rows ``x[index[g, i], n0:n0+BN]`` and accumulate into row i.
  The BG groups are summed once, after the loop. With SPLIT = 1 y is written once, with
  no atomics (deterministic); with SPLIT > 1 the slices add into y with atomics. Long
  bands are split because a GEMV has few bands (128 for 4096 rows at V = 32): one
  program per band would leave most of a large GPU idle.
- ``gs_scatter`` and ``gs_free`` (:func:`_gs_scatter`): one program per BG groups and BN
  columns; lane i reads x row ``band * V + i`` (gs_scatter) or ``index`` (gs_free) and
  adds into y row ``index`` (gs_scatter) or ``lane_index`` (gs_free) with atomic adds,
  since groups of many programs write the same rows (float32 sums in a run-dependent
  order). y starts as zeros.

Gathers read x straight from global memory (through L1/L2), not from shared memory:
Triton has no explicit shared memory, and its ``tl.gather`` lowering stores the whole
source tensor into shared memory at every call, so a loop over groups would stage x
again for each step. The kernel that stages x once in shared memory, where the GS bank
rule applies, is the CUDA C++ one (``gsprune.kernels.gpu.cuda_smem``).

The band loop is a ``while`` loop: Triton's interpreter (``TRITON_INTERPRET=1``, used by
the CPU tests) cannot take a bound loaded from memory in ``range`` with numpy 2.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import triton
import triton.language as tl

from gsprune.formats.base import GSMatrix

# Elements of one [BG, V, BN] tile: 2048 float32 accumulators over 4 warps = 16 per thread.
TILE = 2048
NUM_WARPS = 4
MAX_BN = 64  # columns of x per program; N > MAX_BN gets more programs
PROGRAMS = 1024  # split long bands until about this many programs run (4-8 per SM)
MIN_GROUPS = 16  # but give no program fewer groups than this


@triton.jit
def _gs_rows(
    band_ptr,
    values,
    index,
    x,
    y,
    M,
    N,
    SPLIT,
    V: tl.constexpr,
    BG: tl.constexpr,
    BN: tl.constexpr,
    ATOMIC: tl.constexpr,
):
    band = tl.program_id(0)
    col = tl.program_id(1) * BN + tl.arange(0, BN)
    g0 = tl.load(band_ptr + band)
    g1 = tl.load(band_ptr + band + 1)
    chunk = (g1 - g0 + SPLIT - 1) // SPLIT
    lo = g0 + tl.program_id(2) * chunk
    hi = tl.minimum(lo + chunk, g1)
    group = tl.arange(0, BG)[:, None, None]
    lane = tl.arange(0, V)[None, :, None]
    col3 = col[None, None, :]
    acc = tl.zeros((BG, V, BN), dtype=tl.float32)
    g = lo
    while g < hi:
        live = (g + group) < hi
        slot = (g + group) * V + lane
        value = tl.load(values + slot, mask=live, other=0.0).to(tl.float32)
        column = tl.load(index + slot, mask=live, other=0).to(tl.int64)
        xs = tl.load(x + column * N + col3, mask=live & (col3 < N), other=0.0)
        acc += value * xs.to(tl.float32)
        g += BG
    out = tl.sum(acc, axis=0)  # [V, BN]
    row = band.to(tl.int64) * V + tl.arange(0, V)[:, None]
    col2 = col[None, :]
    mask = (row < M) & (col2 < N)
    if ATOMIC:
        tl.atomic_add(y + row * N + col2, out, mask=mask)
    else:
        tl.store(y + row * N + col2, out, mask=mask)


@triton.jit
def _gs_scatter(
    group_band,
    values,
    index,
    lane_index,
    x,
    y,
    G,
    K,
    N,
    V: tl.constexpr,
    BG: tl.constexpr,
    BN: tl.constexpr,
    FREE: tl.constexpr,
):
    group = tl.program_id(0).to(tl.int64) * BG + tl.arange(0, BG)[:, None, None]
    col = tl.program_id(1) * BN + tl.arange(0, BN)[None, None, :]
    lane = tl.arange(0, V)[None, :, None]
    live = group < G
    slot = group * V + lane
    value = tl.load(values + slot, mask=live, other=0.0).to(tl.float32)
    index_ = tl.load(index + slot, mask=live, other=0).to(tl.int64)
    if FREE:
        row = tl.load(lane_index + slot, mask=live, other=0).to(tl.int64)
        xrow = index_
    else:
        row = index_
        xrow = tl.load(group_band + group, mask=live, other=0).to(tl.int64) * V + lane
    # Padding lanes (value 0, or the last column band's lanes past K) add nothing.
    use = live & (value != 0.0) & (xrow < K) & (col < N)
    xs = tl.load(x + xrow * N + col, mask=use, other=0.0).to(tl.float32)
    tl.atomic_add(y + row * N + col, value * xs, mask=use)


def split(n_bands: int, column_tiles: int, max_k: int) -> int:
    """Slices per band: enough for about PROGRAMS programs, at least MIN_GROUPS groups each."""
    wanted = -(-PROGRAMS // (n_bands * column_tiles))
    return max(1, min(wanted, max_k // MIN_GROUPS))


def tiles(V: int, N: int, groups_per_band: int) -> tuple[int, int]:
    """(BG, BN): groups and columns per tile, powers of two, BG * V * BN <= TILE when V allows.

    BN covers N up to MAX_BN; BG fills the rest of the tile but not past the longest band.
    """
    BN = min(triton.next_power_of_2(max(N, 1)), MAX_BN)
    BG = max(1, TILE // (V * BN))
    return min(BG, triton.next_power_of_2(max(groups_per_band, 1))), BN


def gs_rows(
    band_ptr: torch.Tensor,
    values: torch.Tensor,
    index: torch.Tensor,
    x: torch.Tensor,
    M: int,
    V: int,
    max_k: int,
) -> torch.Tensor:
    """Variant ``gs``: ``y: float32[M, N]`` from device arrays (see module docstring).

    band_ptr: int64[n_bands + 1]; values: float32/bfloat16[G, V]; index: int16/int32[G, V];
    x: [K, N] contiguous; max_k: the largest groups-per-band (sizes the tile only).
    """
    N = x.shape[1]
    n_bands = band_ptr.numel() - 1
    BN = tiles(V, N, max_k)[1]
    slices = split(n_bands, triton.cdiv(N, BN), max_k)
    BG = tiles(V, N, -(-max_k // slices))[0]
    alloc = torch.empty if slices == 1 else torch.zeros
    y = alloc((M, N), dtype=torch.float32, device=x.device)
    grid = (n_bands, triton.cdiv(N, BN), slices)
    _gs_rows[grid](
        band_ptr,
        values,
        index,
        x,
        y,
        M,
        N,
        slices,
        V=V,
        BG=BG,
        BN=BN,
        ATOMIC=slices > 1,
        num_warps=NUM_WARPS,
    )
    return y


def gs_scatter(
    group_band: torch.Tensor | None,
    values: torch.Tensor,
    index: torch.Tensor,
    lane_index: torch.Tensor | None,
    x: torch.Tensor,
    M: int,
    V: int,
) -> torch.Tensor:
    """Variants ``gs_scatter`` (``group_band``: int32[G], each group's column band) and
    ``gs_free`` (``lane_index``: each lane's row): ``y: float32[M, N]``."""
    K, N = x.shape
    G = values.shape[0]
    y = torch.zeros((M, N), dtype=torch.float32, device=x.device)
    if G == 0:
        return y
    BG, BN = tiles(V, N, G)
    free = lane_index is not None
    # An unused pointer argument still needs a tensor: pass index in its place.
    grid = (triton.cdiv(G, BG), triton.cdiv(N, BN))
    _gs_scatter[grid](
        index if free else group_band,
        values,
        index,
        lane_index if free else index,
        x,
        y,
        G,
        K,
        N,
        V=V,
        BG=BG,
        BN=BN,
        FREE=free,
        num_warps=NUM_WARPS,
    )
    return y


def interpreted() -> bool:
    """True when Triton's interpreter runs these kernels (TRITON_INTERPRET=1 at import)."""
    return not isinstance(_gs_rows, triton.runtime.JITFunction)


def prepare(
    fmt: GSMatrix, device: torch.device, dtype: torch.dtype
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Copy ``fmt``'s arrays to ``device`` (values as ``dtype``); return ``run(x) -> y``."""
    values = fmt.values.to(device=device, dtype=dtype)
    index = fmt.index.to(device)
    M, V = fmt.shape[0], fmt.V
    if fmt.variant == "gs":
        band_ptr = fmt.band_ptr.to(device)
        max_k = int(fmt.band_ptr.diff().max())
        return lambda x: gs_rows(band_ptr, values, index, x, M, V, max_k)
    if fmt.variant == "gs_scatter":
        group_band = fmt.group_band().to(device=device, dtype=torch.int32)
        return lambda x: gs_scatter(group_band, values, index, None, x, M, V)
    lane_index = fmt.lane_index.to(device)
    return lambda x: gs_scatter(None, values, index, lane_index, x, M, V)
