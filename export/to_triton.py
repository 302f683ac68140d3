#!/usr/bin/env python
"""Write a Triton Inference Server model repository from a siamtrt model directory.

Example:
    python export/to_triton.py --model models/siamrpn_alex_dwxcorr --out triton_repo
    python export/to_triton.py --model models/r50 --out triton_repo --backend tensorrt   # after build_engine.py
    tritonserver --model-repository triton_repo
    python -m siamtrt.serving.client --url 127.0.0.1:8001 --video bag.avi --bbox 316,140,112,115

Triton backends: python (Python backend running ONNX Runtime; any tritonserver, including the CPU one in the
nvidia-pytriton wheel), onnxruntime (platform onnxruntime_onnx), tensorrt (platform tensorrt_plan on the engines).
The stateful tracker model (sequence batcher, one sequence per target) is always written.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.triton import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
