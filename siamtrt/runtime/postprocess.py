"""Vectorised post-processing of both reference trackers for N targets at once (pure numpy, no torch).

For every target n and anchor k (pysot ``SiamRPNTracker.track`` §2.5 of the reference note; DaSiamRPN
``tracker_eval`` — the same formulas):

    score  = softmax(cls[bg a], cls[fg a])[fg]
    px, py = dx·aw + ax, dy·ah + ay;   pw, ph = exp(dw)·aw, exp(dh)·ah
    s_c    = change(sz(pw, ph) / sz(w·scale_z, h·scale_z));   r_c = change((w/h) / (pw/ph))
    penalty = exp(−(r_c·s_c − 1)·penalty_k);   pscore = penalty·score·(1 − wi) + window·wi
    best = argmax pscore;  lr = penalty[best]·score[best]·LR
    centre += (px, py)[best] / scale_z;   size = size·(1 − lr) + (pw, ph)[best] / scale_z · lr
    clip: cx ∈ [0, W], cy ∈ [0, H], w ∈ [10, W], h ∈ [10, H]

with change(r) = max(r, 1/r) and sz(w, h) = sqrt((w + p)(h + p)), p = (w + h)/2. Arithmetic is float64 (the
references mix float32 network outputs with float64 numpy; results agree to floating-point tolerance).
The two flavours differ only in order of operations DaSiamRPN uses (it scales the target size into crop pixels
and back); that is kept so the results match each reference to the last bits that matter.
Work arrays are allocated once per (N, K) and reused every frame. The decode is
:func:`siamtrt.runtime.geometry.decode`; the clip is the state bound of :mod:`siamtrt.runtime.geometry`, and a step
that is not finite (NaN / inf network outputs: no reference defines one) keeps the previous state with score 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from .geometry import Geometry, clip_box, decode, finite_step


@dataclass(frozen=True)
class PostParams:
    """The hyper-parameters the post-processing reads (from the model metadata ``track`` entry)."""

    penalty_k: float
    window_influence: float
    lr: float
    flavour: str = "pysot"


@dataclass
class PostResult:
    """New state and outputs for N targets (all float64). ``best`` is the flat anchor index k chosen.

    ``finite`` is False for targets whose step was not finite (NaN / inf network outputs): they keep the state they
    came in with and get score 0 (:func:`~siamtrt.runtime.geometry.finite_step`).
    """

    center: np.ndarray  # (N, 2)
    size: np.ndarray  # (N, 2)
    score: np.ndarray  # (N,) un-penalised foreground probability at best
    best: np.ndarray  # (N,) int
    finite: np.ndarray  # (N,) bool


class Workspace:
    """Reusable float64 scratch arrays ((N, K) scores and terms, (N, 4, K) decoded boxes), re-allocated only when N
    or K changes. After :func:`postprocess`, ``arrays["score"]`` holds every anchor's score and ``arrays["boxes"]``
    every anchor's box (crop pixels; the distractor proposals read both)."""

    NAMES = ("score", "t1", "t2", "pscore")

    def __init__(self):
        self.shape: Optional[Tuple[int, int]] = None
        self.arrays: Dict[str, np.ndarray] = {}

    def get(self, n: int, k: int) -> Dict[str, np.ndarray]:
        if self.shape != (n, k):
            self.arrays = {name: np.empty((n, k), np.float64) for name in self.NAMES}
            self.arrays["boxes"] = np.empty((n, 4, k), np.float64)
            self.shape = (n, k)
        return self.arrays


