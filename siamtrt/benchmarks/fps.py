"""Frames per second and per-stage latency of the full tracker loop, for each backend/precision, in one run.

How it is measured (style rule 13):

* Every variant tracks the same frames of the same video (each variant decodes its own copy through the runtime's
  ``FrameSource``), the targets initialised on frame 0; the first ``warmup`` tracked frames are tracked but left out
  of the statistics. The backend × precision variants are interleaved frame by frame by default, so load that drifts
  during the run hits them alike; the torch reference runs on its own first (see :func:`measure`);
  ``schedule="sequential"`` runs every variant one after the other.
* Per frame, ``time.perf_counter`` brackets the decode (reading the next frame) and the ``Tracker.track`` call
  separately. The tracker's ``last_timings`` splits the track call into ``crop`` (crop + resize + HWC→CHW float),
  ``search`` (the backend call: ONNX Runtime/TensorRT/PyTorch inference, including any host↔device copies and the
  stream synchronisation) and ``post`` (score/box decoding, penalties, smoothing, clipping). ``other`` is the part of
  the track call outside those three timers (argument checks, Python overhead): ``other = track − crop − search −
  post``. Hence, per frame and exactly, ``e2e = decode + crop + search + post + other``; ``other`` is reported as the
  unattributed share, which is how "the stages add up" is checked (a few percent at most).
* ``fps`` = timed frames / Σ track (decode excluded, as pysot and the papers count it); ``fps_with_decode`` =
  timed frames / Σ e2e.
* The template branch runs once per target (at init), so it is not a per-frame stage: it is timed over
  ``template_reps`` re-initialisations on the last frame after the loop (crop and template inference separately).
* **Headroom.** Each variant's search-branch GMAC/s (conv MACs of its ``search.onnx`` × targets / its fastest
  search time) is reported as a share of the FP32, bf16 or INT8 matrix throughput its engine reaches on this machine
  (:mod:`.probe`, best call, measured in the same run with the same threads): how close to the limit the branch
  runs. Best against best, because on a shared machine a median depends on when the load came.
* The torch reference is slow (about a second per frame on 2 busy cores), so by default it times fewer frames
  (``reference_frames``, 10, the first of the same frames, after the same warm-up) and fewer template re-inits
  (:data:`REFERENCE_TEMPLATE_REPS`). Every frame costs the same work (fixed crop sizes), so the speed ratio divides
  *median* per-frame track times (``vs torch``): a median over 10 frames is robust, a sum over differently many frames
  would not be. The FPS ratio is kept in the JSON (``speedup_vs_reference_fps``). Both run in the same run with the
  same thread count. With several targets the reference runs one pysot-style tracker per target, one after
  the other (that is how pysot tracks N objects); the other backends run all targets as one batch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import BackendError, CheckpointError, InputError, Interrupted
from ..locations import RESULTS_DIR
from . import sysinfo
from .data import DEFAULT_BOX, default_video
from .results import check_report_outputs, dump_json, new_run_folder, report_footer, text_table
from .variants import DEFAULT_CACHE, REFERENCE_BACKEND, Variant, check_available, resolve_variants
from ..progress import progress_iter

LOG = logging.getLogger(__name__)

FRAME_STAGES = ("decode", "crop", "search", "post", "other")
TOTALS = ("track", "e2e")
INIT_STAGES = ("crop", "template")

DEFAULT_FRAMES = 60
DEFAULT_REFERENCE_FRAMES = 10
DEFAULT_WARMUP = 3
DEFAULT_TEMPLATE_REPS = 5
REFERENCE_TEMPLATE_REPS = 2  # at most, for the torch reference (its template call alone is ~0.1-2 s)
DEFAULT_RESULTS = RESULTS_DIR / "fps"
#: what a stopped fps run (``--mode`` too) says it kept
INTERRUPTED = ("interrupted before the report: nothing saved, no JSON or plot written (a report is written only from "
               "a complete run: interleaved variants finish together, and a ratio needs both sides); run again, with "
               "--frames N for a shorter run")


def stats_ms(seconds: Sequence[float]) -> Dict[str, Optional[float]]:
    """mean / p50 / p90 / p99 / min / max in milliseconds (None for an empty sample)."""
    a = np.asarray(seconds, np.float64) * 1e3
    if a.size == 0:
        return {k: None for k in ("mean", "p50", "p90", "p99", "min", "max")}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"mean": float(a.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99),
            "min": float(a.min()), "max": float(a.max())}


def target_boxes(first: Sequence[float], n: int, frame_wh: Tuple[int, int]) -> np.ndarray:
    """``n`` boxes: ``first``, then copies of its size spread over the frame on a grid (deterministic)."""
    x, y, w, h = (float(v) for v in first)
    fw, fh = frame_wh
    boxes = [(x, y, w, h)]
    if n > 1:
        cols = int(np.ceil(np.sqrt(n - 1)))
        rows = int(np.ceil((n - 1) / cols))
        for k in range(n - 1):
            r, c = divmod(k, cols)
            cx = (c + 0.5) / cols * fw
            cy = (r + 0.5) / rows * fh
            boxes.append((float(np.clip(cx - w / 2, 0, max(fw - w, 0))), float(np.clip(cy - h / 2, 0, max(fh - h, 0))),
                          w, h))
    return np.asarray(boxes, np.float64)


@dataclass
class VariantResult:
    """Timings of one variant (seconds per frame, per stage)."""

    variant: Variant
    frames: int
    per_frame: Dict[str, np.ndarray]            # stage → seconds [frames], FRAME_STAGES + TOTALS
    init: Dict[str, np.ndarray]                 # INIT_STAGES → seconds [reps]
    first_init_s: float
    setup_s: float
    threads: Optional[int]
    batching: str
    notes: List[str] = field(default_factory=list)
    extra: Dict[str, Any] = field(default_factory=dict)
    search_gmac: Optional[float] = None        # conv GMAC of one search call (all targets)
    engine_peak_gmacs: Optional[float] = None  # the engine's probe figure for this precision (GMAC/s)

    @property
    def search_gmacs(self) -> Optional[float]:
        """Search-branch GMAC/s of the fastest timed frame (None when the MACs are unknown): compared with the
        probe's best call, so both are the least loaded moment of the run (see :mod:`.probe`)."""
        best = float(np.min(self.per_frame["search"])) if len(self.per_frame["search"]) else 0.0
        return self.search_gmac / best if self.search_gmac and best > 0 else None

    @property
    def search_gmacs_median(self) -> Optional[float]:
        """Search-branch GMAC/s at the median search time."""
        med = float(np.median(self.per_frame["search"])) if len(self.per_frame["search"]) else 0.0
        return self.search_gmac / med if self.search_gmac and med > 0 else None

    @property
    def peak_share(self) -> Optional[float]:
        """:attr:`search_gmacs` as a share of the engine's probe figure (None when either is unknown)."""
        g = self.search_gmacs
        return g / self.engine_peak_gmacs if g and self.engine_peak_gmacs else None

    @property
    def fps(self) -> float:
        return float(self.frames / self.per_frame["track"].sum())

    @property
    def fps_with_decode(self) -> float:
        return float(self.frames / self.per_frame["e2e"].sum())

    def speedup(self, reference: Optional["VariantResult"]) -> Optional[float]:
        """Median per-frame track time of ``reference`` over this variant's (None without a reference)."""
        if reference is None:
            return None
        return float(np.median(reference.per_frame["track"]) / np.median(self.per_frame["track"]))

    @property
    def unattributed_pct(self) -> float:
        """Share of the end-to-end time outside decode/crop/search/post (the stage-sum check)."""
        return float(100.0 * self.per_frame["other"].sum() / self.per_frame["e2e"].sum())

    def to_dict(self, reference: Optional["VariantResult"]) -> Dict[str, Any]:
        d = self.variant.describe()
        stages = {k: stats_ms(self.per_frame[k]) for k in FRAME_STAGES + TOTALS}
        stage_sum = sum(stages[k]["mean"] for k in FRAME_STAGES)
        d.update({
            "frames": self.frames, "threads": self.threads, "batching": self.batching,
            "fps": self.fps, "fps_with_decode": self.fps_with_decode,
            "latency_ms": stages,
            "init_ms": {k: stats_ms(v) for k, v in self.init.items()},
            "first_init_ms": self.first_init_s * 1e3, "setup_s": self.setup_s,
            "stage_sum_check": {"e2e_mean_ms": stages["e2e"]["mean"], "stages_sum_mean_ms": stage_sum,
                                "attributed_pct": 100.0 - self.unattributed_pct,
                                "unattributed_pct": self.unattributed_pct},
            "speedup_vs_reference": self.speedup(reference),
            "speedup_vs_reference_fps": (self.fps / reference.fps) if reference else None,
            "reference_frames": reference.frames if reference else None,
            "speedup_vs_reference_with_decode": (self.fps_with_decode / reference.fps_with_decode)
            if reference else None,
            "reference": reference.variant.label if reference else None,
            "search_gmac": self.search_gmac, "search_gmacs": self.search_gmacs,
            "search_gmacs_median": self.search_gmacs_median,
            "engine_peak_gmacs": self.engine_peak_gmacs, "share_of_engine_peak": self.peak_share,
            "notes": list(self.notes), **self.extra,
        })
        return d


