"""Accuracy-retention report: how much a reduced-precision directory (fp16 / int8) differs from its FP32 source.

Everything is measured on real crops of the given video, cut along the FP32 tracker's own trajectory by the
calibration collector (so: the tracker's crops, the frame-0 template, exactly what deployment sees):

* per output: cosine similarity, SQNR (dB) and max abs error of ``cls`` and ``loc`` against FP32 — each variant
  running its *own* template branch, as the tracker does — and of the template kernels;
* argmax agreement: the fraction of crops whose foreground score map peaks at the same anchor;
* tracking agreement: per-frame IoU between the FP32 trajectory and the candidate's over the whole video (mean,
  minimum, frames below 0.5), and the IoU of a single step taken from the FP32 state (teacher forcing), which
  separates per-frame disagreement from drift;
* speed on ONNX Runtime CPU, all variants with the same thread count, measured side by side in one run: the
  search branch alone (interleaved rounds, :mod:`.speed`) and end to end (tracker time per frame of the tracking
  runs), as ratios to FP32. The search branch is timed a second time single-threaded: on a small shared machine
  the multi-threaded ratio swings from run to run (mobilev2 int8, 2 threads on this 2-core VM: 0.40–0.54 over six
  runs) while the single-threaded one holds (0.379–0.384): it is the compute ratio of the two precisions.

Written to ``<out>/report.json`` and ``<out>/report.png``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError, Interrupted, ModelDirError
from ..figures import pyplot, save_png
from ..progress import progress_bar
from ..modeldir import ModelDir
from ..locations import RESULTS_DIR
from ..outputs import atomic_file, check_writable
from ..runtime.boxes import iou_xywh
from .collect import SourceSpec, collect
from .data import CalibrationSet
from .speed import run_branches as _run_branches, time_search_branches as _time_search_branches

LOG = logging.getLogger(__name__)

DEFAULT_SAMPLES = 64
REPORT_JSON, REPORT_PNG = "report.json", "report.png"


# ----------------------------------------------------------------------------------------------------- metrics
def cosine(ref: np.ndarray, cand: np.ndarray) -> float:
    """Cosine similarity of two tensors, flattened (1.0 for identical, 0 for orthogonal)."""
    a, b = np.asarray(ref, np.float64).ravel(), np.asarray(cand, np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))


def sqnr_db(ref: np.ndarray, cand: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio 10·log10(Σref² / Σ(ref−cand)²) in dB (inf when identical)."""
    a, b = np.asarray(ref, np.float64), np.asarray(cand, np.float64)
    noise = float(np.sum((a - b) ** 2))
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(max(float(np.sum(a ** 2)), 1e-30) / noise))


def max_abs_error(ref: np.ndarray, cand: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(ref, np.float64) - np.asarray(cand, np.float64))))


def foreground(cls: np.ndarray) -> np.ndarray:
    """[N, 2A, H, W] raw cls → [N, A·H·W] foreground probability (reference layout: bg channels, then fg)."""
    n, c = cls.shape[:2]
    a = c // 2
    x = cls.reshape(n, 2, a, -1).astype(np.float64)
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return (e[:, 1] / e.sum(axis=1)).reshape(n, -1)


def decoded_box_iou(ref_cls: np.ndarray, ref_loc: np.ndarray, loc: np.ndarray, anchor: Dict[str, Any],
                    flavour: str = "pysot") -> np.ndarray:
    """Per crop, IoU of the box each ``loc`` decodes at the FP32 best anchor (crop pixels).

    Isolates the regression branch: both boxes come from the same anchor (FP32's foreground argmax), so the IoU is
    1.0 exactly when the two ``loc`` maps agree there, whatever the score maps do.
    """
    from ..runtime.geometry import decode, geometry

    n = ref_loc.shape[0]
    geo = geometry(ref_loc.shape[-1], int(anchor["stride"]), tuple(anchor["ratios"]), tuple(anchor["scales"]),
                   flavour)
    best = foreground(ref_cls).argmax(1)

    def boxes(x: np.ndarray) -> np.ndarray:
        d = x.reshape(n, 4, -1)[np.arange(n), :, best][:, :, None]  # [n, 4, 1] dx, dy, dw, dh at best
        cx, cy, w, h = decode(d, geo, index=best[:, None])[:, :, 0].T
        return np.stack([cx - w / 2, cy - h / 2, w, h], 1)

    return iou_xywh(boxes(ref_loc), boxes(loc))


