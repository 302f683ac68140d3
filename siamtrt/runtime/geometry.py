"""Anchors and the cosine window, defined once per (score size, stride, ratios, scales, flavour) and cached.

Both reference trackers use the same anchor table: base anchors from ``stride²`` area per ratio
(``ws = int(sqrt(stride²/r))``, ``hs = int(ws·r)``, times each scale; ratios outer, scales inner), laid over an
S×S grid with flat index ``k = a·S² + i·S + j`` (anchor a, row i, column j) and coordinates in search-crop pixels
relative to the crop centre. The hanning window is ``outer(hanning(S), hanning(S))`` flattened and tiled A times
(same index k). Arrays are read-only: every tracker shares them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence, Tuple

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
