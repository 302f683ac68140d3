"""Calibration test fixtures: calibration sets and quantized directories of the realistic random-weight models.

Everything is cached per session and kept small (the first 48 frames of bag.avi, ≤ 24 search crops) so the whole
collect → quantize → run → report chain stays within the CI budget on 2 CPU cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calib_helpers import BAG_INIT_BOX, FRAMES, SAMPLES, TEMPLATES  # noqa: E402


@pytest.fixture(scope="session")
def calib_set(model_dir, bag_video, tmp_path_factory):
    """Factory: ``calib_set(name)`` → (path of the saved .npz, CalibrationSet), collected along the FP32
    trajectory on the first 48 frames of bag.avi."""
    from siamtrt.calibration.collect import SourceSpec, collect

    root = tmp_path_factory.mktemp("calib")
    cache = {}

    def make(name: str):
        if name not in cache:
            out = root / f"{name}.npz"
            s = collect(model_dir(name), [SourceSpec(bag_video, bbox=BAG_INIT_BOX)], out, max_samples=SAMPLES,
                        templates_per_source=TEMPLATES, max_frames=FRAMES, progress=False)
            cache[name] = (s.path, s.calib)
        return cache[name]

    return make


@pytest.fixture(scope="session")
def int8_dir(model_dir, calib_set, tmp_path_factory):
    """Factory: ``int8_dir(name, target="onnxruntime")`` → quantized model directory (cached)."""
    from siamtrt.calibration.qdq import quantize_int8

    root = tmp_path_factory.mktemp("int8")
    cache = {}

    def make(name: str, target: str = "onnxruntime") -> Path:
        key = (name, target)
        if key not in cache:
            out = root / f"{name}_int8_{target}"
            quantize_int8(model_dir(name), calib_set(name)[0], out, target=target)
            cache[key] = out
        return cache[key]

    return make


@pytest.fixture(scope="session")
def fp16_dir(model_dir, calib_set, tmp_path_factory):
    """Factory: ``fp16_dir(name)`` → FP16 model directory (cached)."""
    from siamtrt.calibration.fp16 import convert_fp16

    root = tmp_path_factory.mktemp("fp16")
    cache = {}

    def make(name: str) -> Path:
        if name not in cache:
            out = root / f"{name}_fp16"
            convert_fp16(model_dir(name), out, calib_set(name)[0])
            cache[name] = out
        return cache[name]

    return make
