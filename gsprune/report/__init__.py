"""``gsprune-report``: run records -> one table, Markdown summary, figures, equal-accuracy ratios.

The parts, each a file:

- ``rows``: one run record -> one row of the run table (labels, recipe, flattened
  blocks), ``BrokenRecord`` naming a missing field;
- ``table``: reading records into the run table (``runs.csv``, latency corrected
  for host drift between runs) and the per-layer table (``layers.csv``),
  skipping broken records with a message;
- ``ratios``: monotone envelopes, Pareto fronts, equal-metric latency ratios and
  the headline speedups at dense +/- tolerance;
- ``plots``: the matplotlib figures;
- ``cli``: the command line (``main``) and the files it writes.

Everything public is re-exported here, so ``from gsprune import report`` and
``report.main`` (the ``gsprune-report`` entry point) work as before.
"""

from gsprune.report.cli import main, markdown_table, report, summary_markdown
from gsprune.report.plots import (
    accuracy_latency_figure,
    accuracy_sparsity_figure,
    draw_figures,
    plot_accuracy_latency,
    plot_accuracy_sparsity,
    plot_layer_speedup,
)
from gsprune.report.ratios import (
    HEADLINE_COLUMNS,
    METRIC_POINT,
    RATIO_COLUMNS,
    Envelope,
    Tolerance,
    equal_accuracy_ratios,
    headline,
    headline_text,
    pareto_front,
    tolerance_for,
)
from gsprune.report.rows import RECIPE_EXCLUDED, BrokenRecord, pattern_label, recipe, record_row
from gsprune.report.table import (
    FLAT_PREFIXES,
    RUN_COLUMNS,
    TAIL_COLUMNS,
    ReportError,
    backends,
    correct_drift,
    layer_table,
    load_records,
    runs_frame,
    scored_set_view,
    scored_sets,
)

__all__ = [
    "FLAT_PREFIXES",
    "HEADLINE_COLUMNS",
    "METRIC_POINT",
    "RATIO_COLUMNS",
    "RECIPE_EXCLUDED",
    "RUN_COLUMNS",
    "TAIL_COLUMNS",
    "Tolerance",
    "BrokenRecord",
    "Envelope",
    "ReportError",
    "accuracy_latency_figure",
    "accuracy_sparsity_figure",
    "backends",
    "correct_drift",
    "draw_figures",
    "equal_accuracy_ratios",
    "headline",
    "headline_text",
    "layer_table",
    "load_records",
    "main",
    "markdown_table",
    "pareto_front",
    "pattern_label",
    "plot_accuracy_latency",
    "plot_accuracy_sparsity",
    "plot_layer_speedup",
    "recipe",
    "record_row",
    "report",
    "runs_frame",
    "scored_set_view",
    "scored_sets",
    "summary_markdown",
    "tolerance_for",
]
