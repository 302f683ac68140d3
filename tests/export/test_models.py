"""State_dict layouts equal the public checkpoints' (so a user's model.pth loads strictly)."""

import json
from pathlib import Path

import pytest
import torch

from siamtrt.config import CONFIGS
from siamtrt.export.models import build_model

LAYOUT = json.loads((Path(__file__).parents[1] / "data" / "state_dict_layout.json").read_text())
ARCHS = [k for k in LAYOUT if not k.startswith("_")]


@pytest.mark.parametrize("name", ARCHS)
def test_state_dict_layout_matches_public_definition(name):
    with torch.device("meta"):
        model = build_model(name)
    sd = model.state_dict()
    want = LAYOUT[name]
    assert len(sd) == want["entries"]
    assert len([k for k in sd if not k.endswith("num_batches_tracked")]) == want["entries_without_num_batches_tracked"]
    if "params" in want:
        assert sum(p.numel() for p in model.parameters()) == want["params"]
    for key, shape in want["sample"].items():
        assert key in sd, f"{key} missing"
        assert list(sd[key].shape) == shape, key
    for key in want["absent"]:
        assert key not in sd


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_branch_shapes(name):
    """template() gives the kernels the contract names; track() gives cls/loc on the configured score map."""
    with torch.device("meta"):
        model = build_model(name)
        cfg = model.cfg
        e, s = cfg.track.exemplar_size, cfg.track.instance_size
        kernels = model.template(torch.empty(2, 3, e, e))
        cls, loc = model.track(torch.empty(2, 3, s, s), *kernels)
    assert len(kernels) == len(model.template_output_names)
    a = cfg.anchor.anchor_num
    assert tuple(cls.shape) == (2, 2 * a, cfg.score_size, cfg.score_size)
    assert tuple(loc.shape) == (2, 4 * a, cfg.score_size, cfg.score_size)


@pytest.mark.parametrize("name", ["siamrpn_alex_dwxcorr", "SiamRPNvot", "siamrpn_mobilev2_l234_dwxcorr"])
def test_cached_kernels_and_batching_equal_reference(name, torch_model):
    """template/track with cached kernels and the dynamic-batch correlation equal the reference per-frame path."""
    model = torch_model(name)
    t = model.cfg.track
    g = torch.Generator().manual_seed(1)
    z = torch.rand(3, 3, t.exemplar_size, t.exemplar_size, generator=g) * 255
    x = torch.rand(3, 3, t.instance_size, t.instance_size, generator=g) * 255
    with torch.no_grad():
        model.dynamic_batch = True
        cls_b, loc_b = model.track(x, *model.template(z))
        for i in range(3):
            model.reference_template(z[i:i + 1])
            cls_r, loc_r = model.reference_track(x[i:i + 1])
            assert torch.allclose(cls_b[i], cls_r[0], rtol=1e-4, atol=1e-4 * float(cls_r.abs().max()))
            assert torch.allclose(loc_b[i], loc_r[0], rtol=1e-4, atol=1e-4 * float(loc_r.abs().max()))


def test_realistic_random_weights_have_trained_like_ranges(torch_model, bag_video):
    """On real crops (frames and jitter other than those used for the BatchNorm statistics)."""
    import numpy as np

    from siamtrt.export.random_init import _crops, video_frames

    model = torch_model("siamrpn_mobilev2_l234_dwxcorr")
    frames = video_frames(bag_video, (300, 130, 120, 120), 4)
    z, x = _crops(model.cfg, frames, 1, np.random.default_rng(123))
    with torch.no_grad():
        cls, loc = model.track(x, *model.template(z))
    assert 0.3 < float(cls.std()) < 10 and float(cls.abs().max()) < 100
    assert float(loc.std()) < 1
