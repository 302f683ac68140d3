"""Calibration data: template and search crops cut exactly as the tracker cuts them, stored in one ``.npz``.

The calibration set is a plain iterable of feed dicts (style rule 9): :meth:`CalibrationSet.template_feeds` yields
``{"template": [n,3,E,E] float32}`` and :meth:`CalibrationSet.search_feeds` yields ``{"search": [n,3,S,S], <kernel
name>: [n,…]}`` where the kernels are the FP32 template outputs of the template each search crop is paired with
(the search branch never sees random kernels). Crops are stored as uint8 (they *are* uint8 images; the network
input is their float32 copy), kernels as float32.

File layout (``np.savez_compressed``, no pickles):

* ``template`` uint8 [Nt,3,E,E], ``search`` uint8 [Ns,3,S,S], ``pair`` int32 [Ns] (index into ``template``);
* for a model with an adaptive search size (SiamRPNBIG: 271, or 287 for small targets) also ``search_alt`` uint8
  [Na,3,S',S'] and ``pair_alt`` int32 [Na]: at every sampled frame the tracker's crop at the *other* size, cut from
  the same state (the size a target gets is fixed at init, so one video rarely shows both);
* ``kernel/<name>`` float32 [Nt,…] for every name in the model's ``template_outputs`` (FP32 template outputs);
* ``meta``: a JSON string — format, arch, sizes, template_outputs, the sha256 of the template.onnx that produced
  the kernels, the sources (path, frames, where the boxes came from) and the frame of every sample.

Sizes are checked against the model on use; kernels are recomputed when the template model differs from the one
that produced them (another export of the same architecture, say).
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple, Union

import numpy as np

from .. import __version__
from ..errors import CalibrationError, InputError
from ..metadata import SEARCH_INPUT, TEMPLATE_INPUT
from ..runtime.boxes import read_box_file
from ..modeldir import ModelDir

LOG = logging.getLogger(__name__)

FORMAT = "siamtrt-calib/1"
KERNEL_PREFIX = "kernel/"
#: below this many search crops the int8 ranges are noisy (documented in docs/calibration.md); a warning is logged.
MIN_RECOMMENDED_SEARCH = 64
DEFAULT_MAX_SAMPLES = 256
DEFAULT_TEMPLATES_PER_SOURCE = 8

Feed = Dict[str, np.ndarray]


@dataclass
class CalibrationSet:
    """Template crops, search crops, their pairing and (optionally) the FP32 kernels of the templates."""

    template: np.ndarray                      # uint8 [Nt,3,E,E]
    search: np.ndarray                        # uint8 [Ns,3,S,S]
    pair: np.ndarray                          # int32 [Ns] → template index
    kernels: Dict[str, np.ndarray] = field(default_factory=dict)  # name → float32 [Nt,…]
    meta: Dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None
    search_alt: Optional[np.ndarray] = None   # uint8 [Na,3,S',S']: the adaptive model's other search size
    pair_alt: Optional[np.ndarray] = None     # int [Na] → template index

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def num_templates(self) -> int:
        return int(self.template.shape[0])

    @property
    def num_search(self) -> int:
        return int(self.search.shape[0])

    @property
    def exemplar_size(self) -> int:
        return int(self.template.shape[-1])

    @property
    def instance_size(self) -> int:
        return int(self.search.shape[-1])

    @property
    def alt_instance_size(self) -> Optional[int]:
        return None if self.search_alt is None else int(self.search_alt.shape[-1])

    def summary(self) -> str:
        src = ", ".join(Path(s["path"]).name for s in self.meta.get("sources", [])) or "?"
        alt = (f" (+ {len(self.search_alt)} at {self.alt_instance_size}x{self.alt_instance_size})"
               if self.search_alt is not None else "")
        return (f"{self.num_search} search crops {self.instance_size}x{self.instance_size}{alt}, "
                f"{self.num_templates} template crops {self.exemplar_size}x{self.exemplar_size} from {src}")

    # ---------------------------------------------------------------------------------------------------- feeds
    def template_feeds(self, batch: int = 1) -> Iterator[Feed]:
        """Feed dicts for the template branch: ``{"template": float32 [n,3,E,E]}``."""
        for i in range(0, self.num_templates, batch):
            yield {TEMPLATE_INPUT: self.template[i:i + batch].astype(np.float32)}

    def search_feeds(self, kernels: Dict[str, np.ndarray], batch: int = 1, alt: bool = False) -> Iterator[Feed]:
        """Feed dicts for the search branch: search crops plus the kernels of their paired templates.

        Args:
            kernels (dict): name → [Nt,…] template outputs (from :meth:`kernels_for` or a template model).
            batch (int): crops per feed. Defaults to 1.
            alt (bool): also the crops at the adaptive model's other search size, after the main ones (one size
                per feed). Defaults to False.
        """
        for i in range(0, self.num_search, batch):
            idx = self.pair[i:i + batch]
            feed = {SEARCH_INPUT: self.search[i:i + batch].astype(np.float32)}
            for name, k in kernels.items():
                feed[name] = np.ascontiguousarray(k[idx])
            yield feed
        other = self.alt_set() if alt else None
        if other is not None:
            yield from other.search_feeds(kernels, batch)

    def branch_feeds(self, branch: str, kernels: Optional[Dict[str, np.ndarray]], batch: int = 1
                     ) -> Tuple[Iterator[Feed], int]:
        """(feeds, crop count) of one branch, every search size included: what each calibrator of a model
        directory iterates (INT8 Q/DQ, TensorRT caches, FP16 ranges)."""
        if branch == "template":
            return self.template_feeds(batch), self.num_templates
        return self.search_feeds(kernels, batch, alt=True), self.num_search_feeds

    def alt_set(self) -> Optional["CalibrationSet"]:
        """The crops at the adaptive model's other search size as a set of their own (same templates and kernels),
        or None when there are none."""
        if self.search_alt is None:
            return None
        return replace(self, search=self.search_alt, pair=self.pair_alt, search_alt=None, pair_alt=None)

    @property
    def num_search_feeds(self) -> int:
        """Search crops over both sizes (what ``search_feeds(..., alt=True)`` yields at batch 1)."""
        return self.num_search + (0 if self.search_alt is None else len(self.search_alt))

    def kernels_for(self, model: ModelDir, threads: Optional[int] = None,
                    other_weights: bool = False) -> Dict[str, np.ndarray]:
        """FP32 kernels for ``model``'s search branch: the stored ones when they came from this very template
        model, else recomputed with its template.onnx in ONNX Runtime (``other_weights``: see check_model)."""
        self.check_model(model, other_weights)
        sha = model.sha256("template")
        names = model.template_outputs
        if self.kernels and self.meta.get("template_sha256") == sha and all(n in self.kernels for n in names):
            return {n: self.kernels[n] for n in names}
        LOG.info("INT8: recomputing %d template kernels with %s (the calibration file was collected with another "
                 "template model)", self.num_templates, model.onnx("template"))
        return run_template(model, self.template, threads=threads)

    # --------------------------------------------------------------------------------------------- validation
    def check_model(self, model: ModelDir, other_weights: bool = False) -> None:
        """The crops fit ``model`` (exemplar and instance size) and were collected on its weights.

        The weights are those of the checkpoint recorded at collect time (``checkpoint_sha256``; files written
        before it was recorded: the template.onnx sha256). Crops cut along another checkpoint's trajectory, with
        its kernels, calibrate the wrong activations; ``other_weights=True`` (``quantize.py --force``) accepts them.

        Raises:
            CalibrationError: size mismatch, or other weights, with the collect command that fixes it.
        """
        want = (model.exemplar_size, model.instance_size)
        have = (self.exemplar_size, self.instance_size)
        alt = model.alt_instance_size
        if self.search_alt is not None and self.alt_instance_size != alt:
            want, have = (want[0], want[1], alt), (have[0], have[1], self.alt_instance_size)
        if want != have:
            raise CalibrationError(
                f"calibration file {self.path or ''} does not fit the model {model.path}",
                evidence=f"crops are exemplar/instance {have[0]}/{have[1]}, the model ({model.meta['arch']}) "
                         f"takes {want[0]}/{want[1]}",
                fix=f"collect crops for this model: python calibration/collect.py --model {model.path} --video V "
                    f"--bbox x,y,w,h --out calib.npz")
        mine = self.meta.get("checkpoint_sha256")
        same = (mine == model.checkpoint_sha256 if mine is not None
                else self.meta.get("template_sha256") in (None, model.sha256("template")))
        if not same and not other_weights:
            what = (f"checkpoint {str(mine)[:16]}…, the model's is {model.checkpoint_sha256[:16]}…" if mine else
                    f"template.onnx sha256 {str(self.meta.get('template_sha256'))[:16]}…, the model's is "
                    f"{model.sha256('template')[:16]}…")
            raise CalibrationError(f"calibration file {self.path or ''} was collected on other weights than "
                                   f"{model.path}", evidence=f"it records {what}",
                                   fix=f"collect crops with this model: python calibration/collect.py --model "
                                       f"{model.path} --video V --bbox x,y,w,h --out calib.npz (or --force if the "
                                       "two are exports of the same weights)")

    # -------------------------------------------------------------------------------------------------- storage
    def save(self, path: Union[str, Path]) -> Path:
        """Write the set as one compressed ``.npz`` (see the module docstring for the layout)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")  # np.savez would append it anyway
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"template": self.template, "search": self.search, "pair": self.pair.astype(np.int32),
                  "meta": np.array(json.dumps(self.meta))}
        for name, k in self.kernels.items():
            arrays[KERNEL_PREFIX + name] = k.astype(np.float32)
        if self.search_alt is not None:
            arrays["search_alt"] = self.search_alt
            arrays["pair_alt"] = self.pair_alt.astype(np.int32)
        np.savez_compressed(path, **arrays)
        self.path = path
        return path


