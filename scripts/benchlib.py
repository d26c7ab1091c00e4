"""What every benchmark script shares: CSV output and the machine section of its Markdown.

The scripts run as ``python scripts/bench_<name>.py``, which puts this folder on
``sys.path``, so they import this module by its plain name.
"""

from __future__ import annotations

import csv
from pathlib import Path

from gsprune.latency.machine import machine_facts, versions


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
