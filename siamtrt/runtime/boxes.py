"""Box geometry and box files, defined once: IoU, box ↔ centre, reading box files, writing results.

Boxes are 0-based ``x, y, w, h`` (top-left corner, width, height) float64 arrays unless a name says otherwise
(``cxcywh``: centre and size). The tracker, calibration, benchmarks, serving and batch all use these functions.

Result files (:class:`BoxWriter`): one writer for ``runtime/track.py``, the Triton client and Ray, in the formats
users already have:

* ``txt`` — pysot / OTB results: one line per frame, ``x,y,w,h`` (several targets: their groups follow each other);
* ``csv`` — header ``frame,target,x,y,w,h,score``, one row per target per frame (frame and target 0-based);
* ``mot`` — MOTChallenge rows ``frame,id,x,y,w,h,conf,-1,-1,-1`` (frame and id 1-based, as MOT tools expect);
* ``json`` — ``{"format": "siamtrt-boxes/1", "frames": [{"frame", "boxes", "scores"}, …]}``.

Numbers are written with Python's shortest round-trip ``repr`` (exact: reading a file back gives the tracker's
floats). Rows reach the disk as they are written; the file is ``NAME.part`` until the run completes
(:class:`siamtrt.outputs.PartFile`), and ``-`` writes to stdout.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Optional, Union

import numpy as np

from ..errors import InputError
from ..outputs import PartFile

BOX_FORMATS = ("txt", "csv", "mot", "json")
CSV_HEADER = ("frame", "target", "x", "y", "w", "h", "score")
POLYGON_MODES = ("minmax", "area")


# ------------------------------------------------------------------------------------------------------ geometry
def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of x, y, w, h boxes (broadcasting over leading axes); 0 where either box is invalid
    (non-finite, or without positive width and height)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        iw = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
        ih = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
        iou = inter / union
    ok = valid_boxes(a) & valid_boxes(b) & np.isfinite(iou)
    return np.where(ok, np.clip(np.nan_to_num(iou), 0.0, 1.0), 0.0)


def valid_boxes(boxes: np.ndarray) -> np.ndarray:
    """True where a box is finite and has positive width and height."""
    b = np.asarray(boxes, np.float64)
    return np.all(np.isfinite(b), axis=-1) & (b[..., 2] > 0) & (b[..., 3] > 0)


def cxcywh_to_xywh(cxcywh: np.ndarray) -> np.ndarray:
    """Centre + size → top-left + size (x = cx − w/2): both references' output convention."""
    c = np.asarray(cxcywh, np.float64)
    return np.concatenate([c[..., :2] - c[..., 2:] / 2, c[..., 2:]], axis=-1)


def xywh_to_cxcywh(xywh: np.ndarray) -> np.ndarray:
    """Top-left + size → centre + size (cx = x + w/2), the inverse of :func:`cxcywh_to_xywh`."""
    b = np.asarray(xywh, np.float64)
    return np.concatenate([b[..., :2] + b[..., 2:] / 2, b[..., 2:]], axis=-1)


def init_centers(xywh: np.ndarray, flavour: str = "pysot") -> np.ndarray:
    """Where each reference puts the target centre at init.

    pysot (SiamRPNTracker.init) and OTB's evaluation: ``x + (w − 1)/2``; DaSiamRPN (0-based boxes): ``x + w/2``.
    """
    b = np.asarray(xywh, np.float64)
    if flavour == "pysot":
        return b[..., :2] + (b[..., 2:] - 1.0) / 2.0
    if flavour == "dasiamrpn":
        return b[..., :2] + b[..., 2:] / 2.0
    raise ValueError(f"unknown flavour {flavour!r}")


