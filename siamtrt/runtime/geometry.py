"""Anchors, the cosine window, the anchor decode, crop sizes and the safety bounds: the tracker's geometry, once.

Anchors and the window are defined once per (score size, stride, ratios, scales, flavour) and cached.

Both reference trackers use the same anchor table: base anchors from ``stride²`` area per ratio
(``ws = int(sqrt(stride²/r))``, ``hs = int(ws·r)``, times each scale; ratios outer, scales inner), laid over an
S×S grid with flat index ``k = a·S² + i·S + j`` (anchor a, row i, column j) and coordinates in search-crop pixels
relative to the crop centre. The hanning window is ``outer(hanning(S), hanning(S))`` flattened and tiled A times
(same index k). Arrays are read-only: every tracker shares them.

:func:`decode` turns regression deltas into boxes (the tracker's post-processing, the distractor proposals and the
calibration report all call it). The **safety bounds** (:func:`bound_state`, :func:`bound_init_size`,
:func:`finite_step`, :data:`CROP_EXACT_MAX_SIDE`, :func:`max_search_side`) keep every mode's per-frame time and
memory bounded whatever the network outputs and the boxes given; docs/runtime.md "Safety bounds" says what each
one bounds, when it acts and how it differs from pysot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import numpy as np

from ..config import FLAVOURS


def base_anchors(stride: int, ratios: Sequence[float], scales: Sequence[float]) -> np.ndarray:
    """(A, 2) anchor (w, h) in crop pixels; e.g. stride 8, ratios (0.33, 0.5, 1, 2, 3), scale 8 →
    (104,32) (88,40) (64,64) (40,80) (32,96) — pysot ``Anchors.generate_anchors`` / DaSiamRPN ``generate_anchor``."""
    size = stride * stride
    out = []
    for r in ratios:
        ws = int(math.sqrt(size * 1.0 / r))
        hs = int(ws * r)
        for s in scales:
            out.append((ws * s, hs * s))
    return np.asarray(out, np.float64)


def grid_origin(score_size: int, stride: int, flavour: str = "pysot") -> int:
    """Offset of grid cell (0, 0) from the crop centre.

    pysot: ``-(S // 2) * stride``. DaSiamRPN's run_SiamRPN.py writes ``-(score_size / 2) * total_stride`` but ran on
    Python 2, where ``/`` on ints is floor division, so it is the same ``-(S // 2) * stride`` (−72 for S=19, −80 for
    S=21); a Python 3 port that keeps ``/`` shifts every anchor by half a stride (−76), which we do not reproduce.
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}")
    return -(score_size // 2) * stride


def cosine_window(score_size: int, anchor_num: int) -> np.ndarray:
    """(A·S²,) hanning window, zero at the border, 1 at the centre, tiled per anchor."""
    h = np.hanning(score_size)
    return np.tile(np.outer(h, h).ravel(), anchor_num)


@dataclass(frozen=True)
class Geometry:
    """Per-model constants of the post-processing (one instance per score size).

    Attributes:
        score_size (int): S. anchor_num (int): A. stride (int).
        anchors (np.ndarray): (K, 4) float64 (cx, cy, w, h), K = A·S².
        window (np.ndarray): (K,) cosine window.
        ax, ay, aw, ah (np.ndarray): contiguous (K,) columns of ``anchors`` (what the decode reads).
    """

    score_size: int
    anchor_num: int
    stride: int
    flavour: str
    anchors: np.ndarray
    window: np.ndarray
    ax: np.ndarray
    ay: np.ndarray
    aw: np.ndarray
    ah: np.ndarray

    @property
    def num(self) -> int:
        return self.anchors.shape[0]


@lru_cache(maxsize=32)
def geometry(score_size: int, stride: int, ratios: Tuple[float, ...], scales: Tuple[float, ...],
             flavour: str = "pysot") -> Geometry:
    """The anchors and window for one score size (cached: computed once per model and size)."""
    wh = base_anchors(stride, ratios, scales)
    a, s = wh.shape[0], score_size
    ori = grid_origin(s, stride, flavour)
    coords = ori + stride * np.arange(s, dtype=np.float64)
    xx, yy = np.meshgrid(coords, coords)  # xx[i, j] = x_j, yy[i, j] = y_i
    anchors = np.empty((a, s * s, 4), np.float64)
    anchors[:, :, 0] = xx.ravel()
    anchors[:, :, 1] = yy.ravel()
    anchors[:, :, 2] = wh[:, 0:1]
    anchors[:, :, 3] = wh[:, 1:2]
    anchors = anchors.reshape(a * s * s, 4)
    window = cosine_window(s, a)
    cols = [np.ascontiguousarray(anchors[:, c]) for c in range(4)]
    for arr in [anchors, window] + cols:
        arr.setflags(write=False)
    return Geometry(score_size=s, anchor_num=a, stride=stride, flavour=flavour, anchors=anchors, window=window,
                    ax=cols[0], ay=cols[1], aw=cols[2], ah=cols[3])


def decode(deltas: np.ndarray, geo: Geometry, index: Optional[np.ndarray] = None,
           out: Optional[np.ndarray] = None) -> np.ndarray:
    """Boxes (cx, cy, w, h) the regression deltas (dx, dy, dw, dh) give at their anchors (float64, crop pixels,
    relative to the crop centre): ``cx = dx·aw + ax``, ``cy = dy·ah + ay``, ``w = exp(dw)·aw``, ``h = exp(dh)·ah``
    (pysot ``SiamRPNTracker._convert_bbox``, DaSiamRPN ``tracker_eval``).

    Args:
        deltas (np.ndarray): (…, 4, m) deltas in the loc layout reshaped to rows dx, dy, dw, dh (any float dtype).
        geo (Geometry): anchors of the score map.
        index (np.ndarray): anchor indices of the m columns, broadcastable to (…, m). Defaults to None: all K
            anchors (m = K).
        out (np.ndarray): (…, 4, m) float64 array to write into. Defaults to a new one.

    Returns:
        np.ndarray: ``out``.
    """
    ax, ay, aw, ah = (geo.ax, geo.ay, geo.aw, geo.ah) if index is None else \
        (geo.ax[index], geo.ay[index], geo.aw[index], geo.ah[index])
    out = np.empty(deltas.shape, np.float64) if out is None else out
    with np.errstate(over="ignore", invalid="ignore"):
        np.multiply(deltas[..., 0, :], aw, out=out[..., 0, :], dtype=np.float64)
        out[..., 0, :] += ax
        np.multiply(deltas[..., 1, :], ah, out=out[..., 1, :], dtype=np.float64)
        out[..., 1, :] += ay
        np.exp(deltas[..., 2, :], out=out[..., 2, :], dtype=np.float64)
        out[..., 2, :] *= aw
        np.exp(deltas[..., 3, :], out=out[..., 3, :], dtype=np.float64)
        out[..., 3, :] *= ah
    return out


# ------------------------------------------------------------------------------------------------- crop sizes
@dataclass(frozen=True)
class CropSizes:
    """Per-target crop geometry of one search step (float64 arrays, shape of the ``size`` rows).

    Attributes:
        s_z (np.ndarray): side of the exemplar-context square in frame pixels (not rounded).
        scale_z (np.ndarray): exemplar_size / s_z (crop pixels per frame pixel).
        s_x (np.ndarray): side of the search square in frame pixels (not rounded; the crop uses ``search_side``).
    """

    s_z: np.ndarray
    scale_z: np.ndarray
    s_x: np.ndarray

    @property
    def search_side(self) -> np.ndarray:
        """round(s_x) (half-to-even, as Python's ``round`` in both references) as int64: the cut square's side."""
        return np.round(self.s_x).astype(np.int64)


def context_side(size: np.ndarray, context_amount: float) -> np.ndarray:
    """sqrt(w_z·h_z) with w_z = w + ca·(w+h), h_z = h + ca·(w+h), for (…, 2) sizes (w, h); not rounded."""
    size = np.asarray(size, np.float64)
    w, h = size[..., 0], size[..., 1]
    ctx = context_amount * (w + h)
    return np.sqrt((w + ctx) * (h + ctx))


def template_side(size: np.ndarray, context_amount: float) -> np.ndarray:
    """Side of the template crop at init: round(sqrt(w_z·h_z)) (half-to-even, as Python's ``round``), float64.

    Both references (pysot ``SiamRPNTracker.init``, DaSiamRPN ``SiamRPN_init``) cut the exemplar at this side.
    """
    return np.round(context_side(size, context_amount))


def crop_sizes(size: np.ndarray, context_amount: float, exemplar_size: int, instance_size,
               flavour: str = "pysot") -> CropSizes:
    """The one crop-size formula of the search step (tracker, calibration, random/matching weight fitting).

    pysot (SiamRPNTracker / SiamRPNLTTracker.track): s_z = sqrt(w_z·h_z), scale_z = E / s_z,
    s_x = s_z · (I / E). DaSiamRPN (run_SiamRPN.py): the same s_z (its w/h terms are swapped, the product is
    equal), s_x = s_z + 2·((I − E)/2) / scale_z.

    Args:
        size (np.ndarray): (…, 2) target (w, h) in frame pixels.
        context_amount (float): ca (0.5 in every config).
        exemplar_size (int): E (127).
        instance_size (int | np.ndarray): I, one size or one per target (long-term mode searches per target).
        flavour (str): "pysot" or "dasiamrpn". Defaults to "pysot".

    Returns:
        CropSizes: s_z, scale_z, s_x.
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}")
    s_z = context_side(size, context_amount)
    e = exemplar_size
    scale_z = e / s_z
    inst = np.asarray(instance_size, np.float64) if np.ndim(instance_size) else instance_size
    if flavour == "pysot":
        s_x = s_z * (inst / e)
    else:
        s_x = s_z + 2 * (((inst - e) / 2) / scale_z)
    return CropSizes(s_z=s_z, scale_z=scale_z, s_x=s_x)


# ---------------------------------------------------------------------------------------------- safety bounds
#: Smallest stored target side in frame pixels (both references clip the output box to [10, frame side]).
MIN_SIDE = 10

#: Crops that reach outside the frame are cut as the references cut them (pad to a square canvas, resize; cost grows
#: with side²) up to this side in frame pixels; beyond it by one affine warp of the frame with the same sample
#: positions (cost ∝ model_size², pixels within one grey level of pad + resize). Crops inside the frame are always
#: exact (a resize of a view, at most the frame's pixels).
CROP_EXACT_MAX_SIDE = 2048


def clip_box(cx: np.ndarray, cy: np.ndarray, width: np.ndarray, height: np.ndarray, frame_wh: Tuple[int, int]):
    """Both references' ``_bbox_clip``: cx ∈ [0, W], cy ∈ [0, H], width ∈ [10, W], height ∈ [10, H]."""
    img_w, img_h = frame_wh
    cx = np.maximum(0, np.minimum(cx, img_w))
    cy = np.maximum(0, np.minimum(cy, img_h))
    width = np.maximum(MIN_SIDE, np.minimum(width, img_w))
    height = np.maximum(MIN_SIDE, np.minimum(height, img_h))
    return cx, cy, width, height


def bound_state(center: np.ndarray, size: np.ndarray, frame_wh: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """The state bound: (N, 2) centres into [0, W] × [0, H], (N, 2) sizes into [10, W] × [10, H].

    The short-term references store exactly this (their clip); pysot's ``SiamRPNLTTracker`` stores the state
    *before* clipping, which a run of bad score maps grows without limit (and every crop with it). Every mode stores
    the bounded state, so the crop sides of every later step are bounded by :func:`max_search_side`.
    """
    cx, cy, w, h = clip_box(center[:, 0], center[:, 1], size[:, 0], size[:, 1], frame_wh)
    return np.stack([cx, cy], 1), np.stack([w, h], 1)


def bound_init_size(size: np.ndarray, frame_wh: Tuple[int, int]) -> np.ndarray:
    """The state bound on the boxes ``init`` / ``add`` are given: (N, 2) sizes at most W × H.

    A box inside the frame is stored as given, and so is the centre of any box and a side below ``MIN_SIDE`` (both
    references store the init box unclipped); only a box wider or taller than the frame is cut to it (its template
    is then cut at the frame-sized box; the references clip the state to the frame after the first frame anyway).
    Without it a box of 1e300 pixels overflowed the crop sizes: no crop, no step, NaN warnings every frame.
    """
    return np.minimum(size, np.asarray(frame_wh, np.float64))


def finite_step(score: np.ndarray, *arrays: np.ndarray) -> np.ndarray:
    """(N,) bool: rows whose score and every value of ``arrays`` (each (N,) or (N, k)) are finite.

    A step that is not finite (NaN / inf in the network outputs) keeps the previous state and reports score 0: the
    references would carry the NaN into every later crop.
    """
    ok = np.isfinite(score)
    for a in arrays:
        ok &= np.isfinite(a).reshape(len(ok), -1).all(1)
    return ok


def max_search_side(frame_wh: Tuple[int, int], context_amount: float, exemplar_size: int, instance_size: int,
                    flavour: str = "pysot") -> int:
    """Largest crop side (frame pixels) a search at ``instance_size`` can cut under :func:`bound_state`: the side
    of a target state as large as the frame (pysot flavour: 480x360 gives 1893 at 287, 5482 at the lost size 831;
    640x480 gives 2525 and 7310)."""
    frame = np.asarray([frame_wh], np.float64)
    return int(crop_sizes(frame, context_amount, exemplar_size, instance_size, flavour).search_side[0])
