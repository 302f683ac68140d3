"""Untrained but *tracking-capable* heads for pysot models: a template-matching construction.

Why: realistic random weights (:mod:`.random_init`) give trained-like numerics but no target: their score map has
no content-driven peak, the FP32 tracker wanders, and two variants of it (FP32 vs FP16 vs INT8) fork for good at
the first near-tie. Trajectory agreement between precisions then measures chaos, not precision loss. A trained
checkpoint fixes that; when none is at hand (CI, this repository's benchmarks) this construction gives heads that
follow the target, so trajectory-level agreement can be measured on real video.

The backbone and neck stay realistic random (BatchNorm statistics from real crops). In every ``DepthwiseXCorr``:

* ``cls``: template and search features are the *same* function of the neck output (the realistic random 3×3
  projection, normalised, shifted positive so the ReLU passes it), so the depthwise correlation averaged over
  channels is the cross-correlation of template and search features — largest where the search crop looks like
  the template. The head passes the correlation through and scores ``fg − bg ∝ mean over channels``, scaled to the
  spread of :data:`.random_init.CLS_STD`.
* ``loc``: ``dx = dy = 0`` and constant ``dw``/``dh`` that make every anchor predict the square a target with the
  reference context fills (E/2 crop pixels): the box moves in whole cells and keeps its context size; it follows
  no image content. (A sub-cell ``dx``/``dy`` from kernels shifted by one cell was tried: it needs 1×1 features,
  which matched worse and forked sooner.)

A stand-in for trained weights in accuracy-retention measurements, not a tracker to use: on bag.avi it follows the
bag's centre loosely (docs/calibration.md has the measured figures).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..runtime.crop import crop_batch
from ..runtime.geometry import base_anchors, crop_sizes
from .random_init import CLS_STD, Frame, make_realistic, synthetic_frames

#: positive shift of the normalised features before their ReLU (ReLU then clips < 0.2 % of values)
FEATURE_SHIFT = 3.0
#: template/search crop pairs per frame for the feature statistics and the score scale
_CROPS_PER_FRAME = 4


def _crops(cfg, frames: Sequence[Frame], per_frame: int, rng: np.random.Generator):
    """Template crops at the box; search crops around it, displaced by up to 1.5 cells (as tracking sees them).

    Returns (z [F,3,E,E], x [F·per_frame,3,S,S], pair [F·per_frame] template index of each search crop).
    """
    t, stride = cfg.track, cfg.anchor.stride
    zs, xs, pair = [], [], []
    for i, (img, (x, y, w, h)) in enumerate(frames):
        avg = img.reshape(-1, 3).mean(0)
        cs = crop_sizes(np.array([w, h]), t.context_amount, t.exemplar_size, t.instance_size)
        s_z, s_x = float(cs.s_z), float(cs.s_x)
        scale = t.instance_size / round(s_x)  # crop pixels per frame pixel
        cx, cy = x + w / 2, y + h / 2
        zs.append(crop_batch(img, np.array([[cx, cy]]), t.exemplar_size, [round(s_z)], avg)[0])
        for _ in range(per_frame):
            o = rng.uniform(-1.5, 1.5, 2) * stride / scale
            xs.append(crop_batch(img, np.array([[cx - o[0], cy - o[1]]]), t.instance_size, [round(s_x)], avg)[0])
            pair.append(i)
    return torch.from_numpy(np.stack(zs)), torch.from_numpy(np.stack(xs)), np.asarray(pair)


def _cls_head_inputs(model, z: torch.Tensor, x: torch.Tensor, pair: np.ndarray) -> List[torch.Tensor]:
    """Per level, the cls correlation [N, C, H, W]: what the cls head's first 1×1 convolution sees."""
    grabbed: List[torch.Tensor] = []
    hooks = [rpn.cls.head.register_forward_hook(lambda mod, inp, out: grabbed.append(inp[0]))
             for rpn in model._rpns()]
    try:
        kernels = [k[torch.as_tensor(pair)] for k in model.template(z)]
        model.track(x, *kernels)
    finally:
        for h in hooks:
            h.remove()
    return grabbed


