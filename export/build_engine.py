#!/usr/bin/env python
"""Build TensorRT engines (template.engine, search.engine + JSON sidecars) from an exported model directory.

Examples:
    python export/build_engine.py --model models/siamrpn_alex_dwxcorr                # precision of the export
    python export/build_engine.py --model models/siamrpn_mobilev2_l234_dwxcorr --fp16
    python export/build_engine.py --model models/r50_int8 --int8 --timing-cache r50.cache
    python export/build_engine.py --model models/r50 --fp16 --xcorr plugin --max-batch 4   # full TensorRT only
    python export/build_engine.py --model models/mobilev2 --fp16 --dla 0                   # Jetson Xavier / Orin

Works with `tensorrt` (JetPack, NVIDIA's index) and `tensorrt_rtx` (builds without a GPU, conv mode only).
See docs/tensorrt.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.build import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
