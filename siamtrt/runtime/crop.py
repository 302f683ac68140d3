"""The subwindow crop, defined once: used by the tracker, calibration data collection and benchmarks.

Reproduces pysot ``SiameseTracker.get_subwindow`` and DaSiamRPN ``get_subwindow_tracking``: crop a square of
``original_size`` pixels centred on ``center`` (inclusive bounds), pad outside the image with the per-channel mean
truncated to uint8, resize to ``model_size`` with cv2 INTER_LINEAR, keep BGR 0..255.

Only the region the window covers is touched, into reused buffers (:func:`crop_scratch` per thread, pad
canvases from one pool):

* window inside the frame: the frame itself is resized (a view, no copy) — pixel-identical;
* window partly outside, side ≤ :data:`~siamtrt.runtime.geometry.CROP_EXACT_MAX_SIDE`: a crop-sized canvas (not the
  padded frame the references build) holds the pad colour and the visible pixels and is resized — pixel-identical;
* window entirely outside: the pad colour (what resizing a uniform canvas gives) — pixel-identical;
* window partly outside and larger: one ``cv2.warpAffine`` of the frame with the resize's sample positions
  (``x_src = (x_dst + 0.5)·side/model_size − 0.5 + x0``) and the pad colour as the constant border. Its cost is
  that of the output whatever the side (a 7310-pixel canvas, the largest a 640×480 frame's bounded long-term state
  can ask for, would be 160 MB); its pixels are within one grey level of pad + resize (the two interpolations round
  their fixed-point weights differently). A safety bound (docs/runtime.md "Safety bounds").
"""

from __future__ import annotations

import math
import os
import queue
import threading
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .cpu import physical_cores
from .geometry import CROP_EXACT_MAX_SIDE


def crop_origin(center: float, original_size: int, flavour: str = "pysot") -> int:
    """Top-left corner (one axis) of the crop, as each reference rounds it.

    pysot: ``floor(pos - c + 0.5)``; DaSiamRPN: ``round(pos - c)`` (Python 3 round: half to even),
    with ``c = (original_size + 1) / 2``.
    """
    c = (original_size + 1) / 2
    if flavour == "dasiamrpn":
        return int(round(center - c))
    return int(math.floor(center - c + 0.5))


def _pad_colour(avg_chans: np.ndarray) -> np.ndarray:
    """The references write the float channel mean into a uint8 canvas: truncated."""
    return np.asarray(avg_chans).astype(np.uint8)


def _pad_value(avg_chans: np.ndarray) -> tuple:
    """The pad colour as an OpenCV scalar."""
    return tuple(int(v) for v in _pad_colour(avg_chans))


def get_subwindow(image: np.ndarray, center: Sequence[float], model_size: int, original_size: int,
                  avg_chans: np.ndarray, flavour: str = "pysot", out: Optional[np.ndarray] = None) -> np.ndarray:
    """Crop, pad and resize one square patch.

    Args:
        image (np.ndarray): HxWx3 uint8 BGR frame.
        center (Sequence[float]): (cx, cy) in pixels, 0-based.
        model_size (int): network input side (exemplar or instance size).
        original_size (int): crop side in frame pixels (already rounded by the caller, as the references do).
        avg_chans (np.ndarray): per-channel mean of the init frame (float); written into padding as uint8.
        flavour (str): "pysot" or "dasiamrpn" (origin rounding). Defaults to "pysot".
        out (np.ndarray): model_size x model_size x 3 uint8 array to write into. Defaults to a new one.

    Returns:
        np.ndarray: ``out``, the model_size x model_size x 3 uint8 patch.
    """
    sz = max(int(original_size), 1)
    m = int(model_size)
    h, w = image.shape[:2]
    x0 = crop_origin(center[0], sz, flavour)
    y0 = crop_origin(center[1], sz, flavour)
    x1, y1 = x0 + sz, y0 + sz  # exclusive
    if out is None:
        out = np.empty((m, m, 3), np.uint8)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:
        src = image[y0:y1, x0:x1]
    elif ix1 <= ix0 or iy1 <= iy0:
        out[0] = _pad_colour(avg_chans)
        out[1:] = out[0]  # row copies (a per-pixel 3-byte broadcast is ~30x slower)
        return out
    elif sz <= CROP_EXACT_MAX_SIDE:
        with _canvas() as buf:
            # the pad colour around the visible pixels, written into the canvas (OpenCV returns dst)
            src = cv2.copyMakeBorder(image[iy0:iy1, ix0:ix1], iy0 - y0, y1 - iy1, ix0 - x0, x1 - ix1,
                                     cv2.BORDER_CONSTANT, dst=buf[:3 * sz * sz].reshape(sz, sz, 3),
                                     value=_pad_value(avg_chans))
            return _resized(src, out)
    else:
        s = sz / m
        warp = np.array([[s, 0.0, x0 + 0.5 * s - 0.5], [0.0, s, y0 + 0.5 * s - 0.5]])
        cv2.warpAffine(image, warp, (m, m), dst=out, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                       borderMode=cv2.BORDER_CONSTANT,
                       borderValue=_pad_value(avg_chans))
        return out
    return _resized(src, out)


def _resized(src: np.ndarray, out: np.ndarray) -> np.ndarray:
    if src.shape[0] == out.shape[0]:
        np.copyto(out, src)
    else:
        cv2.resize(src, out.shape[1::-1], dst=out, interpolation=cv2.INTER_LINEAR)
    return out