@dataclass
class FpsReport:
    """Everything one ``benchmarks/fps.py`` run measured."""

    results: List[VariantResult]
    video: Path
    frame_size: Tuple[int, int]
    targets: int
    warmup: int
    threads: Optional[int]
    machine: Dict[str, Any]
    schedule: str = "sequential"
    notes: List[str] = field(default_factory=list)
    skipped: List[Dict[str, str]] = field(default_factory=list)
    probes: Dict[str, Any] = field(default_factory=dict)   # engine → probe.GemmProbe (this machine, same threads)
    json_path: Optional[Path] = None
    plot_path: Optional[Path] = None

    def reference_for(self, r: VariantResult) -> Optional[VariantResult]:
        for ref in self.results:
            if ref.variant.is_reference and ref.variant.weights_key == r.variant.weights_key:
                return ref
        return None

    def display_label(self, r: VariantResult) -> str:
        """The variant's label, with its model directory's name when another directory gives the same label up to
        the float-layer hint (two int8 copies for one engine: ``openvino-int8(openvino)`` and ``...[bf16]``)."""
        dirs = {o.variant.model_dir for o in self.results if o.variant.engine_label == r.variant.engine_label}
        return r.variant.label + (f" {r.variant.model_dir.name}" if len(dirs) > 1 else "")

    def to_dict(self) -> Dict[str, Any]:
        return {
            "tool": "siamtrt benchmarks/fps.py", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": self.machine,
            "video": {"path": str(self.video), "width": self.frame_size[0], "height": self.frame_size[1]},
            "targets": self.targets, "warmup_frames": self.warmup, "threads": self.threads,
            "schedule": self.schedule,
            "timing": ("perf_counter around decode and Tracker.track per frame; crop/search/post from "
                       "Tracker.last_timings; other = track - crop - search - post; e2e = decode + track; "
                       "fps = frames / sum(track); fps_with_decode = frames / sum(e2e); warm-up frames excluded"),
            "weights_kinds": list(dict.fromkeys(r.variant.weights for r in self.results)),
            "variants": [r.to_dict(self.reference_for(r)) for r in self.results],
            "engine_probe": {k: p.to_dict() for k, p in self.probes.items()},
            "skipped": self.skipped, "notes": self.notes,
        }

    def summary(self) -> str:
        """The human table."""
        if not self.results:
            return "no variant ran"
        r0 = self.results[0]
        archs = ", ".join(dict.fromkeys(r.variant.arch for r in self.results))
        weights = "weights: " + "; ".join(dict.fromkeys(r.variant.weights_line for r in self.results))
        if not all(r.variant.trained for r in self.results):
            weights += " — SEEDED RANDOM WEIGHTS (speed only; boxes meaningless)"
        counts = (str(r0.frames) if len({r.frames for r in self.results}) == 1 else
                  " / ".join(f"{r.frames} ({r.variant.label})" for r in self.results))
        lines = [
            f"siamtrt fps — {archs} ({weights})",
            f"video {self.video.name} {self.frame_size[0]}x{self.frame_size[1]}, {counts} timed frames "
            f"(+{self.warmup} warm-up), {self.targets} target{'s' if self.targets > 1 else ''}, "
            f"{self.threads} thread{'s' if (self.threads or 0) > 1 else ''} for every backend, "
            f"variants {self.schedule}",
            f"machine: {sysinfo.describe(self.machine)}",
            "",
        ]
        head = ["variant", "frames", "FPS", "FPS+dec", "vs torch", "e2e p50/p90/p99 ms", "decode", "crop", "search",
                "post", "other", "template", "search GMAC/s", "of peak"]
        rows = []
        for r in self.results:
            ref = self.reference_for(r)
            lat = {k: stats_ms(r.per_frame[k]) for k in FRAME_STAGES + TOTALS}
            tmpl = stats_ms(r.init["template"])["mean"] if len(r.init["template"]) else None
            label = self.display_label(r) + (" (ref)" if r.variant.is_reference else "")
            rows.append([label, str(r.frames), f"{r.fps:.1f}", f"{r.fps_with_decode:.1f}",
                         f"{r.speedup(ref):.2f}x" if ref else "n/a",
                         f"{lat['e2e']['p50']:.1f}/{lat['e2e']['p90']:.1f}/{lat['e2e']['p99']:.1f}"]
                        + [f"{lat[k]['mean']:.2f}" for k in FRAME_STAGES]
                        + [f"{tmpl:.2f}" if tmpl is not None else "n/a"]
                        + [f"{r.search_gmacs:.1f}" if r.search_gmacs else "n/a",
                           f"{r.peak_share * 100:.0f} %" if r.peak_share else "n/a"])
        lines += text_table(head, rows)
        lines.append("stage columns: mean ms per frame (decode, crop+preprocess, search inference, post-process, "
                     "unattributed); template: mean ms per init (once per target). FPS excludes decode, FPS+dec "
                     "includes it; vs torch = ratio of median per-frame track times (the reference times fewer frames: "
                     "--reference-frames).")
        if self.probes:
            lines.append("of peak: search GMAC/s (fastest frame) / the engine's matrix throughput here "
                         "(siamtrt/benchmarks/probe.py, best call, same threads; INT8 figure for int8 directories, "
                         "bf16 for float ones run in bf16, FP32 otherwise): " + "; ".join(
                             f"{k} FP32 {p.fp32_gmacs:.0f}, INT8 {p.int8_gmacs:.0f}"
                             + (f", bf16 {p.bf16_gmacs:.0f}" if p.bf16_gmacs else "") + " GMAC/s"
                             for k, p in self.probes.items()))
        worst = max(r.unattributed_pct for r in self.results)
        lines.append(f"stage check: e2e = decode + crop + search + post + other per frame; the unattributed 'other' "
                     f"is at most {worst:.2f}% of the end-to-end time of any variant.")
        for r in self.results:
            for n in r.notes:
                lines.append(f"note [{r.variant.label}]: {n}")
        lines += report_footer(self.skipped, self.notes, self.json_path, self.plot_path)
        return "\n".join(lines)


