"""benchmarks/int8_family.py reuses a member's calib.npz and int8_* folders only for the fp32 model they were made
from (after the member's fp32 model changed, every variant reported cls -0.18 from the old quantized folders)."""

from __future__ import annotations

import shutil

import onnx
import pytest

from calib_helpers import ALEX

pytestmark = pytest.mark.filterwarnings("ignore")


def _other_weights(src, dst):
    """A copy of a model directory standing in for a re-built member (other weights recorded, other bytes)."""
    from siamtrt.metadata import read_onnx_metadata, set_onnx_metadata

    shutil.copytree(src, dst)
    for branch in ("template", "search"):
        m = onnx.load(str(dst / f"{branch}.onnx"))
        set_onnx_metadata(m, dict(read_onnx_metadata(dst / f"{branch}.onnx"), checkpoint_sha256="f" * 64))
        onnx.save(m, str(dst / f"{branch}.onnx"))
    return dst


def test_member_outputs_reused_only_for_the_same_fp32_model(model_dir, calib_set, int8_dir, tmp_path, bag_video):
    from siamtrt.cli.int8_family import calib_reusable, int8_reusable, member_tag

    src, calib, q = model_dir(ALEX), calib_set(ALEX)[0], int8_dir(ALEX)
    assert calib_reusable(calib, src) and int8_reusable(q, src)
    other = _other_weights(src, tmp_path / "fp32")
    assert not calib_reusable(calib, other) and not int8_reusable(q, other)
    assert not calib_reusable(tmp_path / "none.npz", src) and not int8_reusable(tmp_path / "none", src)
    # another --data is another member
    data2 = tmp_path / "data2"
    data2.mkdir()
    (data2 / bag_video.name).write_bytes(bag_video.read_bytes()[:-1000])
    assert member_tag("alex", 1, 1.0, "bag", bag_video.parent) != member_tag("alex", 1, 1.0, "bag", data2)