def iou_cxcywh(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of centre-form boxes (one against many, or row-wise)."""
    return iou_xywh(cxcywh_to_xywh(box), cxcywh_to_xywh(boxes))


def polygon_to_rect(poly: np.ndarray, mode: str = "minmax") -> np.ndarray:
    """VOT polygons [N, 8] (boxes [N, 4] come back unchanged) → axis-aligned x, y, w, h.

    ``minmax``: the polygon's bounding box. ``area``: pysot / VOT toolkit ``get_axis_aligned_bbox`` — the box of the
    same centre scaled to the polygon's area.
    """
    poly = np.asarray(poly, np.float64)
    if poly.ndim == 1:
        poly = poly[None]
    if poly.ndim != 2 or poly.shape[1] not in (4, 8):
        raise InputError(f"boxes must be [N, 4] or [N, 8] arrays, got shape {poly.shape}")
    if poly.shape[1] == 4:
        return poly.copy()
    if mode not in POLYGON_MODES:
        raise InputError(f"unknown polygon mode {mode!r}", evidence=f"valid: {', '.join(POLYGON_MODES)}")
    xs, ys = poly[:, 0::2], poly[:, 1::2]
    x1, x2 = xs.min(1), xs.max(1)
    y1, y2 = ys.min(1), ys.max(1)
    if mode == "minmax":
        return np.stack([x1, y1, x2 - x1, y2 - y1], 1)
    cx, cy = xs.mean(1), ys.mean(1)
    a1 = np.linalg.norm(poly[:, 0:2] - poly[:, 2:4], axis=1) * np.linalg.norm(poly[:, 2:4] - poly[:, 4:6], axis=1)
    a2 = (x2 - x1) * (y2 - y1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sqrt(a1 / a2)
    w, h = s * (x2 - x1) + 1, s * (y2 - y1) + 1
    # pysot tools/test.py turns (cx, cy, w, h) into x = cx - (w - 1) / 2: the OTB centre of the box is cx.
    return np.stack([cx - (w - 1) / 2, cy - (h - 1) / 2, w, h], 1)


# ------------------------------------------------------------------------------------------------- box files
def read_box_file(path: Union[str, Path], polygon: Optional[str] = "minmax") -> np.ndarray:
    """Per-frame boxes from a text file: ``x,y,w,h`` (OTB) or 8-value polygons (VOT).

    Separators may be commas, semicolons, tabs or spaces (OTB files mix them); a header line of words is skipped.
    ``NaN`` (or any non-finite or zero-area row) marks an absent target and comes back as a NaN row.

    Args:
        path (str | Path): the file.
        polygon (str): "minmax" or "area" turns 8-value rows into boxes (:func:`polygon_to_rect`); None returns
            the rows as they are ([N, 4] or [N, 8]). Defaults to "minmax".

    Raises:
        InputError: missing or unreadable file, no rows, ragged rows, or a column count other than 4 or 8.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise InputError(f"cannot read box file {path}", evidence=str(e),
                         fix="pass an existing x,y,w,h (or 8-value polygon) text file") from None
    rows: List[List[float]] = []
    for i, line in enumerate(lines):
        text = line.strip().strip(",; \t")
        if not text:
            continue
        parts = re.split(r"[,;\s]+", text)
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            if not rows and all(re.fullmatch(r"[A-Za-z_#][\w#]*", p) for p in parts):
                continue  # a header line
            vals = []
        if len(vals) not in (4, 8):
            raise InputError(f"box file {path}, line {i + 1}: expected 4 or 8 numbers (x,y,w,h or a polygon)",
                             evidence=repr(line[:80]), fix="one box per line: x,y,w,h (or x1,y1,...,x4,y4)")
        rows.append(vals)
    if not rows:
        raise InputError(f"box file {path} holds no boxes", fix="one box per line: x,y,w,h (or x1,y1,...,x4,y4)")
    widths = sorted({len(r) for r in rows})
    if polygon is None:
        if len(widths) != 1:
            raise InputError(f"box file {path} mixes 4-value boxes and 8-value polygons",
                             evidence=f"{len(rows)} lines, values per line: {widths}",
                             fix="write one x,y,w,h box (OTB) or one 8-value polygon (VOT) per frame")
        return np.asarray(rows, np.float64)
    boxes = np.stack([polygon_to_rect(np.asarray([r], np.float64), polygon)[0] for r in rows]) if len(widths) > 1 \
        else polygon_to_rect(np.asarray(rows, np.float64), polygon)
    boxes[~valid_boxes(boxes)] = np.nan
    return boxes


def box_format_for(path: Optional[Union[str, Path]], fmt: Optional[str] = None) -> str:
    """The format to write: ``fmt`` when given, else from the suffix (.csv, .json, .mot; anything else txt).

    Raises:
        InputError: unknown ``fmt``.
    """
    if fmt is not None:
        if fmt not in BOX_FORMATS:
            raise InputError(f"unknown box format {fmt!r}", evidence=f"valid: {', '.join(BOX_FORMATS)}",
                             fix="--format txt (pysot/OTB x,y,w,h), csv, mot or json")
        return fmt
    suffix = Path(str(path)).suffix.lower().lstrip(".") if path is not None else ""
    return suffix if suffix in BOX_FORMATS else "txt"


def _num(v: float) -> str:
    return repr(float(v))


class BoxWriter:
    """Streams one frame of N boxes at a time into a result file (see the module docstring for the formats).

    Args:
        path (str | Path): output file, or "-" for stdout.
        fmt (str): "txt", "csv", "mot" or "json". Defaults to None (from the suffix, else txt).

    ``write(frame, boxes, scores)`` appends a frame (boxes (N, 4), scores (N,)); ``commit()`` completes the file
    (renamed from ``NAME.part``); ``close()`` without commit leaves ``NAME.part`` with the frames written so far.
    Use as a context manager: a clean exit commits, an exception leaves the partial file.
    """

    def __init__(self, path: Union[str, Path], fmt: Optional[str] = None):
        self.fmt = box_format_for(path, fmt)
        self._out = PartFile(path)
        self.frames = 0
        if self.fmt == "csv":
            self._out.write(",".join(CSV_HEADER) + "\n")
        elif self.fmt == "json":
            self._out.write('{"format": "siamtrt-boxes/1", "frames": [\n')

    @property
    def where(self) -> str:
        return self._out.where

    def write(self, frame: int, boxes: np.ndarray, scores: np.ndarray) -> None:
        """Append one frame's boxes (N, 4) and scores (N,)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        if self.fmt == "txt":
            text = ",".join(_num(v) for v in boxes.ravel()) + "\n"
        elif self.fmt == "csv":
            text = "".join(f"{frame},{t}," + ",".join(_num(v) for v in (*b, s)) + "\n"
                           for t, (b, s) in enumerate(zip(boxes, scores)))
        elif self.fmt == "mot":
            text = "".join(f"{frame + 1},{t + 1}," + ",".join(_num(v) for v in (*b, s)) + ",-1,-1,-1\n"
                           for t, (b, s) in enumerate(zip(boxes, scores)))
        else:
            sep = "" if self.frames == 0 else ",\n"
            text = sep + json.dumps({"frame": int(frame), "boxes": boxes.tolist(), "scores": scores.tolist()})
        self._out.write(text)
        self.frames += 1

    def commit(self) -> Optional[Path]:
        if self.fmt == "json":
            self._out.write("\n]}\n")
        return self._out.commit()

    def close(self) -> Optional[Path]:
        return self._out.close()

    def __enter__(self) -> "BoxWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.close()


def read_results(path: Union[str, Path], fmt: Optional[str] = None) -> np.ndarray:
    """Boxes written by :class:`BoxWriter` back as (frames, N, 4) (scores: :func:`read_scores`); an interrupted
    run's ``NAME.part`` too (JSON included: its array is closed here)."""
    return _read(path, fmt)[0]


def read_scores(path: Union[str, Path], fmt: Optional[str] = None) -> Optional[np.ndarray]:
    """Scores written by :class:`BoxWriter` as (frames, N); None for txt (it holds no scores)."""
    return _read(path, fmt)[1]


def _partial_json_frames(text: str) -> List[dict]:
    """The frames of an interrupted run's JSON ``.part``: one frame object per line after the header, no closing
    ``]}``; a last line cut short by a killed process is dropped."""
    frames = []
    for line in text.splitlines()[1:]:
        line = line.strip().rstrip(",")
        if line in ("", "]}"):
            continue
        try:
            frames.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return frames


def _read(path: Union[str, Path], fmt: Optional[str]):
    path = Path(path)
    fmt = box_format_for(path.with_suffix("") if path.suffix == ".part" else path, fmt)
    text = path.read_text()
    if fmt == "json":
        frames = _partial_json_frames(text) if path.suffix == ".part" else json.loads(text)["frames"]
        if not frames:
            return np.zeros((0, 0, 4)), np.zeros((0, 0))
        return (np.asarray([f["boxes"] for f in frames], np.float64).reshape(len(frames), -1, 4),
                np.asarray([f["scores"] for f in frames], np.float64).reshape(len(frames), -1))
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if fmt == "txt":
        arr = np.asarray([[float(v) for v in ln.split(",")] for ln in lines], np.float64)
        return arr.reshape(len(arr), -1, 4), None
    rows = np.asarray([[float(v) for v in ln.split(",")] for ln in (lines[1:] if fmt == "csv" else lines)],
                      np.float64)
    frame_col = rows[:, 0].astype(np.int64) - (1 if fmt == "mot" else 0)
    n_frames = int(frame_col.max()) + 1 if len(rows) else 0
    n = int(rows[:, 1].max()) + (0 if fmt == "mot" else 1) if len(rows) else 0
    boxes = np.full((n_frames, n, 4), np.nan)
    scores = np.full((n_frames, n), np.nan)
    tcol = rows[:, 1].astype(np.int64) - (1 if fmt == "mot" else 0)
    boxes[frame_col, tcol] = rows[:, 2:6]
    scores[frame_col, tcol] = rows[:, 6]
    return boxes, scores


__all__ = ["BOX_FORMATS", "BoxWriter", "CSV_HEADER", "POLYGON_MODES", "box_format_for", "cxcywh_to_xywh",
           "init_centers", "iou_cxcywh", "iou_xywh", "polygon_to_rect", "read_box_file", "read_results",
           "read_scores", "valid_boxes", "xywh_to_cxcywh"]
