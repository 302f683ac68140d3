#!/usr/bin/env python
"""Collect INT8 calibration crops from real video, cut exactly as the tracker cuts them.

    python calibration/collect.py --model models/siamrpn_mobilev2_l234_dwxcorr \\
        --video ../shared/data/bag.avi --bbox 316,140,112,115 --out calib/mobilev2_bag.npz

Template crops (E x E) and search crops (S x S) come from the FP32 tracker's own trajectory (from --bbox), or from
per-frame boxes (--boxes gt.txt; an OTB folder's groundtruth_rect.txt is used when no box is given). Repeat --video
for several sources, with one --bbox or --boxes per --video, in the same order. Sampling is deterministic (evenly
spaced frames); --max-samples caps the search crops over all sources. Search crops are stored with the FP32 kernels
of their paired template, so the search branch is calibrated on realistic kernel inputs.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.collect import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
