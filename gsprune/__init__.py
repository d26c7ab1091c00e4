"""gsprune: sparsity-accuracy sweeps with load-balanced gather-scatter patterns.

The package follows the seams of DESIGN §14:

- ``gsprune.patterns``: projections from a score matrix to a keep-mask;
- ``gsprune.formats``: compact sparse formats, their encoders and validator;
- ``gsprune.kernels``: compiled products ``y = W @ X`` for each format;
- ``gsprune.latency``: timing harness and the H(V, B) hardware step model;
- ``gsprune.pruning``: schedules, scores and the masker used during training;
- ``gsprune.tasks``: models, data and metrics;
- ``gsprune.runner`` / ``gsprune.records`` / ``gsprune.report``: the pipeline;
- ``gsprune.load_run(record_or_path)``: a finished run's pruned model (``gsprune.models``).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_run"]


def __getattr__(name: str) -> Any:
    # Imported on first use: ``import gsprune.formats`` should not pull in the tasks.
    if name == "load_run":
        from gsprune.models import load_run

        return load_run
    raise AttributeError(f"module 'gsprune' has no attribute {name!r}")
