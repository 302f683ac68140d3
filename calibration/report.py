#!/usr/bin/env python
"""Accuracy-retention report of reduced-precision model directories against their FP32 source.

    python calibration/report.py --ref models/siamrpn_mobilev2_l234_dwxcorr \\
        --cand models/siamrpn_mobilev2_l234_dwxcorr_int8 --cand models/siamrpn_mobilev2_l234_dwxcorr_fp16 \\
        --video ../shared/data/bag.avi --bbox 316,140,112,115

On real crops along the FP32 trajectory: cosine / SQNR / max error of cls and loc (and of the template kernels),
argmax agreement of the score map, per-frame IoU between the FP32 and candidate trajectories over the whole video
(mean and minimum), and ONNX Runtime CPU speed of every variant side by side (search branch alone and end to end,
ratio to FP32, same thread count). Prints a table; writes report.json and report.png to --out.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.report import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
