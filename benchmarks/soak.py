#!/usr/bin/env python
"""``python benchmarks/soak.py`` = ``siamtrt soak``: options and help in siamtrt/cli/soak.py (``--help``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.main import run_job  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_job("soak"))
