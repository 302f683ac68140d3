"""Template-matching heads (siamtrt.export.matching_init): the untrained stand-in that follows the target.

The claim that makes it worth having: exported through the same path as ``--random-heads matching``, it keeps the
bag in view on bag.avi where the realistic random model loses it within a few frames. Both are measured against the
ground truth of the same frames, so the test fails if the construction stops matching.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the matching heads are built in PyTorch: pip install -e \".[export]\"")

ALEX = "siamrpn_alex_dwxcorr"
FRAMES = 60


def _centre_errors(model_dir, bag_sequence, bag_video):
    from siamtrt.runtime.run import track_video

    gt = np.loadtxt(bag_sequence / "groundtruth_rect.txt", delimiter=",")
    run = track_video(model_dir, bag_video, gt[0], backend="onnxruntime", providers="cpu", max_frames=FRAMES,
                      progress=False, threads=2)
    boxes = run.boxes[:, 0]
    n = len(boxes)
    centre = boxes[:, :2] + boxes[:, 2:] / 2
    truth = gt[:n, :2] + gt[:n, 2:] / 2
    return np.linalg.norm(centre - truth, axis=1)


def test_matching_heads_follow_the_bag(matching_dir, model_dir, bag_sequence, bag_video):
    err_match = _centre_errors(matching_dir(ALEX), bag_sequence, bag_video)
    err_random = _centre_errors(model_dir(ALEX), bag_sequence, bag_video)
    prec_match, prec_random = np.mean(err_match < 50), np.mean(err_random < 50)
    # measured (60 frames, ORT 1.32): matching 0.53 (median error 47 px), realistic random 0.03 (median 308 px)
    assert prec_match >= 0.4, f"matching heads lost the bag: centre error median {np.median(err_match):.0f} px"
    assert prec_random < prec_match - 0.3, (prec_random, prec_match)


def test_matching_metadata_says_untrained(matching_dir):
    from siamtrt.metadata import read_onnx_metadata

    meta = read_onnx_metadata(matching_dir(ALEX) / "search.onnx")
    assert meta["weights"] == "random-matching" and "trained" not in meta
    assert meta["checkpoint_sha256"].endswith("-matching")


def test_matching_loc_regresses_toward_the_target(bag_sequence):
    """The loc head is fitted, not constant: on held-out bag frames (not among the fitted ones), with the target
    displaced in the search crop, the boxes decoded at the square anchors within two cells of the target are closer
    to the true centre than the anchors themselves. Constant loc (dx = dy = 0) leaves the error unchanged (1.0)."""
    import torch

    from siamtrt.export.matching_init import _loc_crops, matching_random_model
    from siamtrt.export.random_init import sequence_frames
    from siamtrt.runtime.geometry import geometry

    frames = sequence_frames(bag_sequence, 24)
    held_out = sequence_frames(bag_sequence, 196)[5::40]  # frame indices 5, 45, ...: none of the 24 fitted ones
    model = matching_random_model(ALEX, 0, frames)
    model.dynamic_batch = False
    cfg = model.cfg
    z, x, pair, boxes = _loc_crops(cfg, held_out, np.random.default_rng(7))
    with torch.no_grad():
        kernels = [k[torch.as_tensor(pair)] for k in model.template(z)]
        _, loc = model.track(x, *kernels)
    s = loc.shape[-1]
    geo = geometry(s, cfg.anchor.stride, tuple(cfg.anchor.ratios), tuple(cfg.anchor.scales))
    d = loc.numpy().reshape(len(boxes), 4, -1)
    before, after = [], []
    anc = geo.anchors
    for n, (tx, ty, tw, th) in enumerate(boxes):
        r = 2 * cfg.anchor.stride
        near = np.nonzero((np.abs(anc[:, 0] - tx) <= r) & (np.abs(anc[:, 1] - ty) <= r)
                          & (anc[:, 2] == anc[:, 3]))[0]
        ax, ay, aw, ah = anc[near].T
        before.append(np.hypot(ax - tx, ay - ty))
        after.append(np.hypot(ax + d[n, 0, near] * aw - tx, ay + d[n, 1, near] * ah - ty))
    before, after = np.concatenate(before), np.concatenate(after)
    ratio = float(np.mean(after) / np.mean(before))
    # measured 0.31 (mean centre error 12.3 → 3.9 crop px over 240 anchors of 15 crops)
    assert ratio < 0.7, f"loc does not move boxes toward the target: centre error ratio {ratio:.2f}"


def test_matching_refuses_dasiamrpn_and_checkpoints(tmp_path, checkpoint):
    from siamtrt.errors import ExportError
    from siamtrt.export.onnx import export_model

    with pytest.raises(ExportError, match="pysot architecture"):
        export_model("SiamRPNBIG", tmp_path / "big", random_heads="matching")
    with pytest.raises(ExportError, match="no --checkpoint"):
        export_model(ALEX, tmp_path / "alex", checkpoint=checkpoint(ALEX), random_heads="matching")
    with pytest.raises(ExportError, match="random-heads must be"):
        export_model(ALEX, tmp_path / "alex2", random_heads="trained")
