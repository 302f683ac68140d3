"""The PyTorch reference backend: pysot's computation behind the runtime's Backend contract."""

from __future__ import annotations

import numpy as np
import pytest

from siamtrt.errors import CheckpointError

torch = pytest.importorskip("torch", reason="the torch reference backend needs PyTorch")

from siamtrt.benchmarks import torch_backend as tb  # noqa: E402
from siamtrt.benchmarks.variants import Variant, read_dir_meta  # noqa: E402


def _meta(model):
    return {"template_outputs": list(model.template_output_names), "family": model.cfg.family}


@pytest.mark.parametrize("config", ["siamrpn_mobilev2_l234_dwxcorr", "siamrpn_alex_dwxcorr", "SiamRPNotb"])
def test_reference_mode_equals_split_mode(config):
    """pysot's per-frame computation (stored features, kernels recomputed, static xcorr) == the deployable split,
    for 2 targets at once (multi-level names, single level, DaSiamRPN)."""
    from siamtrt.export.models import build_model

    torch.manual_seed(0)
    model = build_model(config).eval()
    e, s = model.cfg.track.exemplar_size, model.cfg.track.instance_size
    rng = np.random.default_rng(0)
    z = rng.uniform(0, 255, (2, 3, e, e)).astype(np.float32)
    x = rng.uniform(0, 255, (2, 3, s, s)).astype(np.float32)
    out = {}
    for mode in tb.MODES:
        be = tb.TorchBackend(model, _meta(model), mode=mode, threads=2)
        with be:
            kernels = be.run_template(z)
            assert list(kernels) == list(model.template_output_names)
            assert all(v.flags.c_contiguous for v in kernels.values())
            out[mode] = [a.copy() for a in be.run_search(x, kernels)]
    for ref, got in zip(out["reference"], out["split"]):
        assert np.abs(ref - got).max() <= 1e-4 * max(np.abs(ref).max(), 1.0)


def test_tracker_on_torch_matches_onnxruntime(alex_dir, alex_ckpt, bag_video):
    import cv2

    cap = cv2.VideoCapture(str(bag_video))
    frames = [cap.read()[1] for _ in range(8)]
    cap.release()
    meta = read_dir_meta(alex_dir)
    boxes = {}
    for backend in ("onnxruntime", "torch"):
        tr = Variant(backend, alex_dir, meta, checkpoint=alex_ckpt).make_tracker(threads=2)
        tr.init(frames[0], np.array([316.0, 140, 112, 115]))
        boxes[backend] = np.array([tr.track(f).bbox for f in frames[1:]])
        assert set(tr.last_timings) == {"crop", "search", "post"}
        tr.close()
    np.testing.assert_allclose(boxes["torch"], boxes["onnxruntime"], atol=0.05)


def test_weights_check(alex_dir, alex_ckpt):
    from siamtrt.export.models import build_model

    meta = read_dir_meta(alex_dir)
    crop = np.random.default_rng(1).uniform(0, 255, (1, 3, 127, 127)).astype(np.float32)
    good = tb.TorchBackend.from_model_dir(alex_dir, meta, checkpoint=alex_ckpt)
    assert good.weights.startswith("checkpoint ")
    ok, rel = tb.check_weights_match(good, alex_dir, crop)
    assert ok and rel < 1e-4
    torch.manual_seed(7)
    other = tb.TorchBackend(build_model("siamrpn_alex_dwxcorr"), meta)
    ok, rel = tb.check_weights_match(other, alex_dir, crop)
    assert not ok and rel > 1e-2


def test_checkpoint_errors(tmp_path, alex_dir, monkeypatch):
    from siamtrt.export.models import build_model

    meta = read_dir_meta(alex_dir)
    assert meta["weights"] == "checkpoint"
    with pytest.raises(CheckpointError, match="needs the trained checkpoint"):
        tb.build_reference_model(meta)
    torch.manual_seed(3)
    wrong = tmp_path / "other.pth"
    torch.save(build_model("siamrpn_alex_dwxcorr").state_dict(), wrong)
    with pytest.raises(CheckpointError, match="not the one this model directory was exported from"):
        tb.build_reference_model(meta, wrong)
    # timing fallback: same architecture, random weights, labelled as such
    import siamtrt.export.random_init as ri

    monkeypatch.setattr(ri, "realistic_random_model", lambda cfg, seed=0, frames=None: build_model(cfg))
    model, weights = tb.build_reference_model(meta, random_fallback=True)
    assert "timing only" in weights and model.cfg.name == "siamrpn_alex_dwxcorr"
