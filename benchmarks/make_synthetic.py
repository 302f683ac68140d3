#!/usr/bin/env python
"""Write a synthetic tracking sequence with exact ground truth (OTB layout, plus VOT polygons and optionally a video).

A textured object moves, scales and rotates over the frames of a real video (default ../shared/data/bag.avi).

  python benchmarks/make_synthetic.py out/synthetic-s0 --frames 60 --seed 0 --video
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.make_synthetic import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
