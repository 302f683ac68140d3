"""The lean tracker: reference-exact SiamRPN / DaSiamRPN tracking of one or many targets on any backend.

State is held in arrays (centre, size, channel mean, instance size per target) so N targets cost one batched
template call at ``init`` and one batched search call per frame. Conventions (boxes are 0-based x, y, w, h):

* pysot (SiamRPNTracker): centre = (x + (w−1)/2, y + (h−1)/2); template crop side round(sqrt(w_z·h_z)) with
  w_z = w + ca·(w+h); per frame s_z = sqrt(w_z·h_z) (not rounded), scale_z = E/s_z, s_x = s_z·I/E, crop side
  round(s_x), crop origin floor(pos − c + 0.5).
* DaSiamRPN (run_SiamRPN.py): centre = (x + w/2, y + h/2) (its OTB code adds ±1 for 1-based rects; here boxes are
  0-based throughout); per frame s_x = s_z + 2·((I − E)/2)/scale_z, crop origin round(pos − c); with an adaptive
  model (SiamRPNBIG) the instance size is chosen per target at init (287 when w·h / frame area < 0.004, else 271).
  Targets with different instance sizes are tracked in one batched call per size.
* Output (both): x = cx − w/2, y = cy − h/2, score = un-penalised foreground probability of the chosen anchor.

Every mode stores the state under the safety bounds of :mod:`siamtrt.runtime.geometry` (centre in the frame, size
in [10, frame side]; a non-finite step keeps the old state), so crops, and with them time and memory per frame,
stay bounded whatever the network outputs.
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
import reprlib
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import BackendError, InputError, ModelDirError
from ..modeldir import ModelDir
from .backend import Backend, KernelSet
from .backends import backend_class, choose_backend
from .crop import crop_batch, input_buffer
from .geometry import Geometry, bound_init_size, bound_state, crop_sizes, geometry, template_side
from .modes import DistractorMemory, Mode, check_mode, find_distractors, longterm_update, lost_instance_sizes, \
    parse_mode
from .postprocess import PostParams, Workspace, postprocess
from .result import SearchEvent, TemplateEvent, TrackResult

LOG = logging.getLogger(__name__)


def check_frame(frame: Any) -> np.ndarray:
    """A BGR uint8 HxWx3 frame, or InputError naming the conversion the frame given needs (views of any strides are
    frames: the crop reads them as they are)."""
    if frame is None:
        raise InputError("frame is None", fix="cv2.imread returns None for a file it cannot read, cap.read() "
                                              "(False, None) at the end of a video or on a camera error: check them")
    if not isinstance(frame, np.ndarray):
        raise InputError(f"frame must be a numpy array, got {type(frame).__name__}",
                         fix="pass a numpy array: an image read with cv2.imread / cv2.VideoCapture")
    shape, fixes = frame.shape, []
    if frame.dtype != np.uint8:  # 0..255 or 0..1 or 16-bit: a guess would be silently wrong, so it is refused
        fixes.append("cast to 0..255 uint8: frame.astype(np.uint8) (float 0..255), "
                     "(frame * 255).round().astype(np.uint8) (float 0..1), (frame >> 8).astype(np.uint8) (16-bit)")
    if frame.ndim == 2 or shape[-1:] == (1,):
        fixes.append("grey: cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)")
    elif frame.ndim == 3 and shape[2] == 4:
        fixes.append("4 channels: cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR) (RGBA: COLOR_RGBA2BGR)")
    elif frame.size == 0:
        fixes.append("the frame is empty: pass a decoded image (check the ok of cap.read())")
    elif frame.ndim != 3 or shape[2] != 3:
        fixes.append("pass one HxWx3 image, channels last: (3,H,W) → frame.transpose(1, 2, 0); a batch → one frame "
                     "of it")
    if fixes:
        raise InputError("frame must be an HxWx3 uint8 BGR image",
                         evidence=f"got shape {shape}, dtype {frame.dtype}", fix="; ".join(fixes))
    return frame


def check_boxes(bbox: Any, frame_wh: Tuple[int, int]) -> Tuple[np.ndarray, bool]:
    """(N, 4) float64 x, y, w, h boxes and whether a single (4,) box was given.

    Raises:
        InputError: not numbers, wrong shape, non-finite values, zero/negative size, or a box entirely outside the
            frame.
    """
    try:
        arr = np.asarray(bbox, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"bbox must be x,y,w,h (4 numbers) or an (N, 4) array of them, got {reprlib.repr(bbox)}",
                         fix="e.g. --bbox 316,140,112,115, or tracker.init(frame, (316, 140, 112, 115))") from None
    single = arr.ndim == 1
    boxes = arr.reshape(1, -1) if single else arr
    if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] == 0:
        raise InputError(f"bbox must be x,y,w,h (4 numbers) or an (N, 4) array, got shape {arr.shape}",
                         evidence=f"got {reprlib.repr(bbox)}", fix="e.g. --bbox 316,140,112,115")
    w_img, h_img = frame_wh
    for i, (x, y, w, h) in enumerate(boxes):
        name = "bbox" if single else f"bbox[{i}]"
        if not np.all(np.isfinite((x, y, w, h))):
            raise InputError(f"{name} has non-finite values: {x},{y},{w},{h}")
        if w <= 0 or h <= 0:
            raise InputError(f"{name} has zero or negative size: w={w:g}, h={h:g}",
                             fix="give the box as x,y,w,h (top-left corner, width, height), not x1,y1,x2,y2")
        if x >= w_img or y >= h_img or x + w <= 0 or y + h <= 0:
            raise InputError(f"{name} {x:g},{y:g},{w:g},{h:g} lies outside the {w_img}x{h_img} frame",
                             evidence="no pixel of the box is inside the image",
                             fix="give x,y,w,h in pixels of the first frame (0-based top-left corner)")
    return boxes, single


@dataclasses.dataclass
class _Group:
    """One batched search: targets ``indices`` at ``instance`` pixels, fed ``kernels`` (for a subset: row copies,
    with ``sources`` = {name: (source array, source version)} they were copied at)."""

    instance: int
    indices: np.ndarray
    kernels: KernelSet
    sources: Dict[str, Tuple[np.ndarray, int]] = dataclasses.field(default_factory=dict)


class _Step:
    """One frame's results being assembled group by group: new state, scores, lost flags, distractors, timings."""

    def __init__(self, n: int, frame_wh: Tuple[int, int], lost: np.ndarray):
        self.frame_wh = frame_wh
        self.center = np.empty((n, 2))
        self.size = np.empty((n, 2))
        self.scores = np.empty(n)
        self.lost = lost.copy()
        self.found: List[Tuple[np.ndarray, np.ndarray]] = []
        self.timings = {"crop": 0.0, "search": 0.0, "post": 0.0}