def probe_video(video: Union[str, Path]) -> Tuple[np.ndarray, int]:
    """(first frame, decodable frame count) of a video file or image folder."""
    from ..runtime.video import FrameSource

    with FrameSource(video) as src:
        first = src.first
        n = sum(1 for _ in src)
    return first, n


class _Runner:
    """One variant's trackers, its own frame source and its per-frame records (so variants can interleave)."""

    def __init__(self, variant: Variant, video: Path, boxes: np.ndarray, total: int, threads: Optional[int]):
        from ..runtime import Tracker
        from ..runtime.video import FrameSource

        self.variant = variant
        self.boxes = boxes
        self.total = total
        t0 = time.perf_counter()
        # the reference tracks N targets pysot-style: one tracker per target, sharing one backend (the model)
        self.per_target = variant.is_reference and len(boxes) > 1
        first = variant.make_tracker(threads)
        self.trackers = [first] + ([Tracker(first.backend, first.info) for _ in range(len(boxes) - 1)]
                                   if self.per_target else [])
        self.backend = first.backend
        self.backend.activate()
        hint = getattr(self.backend, "precision", None)   # a backend's float-layer precision (OpenVINO: f32 / bf16)
        variant.float_hint = hint if isinstance(hint, str) and hint not in ("f32", "fp32") else None
        self.setup_s = time.perf_counter() - t0
        self.threads = getattr(self.backend, "threads", None) or threads
        self.source = FrameSource(video, max_frames=total + 1)
        self.frames = iter(self.source)
        self.last = next(self.frames)  # frame 0 (decoded when the source opened)
        ti = time.perf_counter()
        self._init(self.last)
        self.first_init_s = time.perf_counter() - ti
        self.rec = {k: np.zeros(total) for k in FRAME_STAGES + TOTALS}
        self.done = 0

    def _init(self, frame: np.ndarray) -> None:
        if self.per_target:
            for tr, b in zip(self.trackers, self.boxes):
                tr.init(frame, b)
        else:
            self.trackers[0].init(frame, self.boxes if len(self.boxes) > 1 else self.boxes[0])

    def step(self) -> bool:
        """Decode and track one frame; False when the video is exhausted."""
        a = time.perf_counter()
        frame = next(self.frames, None)
        b = time.perf_counter()
        if frame is None:
            return False
        crop = search = post = 0.0
        for tr in self.trackers:
            tr.track(frame)
            lt = tr.last_timings
            crop += lt["crop"]
            search += lt["search"]
            post += lt["post"]
        c = time.perf_counter()
        i = self.done
        r = self.rec
        r["decode"][i], r["track"][i], r["e2e"][i] = b - a, c - b, c - a
        r["crop"][i], r["search"][i], r["post"][i] = crop, search, post
        r["other"][i] = (c - b) - (crop + search + post)
        self.last = frame
        self.done += 1
        return True

    def time_template(self, reps: int) -> Dict[str, np.ndarray]:
        """Template stage over ``reps`` re-initialisations on the last frame (summed over a reference's trackers)."""
        out: Dict[str, List[float]] = {k: [] for k in INIT_STAGES}
        for _ in range(max(reps, 0)):
            self._init(self.last)
            for k in INIT_STAGES:
                out[k].append(sum(t.last_timings[k] for t in self.trackers))
        return {k: np.asarray(v) for k, v in out.items()}

    def close(self) -> None:
        self.source.close()
        self.backend.deactivate()

    def result(self, warmup: int, template: Dict[str, np.ndarray], schedule: str) -> VariantResult:
        v = self.variant
        notes: List[str] = []
        extra: Dict[str, Any] = {"schedule": schedule}
        if v.is_reference:
            extra["weights"] = getattr(self.backend, "weights", None)
            extra["torch_mode"] = getattr(self.backend, "mode", None)
            if "timing only" in str(extra["weights"]):
                notes.append("torch reference uses random weights of the same architecture (no --checkpoint "
                             "given): its speed is valid, its boxes are not comparable")
        n = len(self.boxes)
        batching = (f"{n} trackers in turn (pysot style)" if self.per_target else
                    (f"one batch of {n}" if n > 1 else "single target"))
        return VariantResult(variant=v, frames=self.done - warmup,
                             per_frame={k: a[warmup:self.done] for k, a in self.rec.items()}, init=template,
                             first_init_s=self.first_init_s, setup_s=self.setup_s, threads=self.threads,
                             batching=batching, notes=notes, extra=extra)


