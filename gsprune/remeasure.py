"""Re-time finished runs' sparse layers with this checkout's kernels, without retraining.

    gsprune-remeasure results/sweeps/image/records             # every record in the folder
    gsprune-remeasure results/records/0a1b2c3d4e5f6a7b.json --backends cpu

Kernels improve more often than models are retrained. Every run keeps its pruned model
(``keep_model``, ``gsprune.models``), so its layers can be timed again exactly as the
run timed them: the same formats (checked against the record's sha256), the same column
counts per layer and the record's own latency settings (threads, repeats, V and B),
through the runner's own timing function (``runner.time_layers``). Each re-timed
backend's entry in the record is replaced, and says so: ``latency.<backend>.remeasured``
holds when, at which commit, on which machine, and the previous entry's ``sparse``,
``dense`` and ``speedup`` with the commit that measured them. Accuracy, the model and
everything else in the record stay as the run left them.

Every record is read and its model file checked before any timing starts: a folder with
no records, a record without a kept model, or a backend the record did not use stops
the command with one paragraph and exit status 2, having changed nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gsprune import latency
from gsprune.models import LoadedRun, load_run
from gsprune.records import read_record, write_record
from gsprune.runner import git_commit, time_layers


def record_files(paths: Sequence[str]) -> list[Path]:
    """The record files named by ``paths`` (files, or folders of ``<run_id>.json``)."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files += sorted(path.glob("*.json"))
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{given} is neither a record file nor a folder of records")
    if not files:
        raise ValueError(f"no run records (<run_id>.json) under {', '.join(paths)}")
    return files


def plan_remeasure(
    files: Sequence[Path], backends: Sequence[str] | None
) -> list[tuple[Path, LoadedRun, list[str]]]:
    """``(record file, loaded run, backends to re-time)`` for every file; raises ValueError
    or FileNotFoundError (naming the file) before any timing."""
    plans = []
    for file in files:
        record = read_record(file)
        recorded = list(record["config"]["latency"]["backends"])
        chosen = list(backends) if backends else recorded
        unknown = [backend for backend in chosen if backend not in recorded]
        if unknown:
            raise ValueError(
                f"{file}: the run was timed on {recorded}, not on {unknown}; re-timing keeps "
                "a run's own settings, so --backends must name some of those"
            )
        for backend in chosen:
            latency.check_backend(backend, record["pattern"]["format"])
        plans.append((file, load_run(file), chosen))
    return plans


def remeasure(file: Path, loaded: LoadedRun, backends: Sequence[str]) -> dict[str, Any]:
    """Re-time ``loaded``'s layers on ``backends``, update the record file, return the record."""
    record = loaded.record
    assert record is not None  # load_run through a record file always has one
    settings = {**record["config"]["latency"], "backends": list(backends)}
    layers = record["sparsity"]["layers"]
    weights = {name: fmt.to_dense().float() for name, fmt in loaded.formats.items()}
    columns = {name: int(layers[name]["columns"]) for name in loaded.formats}
    entries = time_layers(loaded.formats, weights, columns, settings)
    stamp = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": latency.machine_facts(),
        "versions": latency.versions(),
    }
    for backend, entry in entries.items():
        previous = record["latency"].get(backend, {})
        before = previous.get("remeasured", {}).get("git_commit", record["git_commit"])
        entry["remeasured"] = {
            **stamp,
            "previous": {key: previous.get(key) for key in ("sparse", "dense", "speedup")}
            | {"git_commit": before},
        }
        record["latency"][backend] = entry
    write_record(file, record)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gsprune-remeasure", description=__doc__.split("\n\n")[0].strip()
    )
    parser.add_argument("records", nargs="+", help="record files or folders of records")
    parser.add_argument(
        "--backends", nargs="+", help="latency backends to re-time (default: each run's own)"
    )
    args = parser.parse_args(argv)
    try:
        plans = plan_remeasure(record_files(args.records), args.backends)
    except (ValueError, FileNotFoundError) as err:
        print(f"gsprune-remeasure: {err}", file=sys.stderr)
        return 2
    for index, (file, loaded, backends) in enumerate(plans, start=1):
        old = {b: loaded.record["latency"][b]["speedup"] for b in backends}
        record = remeasure(file, loaded, backends)
        new = ", ".join(
            f"{b} {old[b]:.3g}x -> {record['latency'][b]['speedup']:.3g}x" for b in backends
        )
        print(f"[{index}/{len(plans)}] {record['run_id']}: {new}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
