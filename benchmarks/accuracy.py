#!/usr/bin/env python
"""One-pass evaluation (OTB success / precision plots) of each backend/precision of a model.

With no arguments: the default model (seeded random weights, exported once into ./models) with ONNX Runtime and the
PyTorch reference, on ../shared/data/bag plus one synthetic sequence. Results are cached under ./results
(results/<model>/<backend>-<precision>/<seq>.txt); scores are recomputed from those files on every run.

  python benchmarks/accuracy.py
  python benchmarks/accuracy.py --model models/mine models/mine-int8 --checkpoint model.pth \\
      --sequence ~/data/OTB100 --json otb.json --plot otb.png
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.accuracy import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
