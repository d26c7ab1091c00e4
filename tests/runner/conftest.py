"""Shared settings for the end-to-end runner tests: a tiny but real image task.

The tiny task reads the real Fashion-MNIST files (a 4096-image training subset,
the full 10k test set), trains a narrow ResNet for two epochs and fine-tunes
for one, so one run takes seconds on two cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

TINY = [
    "task.fashion_mnist.train_subset=4096",
    "task.model_args.widths=[16,32,64]",
    "task.dense.epochs=2",
    "task.finetune.epochs=1",
    "task.batch_size=64",
    "prune.events=2",
    "latency.warmup=1",
    "latency.repeats=3",
    "threads=1",
]


def cli_command(*args: str, results: Path, launcher: tuple[str, ...] = ()) -> list[str]:
    """``python [launcher...] -m gsprune.cli args... results_dir=results``."""
    return [sys.executable, *launcher, "-m", "gsprune.cli", *args, f"results_dir={results}"]


CLI_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


def cli_in(
    results: Path, *args: str, timeout: float = 600, launcher: tuple[str, ...] = (), env=None
) -> subprocess.CompletedProcess:
    """Run the real `gsprune` CLI in a subprocess with its results under ``results``.

    stdout and stderr (Hydra logs to stdout, errors go to stderr) are merged in
    ``.stdout`` so tests read one log in order.
    """
    return subprocess.run(
        cli_command(*args, results=results, launcher=launcher),
        cwd=REPO,
        env={**CLI_ENV, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def popen_cli():
    """Start the CLI with results under a given dir; output piped (stdout + stderr merged)."""

    def start(results: Path, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            cli_command(*args, results=results),
            cwd=REPO,
            env=CLI_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    return start


@pytest.fixture(scope="session")
def run_cli_in():
    """``cli_in`` for tests and module-scoped fixtures that choose the results dir."""
    return cli_in


@pytest.fixture
def run_cli(results: Path):
    """``cli_in`` with the results under this test's ``results`` dir."""

    def run(
        *args: str, timeout: float = 600, launcher: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess:
        return cli_in(results, *args, timeout=timeout, launcher=launcher)

    return run


@pytest.fixture
def start_cli(results: Path):
    """Start the CLI without waiting (for kill-and-resume tests); output goes to a log."""

    def start(*args: str, log: Path) -> subprocess.Popen:
        return subprocess.Popen(
            cli_command(*args, results=results),
            cwd=REPO,
            env=CLI_ENV,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )

    return start


@pytest.fixture
def read_records(results: Path):
    def read() -> list[dict]:
        files = sorted((results / "records").glob("*.json"))
        return [json.loads(p.read_text()) for p in files]

    return read


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)


@pytest.fixture(scope="session")
def tiny_args() -> tuple[str, ...]:
    """``TINY`` for module-scoped fixtures (a tuple: shared, so immutable)."""
    return tuple(TINY)
