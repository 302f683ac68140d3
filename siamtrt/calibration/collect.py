"""Collecting calibration crops: the FP32 tracker runs over videos and its own backend calls are recorded, so the
crops are the tracker's crops by construction (same crop code, context, scale and rounding).

Sampling is deterministic: search crops at evenly spaced frames, templates at evenly spaced frames (frame 0
always), a cap shared by the sources in proportion to their length. Boxes come from the tracker's trajectory
(``--bbox``) or a per-frame box file (``--boxes``, an OTB folder's ``groundtruth_rect.txt``). The result is a
:class:`~.data.CalibrationSet`, saved in its ``.npz`` format.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple, Union

import numpy as np

from .. import __version__
from ..errors import CalibrationError, InputError
from ..locations import derived_model_dir
from ..modeldir import ModelDir
from ..outputs import check_writable
from ..runtime.boxes import read_box_file
from ..runtime.sequences import OTB_GT
from .data import FORMAT, MIN_RECOMMENDED_SEARCH, CalibrationSet, calibration_meta, npz_path, weights_mismatch
from .derive import other_weights_model, weights_text
from ..progress import progress_bar

LOG = logging.getLogger(__name__)

DEFAULT_MAX_SAMPLES = 256
DEFAULT_TEMPLATES_PER_SOURCE = 8


def even_indices(candidates: Sequence[int], k: int) -> List[int]:
    """``k`` evenly spaced picks (first and last included) from ``candidates``: deterministic sampling."""
    candidates = list(candidates)
    if k >= len(candidates):
        return candidates
    if k <= 0:
        return []
    pos = np.linspace(0, len(candidates) - 1, k).round().astype(int)
    return [candidates[p] for p in sorted(set(pos.tolist()))]


def split_budget(lengths: Sequence[int], total: int) -> List[int]:
    """Share ``total`` samples among sources proportionally to their lengths (each at most its length)."""
    lengths = [max(0, int(n)) for n in lengths]
    if sum(lengths) <= total:
        return lengths
    raw = [total * n / sum(lengths) for n in lengths]
    out = [min(n, int(r)) for n, r in zip(lengths, raw)]
    rest = total - sum(out)
    for i in sorted(range(len(lengths)), key=lambda i: raw[i] - int(raw[i]), reverse=True):
        if rest <= 0:
            break
        if out[i] < lengths[i]:
            out[i] += 1
            rest -= 1
    return out


# ------------------------------------------------------------------------------------------------------ sources
@dataclass
class SourceSpec:
    """One calibration source and where its boxes come from.

    Attributes:
        path (Path): video file, image folder, or OTB sequence folder (``img/`` + ``groundtruth_rect.txt``).
        bbox (Sequence[float]): init box x,y,w,h in frame 0 → crops follow the tracker's own trajectory.
        boxes (Path): a per-frame box file (ground truth) → crops follow those boxes.
        When neither is given, an OTB folder's ``groundtruth_rect.txt`` is used.
    """

    path: Path
    bbox: Optional[Sequence[float]] = None
    boxes: Optional[Path] = None

    def resolve_boxes(self) -> Optional[Path]:
        if self.bbox is not None:
            return None
        if self.boxes is not None:
            return Path(self.boxes)
        gt = Path(self.path) / OTB_GT
        if Path(self.path).is_dir() and gt.is_file():
            return gt
        raise InputError(f"calibration source {self.path} has no box",
                         evidence="no --bbox, no --boxes, and no groundtruth_rect.txt in the folder",
                         fix="add --bbox x,y,w,h (initial box; the tracker follows it) or --boxes gt.txt")


def sources_from_args(videos: Sequence[str], bboxes: Optional[Sequence[str]] = None,
                      boxes: Optional[Sequence[str]] = None) -> List[SourceSpec]:
    """Pair repeated ``--video`` with ``--bbox`` / ``--boxes`` (one each per video, in order, or none at all).

    Raises:
        InputError: counts that do not pair up, or both --bbox and --boxes for the same videos.
    """
    from ..runtime.run import parse_bbox

    videos, bboxes, boxes = list(videos or []), list(bboxes or []), list(boxes or [])
    if not videos:
        raise InputError("no --video given", fix="pass --video V (a video, image folder or OTB folder)")
    for flag, vals in (("--bbox", bboxes), ("--boxes", boxes)):
        if vals and len(vals) != len(videos):
            raise InputError(f"{len(vals)} {flag} for {len(videos)} --video",
                             evidence="each --video takes its own box, in the same order",
                             fix=f"give one {flag} per --video (or none, for OTB folders with groundtruth_rect.txt)")
    if bboxes and boxes:
        raise InputError("both --bbox and --boxes given", fix="use --bbox (tracker trajectory) or --boxes (file)")
    return [SourceSpec(Path(v), bbox=parse_bbox(bboxes[i]) if bboxes else None,
                       boxes=Path(boxes[i]) if boxes else None) for i, v in enumerate(videos)]


# -------------------------------------------------------------------------------------------------- one source
class _CropLog:
    """Observer of the trackers' backend calls (:meth:`Tracker.add_observer`): keeps copies of the crops and
    kernels while ``want`` is set, so the calibration crops are the tracker's crops by construction (same crop
    code, context, scale and rounding), not a re-derivation."""

    def __init__(self):
        self.want = False
        self.search: List[np.ndarray] = []
        self.template: Optional[np.ndarray] = None
        self.kernels: Optional[Dict[str, np.ndarray]] = None

    def on_search(self, ev) -> None:
        if self.want:
            self.search.append(np.array(ev.crop[0]))

    def on_template(self, ev) -> None:
        if self.want and getattr(ev, "purpose", None) != "distractor":  # distractor templates are not target crops
            self.template = np.array(ev.crop[0])
            self.kernels = {k: np.array(v[0], np.float32) for k, v in ev.kernels.items()}

    def attach(self, tracker, search: bool = True, template: bool = True) -> None:
        if search:
            tracker.add_observer(self.on_search, "search")
        if template:
            tracker.add_observer(self.on_template, "template")

    def detach(self, tracker) -> None:
        tracker.remove_observer(self.on_search)
        tracker.remove_observer(self.on_template)


def _to_uint8(crops: np.ndarray) -> np.ndarray:
    """The tracker's float crops hold integral 0..255 values (uint8 pixels, INTER_LINEAR output): store as uint8."""
    return np.clip(np.rint(crops), 0, 255).astype(np.uint8)


