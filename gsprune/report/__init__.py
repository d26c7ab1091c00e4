"""``gsprune-report``: run records -> one table, Markdown summary, figures, equal-accuracy ratios.

The parts, each a file:

- ``table``: reading records into the run table (``runs.csv``) and the per-layer
  table (``layers.csv``), skipping broken records with a message;
- ``ratios``: monotone envelopes, Pareto fronts, equal-metric latency ratios and
  the headline speedups at dense +/- tolerance;
- ``plots``: the matplotlib figures;
- ``cli``: the command line (``main``) and the files it writes.

Everything public is re-exported here, so ``from gsprune import report`` and
``report.main`` (the ``gsprune-report`` entry point) work as before.
"""

from gsprune.report.cli import main, markdown_table, report, summary_markdown
from gsprune.report.plots import (
    draw_figures,
    plot_accuracy_latency,
    plot_accuracy_sparsity,
    plot_layer_speedup,
)
from gsprune.report.ratios import (
    HEADLINE_COLUMNS,
    RATIO_COLUMNS,
    Envelope,
    equal_accuracy_ratios,
    headline,
    headline_text,
    pareto_front,
)
from gsprune.report.table import (
    RECIPE_EXCLUDED,
    RUN_COLUMNS,
    TAIL_COLUMNS,
    BrokenRecord,
    ReportError,
    backends,
    layer_table,
    load_records,
    pattern_label,
    recipe,
    record_row,
    runs_frame,
)

__all__ = [
    "HEADLINE_COLUMNS",
    "RATIO_COLUMNS",
    "RECIPE_EXCLUDED",
    "RUN_COLUMNS",
    "TAIL_COLUMNS",
    "BrokenRecord",
    "Envelope",
    "ReportError",
    "backends",
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
    "summary_markdown",
]