def _identity_head(head: nn.Sequential) -> None:
    """head = conv1x1 → BN → ReLU → conv1x1: make the first three pass their (non-negative) input through."""
    c = head[0].weight.shape[0]
    head[0].weight.copy_(torch.eye(c).view(c, c, 1, 1))
    bn = head[1]
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)
    bn.weight.fill_(1.0)
    bn.bias.zero_()
    head[3].weight.zero_()
    head[3].bias.zero_()


@torch.no_grad()
def make_matching(model: nn.Module, frames: Optional[Sequence[Frame]] = None, seed: int = 0) -> nn.Module:
    """Give a realistic random pysot model template-matching heads (in place; see the module docstring).

    Args:
        model (nn.Module): a :class:`siamtrt.export.models.pysot.PysotSiamRPN`, already made realistic.
        frames (Sequence[Frame]): (BGR image, x,y,w,h box) pairs; real video frames make a better matcher.
            Defaults to synthetic texture.
        seed (int): seed of the crop jitter. Defaults to 0.

    Raises:
        ValueError: not a pysot depthwise-correlation model (DaSiamRPN's up-channel head is not covered).
    """
    cfg = model.cfg
    if cfg.family != "pysot":
        raise ValueError(f"matching heads are built for pysot depthwise-correlation models, not "
                         f"{cfg.family} ({cfg.name})")
    frames = list(frames) if frames else synthetic_frames(seed=seed)
    z, x, pair = _crops(cfg, frames, _CROPS_PER_FRAME, np.random.default_rng(seed))
    dyn = model.dynamic_batch
    model.dynamic_batch = False
    model.eval()
    feats = model._features(x)
    for rpn, f in zip(model._rpns(), feats if model.levels else [feats]):
        w3 = rpn.cls.conv_kernel[0].weight.clone()
        proj = F.conv2d(f, w3)
        mean, var = proj.mean((0, 2, 3)), proj.var((0, 2, 3))
        for seq in (rpn.cls.conv_kernel, rpn.cls.conv_search):  # one feature function for both sides
            seq[0].weight.copy_(w3)
            bn = seq[1]
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.fill_(1.0)
            bn.bias.fill_(FEATURE_SHIFT)
        _identity_head(rpn.cls.head)
        _identity_head(rpn.loc.head)
    anchors = base_anchors(cfg.anchor.stride, cfg.anchor.ratios, cfg.anchor.scales)
    a = len(anchors)
    half = cfg.track.exemplar_size / 2
    for rpn, corr in zip(model._rpns(), _cls_head_inputs(model, z, x, pair)):
        c = corr.shape[1]
        m = corr.mean(1)
        s = CLS_STD / 2 / max(float(m.std()), 1e-9)  # fg − bg = 2·s·(mean correlation − its mean)
        head = rpn.cls.head[3]
        head.weight[a:2 * a] = s / c
        head.weight[:a] = -s / c
        head.bias[a:2 * a] = -s * float(m.mean())
        head.bias[:a] = s * float(m.mean())
        head = rpn.loc.head[3]
        for k, (aw, ah) in enumerate(anchors):
            head.bias[2 * a + k] = float(np.log(half / aw))
            head.bias[3 * a + k] = float(np.log(half / ah))
    model.dynamic_batch = dyn
    return model


def matching_random_model(cfg, seed: int = 0, frames: Optional[Sequence[Frame]] = None) -> nn.Module:
    """A seeded realistic random pysot model with template-matching heads (see the module docstring)."""
    from ..config import ModelConfig, get_config
    from .models import build_model

    cfg = get_config(cfg) if not isinstance(cfg, ModelConfig) else cfg
    torch.manual_seed(seed)
    model = make_realistic(build_model(cfg), frames, seed=seed)
    return make_matching(model, frames, seed=seed)


__all__ = ["FEATURE_SHIFT", "make_matching", "matching_random_model"]
