"""The synthetic sequence generator: exact ground truth on real backgrounds, read back as a user's dataset."""

from __future__ import annotations

import numpy as np
import pytest

from siamtrt.benchmarks import metrics
from siamtrt.runtime.sequences import load_sequences
from siamtrt.benchmarks.synthetic import SyntheticSpec, _backgrounds, render_sequence, trajectory
from siamtrt.errors import InputError


def test_ground_truth_matches_rendered_pixels(bag_video):
    """The box of the pixels that changed is the ground-truth box (within anti-aliasing, < 1.5 px)."""
    spec = SyntheticSpec(frames=12, seed=1)
    frames, boxes, polys = render_sequence(bag_video, spec)
    bgs = _backgrounds(bag_video, spec.background_start, spec.frames)
    for f, bg, box in zip(frames, bgs, boxes):
        diff = np.abs(f.astype(int) - bg.astype(int)).max(axis=2) > 40
        ys, xs = np.nonzero(diff)
        # changed pixels span columns x .. x+w-1 (box convention: pixel centres)
        seen = np.array([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1], float)
        np.testing.assert_allclose(seen, box, atol=1.5)
    # polygons and boxes agree; the object moves, scales and rotates
    np.testing.assert_allclose(np.c_[polys[:, 0::2].min(1), polys[:, 1::2].min(1)], boxes[:, :2], atol=1e-9)
    traj = trajectory(spec, (480, 360))
    assert np.ptp(traj[:, 0]) > 100 and np.ptp(traj[:, 2]) > 0.3 and np.ptp(traj[:, 3]) > 30


def test_deterministic_and_inside_frame(bag_video):
    a = render_sequence(bag_video, SyntheticSpec(frames=8, seed=5))
    b = render_sequence(bag_video, SyntheticSpec(frames=8, seed=5))
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0][3], b[0][3])
    boxes = a[1]
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 0] + boxes[:, 2] <= 480)
    assert np.all(boxes[:, 1] + boxes[:, 3] <= 360)


def test_written_folder_and_video_read_back(synthetic_seq):
    seq = synthetic_seq
    folder = seq.frames[0].parent.parent
    assert len(seq) == 16 and seq.polygons.shape == (16, 8)
    (vid,) = load_sequences([folder / "synthetic-test.avi"])  # video + <name>.txt beside it
    np.testing.assert_allclose(vid.gt, seq.gt)
    fv = list(vid.iter_frames(limit=2))
    fi = list(seq.iter_frames(limit=2))
    assert fv[0].shape == fi[0].shape
    assert np.abs(fv[1].astype(int) - fi[1].astype(int)).mean() < 6  # same frames up to compression


def test_oracle_scores_perfect(synthetic_seq):
    s = metrics.evaluate_sequence(synthetic_seq.gt, synthetic_seq.gt)
    assert s.success_score == pytest.approx(20 / 21) and s.precision_score == 1.0


def test_object_too_large_is_refused(bag_video):
    with pytest.raises(InputError, match="does not fit"):
        render_sequence(bag_video, SyntheticSpec(frames=3, object_size=(400, 300)))


def test_interrupted_write_leaves_the_old_sequence(bag_video, tmp_path, monkeypatch):
    """The sequence is staged beside OUT: a failure half-way (here Ctrl-C while the ground truth is written, after
    the frames) leaves no new folder and an existing sequence (--overwrite) as it was — the old code wrote in place."""
    import siamtrt.benchmarks.synthetic as syn
    from siamtrt.benchmarks.synthetic import make_synthetic_sequence

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    old = make_synthetic_sequence(tmp_path / "s", bag_video, SyntheticSpec(frames=5))
    before = {p: p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file()}
    monkeypatch.setattr(syn.np, "savetxt", interrupt)
    for out in ("new", "s"):
        with pytest.raises(KeyboardInterrupt):
            make_synthetic_sequence(tmp_path / out, bag_video, SyntheticSpec(frames=3, seed=2), overwrite=True)
    monkeypatch.undo()
    assert not (tmp_path / "new").exists()
    assert {p: p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file()} == before and len(old) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no staging folder left