def load_calibration(path: Union[str, Path]) -> CalibrationSet:
    """Read and validate a calibration file written by :meth:`CalibrationSet.save`.

    Raises:
        CalibrationError: missing, empty, corrupt or inconsistent file (what is wrong, and how to re-collect).
    """
    path = Path(path)
    recollect = (f"re-create it: python calibration/collect.py --model DIR --video V --bbox x,y,w,h "
                 f"--out {path}")
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} does not exist", fix=recollect)
    if path.stat().st_size == 0:
        raise CalibrationError(f"calibration file {path} is empty (0 bytes)", fix=recollect)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise CalibrationError(f"calibration file {path} is corrupt or not a siamtrt .npz",
                               evidence=f"{type(e).__name__}: {str(e)[:200]}", fix=recollect) from None
    if not isinstance(arrays, dict) or not arrays:
        raise CalibrationError(f"calibration file {path} holds no arrays", fix=recollect)
    missing = [k for k in ("template", "search", "pair", "meta") if k not in arrays]
    if missing:
        raise CalibrationError(f"calibration file {path} lacks {missing}",
                               evidence=f"arrays present: {sorted(arrays)}", fix=recollect)
    try:
        meta = json.loads(str(arrays["meta"]))
    except json.JSONDecodeError as e:
        raise CalibrationError(f"calibration file {path} has unreadable metadata", evidence=str(e),
                               fix=recollect) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise CalibrationError(f"calibration file {path} has format {fmt!r}",
                               evidence=f"this siamtrt reads {FORMAT!r}", fix=recollect)
    tpl, srch, pair = arrays["template"], arrays["search"], arrays["pair"]
    alt, pair_alt = arrays.get("search_alt"), arrays.get("pair_alt")
    if (alt is None) != (pair_alt is None):
        raise CalibrationError(f"calibration file {path} has only one of 'search_alt' / 'pair_alt'",
                               evidence=f"arrays present: {sorted(arrays)}", fix=recollect)
    for name, a in (("template", tpl), ("search", srch)) + ((("search_alt", alt),) if alt is not None else ()):
        if a.dtype != np.uint8 or a.ndim != 4 or a.shape[1] != 3 or a.shape[2] != a.shape[3]:
            raise CalibrationError(f"calibration file {path}: '{name}' is not a uint8 [N,3,S,S] crop array",
                                   evidence=f"dtype {a.dtype}, shape {a.shape}", fix=recollect)
    if tpl.shape[0] == 0 or srch.shape[0] == 0:
        raise CalibrationError(f"calibration file {path} contains no samples",
                               evidence=f"{tpl.shape[0]} template crops, {srch.shape[0]} search crops",
                               fix=recollect + " (check that the video has frames and the box lies inside them)")
    for name, p, crops in (("pair", pair, srch),) + ((("pair_alt", pair_alt, alt),) if alt is not None else ()):
        if p.shape != (crops.shape[0],) or (p.size and (p.min() < 0 or p.max() >= tpl.shape[0])):
            raise CalibrationError(f"calibration file {path}: '{name}' does not index the template crops",
                                   evidence=f"{name} shape {p.shape}, range [{p.min() if p.size else '-'}, "
                                            f"{p.max() if p.size else '-'}], {tpl.shape[0]} templates",
                                   fix=recollect)
    kernels = {k[len(KERNEL_PREFIX):]: v for k, v in arrays.items() if k.startswith(KERNEL_PREFIX)}
    bad = {k: v.shape for k, v in kernels.items() if v.shape[0] != tpl.shape[0] or v.dtype != np.float32}
    if bad:
        raise CalibrationError(f"calibration file {path}: stored kernels do not match the template crops",
                               evidence=f"{bad} vs {tpl.shape[0]} templates", fix=recollect)
    return CalibrationSet(template=tpl, search=srch, pair=pair.astype(np.int64), kernels=kernels, meta=meta,
                          path=path, search_alt=alt,
                          pair_alt=None if pair_alt is None else pair_alt.astype(np.int64))


