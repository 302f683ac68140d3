"""TensorRT implicit-INT8 calibration cache: format, scales and tensor names."""

from __future__ import annotations

import struct

import numpy as np
import onnx
import pytest

from calib_helpers import ALEX
from siamtrt.calibration.cache import cache_text, parse_cache, scale_hex, version_code, write_trt_cache
from siamtrt.calibration.data import CalibrationSet
from siamtrt.errors import CalibrationError


def test_scale_hex_is_big_endian_float32_bits():
    assert scale_hex(1 / 127) == "3c010204"
    assert scale_hex(1.0) == "3f800000"
    assert struct.unpack(">f", bytes.fromhex(scale_hex(0.0123)))[0] == pytest.approx(0.0123, rel=1e-6)


def test_version_codes():
    assert version_code("8.5.2") == 8502
    assert version_code("8.6.1.6") == 8601
    assert version_code("10.3.0") == 100300
    assert version_code("10.3") == 100300
    with pytest.raises(CalibrationError, match="major.minor"):
        version_code("eight")


def test_cache_text_round_trip():
    text = cache_text({"search": 255.0, "conv_out": 12.7, "dead": 0.0}, "8.6.1")
    lines = text.splitlines()
    assert lines[0] == "TRT-8601-EntropyCalibration2"
    back = parse_cache(text)
    assert back["search"] == pytest.approx(255 / 127, rel=1e-6)
    assert back["conv_out"] == pytest.approx(0.1, rel=1e-6)
    assert back["dead"] > 0  # a zero range still gets a valid (tiny) scale
    with pytest.raises(CalibrationError, match="non-finite"):
        cache_text({"x": float("nan")}, "8.6.1")


def test_write_cache_for_exported_model(model_dir, calib_set, tmp_path):
    _, c = calib_set(ALEX)
    src = model_dir(ALEX) / "search.onnx"
    small = CalibrationSet(template=c.template, search=c.search[:8], pair=c.pair[:8], kernels=c.kernels, meta=c.meta)
    out = write_trt_cache(src, small.search_feeds(small.kernels, 4), tmp_path / "search.calib.cache",
                          trt_version="8.5.2", total=small.num_search)
    text = out.read_text()
    assert text.startswith("TRT-8502-EntropyCalibration2\n")
    scales = parse_cache(text)
    m = onnx.load(str(src), load_external_data=False)
    names = {i.name for i in m.graph.input} | {o for n in m.graph.node for o in n.output}
    assert set(scales) <= names, "cache names must be ONNX tensor names (= TensorRT network tensor names)"
    assert scales["search"] == pytest.approx(255 / 127, rel=1e-6)
    assert "cls" in scales and "loc" in scales and "cls_kernel" in scales
    conv_outs = [n.output[0] for n in m.graph.node if n.op_type == "Conv"]
    assert all(o in scales for o in conv_outs)
    assert all(np.isfinite(v) and v > 0 for v in scales.values())


def test_write_caches_for_a_model_directory(model_dir, calib_set, tmp_path):
    from siamtrt.calibration.cache import write_trt_caches

    _, c = calib_set(ALEX)
    small = CalibrationSet(template=c.template[:1], search=c.search[:4], pair=np.zeros(4, np.int64),
                           kernels={k: v[:1] for k, v in c.kernels.items()}, meta=c.meta)
    out = write_trt_caches(model_dir(ALEX), small, tmp_path, trt_version="10.3.0")
    assert sorted(out) == ["search", "template"]
    assert out["template"].name == "template.calib.cache"
    tpl = parse_cache(out["template"].read_text())
    assert out["template"].read_text().startswith("TRT-100300-")
    assert tpl["template"] == pytest.approx(255 / 127, rel=1e-6) and "cls_kernel" in tpl
