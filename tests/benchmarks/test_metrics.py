"""OPE metrics: hand-computed cases and an independent implementation (got10k)."""

from __future__ import annotations

import types

import numpy as np
import pytest

from siamtrt.benchmarks import metrics as M
from siamtrt.errors import InputError


def _boxes(n, rng, frame=(480, 360)):
    xy = rng.uniform(0, 300, (n, 2))
    wh = rng.uniform(5, 150, (n, 2))
    return np.concatenate([xy, wh], 1)


def test_identical_boxes():
    gt = np.tile([[10.0, 20.0, 30.0, 40.0]], (7, 1))
    s = M.evaluate_sequence(gt.copy(), gt)
    assert s.average_overlap == pytest.approx(1.0)  # exact area under the success curve
    assert np.all(s.success_curve[:-1] == 1.0) and s.success_curve[-1] == 0.0  # IoU > 1 never holds (OTB)
    assert s.success_score == pytest.approx(20 / 21)
    assert s.precision_score == 1.0 and np.all(s.precision_curve == 1.0)
    assert s.norm_precision_score == 1.0 and s.success_rate == 1.0


def test_disjoint_boxes():
    gt = np.tile([[0.0, 0.0, 10.0, 10.0]], (5, 1))
    pred = np.tile([[100.0, 100.0, 10.0, 10.0]], (5, 1))
    s = M.evaluate_sequence(pred, gt)
    assert s.success_score == 0.0 and s.average_overlap == 0.0
    assert np.all(s.success_curve == 0)  # IoU 0 is not > 0
    assert s.precision_score == 0.0  # centre error 100*sqrt(2) px
    assert s.precision_curve[-1] == 0.0


def test_known_partial_overlap():
    # pred shifted by half a width: intersection 50, union 150 -> IoU 1/3; centre error 5 px, 0.5 normalised.
    gt = np.array([[0.0, 0.0, 10.0, 10.0]])
    pred = np.array([[5.0, 0.0, 10.0, 10.0]])
    assert M.rect_iou(pred, gt)[0] == pytest.approx(1 / 3)
    assert M.center_error(pred, gt)[0] == pytest.approx(5.0)
    assert M.normalized_center_error(pred, gt)[0] == pytest.approx(0.5)
    s = M.evaluate_sequence(pred, gt)
    # thresholds 0, .05, ..., .30 are < 1/3 -> 7 of 21 points are 1
    assert s.success_score == pytest.approx(7 / 21)
    assert s.precision_curve[4] == 0.0 and s.precision_curve[5] == 1.0 and s.precision_score == 1.0
    assert s.norm_precision_score == 0.0  # 0.5 > 0.2
    assert s.norm_precision_curve[50] == 1.0  # 0.5 <= 0.5


def test_mixed_sequence_and_scale_change():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 20, 20]], float)
    pred = np.array([[0, 0, 10, 10], [0, 0, 5, 10], [50, 50, 10, 10], [0, 0, 10, 10]], float)
    iou = M.rect_iou(pred, gt)
    np.testing.assert_allclose(iou, [1.0, 0.5, 0.0, 0.25])
    s = M.evaluate_sequence(pred, gt)
    # frames above t: t<0.25 -> 3, 0.25<=t<0.5 -> 2, 0.5<=t<1 -> 1, t=1 -> 0
    expect = np.array([3] * 5 + [2] * 5 + [1] * 10 + [0]) / 4
    np.testing.assert_allclose(s.success_curve, expect)
    assert s.average_overlap == pytest.approx(1.75 / 4)


def test_invalid_frames_count_as_failures():
    gt = np.array([[0, 0, 10, 10], [np.nan] * 4, [0, 0, 0, 0]], float)
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    s = M.evaluate_sequence(pred, gt)
    assert s.frames == 3
    assert s.success_curve[0] == pytest.approx(1 / 3) and s.precision_score == pytest.approx(1 / 3)
    pred_nan = pred.copy()
    pred_nan[0] = np.nan
    assert M.evaluate_sequence(pred_nan, gt[:1].repeat(3, 0)).success_curve[0] == pytest.approx(2 / 3)


