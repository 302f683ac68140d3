"""SiamRPNBIG's adaptive search size: calibration crops at both 271 and 287, used by the quantizer and the report.

A tiny hand-made SiamRPNBIG directory (tests/runtime/rt_tiny_models.py: dynamic spatial size, same metadata and
geometry as the real one) keeps this fast; the crops come from bag.avi and its ground truth.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from rt_tiny_models import make_tiny_model_dir  # noqa: E402
from siamtrt.calibration.collect import SourceSpec, collect  # noqa: E402
from siamtrt.calibration.data import load_calibration  # noqa: E402
from siamtrt.errors import CalibrationError, InputError  # noqa: E402

FRAMES = 14
SAMPLES = 6


@pytest.fixture(scope="module")
def big_dir(tmp_path_factory):
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny_big"), "SiamRPNBIG", channels=8)


@pytest.fixture(scope="module")
def big_calib(big_dir, bag_sequence, tmp_path_factory):
    out = tmp_path_factory.mktemp("calib_big") / "big.npz"
    return collect(big_dir, [SourceSpec(bag_sequence)], out, max_samples=SAMPLES, templates_per_source=2,
                   max_frames=FRAMES, progress=False)


def test_both_search_sizes_are_collected_and_saved(big_calib):
    c = big_calib.calib
    assert c.search.shape[1:] == (3, 271, 271) and c.search_alt.shape[1:] == (3, 287, 287)
    assert len(c.search_alt) == len(c.search) == SAMPLES  # one crop of each size per sampled frame
    info = big_calib.per_source[0]
    assert info["search_alt_frames"] == info["search_frames"]
    assert c.num_search_feeds == 2 * SAMPLES
    back = load_calibration(big_calib.path)
    assert np.array_equal(back.search_alt, c.search_alt) and np.array_equal(back.pair_alt, c.pair_alt)
    assert "at 287x287" in back.summary()
    sizes = [f["search"].shape[-1] for f in back.search_feeds(back.kernels, 4, alt=True)]
    assert sizes == [271, 271, 287, 287]  # one size per feed, main crops first


def test_alt_crop_is_the_trackers_crop_at_287(big_calib, big_dir, bag_sequence):
    """The 287 crop of a sampled frame is what a tracker forced to 287 cuts from the same state."""
    from siamtrt.runtime.tracker import Tracker

    info = big_calib.per_source[0]
    t = info["search_alt_frames"][0]
    gt = np.loadtxt(bag_sequence / "groundtruth_rect.txt", delimiter=",")
    frames = {i: cv2.imread(str(bag_sequence / "img" / f"{i + 1:08d}.jpg")) for i in (0, t - 1, t)}
    with Tracker.from_model_dir(big_dir, backend="onnxruntime", providers="cpu") as state, \
            Tracker.from_model_dir(big_dir, backend="onnxruntime", providers="cpu") as forced:
        state.init(frames[t - 1], gt[t - 1])           # the state the collector puts the tracker in
        forced.init(frames[0], gt[0], instance_size=287)  # frame-0 channel means, as the collector's
        forced.center, forced.size = state.center.copy(), state.size.copy()
        seen = []
        run = forced.backend.run_search
        forced.backend.run_search = lambda x, k: (seen.append(np.array(x)), run(x, k))[1]
        forced.track(frames[t])
    assert seen[0].shape[-1] == 287
    assert np.array_equal(np.clip(np.rint(seen[0][0]), 0, 255).astype(np.uint8), big_calib.calib.search_alt[0])


def test_quantizer_sees_both_sizes(big_calib, big_dir, tmp_path):
    import onnx
    import onnxruntime as ort

    from siamtrt.calibration.qdq import BranchQuantizer

    c = big_calib.calib
    with BranchQuantizer(big_dir / "search.onnx", c.search_feeds(c.kernels, alt=True)) as bq:
        excluded = bq.stem + bq.corr + bq.tail
        q = bq.quantize(excluded)
        res = bq.result(q, tmp_path / "search.onnx", excluded, 0.0)
    assert res.samples == 2 * SAMPLES  # the 287 crops reached the range statistics
    onnx.save(q, str(tmp_path / "search.onnx"))
    feed = next(iter(c.alt_set().search_feeds(c.kernels)))
    ref = ort.InferenceSession(str(big_dir / "search.onnx"), providers=["CPUExecutionProvider"]).run(None, feed)
    got = ort.InferenceSession(str(tmp_path / "search.onnx"), providers=["CPUExecutionProvider"]).run(None, feed)
    assert got[0].shape[-1] == 21  # score size at 287
    a, b = ref[0].ravel(), got[0].ravel()
    assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 0.99


def test_report_measures_the_other_size(big_calib, big_dir, bag_video, tmp_path):
    from siamtrt.calibration.fp16 import convert_fp16
    from siamtrt.calibration.report import accuracy_report

    convert_fp16(big_dir, tmp_path / "fp16", big_calib.path)
    rep = accuracy_report(big_dir, [tmp_path / "fp16"], bag_video, (316, 140, 112, 115), out=tmp_path / "rep",
                          samples=4, threads=1, speed_rounds=1, max_frames=8, progress=False)
    d = rep.data
    assert d["alt_instance_size"] == 287 and d["alt_crops"] == 4
    acc = d["candidates"][0]["accuracy"]
    assert acc["cls_alt"]["cosine"] > 0.999 and acc["cls"]["cosine"] > 0.999
    assert "at search size 287 (4 crops)" in str(rep)


def test_alt_size_mismatch_and_bad_forced_size(big_calib, big_dir, tmp_path):
    from siamtrt.modeldir import ModelDir
    from siamtrt.runtime.tracker import Tracker

    c = big_calib.calib
    c2 = type(c)(template=c.template, search=c.search, pair=c.pair, kernels=c.kernels, meta=c.meta,
                 search_alt=c.search_alt[:, :, :283, :283].copy(), pair_alt=c.pair_alt)
    with pytest.raises(CalibrationError, match="does not fit"):
        c2.check_model(ModelDir.open(big_dir, require_conv=True))
    with Tracker.from_model_dir(big_dir, backend="onnxruntime", providers="cpu") as tr:
        frame = np.zeros((240, 320, 3), np.uint8)
        with pytest.raises(InputError, match="not a search size"):
            tr.init(frame, (10, 10, 50, 50), instance_size=300)
