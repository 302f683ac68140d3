"""bag.avi end to end with realistic random-weight exported models (shared ``model_dir`` fixture)."""

import numpy as np
import pytest

from siamtrt.runtime import Tracker
from siamtrt.runtime.run import track_video

BOX = (316, 140, 112, 115)


def _check_run(run, out):
    assert run.frames == 196
    boxes = run.boxes[:, 0]
    assert np.isfinite(boxes).all() and np.isfinite(run.scores).all()
    cx, cy = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
    assert ((cx >= 0) & (cx <= 480) & (cy >= 0) & (cy <= 360)).all()  # the reference clips centres to the frame
    assert (boxes[1:, 2:] >= 10).all()
    lines = out.read_text().splitlines()
    assert len(lines) == 196
    assert lines[0] == "316.00,140.00,112.00,115.00,1.0000"
    vals = np.array([[float(v) for v in line.split(",")] for line in lines])
    assert vals.shape == (196, 5)
    np.testing.assert_allclose(vals[:, :4], boxes, atol=0.006)


def test_bag_alex(model_dir, bag_video, tmp_path):
    d = model_dir("siamrpn_alex_dwxcorr")
    run = track_video(d, bag_video, BOX, out=tmp_path / "boxes.txt", backend="onnxruntime", progress=False)
    _check_run(run, tmp_path / "boxes.txt")
    assert run.backend == "onnxruntime" and run.fps > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SiamRPNotb", "siamrpn_mobilev2_l234_dwxcorr"])
def test_bag_other_families(name, model_dir, bag_video, tmp_path):
    run = track_video(model_dir(name), bag_video, BOX, out=tmp_path / "boxes.txt", backend="onnxruntime",
                      progress=False)
    _check_run(run, tmp_path / "boxes.txt")


def test_batched_equals_single_realistic(model_dir, bag_frames):
    d = model_dir("siamrpn_alex_dwxcorr")
    boxes = np.array([BOX, (100, 60, 80, 50), (380, 250, 60, 70)], np.float64)
    multi = Tracker.from_model_dir(d, backend="onnxruntime")
    multi.init(bag_frames[0], boxes)
    singles = [Tracker.from_model_dir(d, backend="onnxruntime") for _ in boxes]
    for t, b in zip(singles, boxes):
        t.init(bag_frames[0], b)
    for frame in bag_frames[1:8]:
        r = multi.track(frame)
        mb, ms = r.boxes, r.scores
        for n, t in enumerate(singles):
            r1 = t.track(frame)
            sb, ss = r1.bbox, r1.score
            np.testing.assert_allclose(mb[n], sb, rtol=0, atol=1e-3)
            assert ms[n] == pytest.approx(ss, abs=1e-4)
