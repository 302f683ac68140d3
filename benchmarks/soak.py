#!/usr/bin/env python
"""Soak: memory and frame time over long runs (runtime in every mode, Triton tracker model, Ray with killed workers).

  python benchmarks/soak.py --model DIR --mode all --frames 10000 --targets 1 4
  python benchmarks/soak.py --model DIR --parts runtime triton ray

JSON + PNG into results/soak/<date-time>/ (see siamtrt/cli/soak.py).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.soak import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