def to_blob(patch: np.ndarray, out: Optional[np.ndarray] = None,
            planes: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
    """HWC uint8 → CHW float32 (BGR, 0..255, no normalisation), written into ``out`` when given.

    ``planes`` (three HxW uint8 arrays) are scratch for the channel split (cv2.split then a contiguous
    conversion per channel: about 3× faster than converting the strided transpose).
    """
    if out is None:
        out = np.empty((3,) + patch.shape[:2], np.float32)
    planes = cv2.split(patch) if planes is None else cv2.split(patch, list(planes))
    for c in range(3):
        np.copyto(out[c], planes[c], casting="unsafe")
    return out


def _new_canvas_pool() -> "queue.LifoQueue":
    """One slot per physical core (padded crops are CPU-bound: more at once gain nothing, and each would hold a
    canvas); a slot holds a canvas once one has been made for it (``None`` until then)."""
    pool: queue.LifoQueue = queue.LifoQueue()
    for _ in range(physical_cores()):
        pool.put(None)
    return pool


_CANVAS_POOL = _new_canvas_pool()


def _reset_canvases() -> None:
    """A forked child starts with a fresh pool: a slot taken by another thread at the fork would stay taken."""
    global _CANVAS_POOL
    _CANVAS_POOL = _new_canvas_pool()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reset_canvases)


@contextmanager
def _canvas() -> Iterator[np.ndarray]:
    """A pad canvas borrowed from the process's pool for one crop (waits while every slot is in use).

    Each canvas is reserved once at its ceiling (3 · :data:`CROP_EXACT_MAX_SIDE`² bytes, 12.6 MB of address space);
    only the pages the largest padded crop it served has written are resident. Growing one to each larger crop
    instead freed and re-allocated multi-MB blocks, and the allocator kept the freed ones: a 4-target long-term run
    grew 27 MB over 10,000 frames (docs/serving.md, soak). Pooled and capped rather than one per tracker or per
    thread: a server holding a tracker per live sequence (Triton) held up to 12.6 MB per sequence, rising and falling
    with the sequences alive; one per thread let each of its 8 worker threads fill its own, and an uncapped pool grew
    to the most crops ever cut at once. Last in, first out, so the canvas whose pages are resident is the one reused.
    """
    pool = _CANVAS_POOL
    buf = pool.get()
    if buf is None:
        buf = np.empty(3 * CROP_EXACT_MAX_SIDE ** 2, np.uint8)  # address space; pages on first write
    try:
        yield buf
    finally:
        pool.put(buf)


_THREAD = threading.local()
#: Scratch sets (:func:`crop_scratch`, :func:`input_buffer`) kept per thread, the least recently used dropped first.
#: A tracker uses two per search size and one for the template (7 for a long-term SiamRPNBIG: 271, 287, 831, 127);
#: the long-term growth (``lost_growth_step`` > 0) meets a new search size every lost frame, ~70 between 287 and 831
#: with a step of 8, and kept them all for the life of the process.
MAX_THREAD_BUFFERS = 16


def _thread_buffers() -> Dict[tuple, Any]:
    buffers = getattr(_THREAD, "buffers", None)
    if buffers is None:
        buffers = _THREAD.buffers = {}
    return buffers


def _kept(key: tuple, value: Any) -> Any:
    """Keep ``value`` as the calling thread's most recently used scratch of ``key`` (dropping the least recently
    used beyond :data:`MAX_THREAD_BUFFERS`; whoever still holds a dropped one keeps a valid array)."""
    buffers = _thread_buffers()
    buffers.pop(key, None)
    buffers[key] = value
    while len(buffers) > MAX_THREAD_BUFFERS:
        del buffers[next(iter(buffers))]
    return value


def crop_scratch(model_size: int) -> Tuple[np.ndarray, List[np.ndarray]]:
    """The calling thread's (patch, planes) for a crop resized to ``model_size``: scratch, one set per thread
    rather than per tracker (nothing in it outlives one crop; a server holds a tracker per live sequence)."""
    key = ("patch", model_size)
    scratch = _thread_buffers().get(key)
    if scratch is None:
        scratch = (np.empty((model_size, model_size, 3), np.uint8),
                   [np.empty((model_size, model_size), np.uint8) for _ in range(3)])
    return _kept(key, scratch)


def input_buffer(n: int, model_size: int, dtype: Any) -> np.ndarray:
    """The calling thread's [n, 3, model_size, model_size] network input (a contiguous view of one buffer per size
    and dtype, grown to the largest ``n`` asked): valid until this thread asks for the same size and dtype again."""
    key = ("input", model_size, np.dtype(dtype))
    buf = _thread_buffers().get(key)
    if buf is None or len(buf) < n:
        buf = np.empty((n, 3, model_size, model_size), dtype)
    return _kept(key, buf)[:n]


def crop_batch(image: np.ndarray, centers: np.ndarray, model_size: int, original_sizes: Sequence[int],
               avg_chans: np.ndarray, flavour: str = "pysot", out: Optional[np.ndarray] = None) -> np.ndarray:
    """Crops for N targets as one float32 NCHW batch (reusing ``out`` when its shape fits).

    Args:
        centers (np.ndarray): [N, 2] (cx, cy).
        original_sizes (Sequence[int]): N crop sides.
        avg_chans (np.ndarray): [N, 3] or [3] channel means.
        out (np.ndarray): [N, 3, model_size, model_size] array to write into (any float dtype). Defaults to a new
            float32 one.
    """
    n = len(centers)
    if out is None or out.shape != (n, 3, model_size, model_size):
        out = np.empty((n, 3, model_size, model_size), np.float32)
    avg = np.broadcast_to(np.asarray(avg_chans, np.float64), (n, 3))
    for i in range(n):
        patch, planes = crop_scratch(model_size)
        get_subwindow(image, centers[i], model_size, original_sizes[i], avg[i], flavour, out=patch)
        to_blob(patch, out[i], planes)
    return out


__all__ = ["crop_batch", "crop_origin", "crop_scratch", "get_subwindow", "input_buffer", "to_blob"]
