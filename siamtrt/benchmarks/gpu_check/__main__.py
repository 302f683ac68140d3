"""``python -m siamtrt.benchmarks.gpu_check``: see scripts/gpu_check.sh."""

import sys

from .run import main

sys.exit(main())