# ------------------------------------------------------------------------------------------------------- helpers
def run_template(model: ModelDir, crops: np.ndarray, threads: Optional[int] = None, batch: int = 8
                 ) -> Dict[str, np.ndarray]:
    """FP32 template outputs of uint8 crops [N,3,E,E], with the runtime's ONNX Runtime backend."""
    from ..runtime.ort import OrtBackend

    opts = {"providers": "cpu"}
    if threads:
        opts["threads"] = threads
    backend = OrtBackend.from_model_dir(model.path, model.meta, **opts)
    step = batch if model.dynamic_batch else 1
    parts: Dict[str, List[np.ndarray]] = {n: [] for n in model.template_outputs}
    with backend:
        for i in range(0, len(crops), step):
            out = backend.run_template(crops[i:i + step].astype(np.float32))
            for n in parts:
                parts[n].append(np.array(out[n], np.float32))
    return {n: np.concatenate(v) for n, v in parts.items()}


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


# ---------------------------------------------------------------------------------------------------- collection
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
        gt = Path(self.path) / "groundtruth_rect.txt"
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


@dataclass
class CollectSummary:
    """What ``calibration/collect.py`` wrote."""

    path: Path
    calib: CalibrationSet
    seconds: float
    per_source: List[Dict[str, Any]]

    def __str__(self) -> str:
        mb = self.path.stat().st_size / 2 ** 20 if self.path.is_file() else 0.0
        lines = [f"calibration set written: {self.path} ({mb:.1f} MB, {self.seconds:.1f}s)",
                 f"  {self.calib.summary()}"]
        for s in self.per_source:
            lines.append(f"  {s['path']}: {s['frames']} frames, boxes from {s['boxes_from']}, "
                         f"{s['search']} search / {s['templates']} template crops")
        if self.calib.num_search < MIN_RECOMMENDED_SEARCH:
            lines.append(f"  warning: fewer than {MIN_RECOMMENDED_SEARCH} search crops — INT8 ranges may be noisy")
        lines.append(f"next: python calibration/quantize.py --model MODEL_DIR --calib {self.path} --precision int8 "
                     f"--out MODEL_DIR_int8")
        return "\n".join(lines)


