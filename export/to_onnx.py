#!/usr/bin/env python
"""Export a pysot / DaSiamRPN tracker checkpoint into template.onnx + search.onnx (a siamtrt model directory).

Example:
    python export/to_onnx.py --config siamrpn_r50_l234_dwxcorr --checkpoint model.pth --out models/r50
    python export/to_onnx.py --config experiments/siamrpn_r50_l234_dwxcorr/config.yaml --checkpoint model.pth
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
