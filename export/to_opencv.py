#!/usr/bin/env python
"""Write the three ONNX files OpenCV's cv2.TrackerDaSiamRPN loads, from a DaSiamRPN vot/otb checkpoint.

Example:
    python export/to_opencv.py --config SiamRPNvot --checkpoint SiamRPNVOT.model --out models/vot-opencv
    python export/to_opencv.py --model models/vot --checkpoint SiamRPNVOT.model --out models/vot-opencv \\
        --compare ../shared/data/bag.avi --bbox 316,140,112,115
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.to_opencv import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
