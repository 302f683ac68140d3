"""Evidence for the tracking modes on real frames: synthetic scenarios over bag.avi backgrounds.

Scenarios, rendered like :mod:`.synthetic` (a procedural texture composited over real video frames, exact
ground truth):

* ``reenter`` — the target moves, then vanishes (is not drawn) for ``gap`` ≥ 30 frames, and reappears
  *elsewhere*: on the far side of the frame, outside any local search region. Scored over the frames after the
  re-entry (the ones where the target is visible again). The scenario the long-term constants were tuned on.
* ``exit`` — the target walks out of the frame across one edge (``exit``: left, right, top or bottom), stays out
  for ``gap`` frames, and walks back in across the same edge or the opposite one (``reentry``), at another place
  along it. Scored over the frames after it is fully inside again. :data:`EXIT_VARIANTS` names the variants the
  figures use (different exits, gaps of 10 / 30 / 60 frames, same / opposite side).
* ``distractor`` — a same-looking object (the target's texture with two of its shapes recoloured) crosses the
  target's path, drawn over it for a few frames, then both move apart. Scored over the frames after the crossing.

Success rate = fraction of the scored frames with IoU(tracker box, ground truth) ≥ 0.5, per seed and mode.
:func:`run_modes` runs every mode on every seed (one tracker per mode over the same model directory) and
:func:`write_report` writes the table, a JSON and a PNG.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError
from ..figures import pyplot, save_png
from ..outputs import check_writable
from ..progress import progress_iter
from ..runtime.boxes import iou_xywh
from .results import dump_json
from .synthetic import _affine, _backgrounds, make_texture

#: suffix of the JSON a modes run rewrites after every sequence (NAME.partial.json beside NAME.json)
PARTIAL_SUFFIX = ".partial.json"
SCENARIOS = ("reenter", "distractor", "exit")
EDGES = ("left", "right", "top", "bottom")

#: exit / re-entry variants (name → Scenario fields): exits on three edges, gaps 10 / 30 / 60, both re-entry sides.
EXIT_VARIANTS: Dict[str, Dict] = {
    "exit-right-gap10-same": {"exit": "right", "gap": 10, "reentry": "same"},
    "exit-right-gap30-opposite": {"exit": "right", "gap": 30, "reentry": "opposite"},
    "exit-left-gap60-same": {"exit": "left", "gap": 60, "reentry": "same"},
    "exit-left-gap10-opposite": {"exit": "left", "gap": 10, "reentry": "opposite"},
    "exit-top-gap30-same": {"exit": "top", "gap": 30, "reentry": "same"},
    "exit-top-gap60-opposite": {"exit": "top", "gap": 60, "reentry": "opposite"},
}

#: exit scenario: pixels per frame the target walks, frames it walks before leaving / after it is back inside
EXIT_SPEED, EXIT_LEAD, EXIT_SCORED = 8.0, 12, 20


@dataclass(frozen=True)
class Scenario:
    """One synthetic mode-evidence sequence."""

    kind: str = "reenter"
    seed: int = 0
    frames: int = 80  # reenter / distractor (exit: derived from gap, EXIT_LEAD and EXIT_SCORED)
    gap: int = 30  # reenter / exit: frames the target is absent
    object_size: Tuple[int, int] = (60, 48)
    background_start: int = 0
    exit: str = "right"  # exit: the edge it leaves by
    reentry: str = "opposite"  # exit: "same" or "opposite" edge to come back by


def scenario(name: str, seed: int, frames: int = 80) -> Scenario:
    """The Scenario of a kind or an :data:`EXIT_VARIANTS` name."""
    if name in EXIT_VARIANTS:
        return Scenario(kind="exit", seed=int(seed), **EXIT_VARIANTS[name])
    return Scenario(kind=name, seed=int(seed), frames=frames)


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


def _exit_path(sc: Scenario, fw: int, fh: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """(F, 2) centres (NaN while away) and (F,) scored mask of an ``exit`` scenario.

    Walks EXIT_LEAD frames inside towards the exit edge, then out across it at EXIT_SPEED px/frame; absent ``gap``
    frames; walks in across the re-entry edge at a new place along it and on for EXIT_SCORED frames once inside.
    """
    if sc.exit not in EDGES or sc.reentry not in ("same", "opposite"):
        raise InputError(f"exit scenario needs exit in {EDGES} and reentry 'same' or 'opposite', got "
                         f"{sc.exit!r} / {sc.reentry!r}")
    w, h = sc.object_size
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
    back = sc.exit if sc.reentry == "same" else opposite[sc.exit]

    def edge_point(edge: str, inward: float, along: float) -> Tuple[float, float]:
        """Centre ``inward`` px inside ``edge`` (negative: outside), at fraction ``along`` of the edge."""
        if edge == "left":
            return inward, along * fh
        if edge == "right":
            return fw - inward, along * fh
        if edge == "top":
            return along * fw, inward
        return along * fw, fh - inward

    half = (w if sc.exit in ("left", "right") else h) / 2
    half_back = (w if back in ("left", "right") else h) / 2
    out_steps = int(np.ceil((half + EXIT_LEAD * EXIT_SPEED - (-half - 1)) / EXIT_SPEED))
    in_steps = int(np.ceil((2 * half_back + 1) / EXIT_SPEED))
    along_a = rng.uniform(0.3, 0.7)
    along_b = np.clip(along_a + rng.choice([-1, 1]) * rng.uniform(0.2, 0.35), 0.15, 0.85)  # elsewhere on the edge
    centres, scored = [], []
    start = half + EXIT_LEAD * EXIT_SPEED
    for i in range(out_steps):  # walking out (partly visible at the end)
        centres.append(edge_point(sc.exit, start - i * EXIT_SPEED, along_a + 0.02 * np.sin(i / 5)))
        scored.append(False)
    centres += [(np.nan, np.nan)] * sc.gap
    scored += [False] * sc.gap
    for i in range(in_steps + EXIT_SCORED):  # walking in from outside, then on inside
        centres.append(edge_point(back, -half_back + i * EXIT_SPEED, along_b + 0.02 * np.sin(i / 5)))
        scored.append(i >= in_steps)
    return np.asarray(centres, np.float64), np.asarray(scored, bool)


def render(sc: Scenario, background: Union[str, Path]) -> Rendered:
    """Frames, ground truth and scored-frame mask of one scenario."""
    if sc.kind not in SCENARIOS:
        raise InputError(f"unknown scenario {sc.kind!r}", fix=f"use one of {', '.join(SCENARIOS)}")
    rng = np.random.default_rng(sc.seed)
    tex = make_texture(sc.object_size, rng)
    if sc.kind == "exit":
        import cv2

        probe = cv2.VideoCapture(str(background))
        fw, fh = int(probe.get(cv2.CAP_PROP_FRAME_WIDTH)), int(probe.get(cv2.CAP_PROP_FRAME_HEIGHT))
        probe.release()
        if fw <= 0 or fh <= 0:
            raise InputError(f"cannot read the frame size of {background}", fix="pass a video OpenCV can read")
        centres, scored = _exit_path(sc, fw, fh, rng)
        bgs = _backgrounds(Path(background), sc.background_start, len(centres))
        frames, boxes = [], np.full((len(centres), 4), np.nan)
        for i, (bg, (cx, cy)) in enumerate(zip(bgs, centres)):
            if np.isnan(cx):
                frames.append(bg.copy())
                continue
            f, boxes[i] = _compose(bg, tex, cx, cy)
            frames.append(f)
        return Rendered(frames, boxes, scored)
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
        if sc.frames < min_frames("reenter"):
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
        scored[i] = i > cross + DISTRACTOR_SETTLE
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
    import time

    tracker.init(r.frames[0], r.boxes[0])
    n = len(r.frames)
    boxes = np.zeros((n, 4))
    scores, lost, inst = np.ones(n), np.zeros(n, bool), np.zeros(n, np.int64)
    boxes[0] = r.boxes[0]
    inst[0] = int(tracker.instance[0])
    times = np.zeros(n)
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


def sequence_detail(r: Rendered, res: Dict[str, np.ndarray]) -> Dict:
    """Per-sequence figures beside the success rate: frames after the scored span starts until the first IoU ≥ 0.5
    (None: never), global-search frames, the largest box, the median frame time."""
    ious = iou_xywh(res["boxes"][r.scored], r.boxes[r.scored])
    hit = np.flatnonzero(ious >= 0.5)
    local = int(res["instance_size"][0])
    return {"success": float(np.mean(ious >= 0.5)) if len(ious) else float("nan"),
            "reacquired_after": int(hit[0]) if len(hit) else None,
            "search_frames_above_local": int((res["instance_size"][1:] > local).sum()),
            "largest_box_side": float(res["boxes"][:, 2:].max()),
            "median_frame_ms": 1000 * float(np.median(res["seconds"][1:]))}


#: distractor: frames after the crossing (at frames // 3) before scoring starts
DISTRACTOR_SETTLE = 5


def min_frames(kind: str) -> int:
    """The fewest frames a scenario kind has scored frames with (exit variants derive their own length)."""
    if kind == "reenter":
        return Scenario(kind=kind).gap + 20
    return next(f for f in range(2, 1000) if f - 1 > f // 3 + DISTRACTOR_SETTLE)  # a frame after the settling


def check_request(kinds: Sequence[str], frames: int) -> None:
    """Refuse, before any sequence is rendered, an unknown scenario or too few frames for one.

    Raises:
        InputError: what is wrong, with the valid names or the frames needed.
    """
    for k in kinds:
        if k not in SCENARIOS and k not in EXIT_VARIANTS:
            raise InputError(f"unknown scenario {k!r}",
                             fix=f"use one of {', '.join(SCENARIOS[:2] + tuple(EXIT_VARIANTS))} (or 'exits' for all "
                                 "the exit variants)")
    short = {k: min_frames(k) for k in kinds if k not in EXIT_VARIANTS and frames < min_frames(k)}
    if short:
        raise InputError(f"--frames {frames} is too few for the {', '.join(short)} scenario(s)",
                         evidence="; ".join(f"{k} needs at least {n} frames" for k, n in short.items()),
                         fix=f"pass --frames {max(short.values())} or more (default 80)")


def run_modes(model_dir: Union[str, Path], background: Union[str, Path], kinds: Sequence[str] = SCENARIOS[:2],
              modes: Sequence[str] = ("short", "longterm", "distractor", "longterm+distractor"),
              seeds: Sequence[int] = range(10), frames: int = 80, constants: Optional[Dict[str, float]] = None,
              progress: bool = True, threads: int = 1, partial: Optional[Union[str, Path]] = None) -> Dict:
    """Success rate per (scenario, mode, seed) on one model directory.

    Args:
        model_dir: exported directory (long-term modes need ``--lost-instance-size``).
        background: video whose frames are the backgrounds (``../shared/data/bag.avi``).
        kinds: scenario kinds ("reenter", "distractor") or :data:`EXIT_VARIANTS` names.
        constants (dict): TrackConfig overrides applied to every mode (e.g. confidence thresholds fitted to a
            stand-in's score range). Defaults to None.
        partial (str | Path): rewrite this JSON with the rates so far after every sequence (long runs). Defaults to
            None.

    Returns:
        dict: {"results": {kind: {mode: [rate per seed]}}, "details": {kind: {mode: [sequence_detail per seed]}},
        "weights": …, "constants": …, "scenarios": …}.
    """
    import dataclasses

    from ..runtime import Tracker
    from .fps_modes import weights_label

    if partial is not None:  # before the run: a bad --out lost the whole run at its first sequence or its end
        p = Path(partial)
        if p.name.endswith(PARTIAL_SUFFIX):
            check_outputs(p.parent, p.name[:-len(PARTIAL_SUFFIX)])
        else:
            check_writable([p], what=["partial"], dirs=[p.parent])
    check_request(kinds, frames)
    base = Tracker.from_model_dir(model_dir, backend="onnxruntime", threads=threads)
    info = base.info
    if constants:
        info = dataclasses.replace(info, track=dataclasses.replace(info.track, **constants))
    trackers = {m: Tracker(base.backend, info, mode=m) for m in modes}
    out: Dict[str, Dict[str, List[float]]] = {k: {m: [] for m in modes} for k in kinds}
    details: Dict[str, Dict[str, List[Dict]]] = {k: {m: [] for m in modes} for k in kinds}
    frame_ms: Dict[str, List[float]] = {m: [] for m in modes}
    jobs = [(k, s) for s in seeds for k in kinds]
    for kind, seed in progress_iter(jobs, len(jobs), "modes", "seq", progress, leave=False):
        r = render(scenario(kind, seed, frames), background)
        for m, trk in trackers.items():
            res = track_scenario(trk, r)
            d = sequence_detail(r, res)
            out[kind][m].append(d["success"])
            details[kind][m].append(dict(d, seed=int(seed)))
            frame_ms[m].append(d["median_frame_ms"])
        if partial is not None:
            dump_json(partial, {"done": [kind, int(seed)], "results": out, "details": details})
    weights = weights_label(info.meta)
    return {"model": str(model_dir), "arch": info.meta.get("arch"), "weights": weights,
            "constants": constants or {}, "frames": frames, "seeds": [int(s) for s in seeds],
            "scenarios": {k: asdict(scenario(k, 0, frames)) for k in kinds}, "results": out, "details": details,
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


def report_paths(out_dir: Union[str, Path], name: str = "modes") -> Tuple[Path, Path, Path]:
    """(NAME.json, NAME.png, NAME.partial.json) in ``out_dir``: the files a modes run writes."""
    out = Path(out_dir)
    return out / f"{name}.json", out / f"{name}.png", out / f"{name}{PARTIAL_SUFFIX}"


def check_outputs(out_dir: Union[str, Path], name: str = "modes") -> None:
    """Refuse, before any sequence runs, a ``--out`` / ``--name`` whose files cannot be written (``--out`` a file,
    under a file, not writable; NAME.json a folder).

    Raises:
        InputError: an unwritable output.
    """
    check_writable(list(report_paths(out_dir, name)), what=["--out"] * 3, dirs=[out_dir])


def write_report(report: Dict, out_dir: Union[str, Path], name: str = "modes") -> Tuple[Path, Path]:
    """NAME.json + NAME.png (bars: mean success per scenario and mode, seeds as dots) in ``out_dir``; each written
    under a temporary name and renamed when complete."""
    plt = pyplot()

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jpath = out / f"{name}.json"
    dump_json(jpath, report)  # strict JSON: NaN (no scored frame) as null
    kinds = list(report["results"])
    modes = list(report["results"][kinds[0]])
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(kinds)), 4))
    width = 0.8 / len(modes)
    for j, m in enumerate(modes):
        xs = np.arange(len(kinds)) + j * width
        vals = [report["results"][k][m] for k in kinds]
        ax.bar(xs, [np.mean(v) for v in vals], width, label=m)
        for x, v in zip(xs, vals):
            ax.plot(np.full(len(v), x), v, "k.", ms=3)
    ax.set_xticks(np.arange(len(kinds)) + 0.4 - width / 2)
    ax.set_xticklabels([k.replace("-", "\n", 1) if len(kinds) > 2 else k for k in kinds], fontsize=8)
    ax.set_ylabel("success rate (IoU >= 0.5)")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{report['arch']} — weights: {report['weights']}; {len(report['seeds'])} seeds, "
                 f"success = IoU >= 0.5 after re-entry / crossing", fontsize=9)
    ax.legend(fontsize=8)
    return jpath, save_png(fig, out / f"{name}.png", dpi=120)


__all__ = ["EXIT_VARIANTS", "PARTIAL_SUFFIX", "SCENARIOS", "STANDIN_CONSTANTS", "Scenario", "check_outputs",
           "check_request", "make_standin", "min_frames", "render", "report_paths", "run_modes",
           "scenario", "sequence_detail", "standin_frames", "success_rate", "table", "track_scenario", "write_report"]