def _to_uint8(crops: np.ndarray) -> np.ndarray:
    """The tracker's float crops hold integral 0..255 values (uint8 pixels, INTER_LINEAR output): store as uint8."""
    return np.clip(np.rint(crops), 0, 255).astype(np.uint8)


@dataclass
class SourceCrops:
    """What :func:`collect_source` took from one source."""

    templates: List[np.ndarray]
    searches: List[np.ndarray]
    pair: List[int]
    kernels: Dict[str, List[np.ndarray]]
    info: Dict[str, Any]
    searches_alt: List[np.ndarray] = field(default_factory=list)
    pair_alt: List[int] = field(default_factory=list)


@dataclass
class _FramePlan:
    """Which frames of a source give crops, and where the boxes come from."""

    count: int
    gt: Optional[np.ndarray]
    gt_path: Optional[Path]
    search_at: Set[int]
    template_at: Set[int]
    init_box: np.ndarray


def _plan_frames(source: SourceSpec, frame_count: Optional[int], frame_wh, n_search: int,
                 n_templates: int) -> _FramePlan:
    """Search crops at ``n_search`` evenly spaced frames ≥ 1 (with a box file: those whose previous box exists),
    templates at ``n_templates`` evenly spaced frames (frame 0 always)."""
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
            raise InputError(f"box file {gt_path}: the first box is missing or empty", evidence=str(gt[0]))
    if count is None or count < 2:
        raise InputError(f"calibration source {source.path} has {count or 'an unknown number of'} frames",
                         fix="use a video or image folder with at least 2 frames")
    frame_ok = [True] * count if gt is None else [True] + [bool(np.all(np.isfinite(gt[t - 1])))
                                                           for t in range(1, count)]
    search_at = set(even_indices([t for t in range(1, count) if frame_ok[t]], n_search))
    template_at = set(even_indices(list(range(count)), n_templates)) | {0}
    if gt is not None:
        template_at = {t for t in template_at if np.all(np.isfinite(gt[t]))}
    init_box = np.asarray(gt[0] if gt is not None else source.bbox, np.float64)
    check_boxes(init_box, frame_wh)
    return _FramePlan(count, gt, gt_path, search_at, template_at, init_box)


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


