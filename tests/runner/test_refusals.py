"""Bad overrides are refused in ``plan()``, before any work: a fuzz grid over every group.

Every config group's keys are crossed with edge and wrong-typed values (zero,
negative, huge, empty, non-numeric or unknown names, NaN, a list). Each case
must either pass ``plan()`` (the accepted edge values are listed below, so a
change in what is accepted shows up here) or raise RunError with one paragraph
that names the key or the value, writing nothing. The grid runs in-process
through Hydra's compose API (the CLI's own grammar and config tree); a subset
goes through the real CLI to check exit status 2, no traceback, no file.
"""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from gsprune.cli import CONFIG_DIR
from gsprune.plan import RunError, plan

GROUPS = {
    "top": ["sparsity", "seed", "threads", "force", "keep_model", "results_dir"],
    "pattern": ["pattern.V", "pattern.B", "pattern.band_k"],
    "prune": [
        "prune.method",
        "prune.score",
        "prune.initial_sparsity",
        "prune.events",
        "prune.begin",
        "prune.end",
    ],
    "latency": [
        "latency.backends",
        "latency.batch",
        "latency.threads",
        "latency.warmup",
        "latency.repeats",
        "latency.model.V",
        "latency.model.B",
    ],
    "task": [
        "task.batch_size",
        "task.eval_batch_size",
        "task.num_workers",
        "task.amp",
        "task.label_smoothing",
        "task.include",
        "task.exclude",
        "task.model",
        "task.model_args.widths",
        "task.model_args.stem_stride",
        "task.fashion_mnist.train_subset",
        "task.fashion_mnist.crop_padding",
        "task.data_dir",
        "task.dense.epochs",
        "task.dense.lr",
        "task.dense.optimizer",
        "task.dense.warmup",
        "task.dense.init",
        "task.finetune.epochs",
        "task.finetune.lr",
        "task.finetune.schedule",
    ],
}
# zero, negative, huge, empty, non-numeric (also an unknown name), NaN, a list
VALUES = ["0", "-1", "1e30", "''", "nope", "nan", "[1]"]

# The only (key, value) pairs of the grid that plan() accepts.
ACCEPTED = {
    ("sparsity", "0"),
    ("seed", "0"),
    ("results_dir", "nope"),
    ("prune.initial_sparsity", "0"),
    ("prune.begin", "0"),
    ("latency.warmup", "0"),
    ("task.num_workers", "0"),
    ("task.label_smoothing", "0"),
    ("task.exclude", "[]"),
    ("task.fashion_mnist.crop_padding", "0"),
    ("task.dense.warmup", "0"),
    # A huge learning rate is legal config; the loss turns NaN in the first steps and
    # the run stops with a "diverged" message (tests/runner/test_cli.py).
    ("task.dense.lr", "1e30"),
    ("task.finetune.lr", "1e30"),
    ("task.finetune.epochs", "0"),
}

CASES = [(key, value) for keys in GROUPS.values() for key in keys for value in VALUES]


@pytest.fixture(scope="module")
def compose_config():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        yield lambda *overrides: compose("config", overrides=list(overrides))


@pytest.mark.slow
@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_every_override_is_accepted_by_plan_or_refused_in_one_paragraph(
    compose_config, tiny, tmp_path, monkeypatch, key, value
):
    monkeypatch.chdir(tmp_path)  # results_dir=nope would be a relative path
    cfg = compose_config(*tiny, f"results_dir={tmp_path / 'results'}", f"{key}={value}")
    try:
        run_plan = plan(cfg)
    except RunError as err:
        message = str(err)
        assert (key, value) not in ACCEPTED, message
        assert message and "\n" not in message and "Traceback" not in message
        shown = value.strip("'")
        assert key.rsplit(".", 1)[-1] in message or (shown and shown in message), message
    else:
        assert (key, value) in ACCEPTED, f"{key}={value} was accepted"
        assert run_plan.schedule is not None and run_plan.schedule.total >= 1
    assert not any(tmp_path.iterdir()), "plan() writes nothing"


# One per kind of check (each CLI start costs seconds; the grid above covers the values).
CLI_REFUSALS = [
    (["seed=abc"], "seed='abc'"),
    (["latency.repeats=x"], "latency.repeats='x'"),
    (["task.include=[]"], "leaves no prunable weight"),
    (["prune.events=1000"], "prune.events=1000 do not fit"),
]
# Hydra refuses names that are not in the config tree itself (exit status 1, its own
# message, no traceback) before any gsprune code runs.
HYDRA_REFUSALS = [(["pattern=nope"], "Could not find 'pattern/nope'")]


@pytest.mark.slow
def test_cli_refusals_exit_2_in_one_paragraph_and_leave_files_alone(popen_cli, results, tiny):
    earlier = {
        results / "records" / "0123456789abcdef.json": b'{"schema": 1}',
        results / "cache" / "dense" / "0123456789abcdef.pt": b"an earlier dense model",
    }
    for path, content in earlier.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    cases = [(args, expected, 2) for args, expected in CLI_REFUSALS]
    cases += [(args, expected, 1) for args, expected in HYDRA_REFUSALS]
    for start in range(0, len(cases), 3):  # a few at a time: each is mostly Python start-up
        batch = cases[start : start + 3]
        procs = [popen_cli(results, *tiny, *args) for args, _, _ in batch]
        for (args, expected, status), proc in zip(batch, procs, strict=True):
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == status, (args, out[-2000:])
            assert expected in out and "Traceback" not in out, (args, out[-2000:])
            if status == 2:
                (line,) = [x for x in out.splitlines() if x.startswith("gsprune: error:")]
                assert out.rstrip().endswith(line), "the refusal is the last, single paragraph"
    written = {
        path
        for path in results.rglob("*")
        if path.is_file() and "hydra" not in path.relative_to(results).parts
    }
    assert written == set(earlier), "a refusal writes no record, cache, checkpoint or model"
    assert all(path.read_bytes() == content for path, content in earlier.items())