def compare(ref: np.ndarray, cand: np.ndarray) -> Dict[str, float]:
    """cosine (global), per-sample minimum cosine, SQNR and max abs error of one output over all samples."""
    per = [cosine(r, c) for r, c in zip(ref, cand)]
    return {"cosine": cosine(ref, cand), "cosine_min": float(np.min(per)), "sqnr_db": sqnr_db(ref, cand),
            "max_abs_error": max_abs_error(ref, cand)}


# ------------------------------------------------------------------------------------------------------ report
@dataclass
class Report:
    """The measurements (``data`` is what report.json holds)."""

    data: Dict[str, Any]
    json_path: Optional[Path] = None
    png_path: Optional[Path] = None

    def __str__(self) -> str:
        d = self.data
        w = max(len(v["name"]) for v in [d["ref"]] + d["candidates"])
        foreign = [v["name"] for v in d["candidates"] if v.get("derived_from_ref") is False]
        lines = [f"accuracy retention vs FP32 ({d['ref']['dir']}) on {d['video']}: {d['crops']} search crops, "
                 f"{d['frames']} frames, ONNX Runtime CPU, {d['threads']} threads"
                 + (f" — NOT DERIVED FROM THIS REFERENCE: {', '.join(foreign)} (another export or unrecorded "
                    "source: weight differences are mixed into the precision loss)" if foreign else ""),
                 # random weights: their WARNING was logged once by the tracking runs, not repeated here
                 f"weights: {d['ref'].get('weights_line', d['ref'].get('weights'))}"]
        hdr = (f"{'variant':{w}s} {'prec':5s} {'cls cos':>8s} {'cls SQNR':>9s} {'loc cos':>8s} {'loc max':>8s} "
               f"{'box IoU':>7s} {'kern cos':>8s} "
               f"{'argmax':>7s} {'IoU mean':>8s} {'IoU min':>8s} {'1-step':>7s} {'search ms':>9s} {'ratio':>6s} "
               f"{'e2e ms':>7s} {'ratio':>6s} {'1t ratio':>8s}")
        lines.append(hdr)
        lines.append("-" * len(hdr))
        for v in [d["ref"]] + d["candidates"]:
            acc = v.get("accuracy")
            trk = v.get("tracking")
            sp = v["speed"]
            if acc:
                kern = min(x["cosine"] for x in acc["template"].values())
                body = (f"{acc['cls']['cosine']:8.4f} {acc['cls']['sqnr_db']:7.1f}dB {acc['loc']['cosine']:8.4f} "
                        f"{acc['loc']['max_abs_error']:8.4f} {acc['loc_box_iou_mean']:7.3f} {kern:8.4f} "
                        f"{acc['argmax_agreement']:7.2f} {trk['iou_mean']:8.3f} {trk['iou_min']:8.3f} "
                        f"{trk['one_step_iou_mean']:7.3f}")
            else:
                body = f"{'(reference)':>86s}"
            lines.append(f"{v['name']:{w}s} {v['precision']:5s} {body} {sp['search_ms']:9.1f} "
                         f"{sp['search_ratio']:6.2f} {sp['e2e_ms']:7.1f} {sp['e2e_ratio']:6.2f} "
                         f"{sp['search_ratio_1t']:8.2f}")
        for v in d["candidates"]:
            acc = v.get("accuracy") or {}
            if "cls_alt" in acc:
                lines.append(f"{v['name']} at search size {d['alt_instance_size']} ({d['alt_crops']} crops): cls cos "
                             f"{acc['cls_alt']['cosine']:.4f} ({acc['cls_alt']['sqnr_db']:.1f} dB), loc cos "
                             f"{acc['loc_alt']['cosine']:.4f}")
        lines.append("loc max: max abs error of loc; box IoU: mean per-crop IoU of the boxes both loc maps decode at "
                     "FP32's best anchor. IoU mean/min: free-running trajectory vs FP32 over the video; 1-step: mean "
                     "IoU of one step taken from the FP32 state (no drift). 1t ratio: search-branch time ratio "
                     "single-threaded.")
        if d["ref"].get("weights") == "random-realistic":
            lines.append("note: the reference has random (untrained) heads: its tracker follows nothing, so "
                         "trajectories fork at the first near-tie whatever the precision. For trajectory agreement "
                         "export with --random-heads matching, or use a trained --checkpoint.")
        if self.json_path:
            lines.append(f"saved: {self.json_path}" + (f", {self.png_path}" if self.png_path else ""))
        return "\n".join(lines)