def collect_source(tracker, source: SourceSpec, n_search: int, n_templates: int, progress: bool = True,
                   max_frames: Optional[int] = None) -> SourceCrops:
    """Crops from one source with an (already built) FP32 tracker, read through its observer hook.

    Search crops are taken at ``n_search`` evenly spaced frames ≥ 1, template crops at ``n_templates`` evenly
    spaced frames (frame 0 always); a search crop is paired with the latest template taken before its frame. With an
    adaptive model (SiamRPNBIG) each sampled frame also gives the crop at the other search size, cut by a second
    tracker at that size started from the same box on the previous frame.
    """
    from tqdm import tqdm

    from ..runtime.tracker import Tracker
    from ..runtime.video import open_frames

    src = open_frames(source.path, max_frames=max_frames)
    ztracker = Tracker(tracker.backend, tracker.info)  # extra templates, same backend and geometry
    sizes = tuple(tracker.info.track.local_instance_sizes)  # not the long-term lost size (831)
    atracker = Tracker(tracker.backend, tracker.info) if len(sizes) > 1 else None  # the other search size
    log = _CropLog()
    log.attach(tracker)
    log.attach(ztracker, search=False)
    if atracker is not None:
        log.attach(atracker, template=False)
    instance_size = int(tracker.info.track.instance_size)
    crops = SourceCrops([], [], [], {}, {})
    t_frames: List[int] = []
    s_frames: List[int] = []
    alt_frames: List[int] = []
    skipped = 0

    def keep_template(t: int) -> None:
        crops.templates.append(_to_uint8(log.template))
        t_frames.append(t)
        for k, v in log.kernels.items():
            crops.kernels.setdefault(k, []).append(v)

    bar = None
    try:
        plan = _plan_frames(source, src.frame_count, src.size, n_search, n_templates)
        bar = tqdm(total=plan.count, desc=f"collect {Path(source.path).name}", unit="frame", disable=not progress,
                   leave=False)
        prev, box, other = None, plan.init_box, None
        for t, frame in enumerate(src):
            if t >= plan.count:
                break
            if t == 0:
                log.want = True
                tracker.init(frame, plan.init_box)
                log.want = False
                keep_template(0)
                if atracker is not None:
                    other = [z for z in sizes if z != int(tracker.instance[0])][0]
            else:
                taken, box, miss = _search_step(tracker, atracker, log, plan, t, frame, prev, box, other)
                skipped += miss
                for crop in taken:
                    main = crop.shape[-1] == instance_size
                    (crops.searches if main else crops.searches_alt).append(_to_uint8(crop))
                    (s_frames if main else alt_frames).append(t)
                if t in plan.template_at:
                    log.want = True
                    try:
                        ztracker.init(frame, box)
                    except InputError:  # the box left the frame: no template here
                        pass
                    else:
                        keep_template(t)
                    log.want = False
            prev = frame
            bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        src.close()
        for tr in (tracker, ztracker, atracker):
            if tr is not None:
                log.detach(tr)

    def latest_template(frames: List[int]) -> List[int]:  # the latest template taken before each frame
        return [int(np.searchsorted(t_frames, f, side="left") - 1) for f in frames]

    crops.pair, crops.pair_alt = latest_template(s_frames), latest_template(alt_frames)
    crops.info = {"path": str(source.path), "frames": plan.count,
                  "boxes_from": str(plan.gt_path) if plan.gt_path else "tracker",
                  "init_bbox": [float(v) for v in plan.init_box], "search_frames": s_frames,
                  "template_frames": t_frames, "search": len(crops.searches), "templates": len(crops.templates),
                  "skipped": skipped}
    if atracker is not None:
        crops.info.update({"search_alt": len(crops.searches_alt), "search_alt_frames": alt_frames})
    return crops


