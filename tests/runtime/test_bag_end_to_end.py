"""bag.avi end to end with realistic random-weight exported models (shared ``model_dir`` fixture): the whole
video through ``track_video`` (the CLI's path), box by box against the independent transcription of the reference
tracker (``test_tracker.RefTracker``: pysot SiamRPNTracker / DaSiamRPN SiamRPN_track written out with
pad-the-whole-frame crops and per-anchor loops), plus the output file's format."""

import numpy as np
import pytest

from siamtrt.runtime.boxes import read_results

from siamtrt.runtime import Tracker
from siamtrt.runtime.run import track_video
from siamtrt.runtime.video import open_frames
from reference_trackers import RefTracker

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
    assert lines[0] == "316.0,140.0,112.0,115.0"  # pysot/OTB txt: x,y,w,h, the init box first
    vals = read_results(out)  # the file holds the tracker's floats exactly (shortest round-trip repr)
    assert vals.shape == (196, 1, 4)
    np.testing.assert_array_equal(vals[:, 0], boxes)


def _check_against_reference(model_dir, video, run):
    """Every frame's box and score equal the transcription's, run on the same ONNX files and frames."""
    ref = RefTracker(model_dir, Tracker.from_model_dir(model_dir, backend="onnxruntime", threads=1).info.meta)
    src = open_frames(video)
    try:
        frames = iter(src)
        ref.init(next(frames), BOX)
        ref_boxes, ref_scores = [list(BOX)], [1.0]
        for frame in frames:
            b, s = ref.track(frame)
            ref_boxes.append(b)
            ref_scores.append(s)
    finally:
        src.close()
    assert len(ref_boxes) == run.frames == 196
    moved = np.abs(np.diff(np.asarray(ref_boxes)[:, :2], axis=0)).sum()
    assert moved > 1.0, "the reference did not move: the comparison would be vacuous"
    np.testing.assert_allclose(run.boxes[:, 0], np.asarray(ref_boxes), rtol=0, atol=1e-3)
    np.testing.assert_allclose(np.asarray(run.scores).reshape(196, -1)[1:, 0], ref_scores[1:], rtol=0, atol=1e-4)


def test_bag_alex(model_dir, bag_video, tmp_path):
    d = model_dir("siamrpn_alex_dwxcorr")
    run = track_video(d, bag_video, BOX, out=tmp_path / "boxes.txt", backend="onnxruntime", progress=False)
    _check_run(run, tmp_path / "boxes.txt")
    _check_against_reference(d, bag_video, run)
    assert run.backend == "onnxruntime" and run.fps > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SiamRPNotb", "siamrpn_mobilev2_l234_dwxcorr"])
def test_bag_other_families(name, model_dir, bag_video, tmp_path):
    run = track_video(model_dir(name), bag_video, BOX, out=tmp_path / "boxes.txt", backend="onnxruntime",
                      progress=False)
    _check_run(run, tmp_path / "boxes.txt")
    _check_against_reference(model_dir(name), bag_video, run)


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