SCHEDULES = ("interleaved", "sequential")


def measure(variants: Sequence[Variant], video: Path, boxes: np.ndarray, frames: int, warmup: int,
            threads: Optional[int], template_reps: int = DEFAULT_TEMPLATE_REPS, schedule: str = "interleaved",
            progress: bool = True, on_error=None, reference_frames: Optional[int] = None) -> List[VariantResult]:
    """Track ``warmup + frames`` frames after the init frame with every variant and time every stage (the torch
    reference: ``warmup + reference_frames``, the first of the same frames, and at most
    :data:`REFERENCE_TEMPLATE_REPS` template re-inits).

    ``interleaved`` (default): the torch reference runs on its own first; then each frame is decoded and tracked by
    every other variant in turn, so load that drifts during the run hits all backend × precision variants alike —
    what a side-by-side comparison on a shared machine needs. The reference is kept apart because PyTorch's OpenMP
    team, waiting on the same cores right after another runtime's call, slowed about 2x in one comparison on a busy
    2-core machine. ``sequential``: one variant after the other, so nothing else runs between two frames of a
    variant — as in a deployment.

    Args:
        on_error (callable): ``on_error(variant, error)`` for BackendError/CheckpointError while building a
            variant; return True to skip that variant, False to re-raise. Defaults to None (re-raise).
        reference_frames (int): timed frames of the torch reference (at most ``frames``). Defaults to None
            (``frames``).

    Raises:
        SiamtrtError: from building trackers; InputError when the video is too short for the warm-up.
    """
    if schedule not in SCHEDULES:
        raise InputError(f"unknown schedule {schedule!r}", evidence=f"valid: {', '.join(SCHEDULES)}")
    ref_frames = frames if reference_frames is None else max(1, min(reference_frames, frames))

    def total_of(v: Variant) -> int:
        return warmup + (ref_frames if v.is_reference else frames)

    def reps_of(v: Variant) -> int:
        return min(template_reps, REFERENCE_TEMPLATE_REPS) if v.is_reference else template_reps

    def build(v: Variant) -> Optional[_Runner]:
        try:
            return _Runner(v, video, boxes, total_of(v), threads)
        except (BackendError, CheckpointError) as e:
            if on_error is not None and on_error(v, e):
                return None
            raise

    def bar(n: int, desc: str):
        return progress_iter(range(n), n, desc, "frame", progress, leave=False)

    def run_alone(vs: Sequence[Variant]) -> List[VariantResult]:
        done: List[VariantResult] = []
        for v in vs:
            r = build(v)
            if r is None:
                continue
            try:
                for _ in bar(r.total, f"fps: {v.label}"):
                    if not r.step():
                        break
                done.append(_finish(r, warmup, reps_of(v), schedule, video))
            finally:
                r.close()
        return done

    if schedule == "sequential":
        return run_alone(variants)
    out = run_alone([v for v in variants if v.is_reference])
    runners: List[_Runner] = []
    try:
        for v in variants:
            if not v.is_reference:
                r = build(v)
                if r is not None:
                    runners.append(r)
        for i in bar(max((r.total for r in runners), default=0),
                     "fps: " + ", ".join(r.variant.label for r in runners)):
            if not all([r.step() for r in runners if i < r.total]):
                break
        out += [_finish(r, warmup, reps_of(r.variant), schedule, video) for r in runners]
    finally:
        for r in runners:
            r.close()
    return out


