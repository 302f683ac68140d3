"""Tracking modes: policies over the one Tracker's state and backend calls (no forked tracker, no copied
post-processing). The tracker asks a mode which instance size each target searches at, which kernels the search
uses, and how the post-processed step updates the state; everything else (crop, backend, decode, penalties,
window, smoothing, clipping) is the short-term code path.

* ``short`` — pysot ``SiamRPNTracker`` / DaSiamRPN ``SiamRPN_track``, bit for bit what it always was.
* ``longterm`` — pysot ``SiamRPNLTTracker`` (pysot/tracker/siamrpnlt_tracker.py): a target whose best score falls
  below ``confidence_low`` enters the lost state; while lost it searches at ``lost_instance_size`` (831: score map
  97×97, anchors and window rebuilt for that size) with window influence ``lost_window_influence`` (0.001), and it
  leaves the lost state when the best score exceeds ``confidence_high``. The state (centre, size) is only updated
  when the best score is ≥ ``confidence_low``. pysot stores it *before* clipping; here it is stored clipped to the
  frame (the state bound of :mod:`siamtrt.runtime.geometry`, a documented deviation that acts only when a step leaves
  the frame or outgrows it: docs/runtime.md "Safety bounds"). Where
  pysot is silent, DaSiamRPN's local-to-global growth: with ``lost_growth_step`` k > 0 the lost search grows by k
  crop pixels per consecutive lost frame, until the crop covers the whole frame or reaches the lost size.
* ``distractor`` — DaSiamRPN's distractor-aware module (Zhu et al., ECCV 2018, §4.2, eq. 2–4): after each frame the
  proposals that survive NMS, other than the chosen target, with score above ``distractor_threshold`` (at most
  ``distractor_max``) are distractors d_i. Their embeddings are the template branch's kernels of a template-size
  crop at each distractor (one batched template call per frame that found any); they are accumulated with
  per-frame decay ``1 − distractor_lr`` (the paper's β_t weights, α_i = 1). Because the correlation is linear in the
  kernel, the paper's re-ranking f(z, p) − α̂·Σβα f(d, p)/Σβα is one search with the classification kernel
  K = (K_z − α̂·D̄) / (1 − α̂), D̄ the weighted mean distractor kernel (the division keeps a uniform response at
  its level, so score thresholds keep their meaning); the regression kernels stay the target's (the paper
  re-ranks proposals, it does not move them). One search per frame at the same cost as short mode's (one call,
  same shapes), plus one batched template call (a crop per distractor) on each frame that found distractors: a
  sequence with distractors on every frame costs more per frame than short mode by that call (docs/runtime.md
  "Measured" gives the medians). Distractor kernels that are not finite are left out ("Safety bounds" there).
* ``longterm+distractor`` — both (the paper's long-term tracker).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from ..config import MODES, TrackConfig
from ..errors import InputError, ModelDirError
from .boxes import iou_cxcywh


@dataclass(frozen=True)
class Mode:
    """A parsed mode name."""

    name: str
    longterm: bool
    distractor: bool

    @property
    def short(self) -> bool:
        return not (self.longterm or self.distractor)


def parse_mode(mode: str) -> Mode:
    """"short" | "longterm" | "distractor" | "longterm+distractor" (either order) → Mode.

    Raises:
        InputError: unknown mode (names the closest; its fix lists the valid names).
    """
    parts = sorted(p.strip() for p in str(mode).split("+"))
    canon = {"short": "short", "longterm": "longterm", "distractor": "distractor",
             "distractor+longterm": "longterm+distractor"}.get("+".join(parts))
    if canon is None:
        close = difflib.get_close_matches(str(mode).lower(), list(MODES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(f"unknown tracking mode {mode!r}{hint}", fix=f"use one of {', '.join(MODES)}")
    return Mode(canon, "longterm" in canon, "distractor" in canon)


def check_mode(mode: Mode, info) -> None:
    """Refuse a mode the model directory cannot run (the fix names the export flag).

    Raises:
        ModelDirError: long-term mode on a directory exported without the lost search size; a growth step that is
        not a multiple of the anchor stride.
    """
    t: TrackConfig = info.track
    if mode.longterm and t.lost_instance_size is None:
        raise ModelDirError(f"{info.path}: mode {mode.name!r} needs the long-term search size, which this model "
                            f"directory was exported without",
                            fix=f"re-export with siamtrt export --config {info.meta.get('arch', 'NAME')} "
                                f"[--checkpoint model.pth] --lost-instance-size 831 --out DIR")
    if mode.longterm and t.lost_growth_step % info.anchor.stride:
        raise ModelDirError(f"{info.path}: lost_growth_step {t.lost_growth_step} is not a multiple of the anchor "
                            f"stride {info.anchor.stride}", fix=f"use a multiple of {info.anchor.stride} (or 0)")


# ------------------------------------------------------------------------------------------------ long-term
def lost_instance_sizes(t: TrackConfig, base: np.ndarray, steps: np.ndarray, s_z: np.ndarray,
                        center: np.ndarray, frame_wh: Tuple[int, int]) -> np.ndarray:
    """Search size of targets in the lost state, ``steps`` ≥ 1 = consecutive lost frames so far.

    Step 0 (pysot): the lost size. Step k > 0 (DaSiamRPN local-to-global): base + k·steps, capped at the lost size
    and at the first ladder size whose crop (side s_z·I/E, both flavours) covers the whole frame.
    """
    lost = np.full(len(base), int(t.lost_instance_size), np.int64)
    k = int(t.lost_growth_step)
    if k == 0:
        return lost
    w, h = frame_wh
    reach = np.max(np.stack([center[:, 0], w - center[:, 0], center[:, 1], h - center[:, 1]], 1), axis=1)
    cover = 2 * reach * t.exemplar_size / s_z  # crop pixels whose crop reaches the farthest frame edge
    cover_steps = np.maximum(1, np.ceil((cover - base) / k)).astype(np.int64)
    size = base + k * np.minimum(steps, cover_steps)
    return np.minimum(size, lost)


def longterm_update(t: TrackConfig, score: np.ndarray, step_center: np.ndarray, step_size: np.ndarray,
                    old_center: np.ndarray, old_size: np.ndarray, lost: np.ndarray):
    """SiamRPNLTTracker's state machine for N targets.

    Args:
        step_center, step_size: this frame's step, already under the state bound (pysot would store it unclipped).

    Returns:
        (center, size, lost): the stored state — the step where score ≥ confidence_low, else the old one — and the
        lost flags after this frame (enter below confidence_low, leave above confidence_high).
    """
    ok = score >= t.confidence_low
    center = np.where(ok[:, None], step_center, old_center)
    size = np.where(ok[:, None], step_size, old_size)
    new_lost = np.where(score < t.confidence_low, True, np.where(score > t.confidence_high, False, lost))
    return center, size, new_lost


# ------------------------------------------------------------------------------------------------ distractor
#: proposals considered per target (highest scores) before NMS
DISTRACTOR_CANDIDATES = 64


def find_distractors(t: TrackConfig, score: np.ndarray, boxes: np.ndarray, best: np.ndarray,
                     center: np.ndarray, scale_z: np.ndarray) -> List[np.ndarray]:
    """Per target, the (M, 2) frame-pixel centres of this frame's distractors (M ≤ distractor_max).

    Proposals = the anchors' decoded boxes with their un-penalised scores; greedy NMS seeded with the chosen target
    box (a proposal is suppressed by a kept one when their IoU exceeds distractor_nms_iou or its centre lies inside
    the kept box), so the target and the proposals on it are not distractors; the survivors above
    distractor_threshold, best first. Proposals whose box is not finite (NaN / inf network outputs) are skipped.

    Args:
        score (np.ndarray): (N, K) every anchor's score. boxes (np.ndarray): (N, 4, K) every anchor's decoded box
            (cx, cy, w, h in crop pixels, :func:`~siamtrt.runtime.geometry.decode`). best (np.ndarray): (N,) chosen
            anchors. center (np.ndarray): (N, 2) crop centres. scale_z (np.ndarray): (N,) crop scales.
    """
    n, k = score.shape
    out = []
    top = min(DISTRACTOR_CANDIDATES, k)
    for r in range(n):
        sc = score[r]
        cand = np.argpartition(-sc, top - 1)[:top]
        cand = cand[sc[cand] > t.distractor_threshold]
        if t.distractor_max == 0 or cand.size == 0:
            out.append(np.zeros((0, 2)))
            continue
        cand = cand[np.argsort(-sc[cand], kind="stable")]
        idx = np.concatenate([[best[r]], cand[cand != best[r]]])
        cands = boxes[r][:, idx].T  # (m, 4) cx, cy, w, h
        alive = np.isfinite(cands).all(1)
        kept: List[int] = []
        for i in range(len(idx)):
            if not alive[i]:
                continue
            if i > 0:
                kept.append(i)
                if len(kept) == t.distractor_max:
                    break
            rest = cands[i + 1:]
            inside = (np.abs(rest[:, 0] - cands[i, 0]) <= cands[i, 2] / 2) & \
                (np.abs(rest[:, 1] - cands[i, 1]) <= cands[i, 3] / 2)
            alive[i + 1:] &= (iou_cxcywh(cands[i], rest) <= t.distractor_nms_iou) & ~inside
        out.append(center[r] + cands[kept, :2] / scale_z[r] if kept else np.zeros((0, 2)))
    return out


class DistractorMemory:
    """Accumulated distractor kernels per target: S ← (1 − η)·S + Σ_i K(d_i), W ← (1 − η)·W + n (float64).

    ``changed`` is set when distractors were added (or targets selected / appended): the merged kernels then need
    recomputing. A decay alone leaves the weighted mean S/W, hence the merged kernels, unchanged.
    """

    def __init__(self, n: int, kernels: Dict[str, np.ndarray]):
        self.sums = {k: np.zeros(v.shape, np.float64) for k, v in kernels.items() if k.startswith("cls")}
        self.weight = np.zeros(n, np.float64)
        self.changed = True

    def select(self, keep: np.ndarray) -> "DistractorMemory":
        m = DistractorMemory.__new__(DistractorMemory)
        m.sums = {k: v[keep] for k, v in self.sums.items()}
        m.weight = self.weight[keep]
        m.changed = True
        return m

    def extend(self, other: "DistractorMemory") -> "DistractorMemory":
        m = DistractorMemory.__new__(DistractorMemory)
        m.sums = {k: np.concatenate([v, other.sums[k]]) for k, v in self.sums.items()}
        m.weight = np.concatenate([self.weight, other.weight])
        m.changed = True
        return m

    @property
    def active(self) -> bool:
        """Some target has a distractor (its search then uses merged kernels)."""
        return bool((self.weight > 0).any())

    def update(self, lr: float, owner: np.ndarray, kernels: Dict[str, np.ndarray], base: Dict[str, np.ndarray],
               weight: float) -> int:
        """Decay every target's memory, then add the distractor kernels (row i belongs to target ``owner[i]``).

        Rows whose stored (classification) kernels are not finite are left out, as if not found: one NaN / inf in S
        would make every later merged kernel of that target NaN. So are all this frame's rows of a target whose merged
        kernel (:meth:`merge_into` of ``base`` with ``weight``) they would make overflow the kernels' dtype: finite
        but huge kernels (a float32 mean beyond about 3.4e38·(1 − α̂)/α̂) overflow there, not in S (float64, bounded
        by the float32 maximum times 1/η). Returns how many rows were left out.
        """
        ok = np.ones(len(owner), bool)
        if len(owner):
            for k in self.sums:
                ok &= np.isfinite(kernels[k]).reshape(len(owner), -1).all(1)
        rows = np.unique(owner[ok])
        kept_w, kept = self.weight[rows], {k: s[rows] for k, s in self.sums.items()}  # copies: the rows before
        decay = 1.0 - lr
        self.weight *= decay
        for s in self.sums.values():
            s *= decay
        for i in np.flatnonzero(ok):  # in row order, as np.add.at would (a slice add per row: ~7x faster here)
            self.weight[owner[i]] += 1.0
            for k, s in self.sums.items():
                s[owner[i]] += kernels[k][i]  # float64 += float32: cast, then added
        for i in np.flatnonzero(self._overflowing(rows, base, weight)):  # that target learns nothing: decay only
            ok &= owner != rows[i]
            self.weight[rows[i]] = kept_w[i] * decay
            for k, s in self.sums.items():
                s[rows[i]] = kept[k][i] * decay
        self.changed |= bool(ok.any())
        return len(ok) - int(ok.sum())

    def _overflowing(self, rows: np.ndarray, base: Dict[str, np.ndarray], weight: float) -> np.ndarray:
        """Which of ``rows`` have a merged kernel that is not finite in the kernels' dtype. A bound first,
        (max|K_z| + α̂·max|S|/W)/(1 − α̂) ≤ the dtype's maximum, clears every normal row in one pass over it; only a
        row above the bound is merged exactly."""
        over = np.zeros(len(rows), bool)
        for i, r in enumerate(rows):
            for k, s in self.sums.items():
                kz, w = base[k][r], self.weight[r]
                if (np.abs(kz).max(initial=0.0) + weight * np.abs(s[r]).max(initial=0.0) / w) / (1.0 - weight) \
                        <= np.finfo(kz.dtype).max:
                    continue
                with np.errstate(over="ignore"):
                    over[i] |= not np.isfinite(_merged(kz[None], s[r][None], np.array([w]), weight)
                                               .astype(kz.dtype)).all()
        return over

    def merge_into(self, base: Dict[str, np.ndarray], out: Dict[str, np.ndarray], weight: float) -> None:
        """Write (K_z − α̂·S/W)/(1 − α̂) into ``out[name]`` (persistent arrays shaped like ``base``) for the
        classification kernels (names starting "cls": the similarity the paper re-ranks by); rows of targets with
        no distractor (W = 0) get K_z."""
        has = self.weight > 0
        for k, arr in out.items():
            kz = base[k]
            np.copyto(arr, kz)
            if has.any():
                arr[has] = _merged(kz[has], self.sums[k][has], self.weight[has], weight).astype(kz.dtype)


def _merged(kz: np.ndarray, s: np.ndarray, w: np.ndarray, weight: float) -> np.ndarray:
    """(K_z − α̂·S/W)/(1 − α̂) in float64, for rows with W > 0 (the one formula the update's bound checks)."""
    mean = s / w.reshape((-1,) + (1,) * (kz.ndim - 1))
    return (kz.astype(np.float64) - weight * mean) / (1.0 - weight)


__all__ = ["DistractorMemory", "Mode", "MODES", "check_mode", "find_distractors", "longterm_update",
           "lost_instance_sizes", "parse_mode"]