@dataclass
class _FramePlan:
    """Which frames of a source give crops, and where the boxes come from."""

    count: int
    gt: Optional[np.ndarray]
    gt_path: Optional[Path]
    init_box: np.ndarray
    search_at: Set[int] = field(default_factory=set)
    template_at: Set[int] = field(default_factory=set)

    def pick(self, n_search: int, n_templates: int) -> "_FramePlan":
        """Search crops at ``n_search`` evenly spaced frames ≥ 1 (with a box file: those whose previous box exists),
        templates at ``n_templates`` evenly spaced frames (frame 0 always)."""
        count, gt = self.count, self.gt
        frame_ok = [True] * count if gt is None else [True] + [bool(np.all(np.isfinite(gt[t - 1])))
                                                               for t in range(1, count)]
        search_at = set(even_indices([t for t in range(1, count) if frame_ok[t]], n_search))
        template_at = set(even_indices(list(range(count)), n_templates)) | {0}
        if gt is not None:
            template_at = {t for t in template_at if np.all(np.isfinite(gt[t]))}
        return replace(self, search_at=search_at, template_at=template_at)


def _plan_frames(source: SourceSpec, frame_count: Optional[int], frame_wh) -> _FramePlan:
    """The frame count and boxes of a source, checked (its box file read here, once per run); frames are
    picked later by :meth:`_FramePlan.pick`, when the sample budget is known."""
    from ..runtime.tracker import check_boxes

    gt_path = source.resolve_boxes()
    count = frame_count
    gt = read_box_file(gt_path) if gt_path is not None else None
    if gt is not None:
        if count is not None and len(gt) < count:
            raise InputError(f"box file {gt_path} has {len(gt)} boxes for {count} frames of {source.path}",
                             fix="pass the matching ground-truth file, or --bbox for the tracker's trajectory")
        count = min(count, len(gt)) if count is not None else len(gt)
        if not np.all(np.isfinite(gt[0])):
            raise InputError(f"box file {gt_path}: the first box is missing or empty", evidence=str(gt[0]),
                             fix="the first line must hold the target's box on frame 0 (x,y,w,h); or pass --bbox "
                                 "x,y,w,h instead of --boxes to follow the tracker's trajectory")
    if count is None or count < 2:
        raise InputError(f"calibration source {source.path} has {count or 'an unknown number of'} frames",
                         fix="use a video or image folder with at least 2 frames")
    init_box = np.asarray(gt[0] if gt is not None else source.bbox, np.float64)
    check_boxes(init_box, frame_wh)
    return _FramePlan(count, gt, gt_path, init_box)