def test_aggregate_averages_curves_per_sequence():
    gt = np.tile([[0.0, 0.0, 10.0, 10.0]], (4, 1))
    a = M.evaluate_sequence(gt, gt)  # perfect, 4 frames
    b = M.evaluate_sequence(gt[:1] + [100, 100, 0, 0], gt[:1])  # 1 frame, lost
    agg = M.aggregate({"a": a, "b": b})
    assert agg.success_score == pytest.approx((20 / 21) / 2)  # sequences weigh the same, not frames
    assert agg.frames == 5 and agg.sequences == 2
    d = agg.to_dict()
    assert set(d["per_sequence"]) == {"a", "b"} and len(d["success_curve"]) == 21 and len(d["precision_curve"]) == 51


def test_shape_errors():
    with pytest.raises(InputError, match="differ in length"):
        M.rect_iou(np.zeros((3, 4)), np.zeros((2, 4)))
    with pytest.raises(InputError, match=r"\[N, 4\]"):
        M.evaluate_sequence(np.zeros((3, 8)), np.zeros((3, 8)))


@pytest.fixture(scope="module")
def got10k_metrics():
    pytest.importorskip("six", reason="got10k imports six but does not declare it: pip install six")
    gm = pytest.importorskip("got10k.utils.metrics", reason="got10k is the independent reference: pip install got10k")
    from got10k.experiments.otb import ExperimentOTB

    return gm, ExperimentOTB


def test_matches_got10k_on_random_boxes(got10k_metrics):
    gm, ExperimentOTB = got10k_metrics
    rng = np.random.default_rng(0)
    gt = _boxes(500, rng)
    # a mix of good, partial and lost predictions
    pred = gt + rng.normal(0, 1, gt.shape) * np.r_[8, 8, 10, 10]
    pred[::7] = _boxes(len(pred[::7]), rng)
    pred[:, 2:] = np.abs(pred[:, 2:]) + 1

    np.testing.assert_allclose(M.rect_iou(pred, gt), gm.rect_iou(pred.copy(), gt.copy()), atol=1e-9)
    np.testing.assert_allclose(M.center_error(pred, gt), gm.center_error(pred, gt), atol=1e-9)

    # got10k's own curve computation (ExperimentOTB._calc_curves needs only nbins_iou / nbins_ce)
    exp = types.SimpleNamespace(nbins_iou=21, nbins_ce=51)
    succ, prec = ExperimentOTB._calc_curves(exp, gm.rect_iou(pred.copy(), gt.copy()), gm.center_error(pred, gt))
    ours = M.evaluate_sequence(pred, gt)
    np.testing.assert_allclose(ours.success_curve, succ, atol=1e-12)
    np.testing.assert_allclose(ours.precision_curve, prec, atol=1e-12)
    assert ours.success_score == pytest.approx(float(np.mean(succ)))
    assert ours.precision_score == pytest.approx(float(prec[20]))
    assert ours.success_rate == pytest.approx(float(succ[21 // 2]))
    assert 0.2 < ours.success_score < 0.9  # the case is non-trivial


def test_matches_got10k_on_bag_ground_truth(got10k_metrics, bag_sequence):
    """Real boxes: the axis-aligned GT against the polygon-derived (area) boxes of the same sequence."""
    gm, ExperimentOTB = got10k_metrics
    from siamtrt.runtime.boxes import polygon_to_rect
    from siamtrt.runtime.sequences import load_folder_sequence

    seq = load_folder_sequence(bag_sequence)
    pred = polygon_to_rect(seq.polygons, "area")
    exp = types.SimpleNamespace(nbins_iou=21, nbins_ce=51)
    succ, prec = ExperimentOTB._calc_curves(exp, gm.rect_iou(pred.copy(), seq.gt.copy()),
                                            gm.center_error(pred, seq.gt))
    ours = M.evaluate_sequence(pred, seq.gt)
    np.testing.assert_allclose(ours.success_curve, succ, atol=1e-12)
    np.testing.assert_allclose(ours.precision_curve, prec, atol=1e-12)
    assert 0 < ours.success_score < 20 / 21
