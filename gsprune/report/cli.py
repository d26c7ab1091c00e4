"""``gsprune-report``: run records -> runs.csv, layers.csv, summary.md and figures.

Usage::

    gsprune-report results/ [more dirs or record files] [--out DIR]
                   [--backend cpu [--backend model]] [--sparsity 0.9]
                   [--tolerance 1.0 | --tolerance wer=2 [--tolerance bleu=0.5]]

It gathers every run record below the given paths (a ``*.json`` file whose
content has a ``"schema"`` field; other JSON files, e.g. benchmark tables, are
ignored), names every broken record it skips on stderr, and writes under
``--out`` (default ``<first dir>/report``):

- ``runs.csv``: one row per run (see ``RUN_COLUMNS``, the flattened optional
  blocks ``details.*``, ``dense_details.*``, ``baseline.*`` and ``outputs.*``,
  and the per-backend ``latency_<b>`` (drift-corrected: the task's dense latency
  over the run's speedup, ``table.correct_drift``; figures and ratios use it),
  ``latency_<b>_measured``, ``latency_<b>_dense``, ``speedup_<b>``, ``unit_<b>``,
  ``setting_<b>`` columns);
- ``layers.csv``: one row per (run, backend, pruned layer) with its latencies;
- ``summary.md``: per task, its metric with its direction, the dense value, the
  baseline and the headline tolerance, the runs table and, per latency backend,
  the headline speedups, the Pareto front and the equal-accuracy latency ratios;
- ``figures/<task>_<backend>_accuracy_latency.png``,
  ``figures/<task>_<backend>_layer_speedup.png`` and
  ``figures/<task>_accuracy_sparsity.png`` (accuracy against sparsity does not
  depend on a latency backend, so it is drawn once per task), plus one
  accuracy figure of each kind per test set for tasks scored on several.

The headline's tolerance ("equal to dense" within it) is by default one point of
each task's metric (1 top-1 point, 1 BLEU, 1 WER point; ``ratios.METRIC_POINT``);
``--tolerance X`` sets it for every task, ``--tolerance METRIC=X`` for the tasks
reporting that metric.

The parts: ``table`` (records -> run table), ``ratios`` (envelopes, Pareto
fronts, equal-metric ratios, headline), ``plots`` (figures); this module parses
the command line and writes the files.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from gsprune.report.plots import _latency_axis_label, _metric_axis_label, draw_figures
from gsprune.report.ratios import (
    Tolerance,
    _check_tolerance,
    equal_accuracy_ratios,
    headline,
    headline_text,
    pareto_front,
    tolerance_for,
)
from gsprune.report.table import (
    ReportError,
    _baseline,
    _dense_metric,
    _finite,
    _fmt,
    _groups,
    _prefixed,
    _sign,
    backends,
    layer_table,
    load_records,
)


def markdown_table(df: pd.DataFrame) -> str:
    """GitHub Markdown table of ``df`` with compact numbers; '|' inside cells escaped."""
    header = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def _text_table(df: pd.DataFrame) -> str:
    cells = [[str(c) for c in df.columns]] + [[_fmt(v) for v in r] for r in df.itertuples(False)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(df.columns))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells
    )


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _split_details(sub: pd.DataFrame) -> tuple[list[str], dict[str, Any]]:
    """A task's ``details.*`` columns: (the numeric ones that differ between its runs, e.g.
    per-test-set scores or chrF; {column: value} of those with one value in every run that
    has them, e.g. signatures and test-set sizes)."""
    varying, same = [], {}
    for column in _prefixed(sub, "details"):
        values = sub[column].dropna()
        if values.nunique() == 1:
            same[column] = values.iloc[0]
        elif values.nunique() > 1 and _numeric(values):
            varying.append(column)
    return varying, same


def _block_text(sub: pd.DataFrame, block: str) -> str:
    """``key value; key value`` for a block's flattened columns (``dense_details.wer.real`` ->
    ``wer.real 30.1``): the median of numbers, the distinct texts otherwise."""
    parts = []
    for column in _prefixed(sub, block):
        values = sub[column].dropna()
        if not len(values):
            continue
        if _numeric(values):
            text = _fmt(float(values.median()))
        else:
            text = " / ".join(_fmt(v) for v in dict.fromkeys(values))
        parts.append(f"{column[len(block) + 1 :]} {text}")
    return "; ".join(parts)


def _task_facts(sub: pd.DataFrame, tolerance: float) -> str:
    """Markdown bullets: the metric with its direction and the headline tolerance, the dense
    value (and dense details), the trivial baseline, the details shared by every run."""
    metric, sign = sub["metric"].iloc[0], _sign(sub)
    direction = "higher" if sign > 0 else "lower"
    equal = f"dense {'-' if sign > 0 else '+'} {_fmt(tolerance)}"
    lines = [
        f"- metric: {metric}, {direction} is better; headline tolerance {_fmt(tolerance)} "
        f"({metric} within {equal} counts as equal to dense)"
    ]
    dense, dense_details = _dense_metric(sub), _block_text(sub, "dense_details")
    dense_text = _fmt(dense) if math.isfinite(dense) else "not recorded"
    lines.append(f"- dense: {dense_text}" + (f" ({dense_details})" if dense_details else ""))
    baseline = _baseline(sub)
    if baseline is None:
        lines.append("- baseline: not recorded")
    else:
        more = _block_text(sub[sub["baseline_value"].notna()], "baseline")
        text = f"{baseline[0]} {_fmt(baseline[1])}"
        lines.append(f"- baseline: {text}" + (f" ({more})" if more else ""))
    _, same = _split_details(sub)
    if same:
        shared = "; ".join(f"{c[len('details.') :]} {_fmt(v)}" for c, v in same.items())
        lines.append(f"- in every run: {shared}")
    return "\n".join(lines)


def _runs_view(sub: pd.DataFrame, backend_names: Sequence[str]) -> pd.DataFrame:
    """The summary's runs table: the metric, then the details that differ between runs
    (``details.wer.real`` shown as ``wer.real``), then latency and speedup per backend."""
    varying, _ = _split_details(sub)
    columns = ["curve", "target_sparsity", "achieved_sparsity", "metric_value", *varying]
    for b in backend_names:
        columns += [f"latency_{b}", f"speedup_{b}"]
    names = {"metric_value": sub["metric"].iloc[0], "curve": "pattern"}
    names |= {c: c[len("details.") :] for c in varying}
    return sub[columns + ["run_id"]].rename(columns=names)


def _figure_links(figures: Sequence[Path], prefix: str, out: Path) -> list[str]:
    return [
        f"![{fig.stem}]({fig.relative_to(out).as_posix()})"
        for fig in figures
        if fig.name.startswith(prefix)
    ]


def _backend_section(
    task: str,
    sub: pd.DataFrame,
    backend: str,
    heads: pd.DataFrame,
    ratios: pd.DataFrame,
    figures: Sequence[Path],
    out: Path,
) -> list[str]:
    """Markdown blocks for one task and backend: headline, Pareto front, ratios, figures."""
    metric = sub["metric"].iloc[0]
    lines = [f"### {task}, {backend} backend: {_latency_axis_label(sub, backend)}"]
    if len(heads):
        lines.append("\n".join(f"- {headline_text(row)}" for _, row in heads.iterrows()))
    front = pareto_front(sub, backend)
    front = front[["curve", "achieved_sparsity", "metric_value", f"latency_{backend}"]]
    front = front.rename(columns={"curve": "pattern", "metric_value": metric})
    lines.append("Pareto front:\n\n" + markdown_table(front))
    if len(ratios):
        table = markdown_table(ratios.drop(columns="task"))
        lines.append(f"Latency ratio at equal {metric}:\n\n" + table)
    return lines + _figure_links(figures, f"{task}_{backend}_", out)


def summary_markdown(
    df: pd.DataFrame,
    backend_names: Sequence[str],
    tolerance: Tolerance,
    headlines: dict[str, pd.DataFrame],
    ratios: dict[str, pd.DataFrame],
    skipped: Sequence[str] = (),
    figures: Sequence[Path] = (),
    out: Path = Path("."),
) -> str:
    """The Markdown report: per task its metric, dense value, baseline and headline
    tolerance (``tolerance_for(metric, tolerance)``) and its runs, then per backend the
    headline speedups (``headlines[b]`` from ``headline``), the Pareto front, the
    equal-accuracy ratios (``ratios[b]`` from ``equal_accuracy_ratios``) and the figures
    (linked relative to ``out``)."""
    lines = [f"# gsprune report\n\n{len(df)} runs, {df['task'].nunique()} task(s)."]
    if skipped:
        lines.append("Skipped record files:\n\n" + "\n".join(f"- {s}" for s in skipped))
    for task, sub in _groups(df):
        present = [b for b in backend_names if len(_finite(sub, b))]
        lines.append(f"## {task}: {_metric_axis_label(sub)}")
        lines.append(_task_facts(sub, tolerance_for(sub["metric"].iloc[0], tolerance)))
        lines.append(markdown_table(_runs_view(sub, present)))
        lines += _figure_links(figures, f"{task}_accuracy_sparsity", out)
        for b in present:
            heads, pairs = headlines[b], ratios[b]
            heads, pairs = heads[heads["task"] == task], pairs[pairs["task"] == task]
            lines += _backend_section(task, sub, b, heads, pairs, figures, out)
    return "\n\n".join(lines) + "\n"


def _tolerance_arg(text: str) -> tuple[str | None, float]:
    """``"1.5"`` -> (None, 1.5); ``"wer=2"`` -> ("wer", 2.0)."""
    metric, _, number = text.rpartition("=")
    try:
        return (metric or None), float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a tolerance; give a number (every task) or METRIC=NUMBER"
        ) from None


def _tolerance_option(given: Sequence[tuple[str | None, float]] | None) -> Tolerance:
    """The parsed ``--tolerance`` values -> a number, a {metric: number} mapping or None."""
    if not given:
        return None
    plain = [value for metric, value in given if metric is None]
    named = {metric: value for metric, value in given if metric is not None}
    if plain and named:
        raise ReportError(
            "--tolerance got both a number for every task and METRIC=NUMBER; give one number, "
            "or METRIC=NUMBER for each metric to change (the others keep their default)"
        )
    return plain[-1] if plain else named


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gsprune-report",
        description="Gather gsprune run records into a table, a Markdown summary and figures.",
    )
    parser.add_argument("paths", nargs="+", help="directories holding run records (or records)")
    parser.add_argument("--out", help="output directory (default: <first dir>/report)")
    parser.add_argument(
        "--backend",
        action="append",
        help="a latency backend to report, repeatable (default: every backend present)",
    )
    parser.add_argument(
        "--tolerance",
        action="append",
        type=_tolerance_arg,
        help="headline: metric distance from dense still counted as equal, in the metric's "
        "units: a number for every task, or METRIC=NUMBER (repeatable) for the tasks that "
        "report METRIC (default: one point of each metric: 1 top-1 point, 1 BLEU, 1 WER point)",
    )
    parser.add_argument(
        "--sparsity",
        type=float,
        help="target sparsity of the per-layer speedup figure (default: highest present)",
    )
    return parser


def report(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    backend_names: Sequence[str] | None = None,
    tolerance: Tolerance = None,
    sparsity: float | None = None,
) -> dict[str, Any]:
    """Run the whole report; returns {"df", "skipped", "files", "headlines", "ratios"}.

    ``tolerance``: see ``ratios.Tolerance`` (None: one point of each task's metric).
    Raises ReportError for bad input (missing path, no records, unknown backend, a
    tolerance for a metric no task reports).
    """
    df, skipped = load_records(paths)
    for message in skipped:
        print(message, file=sys.stderr)
    if not len(df):
        searched = ", ".join(str(p) for p in paths)
        raise ReportError(
            f"no run records found under {searched} (looked for *.json files with a "
            f'"schema" field; {len(skipped)} skipped); run gsprune first or pass the directory '
            "that holds its records"
        )
    present = backends(df)
    chosen = list(backend_names) if backend_names else present
    unknown = [b for b in chosen if b not in present]
    if unknown:
        raise ReportError(
            f"--backend {' '.join(unknown)} not in the records; backends present: "
            f"{', '.join(present) or 'none'}"
        )
    if sparsity is not None and not 0 <= sparsity < 1:
        raise ReportError(f"--sparsity {sparsity!r} is outside [0, 1)")
    _check_tolerance(tolerance)
    if isinstance(tolerance, Mapping):
        metrics = sorted(df["metric"].unique())
        lowered = {m.lower() for m in metrics}
        unused = [m for m in tolerance if str(m).lower() not in lowered]
        if unused:
            raise ReportError(
                f"--tolerance for {', '.join(map(str, unused))}: no task reports that metric; "
                f"metrics present: {', '.join(metrics)}"
            )
    # computed before anything is written: they also check that each task has one metric
    headlines = {b: headline(df, b, tolerance) for b in chosen}
    ratios = {b: equal_accuracy_ratios(df, b) for b in chosen}
    if out is None:
        first = Path(paths[0])
        out = (first if first.is_dir() else first.parent) / "report"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layer_columns = [c for c in df.columns if c.startswith("layers_")]
    files = [out / "runs.csv", out / "layers.csv", out / "summary.md"]
    df.drop(columns=layer_columns).to_csv(files[0], index=False)
    layers = [layer_table(df, b).assign(backend=b) for b in chosen]
    layers_df = pd.concat(layers) if layers else pd.DataFrame(columns=["backend"])
    layers_df.to_csv(files[1], index=False)
    figures = draw_figures(df, out / "figures", chosen, tolerance, sparsity)
    files[2].write_text(
        summary_markdown(df, chosen, tolerance, headlines, ratios, skipped, figures, out),
        encoding="utf-8",
    )
    return {
        "df": df,
        "skipped": skipped,
        "files": files + figures,
        "headlines": headlines,
        "ratios": ratios,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns 0, or 2 with a one-line error on bad input."""
    args = _parser().parse_args(argv)
    try:
        tolerance = _tolerance_option(args.tolerance)
        result = report(args.paths, args.out, args.backend, tolerance, args.sparsity)
    except ReportError as err:
        print(f"gsprune-report: error: {err}", file=sys.stderr)
        return 2
    df = result["df"]
    print(f"{len(df)} runs, {len(result['skipped'])} skipped")
    for b, heads in result["headlines"].items():
        for task, rows in heads.groupby("task", sort=True):
            print(f"\n{task}, {b} backend (tolerance {_fmt(rows['tolerance'].iloc[0])}):")
            for _, row in rows.iterrows():
                print(f"  {headline_text(row)}")
        ratios = result["ratios"][b]
        if len(ratios):
            print(f"\nlatency ratio at equal metric, {b} backend:\n{_text_table(ratios)}")
    print("\nwrote:\n" + "\n".join(f"  {p}" for p in result["files"]))
    return 0