def _search_step(tracker, atracker, log: _CropLog, plan: _FramePlan, t: int, frame, prev, last_box,
                 other_size: Optional[int]) -> Tuple[List[np.ndarray], np.ndarray, bool]:
    """One frame ≥ 1: (search crops taken, the box of this frame, whether a box-file crop was skipped).

    With a box file the tracker is re-initialised on the previous frame at its ground-truth box, so the crop is cut
    around it as the tracker would; the other search size (adaptive models) takes the same step from the same box.
    """
    want, skipped = t in plan.search_at, False
    start = last_box
    if plan.gt is not None and want:
        try:
            tracker.init(prev, plan.gt[t - 1])
        except InputError:  # that box lies outside the frame: no crop for this frame
            want, skipped = False, True
        start = plan.gt[t - 1]
    log.search.clear()
    if want and atracker is not None:
        atracker.init(prev, start, instance_size=other_size)
        log.want = True
        atracker.track(frame)
    box = None
    if plan.gt is None or want:
        log.want = want
        box = tracker.track(frame).bbox
    log.want = False
    return list(log.search), (plan.gt[t] if plan.gt is not None else box), skipped


@dataclass
class SourceCrops:
    """What :func:`collect_source` took from one source: crops, kernels, the frame of each, their pairing."""

    templates: List[np.ndarray] = field(default_factory=list)
    searches: List[np.ndarray] = field(default_factory=list)
    pair: List[int] = field(default_factory=list)
    kernels: Dict[str, List[np.ndarray]] = field(default_factory=dict)
    info: Dict[str, Any] = field(default_factory=dict)
    searches_alt: List[np.ndarray] = field(default_factory=list)
    pair_alt: List[int] = field(default_factory=list)
    template_frames: List[int] = field(default_factory=list)
    search_frames: List[int] = field(default_factory=list)
    alt_frames: List[int] = field(default_factory=list)
    skipped: int = 0

    def keep_template(self, log: _CropLog, t: int) -> None:
        self.templates.append(_to_uint8(log.template))
        self.template_frames.append(t)
        for k, v in log.kernels.items():
            self.kernels.setdefault(k, []).append(v)

    def keep_search(self, crop: np.ndarray, t: int, instance_size: int) -> None:
        main = crop.shape[-1] == instance_size  # else the adaptive model's other size
        (self.searches if main else self.searches_alt).append(_to_uint8(crop))
        (self.search_frames if main else self.alt_frames).append(t)

    def finish(self, source: "SourceSpec", plan: _FramePlan, adaptive: bool) -> "SourceCrops":
        """Pair every search crop with the latest template taken before its frame; fill ``info``."""
        def latest(frames: List[int]) -> List[int]:
            return [int(np.searchsorted(self.template_frames, f, side="left") - 1) for f in frames]

        self.pair, self.pair_alt = latest(self.search_frames), latest(self.alt_frames)
        self.info = {"path": str(source.path), "frames": plan.count,
                     "boxes_from": str(plan.gt_path) if plan.gt_path else "tracker",
                     "init_bbox": [float(v) for v in plan.init_box], "search_frames": self.search_frames,
                     "template_frames": self.template_frames, "search": len(self.searches),
                     "templates": len(self.templates), "skipped": self.skipped}
        if adaptive:
            self.info.update({"search_alt": len(self.searches_alt), "search_alt_frames": self.alt_frames})
        return self


