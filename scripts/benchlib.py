"""What the benchmark scripts share: CSV output, the machine section of their Markdown, and
the Gaussian test matrices projected and encoded per pattern (in parallel when asked).

The scripts run as ``python scripts/bench_<name>.py``, which puts this folder on
``sys.path``, so they import this module by its plain name (and so do the worker
processes of :func:`encode_many`).
"""

from __future__ import annotations

import csv
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from gsprune import formats, patterns
from gsprune.formats.base import SparseFormat
from gsprune.latency.machine import machine_facts, versions
from gsprune.latency.timing import time_interleaved

WEIGHT_SEED = 0


def gaussian(shape: tuple[int, int], gen: torch.Generator | None = None) -> torch.Tensor:
    """The benchmark weight of ``shape``: the first draw of ``gen`` (seeded WEIGHT_SEED)."""
    gen = torch.Generator().manual_seed(WEIGHT_SEED) if gen is None else gen
    return torch.randn(*shape, generator=gen)


def encode(weight: torch.Tensor, pattern: str, sparsity: float, params: dict) -> SparseFormat:
    """Project ``|weight|`` onto ``pattern`` at ``sparsity`` and store it in its format."""
    mask = patterns.get(pattern).project(weight.abs(), sparsity, **params)
    return formats.encode(weight, mask, pattern, **params)


def _encode_gaussian(
    shape: tuple[int, int], pattern: str, sparsity: float, params: dict
) -> SparseFormat:
    return encode(gaussian(shape), pattern, sparsity, params)


def encode_many(shape: tuple[int, int], specs: dict, jobs: int = 1) -> dict[object, SparseFormat]:
    """``{key: encode(gaussian(shape), pattern, sparsity, params)}`` for ``specs: {key:
    (pattern, sparsity, params)}``; ``jobs > 1`` spreads them over that many processes
    (spawned, one torch thread each: the large GS projections take seconds apiece)."""
    if jobs <= 1:
        weight = gaussian(shape)
        return {key: encode(weight, *spec) for key, spec in specs.items()}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=torch.set_num_threads, initargs=(1,)
    ) as pool:
        futures = {key: pool.submit(_encode_gaussian, shape, *spec) for key, spec in specs.items()}
        return {key: future.result() for key, future in futures.items()}


def check(y: torch.Tensor, weight: torch.Tensor, x: torch.Tensor, label: str) -> None:
    """Refuse to time a kernel whose product is wrong (float32 sums, scaled tolerance)."""
    truth = weight @ x
    tol = 1e-4 * float((weight.abs() @ x.abs()).max()) + 1e-6
    error = float((y.reshape(truth.shape) - truth).abs().max())
    if not error <= tol:
        raise RuntimeError(f"{label}: max error {error:.3g} > {tol:.3g}; not timing a wrong kernel")


def write_csv(path: Path, rows: list[dict]) -> None:
    """``rows`` as CSV; the columns are every key in first-seen order."""
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def machine_lines(**extra: object) -> list[str]:
    """A '## Machine' Markdown section: CPU, cores, load, threads, versions, plus ``extra``.

    A load average above the usable cores is flagged: other work shared the CPUs,
    so multi-threaded timings in that file are noisy.
    """
    facts, soft = machine_facts(), versions()
    load = facts["load_average"] or []
    lines = [
        "## Machine",
        "",
        f"- CPU: {facts['cpu_model']} ({facts['usable_cores']} usable cores of "
        f"{facts['logical_cores']}; AVX2 {facts['avx2']}, AVX-512 {facts['avx512f']})",
        f"- load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in load)}",
        f"- torch threads: {facts['torch_threads']}; torch {soft['torch']}, "
        f"numpy {soft['numpy']}, python {soft['python']}",
        *(f"- {key.replace('_', ' ')}: {value}" for key, value in extra.items()),
    ]
    if load and load[0] > facts["usable_cores"]:
        lines.append(
            f"- **warning: load {load[0]:.1f} > {facts['usable_cores']} cores while "
            "measuring: other work shared the CPUs, timings are noisy**"
        )
    return [*lines, ""]


def time_rounds(
    fns: dict[str, Callable[[], object]], rounds: int, repeats: int
) -> dict[str, tuple[float, float]]:
    """``{name: (best round's median ms, median ms of all samples)}`` over ``rounds``
    interleaved rounds of ``repeats`` calls each (a warm-up call before every round)."""
    medians: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        stats = time_interleaved(fns, warmup=1, repeats=repeats)
        for name, stat in stats.items():
            medians[name].append(stat.median_ms)
    return {name: (min(values), float(np.median(values))) for name, values in medians.items()}


def print_case(case: str, times: dict[str, tuple[float, float]], digits: int = 3) -> None:
    """One progress line: the case, then every column's best-round median in ms."""
    print(f"{case}: " + "  ".join(f"{k}={v[0]:.{digits}f}ms" for k, v in times.items()), flush=True)
