"""`gsprune`: the Hydra entry point. One run, or a sweep with `-m`.

    gsprune task=image pattern=gs sparsity=0.9
    gsprune -m pattern=unstructured,block,gs sparsity=0.5,0.7,0.9

Errors the user can fix print as one paragraph prefixed with ``gsprune: error:``
and exit with status 2, before any training starts.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gsprune.runner import RunError, run

# The config tree lives at the repository root (DESIGN §10); an absolute path works
# the same for `python -m gsprune.cli`, the console script and torchrun.
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one configuration; return its metric (Hydra sweepers can optimise it)."""
    logging.getLogger("gsprune").setLevel(logging.INFO)
    try:
        record = run(cfg)
    except RunError as err:
        print(f"gsprune: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    return float(record["metric"]["value"]) if record else None


if __name__ == "__main__":
    main()