class _Trackers(NamedTuple):
    """The FP32 tracker making the trajectory, one for extra templates, one at the adaptive model's other size."""

    main: Any
    ztracker: Any
    atracker: Optional[Any]
    sizes: Tuple[int, ...]


def _walk_frames(src, plan: _FramePlan, trk: _Trackers, log: _CropLog, crops: SourceCrops, bar) -> None:
    """Track the source frame by frame, keeping the crops the plan asks for."""
    instance_size = int(trk.main.info.track.instance_size)
    prev, box, other = None, plan.init_box, None
    for t, frame in enumerate(src):
        if t >= plan.count:
            break
        if t == 0:
            log.want = True
            trk.main.init(frame, plan.init_box)
            log.want = False
            crops.keep_template(log, 0)
            if trk.atracker is not None:
                other = [z for z in trk.sizes if z != int(trk.main.instance[0])][0]
        else:
            taken, box, miss = _search_step(trk.main, trk.atracker, log, plan, t, frame, prev, box, other)
            crops.skipped += miss
            for crop in taken:
                crops.keep_search(crop, t, instance_size)
            if t in plan.template_at:
                log.want = True
                try:
                    trk.ztracker.init(frame, box)
                except InputError:  # the box left the frame: no template here
                    pass
                else:
                    crops.keep_template(log, t)
                log.want = False
        prev = frame
        bar.update(1)


def collect_source(tracker, source: SourceSpec, n_search: int, n_templates: int, progress: bool = True,
                   max_frames: Optional[int] = None, plan: Optional[_FramePlan] = None) -> SourceCrops:
    """Crops from one source with an (already built) FP32 tracker, read through its observer hook.

    Search crops are taken at ``n_search`` evenly spaced frames ≥ 1, template crops at ``n_templates`` evenly
    spaced frames (frame 0 always); a search crop is paired with the latest template taken before its frame. With an
    adaptive model (SiamRPNBIG) each sampled frame also gives the crop at the other search size, cut by a second
    tracker at that size started from the same box on the previous frame. ``plan``: the source's checked frame
    count and boxes from :func:`collect`'s up-front check (read here when None).
    """
    from ..runtime.tracker import Tracker
    from ..runtime.video import open_frames

    sizes = tuple(tracker.info.track.local_instance_sizes)  # not the long-term lost size (831)
    trk = _Trackers(tracker, Tracker(tracker.backend, tracker.info),  # same backend and geometry
                    Tracker(tracker.backend, tracker.info) if len(sizes) > 1 else None, sizes)
    log = _CropLog()
    log.attach(trk.main)
    log.attach(trk.ztracker, search=False)
    if trk.atracker is not None:
        log.attach(trk.atracker, template=False)
    crops = SourceCrops()
    src = open_frames(source.path, max_frames=max_frames)
    try:
        plan = (plan or _plan_frames(source, src.frame_count, src.size)).pick(n_search, n_templates)
        with progress_bar(plan.count, f"collect {Path(source.path).name}", "frame", progress, leave=False) as bar:
            _walk_frames(src, plan, trk, log, crops, bar)
    finally:
        src.close()
        for tr in trk[:3]:
            if tr is not None:
                log.detach(tr)
    return crops.finish(source, plan, trk.atracker is not None)


# ------------------------------------------------------------------------------------------------------ collect
@dataclass
class CollectSummary:
    """What ``calibration/collect.py`` wrote."""

    path: Path
    model_dir: Path
    calib: CalibrationSet
    seconds: float
    per_source: List[Dict[str, Any]]

    def __str__(self) -> str:
        mb = self.path.stat().st_size / 2 ** 20 if self.path.is_file() else 0.0
        lines = [f"calibration set written: {self.path} ({mb:.1f} MB, {self.seconds:.1f}s)",
                 f"  {self.calib.summary()}"]
        for s in self.per_source:
            lines.append(f"  {s['path']}: {s['frames']} frames, boxes from {s['boxes_from']}, "
                         f"{s['search']} search / {s['templates']} template crop{'s' * (s['templates'] != 1)}")
        if self.calib.num_search < MIN_RECOMMENDED_SEARCH:
            lines.append(f"  warning: fewer than {MIN_RECOMMENDED_SEARCH} search crops — INT8 ranges may be noisy")
        lines.append(f"next: siamtrt quantize --model {self.model_dir} --calib {self.path} --precision int8 "
                     f"--out {derived_model_dir(self.model_dir, 'int8')}")
        return "\n".join(lines)


