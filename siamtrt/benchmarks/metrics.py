"""One-pass evaluation (OPE) metrics, as the OTB toolkit defines them.

Definitions (OTB-2013/2015 toolkit, reproduced by got10k ``ExperimentOTB`` and pysot ``OPEBenchmark``):

- boxes are ``x, y, w, h`` in pixels; IoU is continuous (no ``+1`` on widths); a box's centre is
  ``x + (w - 1) / 2``.
- **success curve**: fraction of frames whose IoU is strictly greater than ``t``, for the 21 thresholds
  ``t = 0, 0.05, ..., 1``. The **success score** ("AUC" in the OTB papers) is the mean of those 21 values. Because
  the comparison is strict, the point at ``t = 1`` is always 0, so a perfect tracker scores 20/21 = 0.952 — exactly
  what the OTB toolkit, got10k and pysot report. The exact area under the continuous curve equals the mean IoU
  (``average_overlap``), which is 1 for a perfect tracker; both are reported.
- **precision curve**: fraction of frames whose centre error is at most ``d`` pixels, ``d = 0..50``; the
  **precision score** is the value at 20 px.
- **normalised precision** (TrackingNet / LaSOT, pysot): centre error divided by the ground-truth width/height,
  thresholds ``0..0.5`` in 51 steps; reported at 0.2 (pysot's score) and as the curve's mean (LaSOT's AUC).

Frames whose ground truth is invalid (NaN, w <= 0 or h <= 0) stay in the denominator and count as failures in every
curve; predictions that are NaN or empty count as failures as well. Frame 0 is scored like any other frame: OPE
runners write the initial box there (IoU 1), as pysot and got10k do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence

import numpy as np

from ..errors import InputError
from ..runtime.boxes import init_centers, iou_xywh, valid_boxes

IOU_THRESHOLDS = np.linspace(0.0, 1.0, 21)
CENTER_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_THRESHOLDS = np.linspace(0.0, 0.5, 51)
PRECISION_AT_PX = 20
NORM_PRECISION_AT = 0.2


def as_boxes(boxes: np.ndarray, what: str = "boxes") -> np.ndarray:
    """Check and convert to a float64 [N, 4] array (x, y, w, h)."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InputError(f"{what} must be an [N, 4] array of x, y, w, h", evidence=f"shape {arr.shape}",
                         fix="convert polygons with siamtrt.runtime.sequences.polygon_to_rect first")
    return arr


def valid_mask(boxes: np.ndarray) -> np.ndarray:
    """True where a box is finite and has positive width and height."""
    return valid_boxes(as_boxes(boxes))


def box_centers(boxes: np.ndarray) -> np.ndarray:
    """OTB centre convention: ``x + (w - 1) / 2`` (pysot's)."""
    return init_centers(as_boxes(boxes), "pysot")


def rect_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame IoU of two [N, 4] box arrays; 0 where either box is invalid (:func:`siamtrt.runtime.boxes.iou_xywh`)."""
    a, b = as_boxes(pred, "predicted boxes"), as_boxes(gt, "ground-truth boxes")
    _same_length(a, b)
    return iou_xywh(a, b)


def center_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame Euclidean distance between box centres (pixels); +inf where either box is invalid."""
    a, b = as_boxes(pred, "predicted boxes"), as_boxes(gt, "ground-truth boxes")
    _same_length(a, b)
    err = np.linalg.norm(box_centers(a) - box_centers(b), axis=1)
    err[~(valid_mask(a) & valid_mask(b))] = np.inf
    return err


