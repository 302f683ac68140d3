#!/usr/bin/env python
"""Frames/s of 1, 4, 8 concurrent streams through a real Triton server vs in-process, side by side in one run.

Starts a local tritonserver (see siamtrt/serving/server.py for where it is found) on a repository written from the
model directory, tracks bag.avi as N identical streams, and reports both, the average search batch the dynamic
batcher formed, and how far the boxes are from the in-process runtime's.

  python benchmarks/serving.py                      # siamrpn_alex_dwxcorr, seeded random (stand-in) weights
  python benchmarks/serving.py --model models/mine --streams 1 4 8 --json serving.json --plot serving.png
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.serving_bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