class Tracker:
    """SiamRPN(++) / DaSiamRPN tracker over a backend.

    Args:
        backend (Backend): inference backend (activated on first use).
        info (ModelDir): the model directory's checked metadata.
        mode (str): "short", "longterm", "distractor" or "longterm+distractor" (:mod:`siamtrt.runtime.modes`).
            Defaults to None: the model's default (``track.mode`` in the metadata; "short" unless exported from a
            pysot ``_lt`` config).

    Use :meth:`from_model_dir`. ``init(frame, bbox)`` accepts one (4,) box or (N, 4) boxes; ``track(frame)``
    returns a :class:`~siamtrt.runtime.result.TrackResult` (``boxes`` (N, 4), ``scores`` (N,); ``bbox`` / ``score``
    for one target). ``last_timings`` holds seconds of the last call ("crop", "template" or "search", "post").

    Distractor mode: distractor kernels that are not finite, or would make the merged kernel overflow, are not
    learnt; the first frame with any logs a warning, :attr:`distractors_dropped` counts them all.

    Observers (:meth:`add_observer`) see every batched backend call with its exact inputs and outputs; with none
    registered the tracker builds no event (no cost).
    """

    def __init__(self, backend: Backend, info: ModelDir, mode: Optional[str] = None):
        self.backend = backend
        self.info = info
        t, a = info.track, info.anchor
        self.mode: Mode = parse_mode(t.mode if mode is None else mode)
        check_mode(self.mode, info)
        self.flavour = t.flavour
        self.exemplar_size = t.exemplar_size
        self.context_amount = t.context_amount
        self.params = PostParams(penalty_k=t.penalty_k, window_influence=t.window_influence, lr=t.lr,
                                 flavour=t.flavour)
        self.geometries: Dict[int, Geometry] = {
            inst: geometry(t.score_size(a.stride, inst), a.stride, a.ratios, a.scales, t.flavour)
            for inst in t.instance_sizes}
        self.last_timings: Dict[str, float] = {}
        self.backend_reason = "given"  # why this backend (from_model_dir: "requested" or the "auto" reasoning)
        self._n = 0
        self.center = np.zeros((0, 2))
        self.size = np.zeros((0, 2))
        self.avg_chans = np.zeros((0, 3))
        self.instance = np.zeros((0,), np.int64)
        self._kernels: Dict[str, np.ndarray] = {}  # template outputs, (N, …) per name
        self._search_kernels = KernelSet()
        self._merged: Dict[str, np.ndarray] = {}
        self._groups: List[_Group] = []
        self._workspaces: Dict[int, Workspace] = {}
        self._outputs_checked: set = set()
        self._dtypes: Optional[Tuple[np.dtype, np.dtype]] = None
        self._observers: Dict[str, List[Callable]] = {"search": [], "template": []}
        # mode state, per target: local search size, lost flag, consecutive lost frames; distractor memory
        self.base_instance = np.zeros((0,), np.int64)
        self.lost = np.zeros((0,), bool)
        self.lost_steps = np.zeros((0,), np.int64)
        self.memory: Optional[DistractorMemory] = None
        self.distractors_dropped = 0  # distractor kernels not learnt (not finite, overflow), over the tracker's life
        self._group_key: Optional[Tuple[bytes, bytes]] = None
        self._lost_params = dataclasses.replace(self.params, window_influence=float(t.lost_window_influence))

    def _geometry(self, inst: int) -> Geometry:
        """The anchors and window of one search size: the model's sizes are kept in :attr:`geometries`; a long-term
        growth size (one per lost frame, ~70 between 287 and 831 with a step of 8) comes from :func:`geometry`'s
        own bounded cache, so a tracker holds no more per-size state the longer it runs."""
        geo = self.geometries.get(inst)
        if geo is None:
            t, a = self.info.track, self.info.anchor
            geo = geometry(t.score_size(a.stride, inst), a.stride, a.ratios, a.scales, t.flavour)
        return geo

    # ------------------------------------------------------------------------------------------- construction
    @classmethod
    def from_model_dir(cls, model_dir: Union[str, Path], backend: str = "auto", mode: Optional[str] = None,
                       **options: Any) -> "Tracker":
        """Tracker over an exported model directory.

        Args:
            model_dir (str | Path): folder with template/search models and their metadata.
            backend (str): "auto", "onnxruntime" or "tensorrt". Defaults to "auto" (TensorRT when engines, TensorRT
                and a CUDA device are present, else ONNX Runtime).
            mode (str): tracking mode (see the class). Defaults to None (the model's default, usually "short").
            **options: backend options (onnxruntime: threads, providers, io_binding).

        Raises:
            ModelDirError: missing files, incompatible metadata, or a mode the directory was not exported for.
            InputError: unknown mode. BackendError: unknown/unavailable backend.
        """
        info = ModelDir.open(model_dir)
        if mode is not None or info.track.mode != "short":
            check_mode(parse_mode(info.track.mode if mode is None else mode), info)  # before loading any backend
        name, reason = choose_backend(backend, model_dir)
        LOG.info("runtime: backend %s (%s)", name, reason)
        be = backend_class(name).from_model_dir(model_dir, info.meta, **options)
        tracker = cls(be, info, mode=mode)
        tracker.backend_reason = reason
        return tracker

    def close(self) -> None:
        """Release the backend's sessions/engines."""
        self.backend.deactivate()

    def __enter__(self) -> "Tracker":
        self.backend.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def num_targets(self) -> int:
        return self._n

    # ---------------------------------------------------------------------------------------------- observers
    def add_observer(self, fn: Callable[[Any], None], branch: str = "search") -> Callable[[Any], None]:
        """Call ``fn(event)`` after every batched backend call of ``branch``; returns ``fn`` (for removal).

        ``branch="search"``: once per search batch per frame (one batch per instance size in use), with a
        :class:`~siamtrt.runtime.result.SearchEvent` — instance size, target indices, the crop array exactly as fed
        to ``run_search``, the kernels dict fed with it, the raw ``cls`` / ``loc``, and the centre / size / scale_z
        the crop was cut around — called after the backend call and before post-processing updates the state.
        ``branch="template"``: once per ``run_template`` call, with a :class:`~siamtrt.runtime.result.TemplateEvent`
        (crop as fed, kernels returned, purpose "init" or "distractor"), after the call.

        Arrays in events are the tracker's / backend's own buffers, reused on the next call: copy what you keep and
        never write to them. Observers run synchronously inside ``init`` / ``track`` (their time is counted in
        ``last_timings``); an exception in an observer propagates. Nothing is built when no observer is registered.

        Raises:
            InputError: unknown branch, ``fn`` not callable.
        """
        if branch not in self._observers:
            raise InputError(f"unknown observer branch {branch!r}", fix="use branch='search' or branch='template'")
        if not callable(fn):
            raise InputError(f"observer must be callable, got {reprlib.repr(fn)}",
                             fix="pass a function taking one event: tracker.add_observer(lambda ev: ...)")
        self._observers[branch].append(fn)
        return fn

    def remove_observer(self, fn: Callable[[Any], None], branch: Optional[str] = None) -> None:
        """Stop calling ``fn`` (for ``branch``, or every branch it was added to when None); unknown fn is ignored."""
        for b, fns in self._observers.items():
            if branch is None or b == branch:
                while fn in fns:
                    fns.remove(fn)

    def _run_template(self, z: np.ndarray, purpose: str, center: np.ndarray, size: np.ndarray,
                      side: np.ndarray, indices: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
        kernels = self.backend.run_template(z)
        if self._observers["template"]:
            ev = TemplateEvent(purpose=purpose, indices=np.arange(len(z)) if indices is None else indices, crop=z,
                               kernels=kernels, center=center, size=size, side=side)
            for fn in list(self._observers["template"]):
                fn(ev)
        return kernels

    def _io_dtypes(self) -> Tuple[np.dtype, np.dtype]:
        self.backend.activate()  # idempotent: loads sessions on first use (and again after close())
        if self._dtypes is None:
            self._dtypes = (self.backend.input_metadata("template")["template"][0],
                            self.backend.input_metadata("search")["search"][0])
        return self._dtypes

    # -------------------------------------------------------------------------------------------------- init
    def init(self, frame: np.ndarray, bbox: Any, instance_size: Optional[int] = None) -> None:
        """Start tracking the given box(es) in ``frame`` (replaces any previous targets).

        Args:
            frame (np.ndarray): BGR uint8 image.
            bbox: x,y,w,h or an (N, 4) array.
            instance_size (int): search size for these targets instead of the model's choice; only the sizes the
                model supports (SiamRPNBIG: 271 or 287). Defaults to None (the model's choice by target area).

        A box larger than the frame is stored at the frame's size (the safety bound,
        :func:`~siamtrt.runtime.geometry.bound_init_size`); any other box as given.

        Raises:
            InputError: bad frame or box (zero size, outside the frame, wrong shape), unsupported instance_size.
            BackendError: the template branch returned non-finite kernels (the targets could never be found).
        """
        self._set_targets(*self._new_targets(frame, bbox, instance_size))

    def add(self, frame: np.ndarray, bbox: Any) -> np.ndarray:
        """Add target(s) initialised on ``frame`` to those already tracked; returns their indices (the next ones).

        Raises:
            InputError, BackendError: as :meth:`init` (the targets tracked so far are kept).
        """
        if self._n == 0:
            self.init(frame, bbox)
            return np.arange(self._n)
        start = self._n
        parts = self._new_targets(frame, bbox, first=start)
        old = (self.center, self.size, self.avg_chans, self.instance, self._kernels)
        fresh = self._fresh_state(parts[3], parts[4])
        state = (np.concatenate([self.base_instance, fresh[0]]), np.concatenate([self.lost, fresh[1]]),
                 np.concatenate([self.lost_steps, fresh[2]]),
                 self.memory.extend(fresh[3]) if self.memory is not None else None)
        self._set_targets(*(np.concatenate([o, p]) for o, p in zip(old[:4], parts[:4])),
                          {k: np.concatenate([old[4][k], parts[4][k]]) for k in old[4]}, state=state)
        return np.arange(start, self._n)

    def remove(self, indices: Sequence[int]) -> None:
        """Stop tracking the targets at ``indices`` (0 … num_targets − 1; the others keep their order).

        Raises:
            InputError: an index that is not a tracked target's (negative, too large, not a whole number).
        """
        idx = np.asarray(indices).ravel()
        if idx.size and (idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= self._n):
            raise InputError(f"remove(): {reprlib.repr(indices)} are not indices of tracked targets",
                             evidence=f"{self._n} target(s) tracked"
                                      + (f", at indices 0 to {self._n - 1}" if self._n else ""),
                             fix="pass indices that init() / add() gave (add returns the new targets' indices)")
        keep = np.setdiff1d(np.arange(self._n), idx)
        state = (self.base_instance[keep], self.lost[keep], self.lost_steps[keep],
                 self.memory.select(keep) if self.memory is not None else None)
        self._set_targets(self.center[keep], self.size[keep], self.avg_chans[keep], self.instance[keep],
                          {k: v[keep] for k, v in self._kernels.items()}, state=state)

    def _new_targets(self, frame: np.ndarray, bbox: Any, instance_size: Optional[int] = None, first: int = 0):
        """State and template kernels of new targets (nothing of the tracker changed); ``first`` = the index the
        first of them will have (what their template event reports)."""
        t0 = time.perf_counter()
        frame = check_frame(frame)
        img_h, img_w = frame.shape[:2]
        boxes, _ = check_boxes(bbox, (img_w, img_h))
        x, y, w, h = boxes.T
        if self.flavour == "pysot":
            center = np.stack([x + (w - 1) / 2, y + (h - 1) / 2], 1)
        else:
            center = np.stack([x + w / 2, y + h / 2], 1)
        size = bound_init_size(np.stack([w, h], 1), (img_w, img_h))
        avg = np.broadcast_to(np.mean(frame, axis=(0, 1)), (len(boxes), 3)).copy()
        s_z = template_side(size, self.context_amount)
        t = self.info.track
        instance = np.full(len(boxes), t.instance_size, np.int64)
        if instance_size is not None:
            if not isinstance(instance_size, numbers.Real) or instance_size not in t.instance_sizes:
                raise InputError(f"instance_size {instance_size!r} is not a search size of this model",
                                 evidence=f"{self.info.meta.get('arch')}: {list(t.instance_sizes)}",
                                 fix=f"use one of {list(t.instance_sizes)} or leave it unset")
            instance[:] = int(instance_size)
        elif t.adaptive_instance_size is not None:
            small = (size[:, 0] * size[:, 1]) / float(img_h * img_w) < t.adaptive_area_ratio
            instance[small] = t.adaptive_instance_size
        tdtype, _ = self._io_dtypes()
        z = np.empty((len(boxes), 3, self.exemplar_size, self.exemplar_size), tdtype)
        crop_batch(frame, center, self.exemplar_size, s_z.astype(np.int64), avg, self.flavour, out=z)
        t1 = time.perf_counter()
        kernels = self._run_template(z, "init", center, size, s_z, indices=np.arange(first, first + len(boxes)))
        bad = {k: int(np.count_nonzero(~np.isfinite(v))) for k, v in kernels.items()}
        if any(bad.values()):
            raise BackendError(f"{self.backend.instance_name('template')} returned non-finite kernels for the "
                               f"box(es) given: no search could ever find these targets",
                               evidence=", ".join(f"{k}: {n} of {kernels[k].size} values NaN / inf"
                                                  for k, n in bad.items() if n),
                               fix="check the model directory (siamtrt inspect DIR --check); an FP16 / INT8 "
                                   "directory whose values overflow: track with its FP32 source or re-export it")
        t2 = time.perf_counter()
        self.last_timings = {"crop": t1 - t0, "template": t2 - t1, "post": 0.0}
        return center, size, avg, instance, kernels

    def _fresh_state(self, instance: np.ndarray, kernels: Dict[str, np.ndarray]):
        """Mode state of new targets: local search size, not lost, no distractors."""
        n = len(instance)
        memory = DistractorMemory(n, kernels) if self.mode.distractor else None
        return instance.copy(), np.zeros(n, bool), np.zeros(n, np.int64), memory

    def _set_targets(self, center, size, avg, instance, kernels, state=None) -> None:
        t0 = time.perf_counter()
        self.center, self.size, self.avg_chans, self.instance = center, size, avg, instance
        self._kernels = kernels
        self._n = len(center)
        self.base_instance, self.lost, self.lost_steps, self.memory = (
            self._fresh_state(instance, kernels) if state is None else state)
        # the kernels every search reads: the template outputs themselves; distractor mode swaps in its merged
        # classification kernels (persistent arrays, rewritten in place) once a distractor is known
        self._search_kernels = KernelSet(kernels)
        self._merged: Dict[str, np.ndarray] = {}
        self._groups = []
        self._group_key = None
        self._refresh_groups()
        self.last_timings["post"] = time.perf_counter() - t0

    # ----------------------------------------------------------------------------------------- search groups
    def _refresh_groups(self) -> None:
        """One batch per (instance size, lost flag). A group holding every target searches with the tracker's
        KernelSet itself; others with row subsets, copied once per regrouping and refreshed in place (version
        bumped) when their source changed, so a backend re-uploads only what changed."""
        key = (self.instance.tobytes(), self.lost.tobytes())
        src = self._search_kernels
        if key != self._group_key:
            self._groups = []
            for inst, lost in sorted(set(zip(self.instance.tolist(), self.lost.tolist()))):
                idx = np.flatnonzero((self.instance == inst) & (self.lost == lost))
                self._groups.append(_Group(int(inst), idx, src if len(idx) == self._n else KernelSet()))
            self._group_key = key
        for g in self._groups:
            if g.kernels is src:
                continue
            for name, arr in src.items():
                seen = g.sources.get(name)
                if seen is None or seen[0] is not arr:
                    g.kernels[name] = np.ascontiguousarray(arr[g.indices])
                elif seen[1] != src.version(name):
                    np.take(arr, g.indices, axis=0, out=g.kernels[name])
                    g.kernels.touch(name)
                else:
                    continue
                g.sources[name] = (arr, src.version(name))

    def _update_distractor_kernels(self) -> None:
        """Distractor mode, before the search: merge the memory into the classification kernels, in place, on
        frames after new distractors were found (the first time: persistent arrays replace the template's)."""
        memory = self.memory
        if not memory.changed or not memory.active:
            return
        if not self._merged:
            self._merged = {k: np.empty_like(self._kernels[k]) for k in memory.sums}
        memory.merge_into(self._kernels, self._merged, self.info.track.distractor_weight)
        memory.changed = False
        for name, arr in self._merged.items():
            if self._search_kernels.get(name) is arr:
                self._search_kernels.touch(name)
            else:
                self._search_kernels[name] = arr

    # ------------------------------------------------------------------------------------------------- track
    def track(self, frame: np.ndarray) -> TrackResult:
        """Locate every target in ``frame``.

        Steps: mode updates before the search (distractor kernels, regrouping), then per search group (one per
        instance size and lost flag) crop → search → post-process (:meth:`_search_group`), then the mode updates
        after it (long-term next search sizes, distractor learning).

        Returns:
            TrackResult: ``boxes`` (N, 4) x, y, w, h and ``scores`` (N,); ``bbox`` (4,) / ``score`` for one target;
            ``lost`` / ``instance_size`` / ``distractors`` per target (long-term / distractor modes).

        Raises:
            InputError: bad frame or no target initialised. ModelDirError: model outputs disagree with metadata.
        """
        if self._n == 0:
            raise InputError("track() called before init()", fix="call tracker.init(frame, bbox) first")
        frame = check_frame(frame)
        _, sdtype = self._io_dtypes()  # activates the backend again after close()
        step = _Step(self._n, (frame.shape[1], frame.shape[0]), self.lost)
        if not self.mode.short:
            t0 = time.perf_counter()
            if self.mode.distractor:
                self._update_distractor_kernels()
            self._refresh_groups()
            step.timings["post"] += time.perf_counter() - t0
        searched = self.instance.copy()
        for group in self._groups:
            self._search_group(frame, group, step, sdtype)
        self.center, self.size = step.center, step.size
        self.last_timings = step.timings
        counts = None
        if self.mode.longterm:
            self._next_search(step.lost, step.frame_wh)
        if self.mode.distractor:
            counts = self._learn_distractors(frame, step.found)
        bbox = np.concatenate([self.center - self.size / 2, self.size], axis=1)
        return TrackResult(boxes=bbox, scores=step.scores, lost=self.lost.copy(), instance_size=searched,
                           distractors=counts, mode=self.mode.name)

    def _search_group(self, frame: np.ndarray, group: "_Group", step: "_Step", dtype: np.dtype) -> None:
        """Crop, search and post-process one batch of targets; writes their new state into ``step``."""
        t0 = time.perf_counter()
        inst, idx = group.instance, group.indices
        center, size = self.center[idx], self.size[idx]
        cs = crop_sizes(size, self.context_amount, self.exemplar_size, inst, self.flavour)
        buf = crop_batch(frame, center, inst, cs.search_side, self.avg_chans[idx], self.flavour,
                         out=input_buffer(len(idx), inst, dtype))
        t1 = time.perf_counter()
        cls, loc = self.backend.run_search(buf, group.kernels)
        t2 = time.perf_counter()
        geo = self._geometry(inst)
        self._check_outputs(inst, cls, loc, geo, len(idx))
        if self._observers["search"]:
            ev = SearchEvent(instance_size=inst, indices=idx, crop=buf, kernels=group.kernels, cls=cls, loc=loc,
                             center=center, size=size, scale_z=cs.scale_z)
            for fn in list(self._observers["search"]):
                fn(ev)
        ws = self._workspaces.setdefault(inst if inst in self.geometries else 0, Workspace())  # 0: growth sizes
        lost = self.mode.longterm and bool(self.lost[idx[0]])
        res = postprocess(cls, loc, geo, center, size, cs.scale_z, step.frame_wh,
                          self._lost_params if lost else self.params, ws)
        if self.mode.longterm:  # SiamRPNLTTracker: lost-state window, update only when confident
            c, z, step.lost[idx] = longterm_update(self.info.track, res.score, res.center, res.size, center, size,
                                                   self.lost[idx])
            step.center[idx], step.size[idx] = bound_state(c, z, step.frame_wh)
        else:
            step.center[idx], step.size[idx] = res.center, res.size
        step.scores[idx] = res.score
        if self.mode.distractor:
            for r, pts in zip(idx, find_distractors(self.info.track, ws.arrays["score"], ws.arrays["boxes"],
                                                    res.best, center, cs.scale_z)):
                step.found.append((np.full(len(pts), r, np.int64), pts))
        t3 = time.perf_counter()
        step.timings["crop"] += t1 - t0
        step.timings["search"] += t2 - t1
        step.timings["post"] += t3 - t2

    def _next_search(self, lost: np.ndarray, frame_wh: Tuple[int, int]) -> None:
        """Long-term: lost flags and consecutive lost frames → next frame's search size per target."""
        t = self.info.track
        self.lost = lost
        self.lost_steps = np.where(lost, self.lost_steps + 1, 0)
        inst = self.base_instance.copy()
        if lost.any():
            s_z = crop_sizes(self.size[lost], self.context_amount, self.exemplar_size, 1, self.flavour).s_z
            inst[lost] = lost_instance_sizes(t, self.base_instance[lost], self.lost_steps[lost], s_z,
                                             self.center[lost], frame_wh)
        self.instance = inst

    def _learn_distractors(self, frame: np.ndarray, found: List[Tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Distractor mode: one batched template call on this frame's distractors, then the memory update."""
        t0 = time.perf_counter()
        t = self.info.track
        owner = np.concatenate([o for o, _ in found]) if found else np.zeros(0, np.int64)
        counts = np.bincount(owner, minlength=self._n).astype(np.int64)
        kernels: Dict[str, np.ndarray] = {}
        if len(owner):
            centers = np.concatenate([p for _, p in found])
            side = template_side(self.size[owner], self.context_amount)
            tdtype, _ = self._io_dtypes()
            z = np.empty((len(owner), 3, self.exemplar_size, self.exemplar_size), tdtype)
            crop_batch(frame, centers, self.exemplar_size, side.astype(np.int64), self.avg_chans[owner],
                       self.flavour, out=z)
            kernels = self._run_template(z, "distractor", centers, self.size[owner], side, indices=owner)
        dropped = self.memory.update(t.distractor_lr, owner, kernels, self._kernels, t.distractor_weight)
        if dropped and not self.distractors_dropped:  # once per tracker: the log stays bounded like the memory
            LOG.warning("runtime: %d of %d distractor kernels from %s were not finite (NaN / inf, or overflowing the "
                        "merged kernel) and were not learnt; later ones are counted in Tracker.distractors_dropped, "
                        "not logged (check the model directory: siamtrt inspect DIR --check)", dropped, len(owner),
                        self.backend.instance_name("template"))
        self.distractors_dropped += dropped
        self.last_timings["distractor"] = time.perf_counter() - t0
        return counts

    def _check_outputs(self, inst: int, cls: np.ndarray, loc: np.ndarray, geo: Geometry, n: int) -> None:
        key = (inst, n)
        if key in self._outputs_checked:
            return
        a, s = geo.anchor_num, geo.score_size
        if cls.shape != (n, 2 * a, s, s) or loc.shape != (n, 4 * a, s, s):
            raise ModelDirError(f"{self.info.path}: search outputs do not match the metadata",
                                evidence=f"cls {cls.shape}, loc {loc.shape}; metadata implies cls {(n, 2 * a, s, s)}, "
                                         f"loc {(n, 4 * a, s, s)} (A={a} anchors, score size {s}, instance {inst})",
                                fix="re-export the directory with siamtrt export")
        if inst in self.geometries:  # not the growth sizes: the set would grow by one per size
            self._outputs_checked.add(key)