def _same_model(ref: ModelDir, cand: ModelDir) -> None:
    keys = ("arch", "exemplar_size", "instance_size", "score_size", "template_outputs", "anchor", "track")
    diff = [k for k in keys if ref.meta.get(k) != cand.meta.get(k)]
    if diff:
        raise ModelDirError(f"{cand.path} is not a variant of {ref.path}",
                            evidence="; ".join(f"{k}: {ref.meta.get(k)!r} vs {cand.meta.get(k)!r}"
                                               for k in diff)[:500],
                            fix="compare a directory with the fp32 directory it was quantized from")


def _one_step_iou(ref: ModelDir, cands: Sequence[ModelDir], video, init_box, threads: int,
                  max_frames: Optional[int], progress: bool) -> Dict[str, np.ndarray]:
    """Per-frame IoU of one tracking step from the FP32 state (teacher forcing): before every frame each candidate
    tracker is put where the FP32 tracker is, then both track that frame. Free-running trajectories fork for good
    at the first flipped decision (with random weights even FP16 does); this isolates the per-step agreement."""
    from ..runtime.tracker import Tracker
    from ..runtime.video import open_frames

    opts = {"threads": threads, "providers": "cpu"}
    trackers = [Tracker.from_model_dir(md.path, backend="onnxruntime", **opts) for md in [ref] + list(cands)]
    out: Dict[str, List[float]] = {str(md.path): [1.0] for md in cands}
    src = open_frames(video, max_frames=max_frames)
    bar = progress_bar(src.frame_count, "report: one-step agreement", "frame", progress, leave=False)
    try:
        for t, frame in enumerate(src):
            if t == 0:
                for tr in trackers:
                    tr.init(frame, init_box)
            else:
                for tr in trackers[1:]:
                    tr.center, tr.size = trackers[0].center.copy(), trackers[0].size.copy()
                boxes = [tr.track(frame).bbox for tr in trackers]
                for md, b in zip(cands, boxes[1:]):
                    out[str(md.path)].append(float(iou_xywh(boxes[0], b)))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        src.close()
        for tr in trackers:
            tr.close()
    return {k: np.asarray(v) for k, v in out.items()}