def _check_request(sources: Sequence[SourceSpec], out, max_samples: int, templates_per_source: int,
                   model_dir: Union[str, Path, None] = None, max_frames: Optional[int] = None) -> None:
    """Everything checkable before a model is loaded: options, sources and their boxes, the output file (a file
    of its own: not a folder, which would be written beside as FOLDER.npz, nor inside the model directory or a
    source folder, whose next export or read would drop or see it)."""
    if not sources:
        raise InputError("no calibration source given", fix="pass --video V (a video, image folder or OTB folder)")
    if max_samples < 1 or templates_per_source < 1:
        raise InputError("--max-samples and --templates must be ≥ 1",
                         evidence=f"max_samples={max_samples}, templates={templates_per_source}",
                         fix="pass --max-samples 1 or more (default 256) and --templates 1 or more (default 8)")
    if max_frames is not None and max_frames < 2:  # the search crops come from frames after the first
        raise InputError(f"--max-frames {max_frames} leaves no frame after the first to cut search crops from",
                         fix="pass --max-frames 2 or more, or leave it out (every frame)")
    for s in sources:
        if not Path(s.path).exists():
            raise InputError(f"calibration source {s.path} does not exist",
                             fix="pass a video file, an image folder or an OTB sequence folder")
        s.resolve_boxes()  # a source without boxes fails here
    if out is not None:
        target = npz_path(out)
        if Path(out).is_dir():
            raise InputError(f"--out {out} is a folder: the calibration file would be written beside it as {target}",
                             fix=f"name the file, e.g. --out {Path(out) / 'calib.npz'}")
        check_writable([target], what=["--out"], input_dirs=[model_dir] + [s.path for s in sources if
                                                                           Path(s.path).is_dir()])
        if target.is_file() and calibration_meta(target) is None:
            raise InputError(f"--out {target} exists and is not a siamtrt calibration file: collecting would replace "
                             "it", evidence=f"{target.stat().st_size} bytes, no {FORMAT!r} metadata",
                             fix="choose another --out, or move that file away first")


def _check_other_model(target: Path, md: ModelDir) -> None:
    """Refuse an ``--out`` that belongs to another model (other weights or architecture than ``md``): a calibration
    file collected for it (collecting would replace it), or a file inside its model directory (where a quantize of
    that model would take crops cut with other weights).

    Raises:
        InputError: naming both models; the fix is another --out.
    """
    found = other_weights_model(target.parent, md.meta)
    if found:
        raise InputError(f"--out {target} lies in the model directory {target.absolute().parent} of other weights "
                         f"than --model {md.path}", evidence=f"{found[0]} records {weights_text(found[1])}; --model: "
                                                f"{weights_text(md.meta)}",
                         fix=f"choose another --out, e.g. {target.absolute().parent.parent / target.name}")
    meta = calibration_meta(target) if target.is_file() else None
    what = weights_mismatch(meta, md) if meta else ""
    if what:
        raise InputError(f"--out {target} holds a calibration file collected for another model than --model "
                         f"{md.path}: collecting would replace it",
                         evidence=f"it was collected with {meta.get('model_dir', '?')} and records {what}",
                         fix="choose another --out, or move that file away first")


