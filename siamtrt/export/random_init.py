"""Seeded random weights that behave numerically like a trained tracker.

Raw random init explodes through ~50 un-normalised layers (cls values of 1e3–3e4 were seen), which makes parity,
tracking and INT8 checks meaningless. So: recompute every BatchNorm's running statistics on real image crops
(template crops through the template branch, search crops through the search branch, as training would see them),
then scale the last head convolutions so ``cls`` has a trained-like spread (a few units) and ``loc`` stays well
below 1. Used by the tests and by ``to_onnx.py`` without ``--checkpoint`` (the weights stay untrained; the metadata
says so).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from ..config import ModelConfig, get_config
from ..runtime.crop import crop_batch
from ..runtime.geometry import crop_sizes

log = logging.getLogger(__name__)

CLS_STD = 2.0   # target spread of the raw cls logits
LOC_STD = 0.15  # target spread of the raw loc offsets

Frame = Tuple[np.ndarray, Sequence[float]]  # (BGR image, x,y,w,h box)


def synthetic_frames(n: int = 6, seed: int = 0, size: Tuple[int, int] = (360, 480)) -> List[Frame]:
    """Textured stand-in frames (smooth multi-scale noise) when no real video is at hand."""
    rng = np.random.default_rng(seed)
    import cv2

    frames = []
    for _ in range(n):
        img = np.zeros((*size, 3), np.float32)
        for scale in (4, 16, 64):
            small = rng.random((max(size[0] // scale, 2), max(size[1] // scale, 2), 3)).astype(np.float32)
            img += cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC) * (255 / 3)
        h, w = size
        bw, bh = rng.uniform(0.15, 0.35) * w, rng.uniform(0.15, 0.35) * h
        box = (rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh)
        frames.append((np.clip(img, 0, 255).astype(np.uint8), box))
    return frames


def video_frames(video: Union[str, Path], box: Sequence[float], n: int = 6) -> List[Frame]:
    """``n`` frames spread over a video, all paired with the same (approximate) box."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    want = set(np.linspace(0, max(total - 1, 0), n).astype(int).tolist())
    frames, i = [], 0
    while len(frames) < n:
        ok, img = cap.read()
        if not ok:
            break
        if i in want:
            frames.append((img, box))
        i += 1
    cap.release()
    return frames


def sequence_frames(folder: Union[str, Path], n: int = 24) -> List[Frame]:
    """``n`` frames spread over an OTB/VOT-layout sequence folder, each with its own ground-truth box.

    What ``--random-heads matching`` is best fitted on (its loc head learns the boxes); e.g. ``../shared/data/bag``.

    Raises:
        InputError: not a readable sequence folder (see :func:`siamtrt.runtime.sequences.load_folder_sequence`).
    """
    from ..runtime.sequences import load_folder_sequence

    seq = load_folder_sequence(folder)
    want = set(np.linspace(0, len(seq) - 1, min(n, len(seq))).astype(int).tolist())
    return [(img, tuple(float(v) for v in seq.gt[i])) for i, img in enumerate(seq.iter_frames()) if i in want]


def _crops(cfg: ModelConfig, frames: Sequence[Frame], per_frame: int, rng: np.random.Generator):
    """Template and search crops cut like the tracker cuts them, with jittered centres and scales."""
    t = cfg.track
    zs, xs = [], []
    for img, (x, y, w, h) in frames:
        avg = img.reshape(-1, 3).mean(0)
        for _ in range(per_frame):
            cx = x + w / 2 + rng.normal(0, 0.1) * w
            cy = y + h / 2 + rng.normal(0, 0.1) * h
            s = float(np.exp(rng.normal(0, 0.1)))
            cs = crop_sizes(np.array([w * s, h * s]), t.context_amount, t.exemplar_size, t.instance_size)
            zs.append(crop_batch(img, np.array([[x + w / 2, y + h / 2]]), t.exemplar_size, [round(float(cs.s_z))],
                                 avg)[0])
            xs.append(crop_batch(img, np.array([[cx, cy]]), t.instance_size, [int(cs.search_side)], avg)[0])
    return torch.from_numpy(np.stack(zs)), torch.from_numpy(np.stack(xs))


@torch.no_grad()
def make_realistic(model: nn.Module, frames: Optional[Sequence[Frame]] = None, seed: int = 0,
                   per_frame: int = 2) -> nn.Module:
    """Recalibrate BatchNorm statistics on real crops and scale the heads (in place); returns the model in eval."""
    cfg = model.cfg
    rng = np.random.default_rng(seed)
    frames = list(frames) if frames else synthetic_frames(seed=seed)
    z, x = _crops(cfg, frames, per_frame, rng)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    model.eval()
    for bn in bns:  # cumulative averages over every batch seen, in train mode only for BN
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    dyn = model.dynamic_batch
    model.dynamic_batch = False
    kernels = model.template(z)
    model.track(x, *kernels)
    for bn in bns:
        bn.momentum = 0.1
    model.eval()
    if getattr(getattr(model, "rpn_head", None), "weighted", False):  # non-uniform level weights, as trained r50
        g = torch.Generator().manual_seed(seed)
        model.rpn_head.cls_weight.copy_(torch.randn(len(model.levels), generator=g))
        model.rpn_head.loc_weight.copy_(torch.randn(len(model.levels), generator=g))
    # Scale the last convolutions to trained-like output ranges.
    kernels = model.template(z)
    cls, loc = model.track(x, *kernels)
    c_scale = CLS_STD / max(float(cls.std()), 1e-6)
    l_scale = LOC_STD / max(float(loc.std()), 1e-6)
    if cfg.family == "pysot":
        rpns = [getattr(model.rpn_head, f"rpn{lvl}") for lvl in model.levels] if model.levels else [model.rpn_head]
        for rpn in rpns:
            for branch, s in ((rpn.cls, c_scale), (rpn.loc, l_scale)):
                branch.head[3].weight.mul_(s)
                branch.head[3].bias.mul_(s)
    else:  # DaSiamRPN: cls is linear in conv_cls1; loc is affine in regress_adjust
        model.conv_cls1.weight.mul_(c_scale)
        model.conv_cls1.bias.mul_(c_scale)
        model.regress_adjust.weight.mul_(l_scale)
        model.regress_adjust.bias.mul_(l_scale)
    model.dynamic_batch = dyn
    return model


def realistic_random_model(cfg: Union[str, ModelConfig], seed: int = 0,
                           frames: Optional[Sequence[Frame]] = None) -> nn.Module:
    """A seeded random-weight model with realistic numerics (see module docstring)."""
    from .models import build_model

    cfg = get_config(cfg) if not isinstance(cfg, ModelConfig) else cfg
    torch.manual_seed(seed)
    model = build_model(cfg)
    return make_realistic(model, frames, seed=seed)


def scale_rpn_heads(model: nn.Module, factor: float) -> None:
    """Scale the last cls/loc convolution (weights and bias) of every pysot RPN head by ``factor``: checkpoint
    families with smaller or larger head outputs than the fixtures' (INT8 family tests and benchmarks)."""
    import torch

    with torch.no_grad():
        rpns = [getattr(model.rpn_head, f"rpn{lvl}") for lvl in model.levels] if model.levels else [model.rpn_head]
        for rpn in rpns:
            for branch in (rpn.cls, rpn.loc):
                branch.head[3].weight.mul_(factor)
                branch.head[3].bias.mul_(factor)
