"""gsprune: sparsity-accuracy sweeps with load-balanced gather-scatter patterns.

The package follows the seams of DESIGN §14:

- ``gsprune.patterns``: projections from a score matrix to a keep-mask;
- ``gsprune.formats``: compact sparse formats, their encoders and validator;
- ``gsprune.kernels``: compiled products ``y = W @ X`` for each format;
- ``gsprune.latency``: timing harness and the H(V, B) hardware step model;
- ``gsprune.pruning``: schedules, scores and the masker used during training;
- ``gsprune.tasks``: models, data and metrics;
- ``gsprune.runner`` / ``gsprune.records`` / ``gsprune.report``: the pipeline.
"""

__version__ = "0.1.0"
