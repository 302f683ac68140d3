#!/usr/bin/env python
"""Make an INT8 (QDQ) or FP16 copy of an exported fp32 model directory.

    python calibration/quantize.py --model models/siamrpn_mobilev2_l234_dwxcorr --calib calib/mobilev2_bag.npz \\
        --precision int8 --out models/siamrpn_mobilev2_l234_dwxcorr_int8
    python calibration/quantize.py --model models/siamrpn_mobilev2_l234_dwxcorr --calib calib/mobilev2_bag.npz \\
        --precision int8 --target tensorrt --trt-cache --trt-version 8.6.2 --out models/mobilev2_int8_trt
    python calibration/quantize.py --model models/siamrpn_mobilev2_l234_dwxcorr --calib calib/mobilev2_bag.npz \\
        --precision fp16 --out models/siamrpn_mobilev2_l234_dwxcorr_fp16

INT8 uses onnxruntime.quantization (QDQ, per-channel int8 weights). --target onnxruntime (default) gives uint8
asymmetric activations, the fast ONNX Runtime CPU flavour; --target tensorrt gives symmetric int8 with zero points
of 0 and float bias, what TensorRT's explicit quantization accepts (export/build_engine.py --int8). The depthwise
correlation, the last convolution of each output path and the stem stay float; then the float prefix (the
convolutions nearest the input) grows, per model, until the INT8 pair keeps cls and loc cosine >= --min-cosine
(default 0.98) against FP32 for the worst template of 32 calibration crops, and the pair is checked on 32 held-out
crops (--min-cosine 0: no search; --float-prefix / --exclude force more float). The chosen set and the fidelity
reached are printed and written to the metadata. --trt-cache also writes <branch>.calib.cache for TensorRT's
implicit INT8 (TensorRT 8.x-10.x, JetPack 5/6), for the fp32 ONNX files of --model. FP16 uses onnxconverter-common
with float32 I/O. The output directory keeps the source metadata, with precision and the quantization details recorded.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from siamtrt.cli.quantize import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
