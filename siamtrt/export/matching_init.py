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
* ``loc``: the head's last 1×1 convolution is *fitted* (ridge regression, closed form) to the regression targets
  of the given frames' boxes: search crops are cut around each box with the centre displaced by up to
  :data:`LOC_MAX_CELLS` cells and the crop scale jittered, and for every anchor within :data:`LOC_RADIUS_CELLS`
  cells of the target the head learns pysot's ``(dx, dy, dw, dh)`` from the loc correlation at that cell (levels
  fitted jointly through the fusion weights). So ``loc`` moves and resizes boxes toward the target, and its
  quantization error shows up in the trajectory. Held-out R² on bag.avi (alex): dx/dy ≈ 0.9, dw ≈ 0.7, dh ≈ 0.9.

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
from ..runtime.geometry import base_anchors, crop_sizes, geometry
from .random_init import CLS_STD, Frame, make_realistic, synthetic_frames

#: positive shift of the normalised features before their ReLU (ReLU then clips < 0.2 % of values)
FEATURE_SHIFT = 3.0
#: template/search crop pairs per frame for the feature statistics and the score scale
_CROPS_PER_FRAME = 4
#: loc fit: search crops per frame, largest target displacement (cells), crop-scale jitter (log sd)
LOC_CROPS_PER_FRAME = 3
LOC_MAX_CELLS = 3.0
LOC_SCALE_SD = 0.15
#: loc fit: cells around the target whose anchors are fitted (pysot trains loc on its positives only)
LOC_RADIUS_CELLS = 2.0
#: loc fit: ridge strength, relative to the mean feature variance
LOC_RIDGE = 1.0


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


def _loc_crops(cfg, frames: Sequence[Frame], rng: np.random.Generator):
    """Template crops at each box; search crops with the target displaced and the crop scale jittered.

    Returns (z [F,3,E,E], x [M,3,S,S], pair [M] template index, boxes [M,4] target (cx, cy, w, h) in crop pixels
    relative to the crop centre, as the anchors are).
    """
    t, stride = cfg.track, cfg.anchor.stride
    zs, xs, pair, boxes = [], [], [], []
    for i, (img, (x, y, w, h)) in enumerate(frames):
        avg = img.reshape(-1, 3).mean(0)
        cs = crop_sizes(np.array([w, h]), t.context_amount, t.exemplar_size, t.instance_size)
        s_z = float(cs.s_z)
        cx, cy = x + w / 2, y + h / 2
        zs.append(crop_batch(img, np.array([[cx, cy]]), t.exemplar_size, [round(s_z)], avg)[0])
        for _ in range(LOC_CROPS_PER_FRAME):
            s_x = round(float(cs.s_x) * float(np.exp(rng.normal(0, LOC_SCALE_SD))))
            scale = t.instance_size / s_x
            o = rng.uniform(-LOC_MAX_CELLS, LOC_MAX_CELLS, 2) * stride
            xs.append(crop_batch(img, np.array([[cx - o[0] / scale, cy - o[1] / scale]]), t.instance_size, [s_x],
                                 avg)[0])
            pair.append(i)
            boxes.append((o[0], o[1], w * scale, h * scale))
    return (torch.from_numpy(np.stack(zs)), torch.from_numpy(np.stack(xs)), np.asarray(pair),
            np.asarray(boxes, np.float64))


def _loc_head_inputs(model, z: torch.Tensor, x: torch.Tensor, pair: np.ndarray, chunk: int = 32) -> List[torch.Tensor]:
    """Per level, what the loc head's last 1×1 convolution sees [M, C, H, W]."""
    grabbed: List[torch.Tensor] = []
    rpns = model._rpns()
    hooks = [rpn.loc.head[3].register_forward_pre_hook(lambda mod, inp: grabbed.append(inp[0])) for rpn in rpns]
    try:
        kernels = [k[torch.as_tensor(pair)] for k in model.template(z)]
        for s in range(0, len(x), chunk):
            model.track(x[s:s + chunk], *[k[s:s + chunk] for k in kernels])
    finally:
        for h in hooks:
            h.remove()
    return [torch.cat(grabbed[lvl::len(rpns)]) for lvl in range(len(rpns))]


