"""Reduced precision, made measurable: calibration crops, FP16 / INT8 (QDQ) models, TensorRT calibration caches and
the accuracy-retention report.

Imports are light: each function loads onnxruntime.quantization / onnxconverter-common only when called.
"""

from .collect import SourceSpec, collect
from .data import CalibrationSet, load_calibration

__all__ = ["CalibrationSet", "SourceSpec", "collect", "load_calibration"]
