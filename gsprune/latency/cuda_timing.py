"""CUDA-event timing of competing GPU products (DESIGN §6, latency backend ``cuda``).

``time_cuda_interleaved`` follows ``timing.time_interleaved`` (warm-up, then rounds that
call every variant once in a rotating order) but reads the GPU's own clock: each sample
is the time between two CUDA events recorded around ``calls`` back-to-back calls of one
variant, divided by ``calls``. ``calls`` is set after the warm-up so that one sample lasts
at least ``min_sample_ms`` (event resolution is about half a microsecond).

With ``graphs=True`` the ``calls`` calls of a variant are captured once in a CUDA graph
and each sample replays it, so the time is the kernels' execution without Python and
launch overhead between them. A variant whose capture fails (a library call that
synchronizes, say) is timed with plain launches instead, and ``DeviceTiming.graph``
says which. Caches stay warm between calls (x and a small matrix sit in L2), as in the
CPU harness.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from gsprune.latency.timing import TimingStats, check_callables, rotation

MAX_CALLS = 100  # launches per sample, at most (graph memory grows with it)


@dataclass(frozen=True)
class DeviceTiming:
    """One variant's samples: ``stats`` per call in ms, ``calls`` per sample, ``graph``."""

    stats: TimingStats
    calls: int
    graph: bool


def _event_ms(run: Callable[[], object]) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    run()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def _repeat(fn: Callable[[], object], calls: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(calls):
            fn()

    return run


def _captured(fn: Callable[[], object], calls: int) -> Callable[[], None] | None:
    """``calls`` calls of ``fn`` as one CUDA graph replay, or None when capture fails."""
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            for _ in range(calls):
                fn()
        graph.replay()
        torch.cuda.synchronize()
    except Exception:  # noqa: BLE001 - any capture failure: fall back to plain launches
        torch.cuda.synchronize()
        return None
    return graph.replay


def _calls_for(ms_per_call: float, min_sample_ms: float) -> int:
    return min(MAX_CALLS, max(1, math.ceil(min_sample_ms / max(ms_per_call, 1e-4))))


def _sampler(
    fn: Callable[[], object], min_sample_ms: float, graphs: bool
) -> tuple[int, Callable[[], None], bool]:
    """(calls per sample, the sample's runner, whether it replays a CUDA graph).

    A single launch's event time includes the launch overhead, so with graphs the count
    is set again from one replay of the first capture (which runs the kernels alone).
    """
    calls = _calls_for(_event_ms(fn), min_sample_ms)
    graph = _captured(fn, calls) if graphs else None
    if graph is not None:
        better = _calls_for(_event_ms(graph) / calls, min_sample_ms)
        regraph = _captured(fn, better) if better > calls else None
        if regraph is not None:
            calls, graph = better, regraph
    runner = graph or _repeat(fn, calls)
    runner()  # the replay (or the launches) once more before timing
    return calls, runner, graph is not None


def time_cuda_interleaved(
    fns: dict[str, Callable[[], object]],
    warmup: int = 3,
    repeats: int = 20,
    min_sample_ms: float = 0.05,
    graphs: bool = True,
) -> dict[str, DeviceTiming]:
    """Time each callable in ``fns`` on the current CUDA device (see module docstring).

    Every callable launches its work on the current stream and returns without
    synchronizing. Returns ``{name: DeviceTiming}`` in the order of ``fns``, each with
    ``repeats`` samples. ValueError when no CUDA device is present or an argument is bad.
    """
    check_callables("time_cuda_interleaved", fns, warmup, repeats)
    if not (isinstance(min_sample_ms, int | float) and 0 <= min_sample_ms < math.inf):
        raise ValueError(
            f"time_cuda_interleaved: min_sample_ms={min_sample_ms!r} is not accepted; pass "
            "a finite number of milliseconds >= 0."
        )
    if not torch.cuda.is_available():
        raise ValueError("time_cuda_interleaved needs a CUDA device; torch sees none here")
    names = list(fns)
    for r in range(warmup):
        for name in rotation(names, r):
            fns[name]()
    torch.cuda.synchronize()

    calls, runners, captured = {}, {}, {}
    for name, fn in fns.items():
        calls[name], runners[name], captured[name] = _sampler(fn, min_sample_ms, graphs)
    torch.cuda.synchronize()

    events: dict[str, list[tuple[torch.cuda.Event, torch.cuda.Event]]] = {n: [] for n in names}
    for r in range(repeats):
        for name in rotation(names, warmup + r):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            runners[name]()
            end.record()
            events[name].append((start, end))
    torch.cuda.synchronize()
    return {
        name: DeviceTiming(
            stats=TimingStats.from_samples(
                [start.elapsed_time(end) / calls[name] * 1e6 for start, end in events[name]]
            ),
            calls=calls[name],
            graph=captured[name],
        )
        for name in names
    }