def _loc_fusion_weights(model) -> List[float]:
    """How the levels' loc maps are summed (softmax of loc_weight, a plain mean, or one level)."""
    if not model.levels:
        return [1.0]
    if model.rpn_head.weighted:
        return F.softmax(model.rpn_head.loc_weight, 0).tolist()
    return [1.0 / len(model.levels)] * len(model.levels)


def _loc_targets(cfg, score_size: int, boxes: np.ndarray):
    """Rows to fit: (crop index, row, column) of every cell within LOC_RADIUS_CELLS of the target, and the pysot
    regression targets of its A anchors, [R, 4A] in the loc channel order (dx×A, dy×A, dw×A, dh×A)."""
    anc = cfg.anchor
    geo = geometry(score_size, anc.stride, tuple(anc.ratios), tuple(anc.scales), cfg.track.flavour)
    grid = geo.anchors.reshape(geo.anchor_num, score_size, score_size, 4)
    idx, targets = [], []
    for n, (tx, ty, tw, th) in enumerate(boxes):
        near = (np.abs(grid[0, :, :, :2] - (tx, ty)) <= LOC_RADIUS_CELLS * anc.stride).all(-1)
        ii, jj = np.nonzero(near)
        g = grid[:, ii, jj]  # [A, R, 4]
        targets.append(np.concatenate([(tx - g[..., 0]) / g[..., 2], (ty - g[..., 1]) / g[..., 3],
                                       np.log(tw / g[..., 2]), np.log(th / g[..., 3])], 0).T)
        idx.append(np.stack([np.full_like(ii, n), ii, jj], 1))
    return np.concatenate(idx), np.concatenate(targets)


def _ridge(x: np.ndarray, y: np.ndarray, strength: float):
    """Closed-form ridge regression with an unpenalised bias: (W [D, K], b [K])."""
    mx, my = x.mean(0), y.mean(0)
    xc = x - mx
    gram = xc.T @ xc
    gram[np.diag_indices_from(gram)] += strength * np.trace(gram) / len(gram)
    w = np.linalg.solve(gram, xc.T @ (y - my))
    return w, my - mx @ w


def _fit_loc(model, frames: Sequence[Frame], rng: np.random.Generator) -> None:
    """Fit every level's last loc convolution jointly (through the fusion weights) to the frames' boxes."""
    z, x, pair, boxes = _loc_crops(model.cfg, frames, rng)
    hidden = _loc_head_inputs(model, z, x, pair)
    idx, y = _loc_targets(model.cfg, hidden[0].shape[-1], boxes)
    weights = _loc_fusion_weights(model)
    feats = np.concatenate([wt * h.permute(0, 2, 3, 1).numpy()[idx[:, 0], idx[:, 1], idx[:, 2]]
                            for wt, h in zip(weights, hidden)], 1).astype(np.float64)
    w, b = _ridge(feats, y, LOC_RIDGE)
    start = 0
    for rpn, h in zip(model._rpns(), hidden):
        c = h.shape[1]
        conv = rpn.loc.head[3]
        conv.weight.copy_(torch.from_numpy(w[start:start + c].T.copy()).view_as(conv.weight))
        conv.bias.copy_(torch.from_numpy(b))  # the fusion weights sum to 1: every level carries the full bias
        start += c


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
    a = len(base_anchors(cfg.anchor.stride, cfg.anchor.ratios, cfg.anchor.scales))
    for rpn, corr in zip(model._rpns(), _cls_head_inputs(model, z, x, pair)):
        c = corr.shape[1]
        m = corr.mean(1)
        s = CLS_STD / 2 / max(float(m.std()), 1e-9)  # fg − bg = 2·s·(mean correlation − its mean)
        head = rpn.cls.head[3]
        head.weight[a:2 * a] = s / c
        head.weight[:a] = -s / c
        head.bias[a:2 * a] = -s * float(m.mean())
        head.bias[:a] = s * float(m.mean())
    _fit_loc(model, frames, np.random.default_rng(seed + 1))
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