def search_gmac(model_dir: Union[str, Path]) -> Optional[float]:
    """Conv GMAC of one search call of one target (constant-weight convolutions, float or Q/DQ; the correlations,
    ~0.1-0.4 % of the MACs, are not counted). None when shape inference cannot tell (dynamic spatial axes)."""
    from ..calibration.graph import conv_macs, named_model
    from ..metadata import SEARCH_INPUT
    from ..modeldir import ModelDir

    md = ModelDir.open(model_dir)
    model = named_model(md.onnx("search"))
    for inp in model.graph.input:   # long-term exports: dynamic spatial axes, counted at the instance size
        if inp.name == SEARCH_INPUT:
            for d in inp.type.tensor_type.shape.dim[2:]:
                if not d.dim_value:
                    d.dim_value = md.instance_size
    total = sum(conv_macs(model).values())
    return total / 1e9 if total > 0 else None


def attach_headroom(results: Sequence[VariantResult], threads: int, targets: int,
                    progress: bool = True) -> Dict[str, Any]:
    """Probe every engine the results used (:mod:`.probe`) and set each result's search GMAC and engine peak;
    returns {engine: GemmProbe}. Engines without a probe (torch, tensorrt) are left without a share."""
    from .probe import RUNNERS, probe_engines

    engines = [r.variant.backend for r in results if r.variant.backend in RUNNERS]
    if progress and engines:
        LOG.warning("fps: probing the matrix throughput of %s (%d threads)", ", ".join(dict.fromkeys(engines)),
                    threads)
    probes, _ = probe_engines(engines, threads)
    gmac: Dict[Path, Optional[float]] = {}
    for r in results:
        d = r.variant.model_dir
        if d not in gmac:
            gmac[d] = search_gmac(d)
        r.search_gmac = gmac[d] * targets if gmac[d] else None
        p = probes.get(r.variant.backend)
        # an fp32/fp16 directory run in bf16 is measured against the bf16 peak (none where the probe did not time
        # bf16); an int8 one's MACs are its int8 convolutions, whatever the hint for its few float layers
        hint = r.variant.float_hint if r.variant.precision != "int8" else None
        r.engine_peak_gmacs = p.peak(hint or r.variant.precision) if p is not None and hint in (None, "bf16") else None
        if r.peak_share is not None and r.peak_share > 1.0:
            r.notes.append(f"its search ran at {r.peak_share * 100:.0f} % of the probed {r.variant.backend} peak: "
                           "the probe read low (another job at that moment, or probe shapes that miss a rate this "
                           "network reaches), so this share means nothing; re-run on an idle machine")
    return probes