def _plot(data: Dict[str, Any], path: Path) -> Optional[Path]:
    try:
        plt = pyplot()
    except ImportError:
        LOG.warning("report: matplotlib is not installed; no PNG written (pip install matplotlib)")
        return None
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), gridspec_kw={"width_ratios": [2.2, 1.2, 1.2]})
    ax = axes[0]
    for v in data["candidates"]:
        line, = ax.plot(v["tracking"]["iou_per_frame"], label=f"{v['name']}: mean {v['tracking']['iou_mean']:.3f}")
        ax.plot(v["tracking"]["one_step_iou_per_frame"], ls=":", color=line.get_color(),
                label=f"  one step from FP32 state: mean {v['tracking']['one_step_iou_mean']:.3f}")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("frame")
    ax.set_ylabel("IoU with FP32 box")
    ax.set_title("tracking agreement")
    ax.legend(loc="lower left", fontsize=8)
    ax = axes[1]
    lo = min([min(v["accuracy"]["cls_cosine_per_crop"]) for v in data["candidates"]] + [0.99])
    bins = np.linspace(max(lo - 1e-3, -1.0), 1.0, 41)  # fixed edges: identical values must not break np.histogram
    for v in data["candidates"]:
        ax.hist(np.clip(v["accuracy"]["cls_cosine_per_crop"], bins[0], 1.0), bins=bins, alpha=0.6, label=v["name"])
    ax.set_xlabel("cls cosine vs FP32 (per crop)")
    ax.set_title("score-map fidelity")
    ax.legend(fontsize=8)
    ax = axes[2]
    variants = [data["ref"]] + data["candidates"]

    def short(v):
        q = v.get("quantization") or {}
        return v["precision"] + (f"\n{q['target']}" if q.get("target") not in (None, "any") else "")

    names = ["fp32 (ref)" if v is data["ref"] else short(v) for v in variants]
    xs = np.arange(len(variants))
    ax.bar(xs - 0.2, [v["speed"]["search_ms"] for v in variants], 0.4, label="search branch")
    ax.bar(xs + 0.2, [v["speed"]["e2e_ms"] for v in variants], 0.4, label="end to end / frame")
    for x, v in zip(xs, variants):
        ax.text(x - 0.2, v["speed"]["search_ms"], f"{v['speed']['search_ratio']:.2f}x\n"
                f"(1t {v['speed']['search_ratio_1t']:.2f}x)", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("ms (ONNX Runtime CPU)")
    ax.set_title(f"speed, {data['threads']} threads")
    ax.legend(fontsize=8)
    return save_png(fig, path)


def _open_variants(ref, cands) -> Tuple[ModelDir, List[ModelDir], Dict[str, bool]]:
    """The reference and candidate directories, checked to be variants of one model; whether each was derived
    from this very reference (its ``quantization.source_sha256``)."""
    seen = {Path(ref).resolve(): "--ref"}
    for c in cands:
        if Path(c).resolve() in seen:
            raise InputError(f"--cand {c} is the same directory as {seen[Path(c).resolve()]}",
                             evidence=f"{Path(c).resolve()} given twice",
                             fix="compare --ref (the fp32 directory) with the fp16/int8 directories made from it, "
                                 "each given once: --cand DIR_INT8 --cand DIR_FP16")
        seen[Path(c).resolve()] = f"--cand {c}"
    ref_md = ModelDir.open(ref, require_conv=True)
    if ref_md.precision != "fp32":
        LOG.warning("report: the reference %s is %s, not fp32", ref_md.path, ref_md.precision)
    cand_mds = [ModelDir.open(c, require_conv=True) for c in cands]
    if not cand_mds:
        raise ModelDirError("no candidate directory given", fix="pass --cand DIR_INT8 (repeatable)")
    ref_sha = ref_md.sha256("search")
    derived = {}
    for c in cand_mds:
        _same_model(ref_md, c)
        src_sha = (c.quantization or {}).get("source_sha256")
        derived[str(c.path)] = src_sha == ref_sha
        if src_sha is not None and src_sha != ref_sha:
            LOG.warning("report: %s was made from another export than %s (its source_sha256 differs); the "
                        "comparison mixes weight differences into the precision loss", c.path, ref_md.path)
    return ref_md, cand_mds, derived


def _speed_table(mds: Sequence[ModelDir], runs, crops: CalibrationSet, threads: int, rounds: int
                 ) -> Dict[str, Dict[str, float]]:
    """Per variant: search-branch time at ``threads`` and single-threaded (interleaved, ratios to the first) and
    end-to-end time per frame of its tracking run."""
    timed = {threads: _time_search_branches(mds, crops, threads, rounds)}
    if threads > 1:
        timed[1] = _time_search_branches(mds, crops, 1, rounds)
    (timings, rat), (timings_1t, rat_1t) = timed[threads], timed[1]

    def e2e_ms(run) -> float:
        return 1000.0 * run.tracker_seconds / max(run.frames, 1)

    ref_e2e = e2e_ms(runs[str(mds[0].path)])
    return {str(md.path): {"search_ms": timings[str(md.path)].median_ms, "search_p90_ms": timings[str(md.path)].p90_ms,
                           "search_ratio": rat[str(md.path)], "search_ms_1t": timings_1t[str(md.path)].median_ms,
                           "search_ratio_1t": rat_1t[str(md.path)], "e2e_ms": e2e_ms(runs[str(md.path)]),
                           "e2e_ratio": e2e_ms(runs[str(md.path)]) / ref_e2e} for md in mds}


def _accuracy(md: ModelDir, ref_out, crops: CalibrationSet, threads: int) -> Dict[str, Any]:
    """Tensor fidelity of one candidate against the reference outputs ``ref_out`` = (kernels, cls, loc)."""
    ref_k, ref_cls, ref_loc = ref_out
    k, cls, loc = _run_branches(md, crops, threads)
    fg_ref, fg_c = foreground(ref_cls), foreground(cls)
    box_iou = decoded_box_iou(ref_cls, ref_loc, loc, md.meta["anchor"], md.flavour)
    return {"cls": compare(ref_cls, cls), "loc": compare(ref_loc, loc),
            "template": {name: compare(ref_k[name], k[name]) for name in md.template_outputs},
            "argmax_agreement": float(np.mean(fg_ref.argmax(1) == fg_c.argmax(1))),
            "score_max_abs_error": max_abs_error(fg_ref, fg_c),
            "cls_cosine_per_crop": [cosine(a, b) for a, b in zip(ref_cls, cls)],
            "loc_cosine_per_crop": [cosine(a, b) for a, b in zip(ref_loc, loc)],
            "loc_box_iou_mean": float(box_iou.mean()), "loc_box_iou_min": float(box_iou.min()),
            "loc_box_iou_per_crop": [float(v) for v in box_iou]}


def _tracking(ref_run, run, step: np.ndarray) -> Dict[str, Any]:
    """Free-running trajectory IoU against the reference run, and the one-step IoU from the reference state."""
    n = min(run.frames, ref_run.frames)
    ious = iou_xywh(ref_run.boxes[1:n, 0], run.boxes[1:n, 0]) if n > 1 else np.ones(0)
    return {"iou_mean": float(ious.mean()) if ious.size else 1.0,
            "iou_min": float(ious.min()) if ious.size else 1.0,
            "frames_below_0.5": int(np.sum(ious < 0.5)),
            "iou_per_frame": [1.0] + [float(v) for v in ious],
            "one_step_iou_mean": float(step[1:].mean()) if step.size > 1 else 1.0,
            "one_step_iou_min": float(step[1:].min()) if step.size > 1 else 1.0,
            "one_step_iou_per_frame": [float(v) for v in step]}


def _check_request(video, out: Path, samples: int, speed_rounds: int, model_dirs: Sequence[Path] = ()) -> None:
    """Options, the video and the output folder (not inside a model directory compared nor the video's folder: a
    re-export would drop it, a rerun would read it), checked before any model runs."""
    if samples < 1 or speed_rounds < 1:
        raise InputError("--samples and --speed-rounds must be ≥ 1",
                         evidence=f"samples={samples}, speed_rounds={speed_rounds}",
                         fix="pass --samples 1 or more (default 64) and --speed-rounds 1 or more (default 10)")
    if not Path(video).exists():
        raise InputError(f"video {video} does not exist", fix="pass a video file, image folder or OTB folder")
    check_writable([out / REPORT_JSON, out / REPORT_PNG], what=["--out", "--out"], dirs=[out],
                   input_dirs=list(model_dirs) + ([video] if Path(video).is_dir() else []))


def accuracy_report(ref: Union[str, Path], cands: Sequence[Union[str, Path]], video: Union[str, Path],
                    bbox: Optional[Sequence[float]] = None, *, boxes: Optional[Union[str, Path]] = None,
                    out: Optional[Union[str, Path]] = None, samples: int = DEFAULT_SAMPLES,
                    threads: Optional[int] = None, speed_rounds: int = 10, max_frames: Optional[int] = None,
                    progress: bool = True) -> Report:
    """Compare reduced-precision directories with their FP32 source on a real video.

    Args:
        ref (str | Path): the fp32 model directory.
        cands (Sequence): fp16 / int8 directories derived from it.
        video (str | Path): video file or image folder.
        bbox (Sequence[float]): initial box x,y,w,h (or give ``boxes``/an OTB folder for the crops' geometry).
        boxes (str | Path): per-frame box file used for the crops instead of the FP32 trajectory. Defaults to None.
        out (str | Path): folder for report.json / report.png (each written complete or not at all, the JSON
            last). Defaults to results/calibration/<first cand name>.
        samples (int): search crops for the per-output metrics. Defaults to 64.
        threads (int): ONNX Runtime intra-op threads for every variant. Defaults to the physical cores.
        speed_rounds (int): interleaved timing rounds. Defaults to 10.
        max_frames (int): track at most this many frames. Defaults to None (the whole video).
        progress (bool): progress bars. Defaults to True.

    Raises:
        ModelDirError: a candidate is not a variant of ``ref``. InputError: bad option, unreadable video, bad box,
        unwritable ``out``, a candidate that is ``ref`` itself or given twice.
    """
    from ..runtime.cpu import cpu_threads

    t0 = time.perf_counter()
    ref_md, cand_mds, derived = _open_variants(ref, cands)
    out = Path(out) if out is not None else RESULTS_DIR / "calibration" / cand_mds[0].path.name
    threads = cpu_threads(threads)
    _check_request(video, out, samples, speed_rounds, [ref_md.path] + [c.path for c in cand_mds])
    try:  # a stop before the report is complete writes nothing: say so, not the tracker's own words
        data = _measure(ref_md, cand_mds, derived, video, bbox, boxes, samples, threads, speed_rounds, max_frames,
                        progress)
    except (Interrupted, KeyboardInterrupt):
        raise Interrupted(f"interrupted before the report was complete: nothing written, {out} untouched") from None
    data["seconds"] = time.perf_counter() - t0
    return write_report(data, out)


def _measure(ref_md: ModelDir, cand_mds: List[ModelDir], derived: Dict[str, Any], video, bbox, boxes, samples: int,
             threads: int, speed_rounds: int, max_frames: Optional[int], progress: bool) -> Dict[str, Any]:
    """Everything :func:`accuracy_report` measures (crops, tracking runs, branch outputs, speed), as its data."""
    from ..runtime.run import track_video

    source = SourceSpec(Path(video), bbox=bbox, boxes=Path(boxes) if boxes else None)
    crops = collect(ref_md.path, [source], out=None, max_samples=samples, templates_per_source=1,
                    max_frames=max_frames, threads=threads, progress=progress).calib
    # track the whole video with every variant (FP32 first); the same runs give the end-to-end time
    init_box = crops.meta["sources"][0]["init_bbox"]
    variants = [ref_md] + cand_mds
    runs = {str(md.path): track_video(md.path, video, init_box, backend="onnxruntime", threads=threads,
                                      providers="cpu", max_frames=max_frames, progress=progress,
                                      progress_desc=f"report: tracking {md.precision.upper()} {md.path.name} "
                                                    f"({i}/{len(variants)})")
            for i, md in enumerate(variants, 1)}
    ref_run = runs[str(ref_md.path)]
    one_step = _one_step_iou(ref_md, cand_mds, video, init_box, threads, max_frames, progress)
    ref_out = _run_branches(ref_md, crops, threads)
    # the adaptive model's other search size (SiamRPNBIG 287), when the collector cut crops at it
    alt_crops = crops.alt_set()
    ref_alt = _run_branches(ref_md, alt_crops, threads) if alt_crops is not None else None
    speed = _speed_table([ref_md] + cand_mds, runs, crops, threads, speed_rounds)
    data: Dict[str, Any] = {
        "video": str(video), "init_bbox": init_box, "frames": ref_run.frames, "crops": crops.num_search,
        "alt_instance_size": crops.alt_instance_size, "alt_crops": 0 if alt_crops is None else alt_crops.num_search,
        "threads": threads, "backend": "onnxruntime-cpu",
        "ref": {"name": ref_md.path.name, "dir": str(ref_md.path), "precision": ref_md.precision,
                "weights": ref_md.weights, "weights_line": ref_md.weights_line,
                "untrained_warning": ref_md.untrained_warning, "checkpoint_sha256": ref_md.checkpoint_sha256,
                "speed": speed[str(ref_md.path)]},
        "candidates": [],
    }
    for md in cand_mds:
        acc = _accuracy(md, ref_out, crops, threads)
        if alt_crops is not None:
            alt = _accuracy(md, ref_alt, alt_crops, threads)
            acc.update({"cls_alt": alt["cls"], "loc_alt": alt["loc"]})
        data["candidates"].append({
            "name": md.path.name, "dir": str(md.path), "precision": md.precision, "quantization": md.quantization,
            "derived_from_ref": derived[str(md.path)], "accuracy": acc,
            "tracking": _tracking(ref_run, runs[str(md.path)], one_step[str(md.path)]),
            "speed": speed[str(md.path)]})
    return data


def write_report(data: Dict[str, Any], out: Union[str, Path]) -> Report:
    """``out/report.png`` then ``out/report.json``, each written under a temporary name and renamed when complete:
    an interrupted report leaves no partial file, and a report.json means the run finished."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    png = _plot(data, out / REPORT_PNG)
    json_path = out / REPORT_JSON
    with atomic_file(json_path) as f:
        f.write(json.dumps(data, indent=1))
    return Report(data=data, json_path=json_path, png_path=png)


__all__ = ["REPORT_JSON", "REPORT_PNG", "Report", "accuracy_report", "compare", "cosine", "foreground",
           "max_abs_error", "sqnr_db", "write_report"]
