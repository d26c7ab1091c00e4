"""Wall-clock timing of competing variants on a noisy machine (DESIGN §6).

``time_interleaved`` times several callables side by side: after a warm-up it
runs rounds in which every callable is called once, in an order that rotates
from round to round. A burst of load from another process then hits every
variant alike, so ratios of medians stay meaningful even when absolute times
wander. Medians (not means) and the p10..p90 spread are reported because
timing noise is one-sided and heavy-tailed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class TimingStats:
    """Summary of ``repeats`` timed calls of one callable, in milliseconds.

    Invariant: ``p10_ms <= median_ms <= p90_ms`` and ``spread_ms = p90_ms - p10_ms``.
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    spread_ms: float
    repeats: int

    @classmethod
    def from_samples(cls, samples_ns: list[int] | np.ndarray) -> TimingStats:
        """Summarize raw durations in nanoseconds (at least one sample)."""
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        if ms.size == 0:
            raise ValueError("TimingStats.from_samples got no samples; pass at least one duration")
        p10, median, p90 = np.percentile(ms, [10, 50, 90])
        return cls(
            median_ms=float(median),
            p10_ms=float(p10),
            p90_ms=float(p90),
            spread_ms=float(p90 - p10),
            repeats=int(ms.size),
        )

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _check_count(who: str, name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(
            f"{who}: {name}={value!r} is not accepted; {name} must be an integer >= {minimum}."
        )


def check_callables(
    who: str, fns: dict[str, Callable[[], object]], warmup: int, repeats: int
) -> None:
    """ValueError (naming ``who``) unless fns is a non-empty dict of callables, warmup >= 0
    and repeats >= 1."""
    if not fns:
        raise ValueError(f"{who}: fns is empty; pass a dict {{name: callable}} of 1+ items")
    for name, fn in fns.items():
        if not callable(fn):
            raise ValueError(
                f"{who}: fns[{name!r}] is a {type(fn).__name__}, not a callable; "
                "every value must be a function taking no arguments."
            )
    _check_count(who, "warmup", warmup, 0)
    _check_count(who, "repeats", repeats, 1)


def rotation(names: list[str], r: int) -> list[str]:
    """The call order of round ``r``: ``names`` rotated left by r, so no name is always first."""
    return names[r % len(names) :] + names[: r % len(names)]


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    warmup: int = 3,
    repeats: int = 20,
    min_time_s: float | None = None,
) -> dict[str, TimingStats]:
    """Time each callable in ``fns`` with interleaved, rotating rounds.

    Every callable is first called ``warmup`` times, untimed (caches, lazy
    compilation, thread pools). Every round, warm-up or timed, calls all
    callables once, starting one name further than the round before; each
    timed call is timed alone with ``time.perf_counter_ns``. At least
    ``repeats`` rounds run; when ``min_time_s`` is given, rounds continue until
    the timed calls add up to at least that many seconds (so very fast variants
    get enough samples).

    Returns ``{name: TimingStats}`` in the order of ``fns``; every entry has
    the same number of repeats. The callables' return values are discarded.
    """
    check_callables("time_interleaved", fns, warmup, repeats)
    if min_time_s is not None and not (
        isinstance(min_time_s, int | float) and 0 <= min_time_s < math.inf
    ):
        raise ValueError(
            f"time_interleaved: min_time_s={min_time_s!r} is not accepted; pass None or a "
            "finite number of seconds >= 0."
        )

    names = list(fns)
    for r in range(warmup):
        for name in rotation(names, r):
            fns[name]()

    samples: dict[str, list[int]] = {name: [] for name in names}
    budget_ns = 0 if min_time_s is None else int(min_time_s * 1e9)
    total_ns = 0
    r = 0
    while r < repeats or total_ns < budget_ns:
        for name in rotation(names, warmup + r):  # continues from the warm-up
            fn = fns[name]
            start = time.perf_counter_ns()
            fn()
            elapsed = time.perf_counter_ns() - start
            samples[name].append(elapsed)
            total_ns += elapsed
        r += 1
    return {name: TimingStats.from_samples(samples[name]) for name in names}