def _finish(r: _Runner, warmup: int, template_reps: int, schedule: str, video: Path) -> VariantResult:
    if r.done <= warmup:
        raise InputError(f"{video} has too few frames: {r.done + 1} decoded, need more than {warmup + 1}",
                         fix="use a longer video or a smaller --warmup")
    return r.result(warmup, r.time_template(template_reps), schedule)


def _check_counts(targets: int, frames: Optional[int], warmup: int, template_reps: int,
                  reference_frames: Optional[int]) -> None:
    """The counts of a run, refused before anything loads (the command refuses them at argument parsing)."""
    for name, value, least in (("--targets", targets, 1), ("--frames", frames, 1), ("--warmup", warmup, 0),
                               ("--template-reps", template_reps, 0), ("--reference-frames", reference_frames, 1)):
        if value is not None and value < least:
            raise InputError(f"{name} must be {least} or more (got {value})",
                             fix=f"pass {name} {max(least, 1)} or more" + (" (or 'all')" if "frames" in name else ""))


def check_outputs(json_out, plot_out, results_dir, video, checkpoint, models: Sequence) -> None:
    """Refuse, before the run, a report it could not write, or one that would replace or land in what the run reads
    (the video or image folder, the model directories, the checkpoint); the plain run and ``--mode`` alike."""
    check_report_outputs(json_out, plot_out, results_dir, [video, checkpoint],
                         [video if Path(video).is_dir() else None] + [m for m in models if Path(m).is_dir()])