def collect(model_dir: Union[str, Path], sources: Sequence[SourceSpec], out: Optional[Union[str, Path]] = None, *,
            max_samples: int = DEFAULT_MAX_SAMPLES, templates_per_source: int = DEFAULT_TEMPLATES_PER_SOURCE,
            max_frames: Optional[int] = None, threads: Optional[int] = None, progress: bool = True
            ) -> CollectSummary:
    """Cut calibration crops from videos / image folders exactly as the FP32 tracker does, and save them.

    Args:
        model_dir (str | Path): the fp32 model directory (its tracker makes the trajectory and the crops).
        sources (Sequence[SourceSpec]): videos / folders with their init box or box file.
        out (str | Path): ``.npz`` to write. Defaults to None (not written; the set is returned).
        max_samples (int): cap on search crops over all sources (shared by frame count). Defaults to 256.
        templates_per_source (int): template crops per source (frame 0 included). Defaults to 8.
        max_frames (int): use at most this many frames of each source. Defaults to None (all).
        threads (int): ONNX Runtime threads. Defaults to the physical cores.
        progress (bool): tqdm bars. Defaults to True.

    Raises:
        InputError: unreadable source, bad box or box file. ModelDirError: bad model directory.
        CalibrationError: no crop could be taken.
    """
    from ..runtime.tracker import Tracker
    from ..runtime.video import open_frames

    t0 = time.perf_counter()
    if not sources:
        raise InputError("no calibration source given", fix="pass --video V (a video, image folder or OTB folder)")
    if max_samples < 1 or templates_per_source < 1:
        raise InputError("--max-samples and --templates must be ≥ 1",
                         evidence=f"max_samples={max_samples}, templates={templates_per_source}")
    md = ModelDir.open(model_dir, require_fp32=True, require_conv=True)
    counts = []
    for s in sources:
        s.resolve_boxes()  # fail early on a source without boxes
        with open_frames(s.path, max_frames=max_frames) as fs:
            counts.append(max((fs.frame_count or 2) - 1, 0))
    budgets = split_budget(counts, max_samples)
    opts = {"providers": "cpu"}
    if threads:
        opts["threads"] = threads
    tracker = Tracker.from_model_dir(md.path, backend="onnxruntime", **opts)
    all_t, all_s, all_p, all_k, infos, alt_s, alt_p = [], [], [], {}, [], [], []
    with tracker:
        for s, budget in zip(sources, budgets):
            got = collect_source(tracker, s, budget, templates_per_source, progress, max_frames=max_frames)
            offset = len(all_t)
            all_t += got.templates
            all_s += got.searches
            all_p += [p + offset for p in got.pair]
            alt_s += got.searches_alt
            alt_p += [p + offset for p in got.pair_alt]
            for k, v in got.kernels.items():
                all_k.setdefault(k, []).extend(v)
            infos.append(got.info)
    if not all_s:
        raise CalibrationError("no search crop could be collected",
                               evidence="; ".join(f"{i['path']}: {i['frames']} frames" for i in infos),
                               fix="use longer videos (≥ 2 frames) with valid boxes")
    meta = {"format": FORMAT, "siamtrt": __version__, "arch": md.meta["arch"],
            "exemplar_size": md.exemplar_size, "instance_size": md.instance_size,
            "template_outputs": md.template_outputs, "template_sha256": md.sha256("template"),
            "checkpoint_sha256": md.checkpoint_sha256,
            "model_dir": str(md.path), "max_samples": max_samples, "templates_per_source": templates_per_source,
            "sources": infos, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    cset = CalibrationSet(template=np.stack(all_t), search=np.stack(all_s), pair=np.asarray(all_p, np.int64),
                          kernels={k: np.stack(v).astype(np.float32) for k, v in all_k.items()}, meta=meta,
                          search_alt=np.stack(alt_s) if alt_s else None,
                          pair_alt=np.asarray(alt_p, np.int64) if alt_s else None)
    path = cset.save(out) if out is not None else Path("")
    LOG.info("INT8: %s", cset.summary())  # (too few crops for calibration: the summary and quantize_int8 warn)
    return CollectSummary(path=path, calib=cset, seconds=time.perf_counter() - t0, per_source=infos)
