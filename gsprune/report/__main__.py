"""``python -m gsprune.report`` = ``gsprune-report``."""

import sys

from gsprune.report.cli import main

sys.exit(main())