def run_fps(models: Sequence[Union[str, Path]] = (), config: Optional[str] = None,
            checkpoint: Optional[Union[str, Path]] = None, backends: Sequence[str] = ("auto",),
            precisions: Sequence[str] = (), video: Optional[Union[str, Path]] = None,
            bbox: Sequence[float] = DEFAULT_BOX, targets: int = 1, frames: Optional[int] = DEFAULT_FRAMES,
            warmup: int = DEFAULT_WARMUP, threads: Optional[int] = None, reference: bool = True,
            template_reps: int = DEFAULT_TEMPLATE_REPS, schedule: str = "interleaved",
            json_out: Optional[Union[str, Path]] = None,
            plot_out: Optional[Union[str, Path]] = None, cache_root: Union[str, Path] = DEFAULT_CACHE,
            progress: bool = True, reference_frames: Optional[int] = DEFAULT_REFERENCE_FRAMES,
            results_dir: Optional[Union[str, Path]] = None, headroom: bool = True,
            backend_options: Optional[Dict[str, Any]] = None) -> FpsReport:
    """Benchmark every requested variant (plus the torch reference) on the same frames.

    Args:
        models (Sequence[str | Path]): model directories. Defaults to () — export ``config`` into ``cache_root``.
        config (str): config to export when no model is given. Defaults to siamtrt.config.DEFAULT_CONFIG.
        checkpoint (str | Path): trained weights (export, and the torch reference's weights). Defaults to None.
        backends (Sequence[str]): registry names ("onnxruntime", "openvino", "tensorrt"), "auto" (the runtime's
            choice here), "all" (every backend available here) and "torch". Defaults to ("auto",).
        precisions (Sequence[str]): fp32/fp16/int8 (see variants.resolve_variants). Defaults to ().
        video (str | Path): video to track. Defaults to shared/data/bag.avi.
        bbox (Sequence[float]): first target x,y,w,h on frame 0. Defaults to the bag.avi box.
        targets (int): number of targets (multi-target batching). Defaults to 1.
        frames (int): timed frames (after warm-up); None = the whole video. Defaults to 60.
        warmup (int): tracked but untimed frames. Defaults to 3.
        threads (int): CPU threads for every backend (ORT intra-op, torch). Defaults to the physical core count.
        reference (bool): include the torch reference. Defaults to True.
        template_reps (int): re-initialisations timed for the template stage. Defaults to 5.
        schedule (str): "interleaved" or "sequential" (see :func:`measure`). Defaults to "interleaved".
        json_out (str | Path): write the JSON report here. Defaults to None (``results_dir``'s, if given).
        plot_out (str | Path): write a PNG bar chart here. Defaults to None (``results_dir``'s, if given).
        cache_root (str | Path): where exported models are cached. Defaults to "models".
        progress (bool): progress lines (siamtrt.progress: a bar on a terminal, plain lines in a log). Defaults to True.
        reference_frames (int): timed frames of the torch reference (see :func:`measure`); None = ``frames``.
            Defaults to 10.
        results_dir (str | Path): write ``fps.json`` and ``fps.png`` into ``<results_dir>/<date-time>/`` where
            ``json_out`` / ``plot_out`` are not given (benchmarks/fps.py passes ``results/fps``). Defaults to None.
        headroom (bool): probe each engine's matrix throughput and report every variant's search GMAC/s as a
            share of it (:func:`attach_headroom`). Defaults to True.
        backend_options (dict): generic backend options (e.g. ``{"precision": "auto"}``, OpenVINO's float-layer
            hint); each backend takes the ones it declares. Defaults to None.

    Raises:
        SiamtrtError: bad arguments, unavailable backends, unreadable video/model.
    """
    from ..runtime.cpu import cpu_threads

    video = Path(video) if video else default_video()
    if not video.exists():
        raise InputError(f"video {video} does not exist",
                         fix="pass --video PATH (a video file or an image folder), or set SIAMTRT_DATA to the "
                             "folder holding bag.avi")
    _check_counts(targets, frames, warmup, template_reps, reference_frames)
    # the results folder is written only where --json / --plot do not name both files
    check_outputs(json_out, plot_out, results_dir if not (json_out and plot_out) else None, video, checkpoint, models)
    threads = cpu_threads(threads)
    machine = sysinfo.machine_info()  # before the run: the load average says whether others compete for the cores
    first, n_video = probe_video(video)
    fh, fw = first.shape[:2]
    avail = n_video - 1 - warmup
    if n_video < 2:
        raise InputError(f"video {video} has {n_video} frame: the benchmark needs at least 2 (one to initialise the "
                         "tracker, one to time)", fix="pass a --video with 2 frames or more")
    if avail < 1:
        raise InputError(f"video {video} has {n_video} frames: too few for {warmup} warm-up frames",
                         evidence=f"1 frame initialises the tracker, {warmup} warm up, and at least 1 must be timed "
                                  f"({warmup + 2} in all)",
                         fix=f"lower --warmup to {n_video - 2} or less, or pass a longer --video")
    notes: List[str] = []
    busy = sysinfo.busy_warning(machine)
    if busy:
        notes.append(busy)
    if frames is None or frames > avail:
        if frames is not None:
            notes.append(f"--frames {frames} exceeds the video: timed {avail} frames")
        frames = avail
    boxes = target_boxes(bbox, targets, (fw, fh))
    explicit_ref = REFERENCE_BACKEND in backends
    skipped: List[Dict[str, str]] = []
    variants = resolve_variants(models, config, checkpoint, backends, precisions, reference=reference,
                                cache_root=cache_root, progress=progress, skipped=skipped)
    check_available(variants)  # before the reference runs: a backend that cannot run here ends the job now
    for v in variants:
        if v.is_reference and not explicit_ref:
            v.random_fallback = True  # a timing baseline: random weights are fine when no checkpoint is given
        if not v.is_reference and backend_options:
            v.options.update({k: val for k, val in backend_options.items() if val is not None})

    if not models and (backend_options or {}).get("precision") in (None, "auto"):
        for d in dict.fromkeys(v.model_dir for v in variants if v.backend == "openvino" and v.precision == "fp32"):
            notes.extend(_auto_bf16_check(d, video, bbox, threads, progress))

    def skip_reference(v: Variant, e) -> bool:
        if v.is_reference and not explicit_ref:
            skipped.append({"label": v.label, "reason": e.what})
            return True
        return False

    try:
        results = measure(variants, video, boxes, frames, warmup, threads, template_reps, schedule, progress,
                          on_error=skip_reference, reference_frames=reference_frames)
        probes = attach_headroom(results, threads, targets, progress) if headroom else {}
    except KeyboardInterrupt:
        raise Interrupted(INTERRUPTED) from None
    report = FpsReport(results=results, video=video, frame_size=(fw, fh), targets=targets, warmup=warmup,
                       threads=threads, machine=machine, schedule=schedule, notes=notes, skipped=skipped,
                       probes=probes)
    if results_dir is not None and results and not (json_out and plot_out):
        run = new_run_folder(results_dir)
        json_out = json_out or run / "fps.json"
        plot_out = plot_out or run / "fps.png"
    if json_out:
        report.json_path = dump_json(json_out, report.to_dict())
    if plot_out and results:
        report.plot_path = _plot(report, plot_out)
    return report


