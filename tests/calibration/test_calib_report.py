"""Accuracy-retention report: metrics, and the full report on real video."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from calib_helpers import ALEX, BAG_INIT_BOX, FRAMES, MOBILEV2, SAMPLES, TEMPLATES
from siamtrt.calibration.report import accuracy_report, cosine, foreground, max_abs_error, sqnr_db
from siamtrt.runtime.boxes import iou_xywh as iou
from siamtrt.errors import ModelDirError

TRAJECTORY_FRAMES = 96  # half of bag.avi: where the random-head trajectories have long forked
# INT8 report figures on these fixtures (24 calibration crops from 48 bag.avi frames, 8 report crops, 24 frames,
# stand-in weights), measured 2026-12 on the 2-core CI VM: alex cls cosine 0.9978, one-step IoU 0.946; mobilev2 cls
# 0.9894, one-step 0.701. The bands leave room for thread-count noise, and their upper cls bound fails a quantizer that
# writes FP32 copies (cosine 1.0).
CLS_BAND = {ALEX: (0.99, 0.9995), MOBILEV2: (0.98, 0.999)}
ONE_STEP_MIN = {ALEX: 0.85, MOBILEV2: 0.6}


def test_metrics():
    a = np.array([1.0, 2.0, 3.0])
    assert cosine(a, a) == pytest.approx(1.0)
    assert cosine(a, -a) == pytest.approx(-1.0)
    assert sqnr_db(a, a) == float("inf")
    assert sqnr_db(a, a * 1.1) == pytest.approx(20.0, abs=1e-9)  # noise = 10 % of the signal → 20 dB
    assert max_abs_error(a, a + [0, 0.5, -1]) == 1.0
    np.testing.assert_allclose(iou([[0, 0, 10, 10]], [[5, 0, 10, 10]]), [50 / 150])
    np.testing.assert_allclose(iou([[0, 0, 10, 10]], [[20, 20, 5, 5]]), [0.0])
    cls = np.zeros((1, 4, 1, 1))
    cls[0, 2, 0, 0] = 5.0  # fg logit of anchor 0
    fg = foreground(cls)
    assert fg.shape == (1, 2) and fg[0, 0] == pytest.approx(1 / (1 + np.exp(-5))) and fg[0, 1] == pytest.approx(0.5)


def test_compare_on_hand_computed_arrays():
    """compare() over two samples: global cosine 2/sqrt(6), per-sample minimum 1/sqrt(2), SQNR 10·log10(2/1) dB,
    max error 1 — each computed by hand from ref [[1,0],[0,1]] and cand [[1,0],[1,1]]."""
    from siamtrt.calibration.report import compare

    got = compare(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [1.0, 1.0]]))
    assert got["cosine"] == pytest.approx(2 / np.sqrt(6))
    assert got["cosine_min"] == pytest.approx(1 / np.sqrt(2))
    assert got["sqnr_db"] == pytest.approx(10 * np.log10(2.0))
    assert got["max_abs_error"] == 1.0


def test_decoded_box_iou_by_hand():
    """At FP32's best anchor, a loc whose dw is larger by ln 2 decodes a box of twice the width around the same
    centre: IoU = w·h / (2w·h) = 0.5; an equal loc gives 1; a loc differing only elsewhere gives 1 too."""
    from siamtrt.calibration.report import decoded_box_iou

    anchor = {"stride": 8, "ratios": [1.0], "scales": [8.0]}
    cls = np.zeros((1, 2, 5, 5))
    cls[0, 1, 3, 1] = 4.0  # foreground peak of the single anchor at row 3, column 1
    ref = np.zeros((1, 4, 5, 5))
    wider = ref.copy()
    wider[0, 2, 3, 1] = np.log(2.0)
    elsewhere = ref.copy()
    elsewhere[0, 2, 0, 0] = 1.0
    assert decoded_box_iou(cls, ref, ref, anchor)[0] == pytest.approx(1.0)
    assert decoded_box_iou(cls, ref, wider, anchor)[0] == pytest.approx(0.5)
    assert decoded_box_iou(cls, ref, elsewhere, anchor)[0] == pytest.approx(1.0)


@pytest.mark.parametrize("name", [ALEX, MOBILEV2])
def test_report_int8_and_fp16(model_dir, int8_dir, fp16_dir, bag_video, tmp_path, name):
    cands = [int8_dir(name)] + ([fp16_dir(name)] if name == ALEX else [])
    rep = accuracy_report(model_dir(name), cands, bag_video, BAG_INIT_BOX, out=tmp_path, samples=8, threads=2,
                          speed_rounds=2, max_frames=24, progress=False)
    d = json.loads((tmp_path / "report.json").read_text())
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert d["frames"] == 24 and d["crops"] == 8 and d["threads"] == 2
    assert d["ref"]["speed"]["search_ratio"] == pytest.approx(1.0)
    ref_speed = d["ref"]["speed"]
    for c in d["candidates"]:
        acc, trk, sp = c["accuracy"], c["tracking"], c["speed"]
        # the summary figures are those of the per-crop / per-frame series (a report that summarises wrongly fails)
        for out in ("cls", "loc"):
            per = acc[f"{out}_cosine_per_crop"]
            assert len(per) == d["crops"] and acc[out]["cosine_min"] == pytest.approx(min(per))
        assert acc["loc_box_iou_mean"] == pytest.approx(np.mean(acc["loc_box_iou_per_crop"]))
        assert len(acc["loc_box_iou_per_crop"]) == d["crops"]
        ious, steps = trk["iou_per_frame"], trk["one_step_iou_per_frame"]
        assert len(ious) == len(steps) == 24 and ious[0] == steps[0] == 1.0
        assert trk["iou_mean"] == pytest.approx(np.mean(ious[1:])) and trk["iou_min"] == pytest.approx(min(ious[1:]))
        assert trk["frames_below_0.5"] == sum(v < 0.5 for v in ious[1:])
        assert trk["one_step_iou_mean"] == pytest.approx(np.mean(steps[1:]))
        # ratios are the times' ratios to FP32's (one timing run, interleaved)
        assert sp["search_ratio"] == pytest.approx(sp["search_ms"] / ref_speed["search_ms"])
        assert sp["search_ratio_1t"] == pytest.approx(sp["search_ms_1t"] / ref_speed["search_ms_1t"])
        assert sp["e2e_ratio"] == pytest.approx(sp["e2e_ms"] / ref_speed["e2e_ms"])
    i8 = d["candidates"][0]
    assert i8["precision"] == "int8" and all(c["derived_from_ref"] for c in d["candidates"])
    # INT8 is close to FP32 but not equal to it (see CLS_BAND for the measurement)
    assert CLS_BAND[name][0] < i8["accuracy"]["cls"]["cosine"] < CLS_BAND[name][1]
    # no free-running IoU threshold: an untrained tracker has no target lock, so its trajectory forks at the first
    # flipped argmax — even FP16 (score maps equal to 57 dB) reaches only ~0.5 mean IoU over bag.avi with random
    # weights. One step from the FP32 state has no drift (see ONE_STEP_MIN for the measurement).
    assert i8["tracking"]["one_step_iou_mean"] >= ONE_STEP_MIN[name]
    if name == ALEX:  # FP16: measured cls cosine 0.999999 (57.0 dB), one-step IoU 0.9995
        f16 = d["candidates"][1]
        assert f16["precision"] == "fp16" and 0.99999 < f16["accuracy"]["cls"]["cosine"] < 1.0
        assert f16["tracking"]["one_step_iou_mean"] > 0.99
    # the fixture exports through a checkpoint file, as a user's model.pth: the directory says "checkpoint"
    assert d["ref"]["weights"] == "checkpoint" and d["ref"]["speed"]["search_ratio_1t"] == pytest.approx(1.0)
    text = str(rep)
    assert "cls cos" in text and "report.json" in text and "--random-heads matching" not in text
    assert "weights: checkpoint (sha256 " in text  # the report says what the weights are
    assert "box IoU" in text and "loc max" in text


def test_weights_kind_and_the_random_heads_note():
    from siamtrt.calibration.report import Report
    from siamtrt.modeldir import migrate

    # directories written before the "weights" key carry "trained": read as checkpoint / random-* from the sha
    kinds = [migrate(m)["weights"] for m in (
        {"trained": True, "checkpoint_sha256": "ab12"}, {"trained": False, "checkpoint_sha256": "random-seed-0"},
        {"trained": False, "checkpoint_sha256": "random-seed-0-matching"},
        {"weights": "random-matching", "checkpoint_sha256": "random-seed-3-matching"})]
    assert kinds == ["checkpoint", "random-realistic", "random-matching", "random-matching"]
    speed = {"search_ms": 1.0, "search_ratio": 1.0, "e2e_ms": 1.0, "e2e_ratio": 1.0, "search_ratio_1t": 1.0}
    data = {"ref": {"name": "m", "dir": "m", "precision": "fp32", "weights": "random-realistic", "speed": speed},
            "candidates": [], "video": "v", "crops": 1, "frames": 2, "threads": 2}
    assert "--random-heads matching" in str(Report(data))
    data["ref"]["weights"] = "checkpoint"
    assert "--random-heads matching" not in str(Report(data))


def test_identical_candidate_scores_perfectly(model_dir, bag_video, tmp_path, monkeypatch):
    """A byte-identical copy must come out at cosine 1, IoU 1: the report adds no error of its own."""
    import siamtrt.calibration.report as report_mod

    copy = tmp_path / "copy"
    shutil.copytree(model_dir(ALEX), copy)
    timed_threads = []
    real = report_mod._time_search_branches
    monkeypatch.setattr(report_mod, "_time_search_branches",
                        lambda mds, crops, threads, rounds: (timed_threads.append(threads),
                                                             real(mds, crops, threads, rounds))[1])
    rep = accuracy_report(model_dir(ALEX), [copy], bag_video, BAG_INIT_BOX, out=tmp_path / "r", samples=4,
                          threads=2, speed_rounds=1, max_frames=8, progress=False)
    c = rep.data["candidates"][0]
    assert c["accuracy"]["cls"]["cosine"] == pytest.approx(1.0, abs=1e-9)
    assert c["accuracy"]["cls"]["max_abs_error"] == 0.0
    assert c["accuracy"]["argmax_agreement"] == 1.0
    assert c["tracking"]["iou_min"] == pytest.approx(1.0)
    assert c["tracking"]["one_step_iou_min"] == pytest.approx(1.0)
    assert timed_threads == [2, 1]  # the 1t columns are a single-threaded timing, not a copy of the 2-thread one


@pytest.mark.parametrize("stop", ["tracker", "ctrl-c"])
def test_an_interrupted_report_says_it_wrote_nothing(model_dir, bag_video, tmp_path, monkeypatch, stop):
    """A stop while tracking passed up the tracker's "no output was requested" though --out was requested: the
    report says what it kept (nothing written, --out untouched)."""
    import siamtrt.runtime.run as run_mod
    from siamtrt.errors import Interrupted

    def stopped(*a, **k):
        if stop == "tracker":
            raise Interrupted("interrupted after 20 frames; no output was requested")
        raise KeyboardInterrupt

    monkeypatch.setattr(run_mod, "track_video", stopped)
    copy = tmp_path / "copy"
    shutil.copytree(model_dir(ALEX), copy)
    with pytest.raises(Interrupted) as e:
        accuracy_report(model_dir(ALEX), [copy], bag_video, BAG_INIT_BOX, out=tmp_path / "rep1", samples=4,
                        threads=1, speed_rounds=1, max_frames=4, progress=False)
    assert "no output was requested" not in e.value.what
    assert f"nothing written, {tmp_path / 'rep1'} untouched" in e.value.what
    assert not (tmp_path / "rep1").exists()


def test_report_refuses_unrelated_directories(model_dir, bag_video, tmp_path):
    with pytest.raises(ModelDirError, match="not a variant"):
        accuracy_report(model_dir(ALEX), [model_dir(MOBILEV2)], bag_video, BAG_INIT_BOX, out=tmp_path,
                        max_frames=4, progress=False)


def test_int8_trajectory_follows_fp32_with_matching_heads(matching_dir, bag_video, tmp_path):
    """The issue's trajectory target (mean IoU vs FP32 >= 0.9) on a model that follows the target: collect ->
    quantize -> report through the library, as the three scripts do. (Random heads cannot show it: see above.)"""
    from siamtrt.calibration.collect import SourceSpec, collect
    from siamtrt.calibration.qdq import quantize_int8

    ref = matching_dir(ALEX)
    calib = collect(ref, [SourceSpec(bag_video, bbox=BAG_INIT_BOX)], tmp_path / "calib.npz", max_samples=SAMPLES,
                    templates_per_source=TEMPLATES, max_frames=FRAMES, progress=False)
    quantize_int8(ref, calib.path, tmp_path / "int8")
    rep = accuracy_report(ref, [tmp_path / "int8"], bag_video, BAG_INIT_BOX, out=tmp_path / "rep", samples=8,
                          threads=2, speed_rounds=1, max_frames=TRAJECTORY_FRAMES, progress=False)
    d = rep.data
    assert d["ref"]["weights"] == "random-matching" and "--random-heads matching" not in str(rep)
    trk = d["candidates"][0]["tracking"]
    assert trk["iou_mean"] >= 0.9, trk["iou_per_frame"]  # measured 0.957 (min 0.62, one-step 0.996)
