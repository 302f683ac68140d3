#!/usr/bin/env python
"""Frames per second and per-stage latency of the tracker loop, per backend/precision, against the PyTorch reference.

With no arguments: exports the default model (seeded random weights, once, into ./models), tracks
../shared/data/bag.avi with ONNX Runtime (60 frames) and with the PyTorch reference (10 frames; the speed ratio
divides median frame times), prints the table and writes fps.json + fps.png into results/fps/<date-time>/.

  python benchmarks/fps.py
  python benchmarks/fps.py --model models/mine --backend onnxruntime tensorrt --targets 4 \\
      --json fps.json --plot fps.png
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.fps import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