def _auto_bf16_check(model_dir: Path, video: Path, bbox: Sequence[float], threads: int, progress: bool) -> List[str]:
    """The default job measures OpenVINO's bf16 fidelity for the model it exported (once: the record is kept), so
    ``auto`` runs its float layers in bf16 where that keeps the outputs on this machine; the note says what was
    found."""
    from ..calibration.sensitivity import bf16_record_for
    from ..runtime.openvino import bf16_plan_text

    rec, measured = bf16_record_for(model_dir, video, bbox, threads=threads, progress=progress)
    if not measured or "cls" not in rec:
        return []
    hint = bf16_plan_text(rec)
    return [f"OpenVINO bf16 check for {Path(model_dir).name}, measured now on {rec['crops']} crops of {video.name} "
            f"(kept for later runs; siamtrt quantize --check-bf16 measures on your own crops): {hint}; "
            f"worst template cls {rec['cls']:.4f} loc {rec['loc']:.4f} vs f32 — "
            + ("bf16 kept" if rec["passed"] else "NOT kept, f32")]


def _plot(report: FpsReport, out: Union[str, Path]) -> Path:
    """The per-stage bar chart; bars and title say the weights kind and the timed frames."""
    from .plots import plot_fps

    res = report.results
    rows = []
    for r in res:
        ratio = r.speedup(report.reference_for(r))
        share = f"\nsearch {r.peak_share * 100:.0f} % of peak" if r.peak_share else ""
        rows.append({"label": f"{report.display_label(r)}\n{r.variant.weights}, {r.frames} frames", "fps": r.fps,
                     "text": f"{r.fps:.1f} fps" + (f", {ratio:.2f}x (p50)" if ratio is not None else "") + share,
                     "stages_ms": {k: stats_ms(r.per_frame[k]) for k in FRAME_STAGES}})
    random = not all(r.variant.trained for r in res)
    title = (f"{res[0].variant.arch} on {report.video.name}, {report.targets} target(s), {report.threads} threads\n"
             f"weights: " + "; ".join(dict.fromkeys(r.variant.weights_line for r in res))
             + ("\nSEEDED RANDOM WEIGHTS: speed only, boxes meaningless" if random else ""))
    return plot_fps(rows, FRAME_STAGES, out, title=title)


__all__ = ["FpsReport", "VariantResult", "attach_headroom", "check_outputs", "default_video", "measure", "run_fps",
           "search_gmac", "stats_ms", "target_boxes"]
