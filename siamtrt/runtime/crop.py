"""The subwindow crop, defined once: used by the tracker, calibration data collection and benchmarks.

Reproduces pysot ``SiameseTracker.get_subwindow`` and DaSiamRPN ``get_subwindow_tracking`` exactly:
crop a square of ``original_size`` pixels centred on ``center`` (inclusive bounds), pad outside the image with the
per-channel mean truncated to uint8, resize to ``model_size`` with cv2 INTER_LINEAR, keep BGR 0..255.
Instead of padding the whole frame (as the references do) only the crop-sized canvas is built: the pixels are the
same, the cost does not grow with the frame size.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import cv2
import numpy as np


def crop_origin(center: float, original_size: int, flavour: str = "pysot") -> int:
    """Top-left corner (one axis) of the crop, as each reference rounds it.

    pysot: ``floor(pos - c + 0.5)``; DaSiamRPN: ``round(pos - c)`` (Python 3 round: half to even),
    with ``c = (original_size + 1) / 2``.
    """
    c = (original_size + 1) / 2
    if flavour == "dasiamrpn":
        return int(round(center - c))
    return int(math.floor(center - c + 0.5))


def get_subwindow(image: np.ndarray, center: Sequence[float], model_size: int, original_size: int,
                  avg_chans: np.ndarray, flavour: str = "pysot") -> np.ndarray:
    """Crop, pad and resize one square patch.

    Args:
        image (np.ndarray): HxWx3 uint8 BGR frame.
        center (Sequence[float]): (cx, cy) in pixels, 0-based.
        model_size (int): network input side (exemplar or instance size).
        original_size (int): crop side in frame pixels (already rounded by the caller, as the references do).
        avg_chans (np.ndarray): per-channel mean of the init frame (float); written into padding as uint8.
        flavour (str): "pysot" or "dasiamrpn" (origin rounding). Defaults to "pysot".

    Returns:
        np.ndarray: model_size x model_size x 3 uint8 patch.
    """
    sz = int(original_size)
    sz = max(sz, 1)
    h, w = image.shape[:2]
    x0 = crop_origin(center[0], sz, flavour)
    y0 = crop_origin(center[1], sz, flavour)
    x1, y1 = x0 + sz, y0 + sz  # exclusive
    if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:
        patch = image[y0:y1, x0:x1]
    else:
        patch = np.empty((sz, sz, 3), np.uint8)
        patch[:] = np.asarray(avg_chans).astype(np.uint8)  # float mean truncated, as numpy assignment does
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if ix1 > ix0 and iy1 > iy0:
            patch[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = image[iy0:iy1, ix0:ix1]
    if model_size != sz:
        patch = cv2.resize(patch, (model_size, model_size))
    return patch


def to_blob(patch: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """HWC uint8 → CHW float32 (BGR, 0..255, no normalisation), written into ``out`` when given."""
    chw = patch.transpose(2, 0, 1)
    if out is None:
        return chw.astype(np.float32)
    np.copyto(out, chw, casting="unsafe")
    return out


def crop_batch(image: np.ndarray, centers: np.ndarray, model_size: int, original_sizes: Sequence[int],
               avg_chans: np.ndarray, flavour: str = "pysot", out: Optional[np.ndarray] = None) -> np.ndarray:
    """Crops for N targets as one float32 NCHW batch (reusing ``out`` when its shape fits).

    Args:
        centers (np.ndarray): [N, 2] (cx, cy).
        original_sizes (Sequence[int]): N crop sides.
        avg_chans (np.ndarray): [N, 3] or [3] channel means.
    """
    n = len(centers)
    if out is None or out.shape != (n, 3, model_size, model_size):
        out = np.empty((n, 3, model_size, model_size), np.float32)
    avg = np.broadcast_to(np.asarray(avg_chans, np.float64), (n, 3))
    for i in range(n):
        to_blob(get_subwindow(image, centers[i], model_size, original_sizes[i], avg[i], flavour), out[i])
    return out
