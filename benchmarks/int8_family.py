#!/usr/bin/env python
"""INT8 fidelity and speed on a family of stand-in checkpoints (issue 13), fixed recipe vs per-model fallback.

    python benchmarks/int8_family.py --arch alex --arch mobilev2 --out results/int8_family
    python benchmarks/int8_family.py --arch r50 --members 1 --out results/int8_family_r50

Members (STAND-IN RANDOM WEIGHTS, no trained checkpoint): seeds of the realistic random init, heads scaled 0.5× /
1× / 2×, BatchNorm statistics from bag.avi frames or synthetic texture frames, each saved as a pysot-layout
model.pth and exported through export/to_onnx.py's path. Calibration: 48 crops along the FP32 trajectory on the
first 96 frames of bag.avi; held-out: the bag OTB sequence's ground-truth crops at frames >= 96 with their own
template. Variants: the start set (stem, correlations, tail float; --min-cosine 0), the former fixed recipe
(float prefix 5 % search / 25 % template, --min-cosine 0) and the default fallback (--min-cosine 0.98), ONNX
Runtime flavour; the fallback also for --target tensorrt (fidelity only: ONNX Runtime gains no speed from it).
Speed: search branch vs FP32, interleaved rounds side by side in one run, at 2 threads and 1 thread. Writes
family.json and family.png.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.int8_family import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
