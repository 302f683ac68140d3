"""Evidence for the tracking modes on real frames: synthetic scenarios over bag.avi backgrounds.

Two scenarios, rendered like :mod:`.synthetic` (a procedural texture composited over real video frames, exact
ground truth):

* ``reenter`` — the target moves, then leaves the scene (is not drawn) for ``gap`` ≥ 30 frames, and re-enters
  *elsewhere*: on the far side of the frame, outside any local search region. Scored over the frames after the
  re-entry (the ones where the target is visible again).
* ``distractor`` — a same-looking object (the target's texture with two of its shapes recoloured) crosses the
  target's path, drawn over it for a few frames, then both move apart. Scored over the frames after the crossing.

Success rate = fraction of the scored frames with IoU(tracker box, ground truth) ≥ 0.5, per seed and mode.
:func:`run_modes` runs every mode on every seed (one tracker per mode over the same model directory) and
:func:`write_report` writes the table, a JSON and a PNG.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError
from ..runtime.boxes import iou_xywh
from .synthetic import _affine, _backgrounds, make_texture

SCENARIOS = ("reenter", "distractor")


@dataclass(frozen=True)
class Scenario:
    """One synthetic mode-evidence sequence."""

    kind: str = "reenter"
    seed: int = 0
    frames: int = 80
    gap: int = 30  # reenter: frames the target is absent
    object_size: Tuple[int, int] = (60, 48)
    background_start: int = 0


@dataclass
class Rendered:
    frames: List[np.ndarray]
    boxes: np.ndarray  # (F, 4) x, y, w, h, NaN where the target is absent
    scored: np.ndarray  # (F,) bool: frames the success rate is computed over
    distractor_boxes: Optional[np.ndarray] = None


def _compose(bg: np.ndarray, tex: np.ndarray, cx: float, cy: float) -> Tuple[np.ndarray, np.ndarray]:
    import cv2

    h, w = tex.shape[:2]
    m = _affine((w, h), cx, cy, 1.0, 0.0)
    fh, fw = bg.shape[:2]
    warped = cv2.warpAffine(tex, m, (fw, fh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.warpAffine(np.full((h, w), 255, np.uint8), m, (fw, fh), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT)[..., None].astype(np.float32) / 255.0
    out = (bg.astype(np.float32) * (1 - alpha) + warped.astype(np.float32) * alpha + 0.5).astype(np.uint8)
    box = np.array([cx - (w - 1) / 2, cy - (h - 1) / 2, w, h], np.float64)
    return out, box


def _lookalike(tex: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The target's texture with two blobs recoloured: same look at a glance, different in detail."""
    import cv2

    out = tex.copy()
    h, w = tex.shape[:2]
    for _ in range(2):
        colour = tuple(float(c) for c in rng.integers(0, 256, 3))
        cv2.circle(out, (int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4))),
                   int(min(w, h) // 4), colour, -1, lineType=cv2.LINE_AA)
    return out


def render(sc: Scenario, background: Union[str, Path]) -> Rendered:
    """Frames, ground truth and scored-frame mask of one scenario."""
    if sc.kind not in SCENARIOS:
        raise InputError(f"unknown scenario {sc.kind!r}; fix: use one of {', '.join(SCENARIOS)}")
    rng = np.random.default_rng(sc.seed)
    tex = make_texture(sc.object_size, rng)
    bgs = _backgrounds(Path(background), sc.background_start, sc.frames)
    fh, fw = bgs[0].shape[:2]
    w, h = sc.object_size
    margin = max(w, h)
    frames: List[np.ndarray] = []
    boxes = np.full((sc.frames, 4), np.nan)
    scored = np.zeros(sc.frames, bool)
    side = 1 if rng.random() < 0.5 else -1
    y0 = rng.uniform(fh * 0.3, fh * 0.7)
    if sc.kind == "reenter":
        if sc.frames < sc.gap + 20:
            raise InputError(f"reenter needs frames >= gap + 20 (got {sc.frames}, gap {sc.gap})")
        leave = (sc.frames - sc.gap) // 2
        back = leave + sc.gap
        x_a = fw / 2 - side * fw * 0.3  # first appearance on one side ...
        x_b = fw / 2 + side * fw * 0.33  # ... re-entry on the other, outside the local search region
        y_b = np.clip(fh - y0 + rng.uniform(-40, 40), margin, fh - margin)
        for i, bg in enumerate(bgs):
            if i < leave:
                u = i / max(leave - 1, 1)
                cx, cy = x_a + side * 40 * u, y0 + 25 * math.sin(3 * u)
            elif i < back:
                frames.append(bg.copy())
                continue
            else:
                u = (i - back) / max(sc.frames - back - 1, 1)
                cx, cy = x_b - side * 40 * u, y_b + 25 * math.sin(3 * u)
                scored[i] = True
            f, boxes[i] = _compose(bg, tex, cx, cy)
            frames.append(f)
        return Rendered(frames, boxes, scored)
    # distractor: the look-alike crosses the target's path, over it, then both part
    look = _lookalike(tex, rng)
    dboxes = np.full((sc.frames, 4), np.nan)
    cross = sc.frames // 3
    for i, bg in enumerate(bgs):
        u = i / (sc.frames - 1)
        tx = fw / 2 - side * fw * 0.12 + side * fw * 0.1 * u
        ty = y0 + 20 * math.sin(2 * math.pi * u)
        # distractor: from the far side towards the target, over it at `cross`, then away on the other side
        dx = tx + side * (fw * 0.35) * (1 - i / cross) if i < cross else tx - side * 3.0 * (i - cross)
        dy = ty + 6 * math.sin(5 * u) - (i - cross) * 2.0 * (i > cross)
        f, boxes[i] = _compose(bg, tex, tx, ty)
        f, dboxes[i] = _compose(f, look, dx, dy)
        frames.append(f)
        scored[i] = i > cross + 5
    return Rendered(frames, boxes, scored, dboxes)


def standin_frames(background: Union[str, Path], seeds: Sequence[int] = (100, 101, 102, 103),
                   every: int = 8) -> List[Tuple[np.ndarray, Tuple[float, ...]]]:
    """(frame, box) pairs to fit the matching-head stand-in on (``export_model(..., frames=...)``): frames of
    ``reenter`` renders with seeds disjoint from the evaluated ones (0…), every ``every``-th visible frame."""
    out = []
    for s in seeds:
        r = render(Scenario(kind="reenter", seed=int(s)), background)
        idx = [i for i in range(len(r.frames)) if not np.isnan(r.boxes[i, 0])][::every]
        out += [(r.frames[i], tuple(float(v) for v in r.boxes[i])) for i in idx]
    return out


def make_standin(out_dir: Union[str, Path], background: Union[str, Path], config: str = "siamrpn_alex_dwxcorr",
                 lost_instance_size: int = 831, seed: int = 0) -> Path:
    """Export the evidence stand-in: ``--random-heads matching`` fitted on :func:`standin_frames`, with the long-term
    search size (needs torch; the README's mode figures use this directory)."""
    from ..export.onnx import export_model

    export_model(config, out_dir, random_heads="matching", frames=standin_frames(background),
                 lost_instance_size=lost_instance_size, seed=seed)
    return Path(out_dir)


#: TrackConfig overrides for the stand-in: its cls logits are ~15 on the target and ~2 off it, so pysot's
#: CONFIDENCE_LOW/HIGH (0.8 / 0.998, for trained weights) never fire; these sit between the two.
STANDIN_CONSTANTS = {"confidence_low": 0.99, "confidence_high": 0.9999}


def track_scenario(tracker, r: Rendered) -> Dict[str, np.ndarray]:
    """Run one initialised-per-call tracker over a rendered scenario: boxes, scores, lost flags, search sizes."""
    tracker.init(r.frames[0], r.boxes[0])
    n = len(r.frames)
    boxes = np.zeros((n, 4))
    scores, lost, inst = np.ones(n), np.zeros(n, bool), np.zeros(n, np.int64)
    boxes[0] = r.boxes[0]
    times = np.zeros(n)
    import time

    for i in range(1, n):
        t0 = time.perf_counter()
        res = tracker.track(r.frames[i])
        times[i] = time.perf_counter() - t0
        boxes[i], scores[i], lost[i], inst[i] = res.bbox, res.score, res.lost[0], res.instance_size[0]
    return {"boxes": boxes, "scores": scores, "lost": lost, "instance_size": inst, "seconds": times}


def success_rate(r: Rendered, boxes: np.ndarray) -> float:
    """Fraction of the scored frames with IoU ≥ 0.5."""
    ious = iou_xywh(boxes[r.scored], r.boxes[r.scored])
    return float(np.mean(ious >= 0.5)) if len(ious) else float("nan")


def run_modes(model_dir: Union[str, Path], background: Union[str, Path], kinds: Sequence[str] = SCENARIOS,
              modes: Sequence[str] = ("short", "longterm", "distractor", "longterm+distractor"),
              seeds: Sequence[int] = range(10), frames: int = 80, constants: Optional[Dict[str, float]] = None,
              progress: bool = True, threads: int = 1, partial: Optional[Union[str, Path]] = None) -> Dict:
    """Success rate per (scenario, mode, seed) on one model directory.

    Args:
        model_dir: exported directory (long-term modes need ``--lost-instance-size``).
        background: video whose frames are the backgrounds (``../shared/data/bag.avi``).
        constants (dict): TrackConfig overrides applied to every mode (e.g. confidence thresholds fitted to a
            stand-in's score range). Defaults to None.
        partial (str | Path): rewrite this JSON with the rates so far after every sequence (long runs). Defaults to
            None.

    Returns:
        dict: {"results": {kind: {mode: [rate per seed]}}, "weights": …, "constants": …, "scenario": …}.
    """
    import dataclasses

    from tqdm import tqdm

    from ..runtime import Tracker
    from .fps_modes import weights_label

    base = Tracker.from_model_dir(model_dir, backend="onnxruntime", threads=threads)
    info = base.info
    if constants:
        info = dataclasses.replace(info, track=dataclasses.replace(info.track, **constants))
    trackers = {m: Tracker(base.backend, info, mode=m) for m in modes}
    out: Dict[str, Dict[str, List[float]]] = {k: {m: [] for m in modes} for k in kinds}
    frame_ms: Dict[str, List[float]] = {m: [] for m in modes}
    jobs = [(k, s) for k in kinds for s in seeds]
    bar = tqdm(jobs, desc="modes", unit="seq", disable=not progress, leave=False)
    for kind, seed in bar:
        r = render(Scenario(kind=kind, seed=int(seed), frames=frames), background)
        for m, trk in trackers.items():
            res = track_scenario(trk, r)
            out[kind][m].append(success_rate(r, res["boxes"]))
            frame_ms[m].append(1000 * float(np.median(res["seconds"][1:])))
        if partial is not None:
            Path(partial).parent.mkdir(parents=True, exist_ok=True)
            Path(partial).write_text(json.dumps({"done": [kind, int(seed)], "results": out}))
    bar.close()
    weights = weights_label(info.meta)
    return {"model": str(model_dir), "arch": info.meta.get("arch"), "weights": weights,
            "constants": constants or {}, "frames": frames, "seeds": [int(s) for s in seeds],
            "scenario": asdict(Scenario()), "results": out,
            "median_frame_ms": {m: float(np.median(v)) for m, v in frame_ms.items()}}


def table(report: Dict) -> str:
    """Mean ± sd success rate per scenario and mode, labelled with the weights."""
    lines = [f"mode evidence: {report['arch']} [{report['weights']}], {len(report['seeds'])} seeds x "
             f"{report['frames']} frames, success = IoU >= 0.5 over the scored frames"]
    modes = list(next(iter(report["results"].values())))
    lines.append("scenario     " + "".join(f"{m:>22}" for m in modes))
    for kind, per in report["results"].items():
        cells = "".join(f"{np.mean(v):>15.2f} ± {np.std(v):.2f}" for v in per.values())
        lines.append(f"{kind:<13}{cells}")
    return "\n".join(lines)


def write_report(report: Dict, out_dir: Union[str, Path]) -> Tuple[Path, Path]:
    """modes.json + modes.png (bars: mean success per scenario and mode, seeds as dots) in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jpath = out / "modes.json"
    jpath.write_text(json.dumps(report, indent=1))
    kinds = list(report["results"])
    modes = list(report["results"][kinds[0]])
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(modes)
    for j, m in enumerate(modes):
        xs = np.arange(len(kinds)) + j * width
        vals = [report["results"][k][m] for k in kinds]
        ax.bar(xs, [np.mean(v) for v in vals], width, label=m)
        for x, v in zip(xs, vals):
            ax.plot(np.full(len(v), x), v, "k.", ms=3)
    ax.set_xticks(np.arange(len(kinds)) + 0.4 - width / 2)
    ax.set_xticklabels(kinds)
    ax.set_ylabel("success rate (IoU >= 0.5)")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{report['arch']} — weights: {report['weights']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    ppath = out / "modes.png"
    fig.savefig(ppath, dpi=120)
    plt.close(fig)
    return jpath, ppath


__all__ = ["SCENARIOS", "STANDIN_CONSTANTS", "Scenario", "make_standin", "render", "run_modes", "standin_frames", "success_rate", "table", "track_scenario",
           "write_report"]
