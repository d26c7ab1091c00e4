"""The gradual pruning schedule of Zhu & Gupta (2017), "To prune, or not to prune".

The sparsity rises from s_i at step t0 to s_f at step t_end along a cubic that
is steep early (many redundant weights to drop) and flat late (the network
recovers from the last, most damaging prunes):

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t_end - t0)) ** 3,   t0 <= t <= t_end

and s_i before t0, s_f after t_end. Masks are recomputed at ``events`` evenly
spaced steps (``pruning_steps``), the last one at t_end.
"""

from __future__ import annotations

from gsprune.patterns.base import check_sparsity


def _check_steps(begin: int, end: int) -> None:
    if not (isinstance(begin, int) and isinstance(end, int)) or not 0 <= begin <= end:
        raise ValueError(
            f"pruning steps begin={begin!r}, end={end!r} are not accepted; they must be "
            "integers with 0 <= begin <= end (optimizer steps of the fine-tuning phase)"
        )


def cubic_sparsity(step: int, begin: int, end: int, initial: float, final: float) -> float:
    """Target sparsity at ``step`` (Zhu & Gupta): ``initial`` up to ``begin``, ``final``
    from ``end`` on, the cubic in between. ``begin == end`` is a one-shot jump at ``end``.

    Requires 0 <= initial <= final < 1 and 0 <= begin <= end.
    """
    _check_steps(begin, end)
    initial, final = check_sparsity(initial), check_sparsity(final)
    if initial > final:
        raise ValueError(
            f"initial sparsity {initial} exceeds the final sparsity {final}; the schedule "
            "only raises sparsity (accepted: 0 <= initial <= final < 1)"
        )
    if step >= end:
        return final
    if step <= begin:
        return initial
    remaining = 1.0 - (step - begin) / (end - begin)
    return final + (initial - final) * remaining**3


def pruning_steps(begin: int, end: int, events: int) -> list[int]:
    """``events`` distinct, evenly spaced steps from ``begin`` to ``end`` (the last is ``end``).

    One event is one-shot pruning at ``end``. With two or more, the first is at
    ``begin`` (where the schedule gives the initial sparsity) and the spacing is
    ``(end - begin) / (events - 1)`` rounded to whole steps.
    """
    _check_steps(begin, end)
    if not isinstance(events, int) or events < 1:
        raise ValueError(f"events={events!r} is not accepted; it must be an integer >= 1")
    if events == 1:
        return [end]
    if events > end - begin + 1:
        raise ValueError(
            f"events={events} do not fit between steps {begin} and {end} ({end - begin + 1} "
            "steps); accepted: at most end - begin + 1 events, or a later end"
        )
    return [begin + round(i * (end - begin) / (events - 1)) for i in range(events)]