def collect(model_dir: Union[str, Path], sources: Sequence[SourceSpec], out: Optional[Union[str, Path]] = None, *,
            max_samples: int = DEFAULT_MAX_SAMPLES, templates_per_source: int = DEFAULT_TEMPLATES_PER_SOURCE,
            max_frames: Optional[int] = None, threads: Optional[int] = None, progress: bool = True
            ) -> CollectSummary:
    """Cut calibration crops from videos / image folders exactly as the FP32 tracker does, and save them.

    Args:
        model_dir (str | Path): the fp32 model directory (its tracker makes the trajectory and the crops).
        sources (Sequence[SourceSpec]): videos / folders with their init box or box file.
        out (str | Path): ``.npz`` to write (complete or not at all: an interrupted run leaves no partial file
            under this name). Defaults to None (not written; the set is returned).
        max_samples (int): cap on search crops over all sources (shared by frame count). Defaults to 256.
        templates_per_source (int): template crops per source (frame 0 included). Defaults to 8.
        max_frames (int): use at most this many frames of each source. Defaults to None (all).
        threads (int): ONNX Runtime threads. Defaults to the physical cores.
        progress (bool): progress lines (siamtrt.progress: a bar on a terminal, plain lines in a log). Defaults to True.

    Raises:
        InputError: missing or unreadable source, bad box or box file, unwritable ``out``, an ``out`` of another
        model (:func:`_check_other_model`). ModelDirError: bad model directory. CalibrationError: no crop could be
        taken.
    """
    from ..runtime.tracker import Tracker
    from ..runtime.video import open_frames

    t0 = time.perf_counter()
    _check_request(sources, out, max_samples, templates_per_source, model_dir, max_frames)
    md = ModelDir.open(model_dir, require_fp32=True, require_conv=True)
    if out is not None:
        _check_other_model(npz_path(out), md)
    plans, counts = [], []
    for s in sources:
        with open_frames(s.path, max_frames=max_frames) as fs:
            plans.append(_plan_frames(s, fs.frame_count, fs.size))  # bad frame count, box file, box: before loading
            counts.append(max((fs.frame_count or 2) - 1, 0))
    opts = {"providers": "cpu", **({"threads": threads} if threads else {})}
    tracker = Tracker.from_model_dir(md.path, backend="onnxruntime", **opts)
    got: List[SourceCrops] = []
    with tracker:
        for s, plan, budget in zip(sources, plans, split_budget(counts, max_samples)):
            got.append(collect_source(tracker, s, budget, templates_per_source, progress, max_frames=max_frames,
                                      plan=plan))
    cset = _merge(md, got, max_samples, templates_per_source)
    path = cset.save(out) if out is not None else Path("")
    LOG.info("collect: %s", cset.summary())  # (too few for INT8 calibration: the summary and quantize_int8 warn)
    return CollectSummary(path=path, model_dir=md.path, calib=cset, seconds=time.perf_counter() - t0,
                          per_source=[g.info for g in got])


def _merge(md: ModelDir, got: Sequence[SourceCrops], max_samples: int, templates_per_source: int) -> CalibrationSet:
    """One calibration set from every source's crops (pair indices shifted to the merged template list)."""
    templates, searches, pair, alt, pair_alt, kernels = [], [], [], [], [], {}
    for g in got:
        offset = len(templates)
        templates += g.templates
        searches += g.searches
        pair += [p + offset for p in g.pair]
        alt += g.searches_alt
        pair_alt += [p + offset for p in g.pair_alt]
        for k, v in g.kernels.items():
            kernels.setdefault(k, []).extend(v)
    if not searches:
        raise CalibrationError("no search crop could be collected",
                               evidence="; ".join(f"{g.info['path']}: {g.info['frames']} frames" for g in got),
                               fix="use longer videos (≥ 2 frames) with valid boxes")
    meta = {"format": FORMAT, "siamtrt": __version__, "arch": md.arch,
            "exemplar_size": md.exemplar_size, "instance_size": md.instance_size,
            "template_outputs": md.template_outputs, "template_sha256": md.sha256("template"),
            "checkpoint_sha256": md.checkpoint_sha256,
            "model_dir": str(md.path), "max_samples": max_samples, "templates_per_source": templates_per_source,
            "sources": [g.info for g in got], "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return CalibrationSet(template=np.stack(templates), search=np.stack(searches), pair=np.asarray(pair, np.int64),
                          kernels={k: np.stack(v).astype(np.float32) for k, v in kernels.items()}, meta=meta,
                          search_alt=np.stack(alt) if alt else None,
                          pair_alt=np.asarray(pair_alt, np.int64) if alt else None)


__all__ = ["DEFAULT_MAX_SAMPLES", "DEFAULT_TEMPLATES_PER_SOURCE", "CollectSummary", "SourceCrops", "SourceSpec",
           "collect", "collect_source", "even_indices", "sources_from_args", "split_budget"]