def _sz(w: np.ndarray, h: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """sqrt((w + p)(h + p)), p = (w + h)/2, into ``out`` (``tmp`` scratch)."""
    np.add(w, h, out=tmp)
    tmp *= 0.5
    np.add(w, tmp, out=out)
    tmp += h
    out *= tmp
    return np.sqrt(out, out=out)


def _change(r: np.ndarray) -> np.ndarray:
    """max(r, 1/r) in place."""
    return np.maximum(r, np.reciprocal(r), out=r)


def _argmax(pscore: np.ndarray) -> np.ndarray:
    """Row-wise argmax ignoring NaN (np.argmax returns the first NaN; only rows holding one pay for nanargmax)."""
    best = np.argmax(pscore, axis=1)
    nan_rows = np.flatnonzero(np.isnan(pscore[np.arange(len(best)), best]))
    for r in nan_rows:
        row = pscore[r]
        if not np.isnan(row).all():
            best[r] = np.nanargmax(row)
    return best


def postprocess(cls: np.ndarray, loc: np.ndarray, geo: Geometry, center: np.ndarray, size: np.ndarray,
                scale_z: np.ndarray, frame_wh: Tuple[int, int], params: PostParams,
                workspace: Optional[Workspace] = None) -> PostResult:
    """Decode, penalise, select, smooth and clip for N targets.

    Args:
        cls (np.ndarray): [N, 2A, S, S] raw classification logits (channels bg a0..a(A-1), fg a0..a(A-1)).
        loc (np.ndarray): [N, 4A, S, S] raw deltas (dx×A, dy×A, dw×A, dh×A).
        geo (Geometry): anchors and window for this score size.
        center (np.ndarray): [N, 2] current centres (image pixels). size (np.ndarray): [N, 2] current (w, h).
        scale_z (np.ndarray): [N] crop scale, exemplar_size / s_z.
        frame_wh (tuple): (W, H) of the frame, for clipping.
        params (PostParams): penalty_k, window_influence, lr, flavour.
        workspace (Workspace): scratch arrays to reuse. Defaults to a fresh one.

    Returns:
        PostResult: clipped new centres and sizes (the state bound; a non-finite step keeps the old state), best
        scores and anchor indices.
    """
    workspace = Workspace() if workspace is None else workspace
    n, k = cls.shape[0], geo.num
    c = cls.reshape(n, 2, k)
    w = workspace.get(n, k)
    score, t1, t2, pscore, boxes = (w[name] for name in Workspace.NAMES + ("boxes",))
    center = np.asarray(center, np.float64)
    size = np.asarray(size, np.float64)
    scale_z = np.asarray(scale_z, np.float64)[:, None]

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # Two-way softmax, foreground probability: exp(fg)/(exp(bg)+exp(fg)) = (1 + tanh((fg − bg)/2)) / 2.
        np.subtract(c[:, 1], c[:, 0], out=score, dtype=np.float64)
        score *= 0.5
        np.tanh(score, out=score)
        score += 1.0
        score *= 0.5
        # Every candidate box (crop pixels).
        decode(loc.reshape(n, 4, k), geo, out=boxes)
        pw, ph = boxes[:, 2], boxes[:, 3]
        # Target size in crop pixels. DaSiamRPN passes it scaled and divides back later; pysot scales here only.
        tsz = size * scale_z
        tw, th = tsz[:, 0:1], tsz[:, 1:2]
        ratio = (tw / th) if params.flavour == "dasiamrpn" else (size[:, 0:1] / size[:, 1:2])
        ref = _sz(tw, th, np.empty_like(tw), np.empty_like(tw))
        # s_c = change(sz(pw, ph) / sz(target)) → t1
        _sz(pw, ph, t1, t2)
        t1 /= ref
        _change(t1)
        # r_c = change(ratio / (pw/ph)) → t2
        np.divide(pw, ph, out=t2)
        np.divide(ratio, t2, out=t2)
        _change(t2)
        # penalty = exp(−(r_c·s_c − 1)·K) → t1
        t1 *= t2
        t1 -= 1.0
        t1 *= -params.penalty_k
        penalty = np.exp(t1, out=t1)
        # pscore = penalty·score·(1 − wi) + window·wi
        np.multiply(penalty, score, out=pscore)
        pscore *= 1.0 - params.window_influence
        pscore += geo.window * params.window_influence
        best = _argmax(pscore)

        rows = np.arange(n)
        s_best = score[rows, best]
        lr = penalty[rows, best] * s_best * params.lr
        sz1 = scale_z[:, 0]
        bx, by = boxes[rows, 0, best] / sz1, boxes[rows, 1, best] / sz1
        bw, bh = pw[rows, best] / sz1, ph[rows, best] / sz1
        cur = tsz / scale_z if params.flavour == "dasiamrpn" else size
        cx = bx + center[:, 0]
        cy = by + center[:, 1]
        width = cur[:, 0] * (1 - lr) + bw * lr
        height = cur[:, 1] * (1 - lr) + bh * lr

    cx, cy, width, height = clip_box(cx, cy, width, height, frame_wh)
    new_center, new_size = np.stack([cx, cy], 1), np.stack([width, height], 1)
    finite = finite_step(s_best, new_center, new_size)
    if not finite.all():
        new_center[~finite], new_size[~finite] = center[~finite], size[~finite]
        s_best = np.where(finite, s_best, 0.0)
    return PostResult(center=new_center, size=new_size, score=s_best, best=best, finite=finite)
