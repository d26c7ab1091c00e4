"""time_interleaved: call order, statistics and argument checks; machine facts."""

from __future__ import annotations

import pytest

from gsprune.latency.machine import machine_facts, versions
from gsprune.latency.timing import TimingStats, time_interleaved


def busy(n: int) -> int:
    """Pure-Python work proportional to ``n`` (no sleeping: the CPU is what we compare)."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def test_rounds_rotate_and_warmup_is_untimed() -> None:
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    stats = time_interleaved(fns, warmup=2, repeats=4)
    # 2 warm-up rounds + 4 timed rounds, the start rotating by one each round.
    rounds = ["abc", "bca", "cab", "abc", "bca", "cab"]
    assert "".join(calls) == "".join(rounds)
    assert list(stats) == ["a", "b", "c"]
    assert all(s.repeats == 4 for s in stats.values())


def test_heavier_function_has_larger_median() -> None:
    stats = time_interleaved(
        {"light": lambda: busy(2_000), "heavy": lambda: busy(40_000)}, warmup=1, repeats=15
    )
    light, heavy = stats["light"], stats["heavy"]
    # 20x the work; a 5x margin leaves room for a noisy shared machine.
    assert heavy.median_ms > 5 * light.median_ms
    for s in (light, heavy):
        assert 0 < s.p10_ms <= s.median_ms <= s.p90_ms
        assert s.spread_ms == pytest.approx(s.p90_ms - s.p10_ms)


def test_min_time_adds_rounds() -> None:
    stats = time_interleaved({"f": lambda: busy(20_000)}, warmup=0, repeats=1, min_time_s=0.05)
    assert stats["f"].repeats > 1


def test_stats_from_samples() -> None:
    s = TimingStats.from_samples([1_000_000 * v for v in range(1, 12)])  # 1..11 ms
    assert (s.p10_ms, s.median_ms, s.p90_ms, s.spread_ms, s.repeats) == (2, 6, 10, 8, 11)
    assert s.as_dict()["median_ms"] == 6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fns": {}},
        {"fns": {"a": 3}},
        {"repeats": 0},
        {"warmup": -1},
        {"repeats": 2.5},
        {"min_time_s": -1.0},
        {"min_time_s": float("nan")},
    ],
)
def test_bad_arguments_raise(kwargs: dict) -> None:
    args = {"fns": {"a": lambda: None}} | kwargs
    with pytest.raises(ValueError, match="time_interleaved"):
        time_interleaved(**args)


def test_machine_facts_and_versions() -> None:
    facts = machine_facts()
    assert facts["logical_cores"] >= 1
    assert isinstance(facts["avx2"], bool) and isinstance(facts["avx512f"], bool)
    assert facts["torch_threads"] >= 1
    v = versions()
    assert v["torch"] and v["numpy"] and v["python"].count(".") == 2


def test_cpuinfo_reads_the_first_processor(tmp_path) -> None:
    from gsprune.latency.machine import _cpuinfo

    text = (
        "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 207\n"
        "model name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu avx2 avx512f amx_bf16\n\n"
        "processor\t: 1\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: other\nflags\t: sse2\n"
    )
    (tmp_path / "cpuinfo").write_text(text)
    model, flags = _cpuinfo(tmp_path / "cpuinfo")
    assert model == "Intel(R) Xeon(R) Processor (family 6, model 207)"
    assert flags == {"fpu", "avx2", "avx512f", "amx_bf16"}
    assert _cpuinfo(tmp_path / "missing")[1] == set()