def normalized_center_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Centre error with each axis divided by the ground-truth width / height (pysot's normalised precision)."""
    a, b = as_boxes(pred, "predicted boxes"), as_boxes(gt, "ground-truth boxes")
    _same_length(a, b)
    ok = valid_mask(a) & valid_mask(b)
    err = np.full(len(a), np.inf)
    if ok.any():
        d = (box_centers(a[ok]) - box_centers(b[ok])) / b[ok, 2:]
        err[ok] = np.linalg.norm(d, axis=1)
    return err


def success_curve(ious: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with IoU > t for each threshold (strict, as OTB)."""
    ious = np.asarray(ious, np.float64)
    if ious.size == 0:
        raise InputError("cannot score an empty sequence", fix="check that the sequence has frames")
    return (ious[:, None] > np.asarray(thresholds)[None, :]).mean(axis=0)


def precision_curve(errors: np.ndarray, thresholds: np.ndarray = CENTER_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with centre error <= d for each threshold."""
    errors = np.asarray(errors, np.float64)
    if errors.size == 0:
        raise InputError("cannot score an empty sequence", fix="check that the sequence has frames")
    return (errors[:, None] <= np.asarray(thresholds)[None, :]).mean(axis=0)


@dataclass
class OPEScores:
    """Curves and scores of one sequence, or the mean over sequences (curves averaged first, as OTB/got10k do)."""

    success_curve: np.ndarray
    precision_curve: np.ndarray
    norm_precision_curve: np.ndarray
    average_overlap: float
    frames: int
    sequences: int = 1
    per_sequence: Dict[str, "OPEScores"] = field(default_factory=dict)

    @property
    def success_score(self) -> float:
        """OTB success score ("AUC"): mean of the 21-point success curve."""
        return float(np.mean(self.success_curve))

    @property
    def precision_score(self) -> float:
        """Precision at 20 px."""
        return float(self.precision_curve[PRECISION_AT_PX])

    @property
    def norm_precision_score(self) -> float:
        """Normalised precision at 0.2 (pysot)."""
        return float(self.norm_precision_curve[int(round(NORM_PRECISION_AT / 0.01))])

    @property
    def norm_precision_auc(self) -> float:
        """Mean of the normalised precision curve over 0..0.5 (LaSOT)."""
        return float(np.mean(self.norm_precision_curve))

    @property
    def success_rate(self) -> float:
        """Fraction of frames with IoU > 0.5 (the success curve at its middle threshold)."""
        return float(self.success_curve[len(IOU_THRESHOLDS) // 2])

    def to_dict(self, curves: bool = True, per_sequence: bool = True) -> Dict:
        d = {"success_score": self.success_score, "precision_score": self.precision_score,
             "norm_precision_score": self.norm_precision_score, "norm_precision_auc": self.norm_precision_auc,
             "success_rate": self.success_rate, "average_overlap": self.average_overlap,
             "frames": self.frames, "sequences": self.sequences}
        if curves:
            d.update(success_curve=self.success_curve.tolist(), precision_curve=self.precision_curve.tolist(),
                     norm_precision_curve=self.norm_precision_curve.tolist())
        if per_sequence and self.per_sequence:
            d["per_sequence"] = {k: v.to_dict(curves=curves, per_sequence=False)
                                 for k, v in self.per_sequence.items()}
        return d


def evaluate_sequence(pred: np.ndarray, gt: np.ndarray) -> OPEScores:
    """OPE curves and scores of one sequence.

    Args:
        pred (np.ndarray): [N, 4] tracker boxes, frame 0 = the initial box.
        gt (np.ndarray): [N, 4] ground-truth boxes.

    Returns:
        OPEScores: the three curves, scores and mean IoU.

    Raises:
        InputError: shapes differ or the sequence is empty.
    """
    ious = rect_iou(pred, gt)
    return OPEScores(success_curve=success_curve(ious),
                     precision_curve=precision_curve(center_error(pred, gt)),
                     norm_precision_curve=precision_curve(normalized_center_error(pred, gt), NORM_THRESHOLDS),
                     average_overlap=float(np.mean(ious)), frames=len(ious))


def aggregate(scores: Dict[str, OPEScores]) -> OPEScores:
    """Overall scores: the mean of the per-sequence curves (every sequence weighs the same, as in OTB)."""
    if not scores:
        raise InputError("no sequences to aggregate", fix="evaluate at least one sequence")
    vals: List[OPEScores] = list(scores.values())
    return OPEScores(success_curve=np.mean([s.success_curve for s in vals], axis=0),
                     precision_curve=np.mean([s.precision_curve for s in vals], axis=0),
                     norm_precision_curve=np.mean([s.norm_precision_curve for s in vals], axis=0),
                     average_overlap=float(np.mean([s.average_overlap for s in vals])),
                     frames=int(sum(s.frames for s in vals)), sequences=len(vals), per_sequence=dict(scores))


def _same_length(a: np.ndarray, b: Sequence) -> None:
    if len(a) != len(b):
        raise InputError("predicted and ground-truth boxes differ in length",
                         evidence=f"{len(a)} predicted vs {len(b)} ground-truth frames",
                         fix="the result file must hold one box per frame of the sequence (re-run with --force)")
