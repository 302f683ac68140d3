"""One-pass evaluation (OPE) of each backend/precision: run → result files → scores recomputed from the files.

Protocol (OTB OPE, as pysot's ``tools/test.py`` and got10k run it): the tracker is initialised once with the
ground-truth box of frame 0 and never re-initialised; the result file holds the initial box at frame 0 and the
tracker's box on every later frame; times are seconds per ``init``/``track`` call (frame decoding excluded). Scores
(see :mod:`siamtrt.benchmarks.metrics`) are computed per sequence and averaged over sequences.

"How much accuracy a deployment keeps" is reported two ways against a reference run (the torch reference when it
ran, else the first fp32 run): the change in success/precision score, and the agreement of the boxes themselves
(mean IoU between the deployment's and the reference's box on every frame) — the latter is meaningful even for
seeded random weights, where scores against the ground truth are not.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import BackendError, CheckpointError, InputError, Interrupted
from ..locations import RESULTS_DIR
from . import metrics, results, sysinfo
from ..runtime.sequences import OTB_GT, Sequence as Seq, load_sequences
from .variants import DEFAULT_CACHE, REFERENCE_BACKEND, Variant, check_available, resolve_variants
from ..progress import progress_iter

LOG = logging.getLogger(__name__)

DEFAULT_RESULTS = RESULTS_DIR
SYNTHETIC_DIR = "_sequences"


@dataclass
class Entrant:
    """One tracker under evaluation: results go to ``results/<model>/<backend>-<precision>[_<run>]``.

    ``make_tracker`` is called once (lazily, only if some sequence has no result yet); the tracker is re-initialised
    for every sequence and must offer ``init(frame, bbox)`` and ``track(frame)`` returning a result with ``.bbox``
    (:class:`~siamtrt.runtime.result.TrackResult`).
    """

    model: str
    backend: str
    precision: str
    make_tracker: Callable[[], Any]
    info: Dict[str, Any] = field(default_factory=dict)
    run: Optional[int] = None
    is_reference: bool = False

    @property
    def label(self) -> str:
        return results.run_name(self.backend, self.precision, self.run)


def truncate(seq: Seq, max_frames: Optional[int]) -> Seq:
    """The first ``max_frames`` frames of a sequence (for reduced runs)."""
    if max_frames is None or max_frames >= len(seq):
        return seq
    if max_frames < 2:
        raise InputError(f"--max-frames must be at least 2 (got {max_frames})")
    return Seq(name=seq.name, gt=seq.gt[:max_frames], frames=seq.frames[:max_frames] if seq.frames else None,
               video=seq.video, polygons=None if seq.polygons is None else seq.polygons[:max_frames],
               source=f"{seq.source} (first {max_frames} frames)", gt_file=seq.gt_file, folder=seq.folder)


def track_sequence(tracker: Any, seq: Seq, progress: bool = False) -> tuple:
    """OPE on one sequence: (boxes [N, 4] with the initial box at frame 0, seconds per call [N])."""
    n = len(seq)
    boxes = np.zeros((n, 4))
    times = np.zeros(n)
    it = progress_iter(enumerate(seq.iter_frames()), n, f"OPE: {seq.name}", "frame", progress, leave=False)
    for i, frame in it:
        t0 = time.perf_counter()
        if i == 0:
            tracker.init(frame, seq.gt[0])
            boxes[0] = seq.gt[0]
        else:
            bbox = tracker.track(frame).bbox
            boxes[i] = bbox
        times[i] = time.perf_counter() - t0
    return boxes, times


def pending(entrant: Entrant, sequences: Sequence[Seq], results_root: Union[str, Path],
            force: bool = False) -> Tuple[Path, List[Seq], List[str]]:
    """(run folder, sequences to track, the names of those whose complete result is recorded for another model or
    sequence): a result is reused only when complete and recorded in run.json for this model and sequence.

    The run folder is the first ``<backend>-<precision>[_<run:03d>]`` that is new or holds this model directory's
    results (its fingerprint) and none for another sequence of a name it tracks: two directories of the same weights
    and precision (another xcorr, batch or Q/DQ target, a re-export), and a ``--max-frames`` run beside the full one,
    keep each their own results; ``entrant.run`` is set to it (so is its label)."""
    fp = entrant.info.get("fingerprint")
    keys = {results.safe_name(s.name): results.result_key(fp, s) for s in sequences}
    rdir = results.run_dir(results_root, entrant.model, entrant.backend, entrant.precision, entrant.run)
    while _holds_other_results(results.read_run_info(rdir), fp, keys):  # kept: the run goes to the next folder
        entrant.run = (entrant.run or 0) + 1
        rdir = results.run_dir(results_root, entrant.model, entrant.backend, entrant.precision, entrant.run)
    recorded = results.read_run_info(rdir).get("sequences", {})
    complete = {s.name for s in sequences if not force and results.is_complete(rdir, s)}  # asked once per sequence
    todo = [s for s in sequences if s.name not in complete or recorded.get(results.safe_name(s.name))
            != keys[results.safe_name(s.name)]]
    return rdir, todo, [s.name for s in todo if s.name in complete]


def _holds_other_results(info: Dict[str, Any], fp: Optional[str], keys: Dict[str, Dict[str, Any]]) -> bool:
    """Whether a run folder (its run.json ``info``) keeps results a run of model ``fp`` with result ``keys`` would
    replace: another model directory's, or this one's for another sequence of a name it tracks (a ``--max-frames``
    run and the full run: the reduced one replaced the full-length results in place)."""
    recorded = info.get("sequences")
    recorded = recorded if isinstance(recorded, dict) else {}
    return info.get("fingerprint", fp) != fp or any(
        isinstance(recorded.get(n), dict) and recorded[n].get("model") == fp and recorded[n] != k
        for n, k in keys.items())


def run_entrant(entrant: Entrant, sequences: Sequence[Seq], results_root: Union[str, Path], force: bool = False,
                progress: bool = True, kept: Optional[List[Tuple[Path, str]]] = None) -> Tuple[Path, int]:
    """Track every sequence :func:`pending` names; returns (run folder, number of sequences reused).
    ``kept`` gets (run folder, sequence) for every result written (what a stopped evaluation leaves)."""
    rdir, todo, stale = pending(entrant, sequences, results_root, force)
    fp = entrant.info.get("fingerprint")
    if stale:
        LOG.warning("OPE: %s: the results for %s in %s were written for another model or another sequence of that "
                    "name; re-running", entrant.label, ", ".join(stale), rdir)
    skipped = len(sequences) - len(todo)
    if skipped:
        LOG.info("OPE: %s: %d sequence(s) already in %s (use --force to re-run)", entrant.label, skipped, rdir)
    if todo:
        tracker = entrant.make_tracker()  # before writing anything: a tracker that cannot start leaves no run
        info = dict(entrant.info, model=entrant.model, backend=entrant.backend, precision=entrant.precision,
                    label=entrant.label, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        per = {k: v for k, v in results.read_run_info(rdir).get("sequences", {}).items()
               if k not in {results.safe_name(s.name) for s in todo}}  # a result being rewritten has no record
        results.write_run_info(rdir, dict(info, sequences=per))
        for seq in todo:
            boxes, times = track_sequence(tracker, seq, progress)
            results.write_result(rdir, seq.name, boxes, times)
            per[results.safe_name(seq.name)] = results.result_key(fp, seq)  # recorded once the files are whole
            results.write_run_info(rdir, dict(info, sequences=per))
            if kept is not None:
                kept.append((rdir, seq.name))
        close = getattr(tracker, "close", None)
        if callable(close):
            close()
    return rdir, skipped


def interrupted_text(kept: Sequence[Tuple[Path, str]]) -> str:
    """What a stopped evaluation leaves: no report, and the per-sequence results it finished (a later run with the
    same model and sequences reuses them)."""
    if not kept:
        return "interrupted before the report: no sequence result was finished in this run, no report written"
    runs: Dict[Path, List[str]] = {}
    for rdir, name in kept:
        runs.setdefault(rdir, []).append(name)
    where = "; ".join(f"{rdir} ({', '.join(names)})" for rdir, names in runs.items())
    return (f"interrupted before the report (none written); kept {len(kept)} finished sequence result(s): {where} — "
            "a later run with the same model and sequences reuses them (--force re-runs them)")


def agreement(rdir: Path, ref_dir: Path, sequences: Sequence[Seq]) -> Dict[str, float]:
    """Mean IoU (and IoU > 0.5 rate) between two runs' boxes over every frame after the first, all sequences."""
    ious = []
    for seq in sequences:
        a, _ = results.read_result(rdir, seq.name)
        b, _ = results.read_result(ref_dir, seq.name)
        ious.append(metrics.rect_iou(a[1:], b[1:]))
    iou = np.concatenate(ious) if ious else np.zeros(0)
    return {"mean_iou": float(iou.mean()) if iou.size else float("nan"),
            "iou_gt_0.5": float((iou > 0.5).mean()) if iou.size else float("nan"), "frames": int(iou.size)}


@dataclass
class AccuracyReport:
    """Scores of every entrant, recomputed from the result files."""

    model: str
    sequences: List[Seq]
    entries: List[Dict[str, Any]]
    reference: Optional[str]
    machine: Dict[str, Any]
    trained: Optional[bool] = None
    weights: List[str] = field(default_factory=list)  # one weights_line per distinct model
    notes: List[str] = field(default_factory=list)
    skipped: List[Dict[str, str]] = field(default_factory=list)
    json_path: Optional[Path] = None
    plot_path: Optional[Path] = None

    def scores(self) -> Dict[str, metrics.OPEScores]:
        return {e["label"]: e["scores"] for e in self.entries}

    def to_dict(self) -> Dict[str, Any]:
        ents = []
        for e in self.entries:
            d = {k: v for k, v in e.items() if k != "scores"}
            d.update(e["scores"].to_dict())
            d["run_dir"] = str(e["run_dir"])
            ents.append(d)
        return {"tool": "siamtrt benchmarks/accuracy.py", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "protocol": "OTB one-pass evaluation (init on frame 0 ground truth, no re-initialisation)",
                "metrics": {"success": "fraction of frames with IoU > t, t = 0:0.05:1; score = mean of the 21 points",
                            "precision": "fraction of frames with centre error <= d px, d = 0..50; score at 20 px",
                            "norm_precision": "centre error / gt size, 0..0.5 in 51 steps; score at 0.2, auc = mean",
                            "average_overlap": "mean IoU (exact area under the success curve)"},
                "model": self.model, "trained": self.trained, "weights": self.weights, "machine": self.machine,
                "sequences": [{"name": s.name, "frames": len(s), "source": s.source} for s in self.sequences],
                "reference": self.reference, "entries": ents, "skipped": self.skipped, "notes": self.notes}

    def summary(self) -> str:
        frames = sum(len(s) for s in self.sequences)
        weights = ("; ".join(self.weights) if self.weights else "") + (" — " if self.weights else "")
        weights += ("trained weights" if self.trained else
                   "SEEDED RANDOM WEIGHTS: scores vs ground truth say nothing about the tracker; "
                   "the agreement columns compare deployments")
        lines = [f"siamtrt accuracy (OPE) — {self.model} ({weights})",
                 f"{len(self.sequences)} sequence(s), {frames} frames: "
                 + ", ".join(f"{s.name} ({len(s)})" for s in self.sequences), ""]
        head = ["run", "success", "prec@20", "norm@0.2", "mean IoU", "fps", "Δsuccess", "Δprec", "IoU vs ref",
                "IoU>0.5 vs ref"]
        rows = []
        for e in self.entries:
            s: metrics.OPEScores = e["scores"]
            ag = e.get("agreement") or {}
            rows.append([e["label"] + (" (ref)" if e["label"] == self.reference else ""),
                         f"{s.success_score:.3f}", f"{s.precision_score:.3f}", f"{s.norm_precision_score:.3f}",
                         f"{s.average_overlap:.3f}", f"{e['fps']:.1f}" if e.get("fps") else "n/a",
                         _signed(e.get("delta_success")), _signed(e.get("delta_precision")),
                         f"{ag['mean_iou']:.3f}" if ag else "-", f"{ag['iou_gt_0.5']:.3f}" if ag else "-"])
        lines += results.text_table(head, rows)
        lines.append("success = OTB success score (AUC of 21 IoU thresholds, 20/21 = 0.952 for a perfect tracker); "
                     "prec@20 = precision at 20 px; Δ = minus the reference; fps = tracker calls only.")
        lines += results.report_footer(self.skipped, self.notes, self.json_path, self.plot_path)
        return "\n".join(lines)


def _signed(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:+.3f}"


def check_video_lengths(sequences: Sequence[Seq]) -> None:
    """Refuse a video sequence whose ground-truth file has fewer boxes than the video has frames (as ``collect``
    does): only the first boxes' frames were tracked and scored, silently, as though they were the whole video.

    The container's frame count decides when it is not above the boxes; otherwise the frame after the last box is
    decoded to confirm it exists (containers misreport their counts). A ground truth longer than the video is
    refused while tracking (:meth:`~siamtrt.runtime.sequences.Sequence.iter_frames`).

    Raises:
        InputError: a video with more frames than its ground truth has boxes.
    """
    from ..runtime.video import FrameSource

    for seq in sequences:
        if seq.video is None:
            continue
        with FrameSource(seq.video) as src:
            reported = src.frame_count
        if reported is not None and reported <= len(seq):
            continue
        with FrameSource(seq.video, max_frames=len(seq) + 1) as src:
            decoded = sum(1 for _ in src)
        if decoded > len(seq):
            frames = reported if reported is not None else f"more than {len(seq)}"
            raise InputError(f"ground truth of {seq.video} has {len(seq)} boxes for {frames} frames",
                             evidence=f"sequence {seq.name}: {seq.source}; only its first {len(seq)} frames would "
                                      "be tracked and scored",
                             fix="pass the ground-truth file of this video (one box per frame: "
                                 "--sequence VIDEO:GT_FILE), or cut the video to the boxes' frames; --max-frames "
                                 "limits the evaluation to the first frames of a matching pair")


def evaluate(entrants: Sequence[Entrant], sequences: Sequence[Seq], results_root: Union[str, Path] = DEFAULT_RESULTS,
             force: bool = False, json_out: Optional[Union[str, Path]] = None,
             plot_out: Optional[Union[str, Path]] = None, progress: bool = True,
             skip_errors_for_reference: bool = False) -> AccuracyReport:
    """Run every entrant (skipping existing results), then score all of them from their files.

    Args:
        entrants (Sequence[Entrant]): trackers to evaluate; the one flagged ``is_reference`` (else the first fp32
            one) is the reference for the Δ and agreement columns.
        sequences (Sequence[Sequence]): evaluation sequences.
        results_root (str | Path): results folder. Defaults to "results".
        force (bool): re-run even when results exist. Defaults to False.
        json_out, plot_out (str | Path): report files, checked before any sequence runs. Default to None.
        skip_errors_for_reference (bool): a reference that cannot run (no torch, no checkpoint) is skipped with a
            note instead of failing the evaluation. Defaults to False.

    Raises:
        InputError: no entrants or sequences; SiamtrtError from the trackers.
    """
    if not entrants:
        raise InputError("nothing to evaluate", fix="choose at least one --backend")
    if not sequences:
        raise InputError("no sequences to evaluate on", fix="pass --sequence PATH (OTB folder, dataset root, video)")
    results.check_report_outputs(json_out, plot_out, results_root)  # library callers too (microseconds)
    done, skipped, notes = [], [], []
    kept: List[Tuple[Path, str]] = []
    try:
        for ent in entrants:
            try:
                rdir, reused = run_entrant(ent, sequences, results_root, force, progress, kept)
                done.append((ent, rdir))
                if reused:
                    notes.append(f"{ent.label}: {reused} sequence(s) read from earlier results in {rdir} "
                                 f"(--force re-runs them)")
            except (BackendError, CheckpointError) as e:
                if ent.is_reference and skip_errors_for_reference:
                    skipped.append({"label": ent.label, "reason": e.what})
                    continue
                raise
    except KeyboardInterrupt:
        raise Interrupted(interrupted_text(kept)) from None
    ref = next((x for x in done if x[0].is_reference), None) or next(
        (x for x in done if x[0].precision == "fp32"), None)
    entries = []
    for ent, rdir in done:
        scores, fps = results.analyse_run(rdir, list(sequences))
        entries.append({"label": ent.label, "backend": ent.backend, "precision": ent.precision, "run_dir": rdir,
                        "scores": scores, "fps": fps, "info": results.read_run_info(rdir)})
    if ref is not None:
        ref_scores = next(e["scores"] for e in entries if e["label"] == ref[0].label)
        for e, (ent, rdir) in zip(entries, done):
            e["delta_success"] = e["scores"].success_score - ref_scores.success_score
            e["delta_precision"] = e["scores"].precision_score - ref_scores.precision_score
            e["retained_success_pct"] = (100.0 * e["scores"].success_score / ref_scores.success_score
                                         if ref_scores.success_score > 0 else None)
            e["agreement"] = agreement(rdir, ref[1], list(sequences))
    report = AccuracyReport(model=entrants[0].model, sequences=list(sequences), entries=entries,
                            reference=ref[0].label if ref else None, machine=sysinfo.machine_info(),
                            skipped=skipped, notes=notes)
    if json_out:
        report.json_path = results.dump_json(json_out, report.to_dict())
    if plot_out:
        from .plots import plot_ope

        title = report.model if len(sequences) > 1 else f"{report.model} on {sequences[0].name}"
        report.plot_path = plot_ope(report.scores(), plot_out, title=title)
    return report


def variant_entrant(v: Variant, threads: Optional[int], check_weights: bool = True) -> Entrant:
    """An Entrant over a benchmark variant (the torch reference is checked to carry the exported weights)."""
    model = results.safe_name(f"{v.arch}-{str(v.meta.get('checkpoint_sha256', ''))[:16]}")

    def make():
        tracker = v.make_tracker(threads)
        if v.is_reference and check_weights:
            from .torch_backend import check_weights_match

            e = int(v.meta["exemplar_size"])
            crop = np.random.default_rng(0).uniform(0, 255, (1, 3, e, e)).astype(np.float32)
            ok, rel = check_weights_match(tracker.backend, v.model_dir, crop)
            if not ok:
                raise CheckpointError(f"the torch reference's weights are not those exported in {v.model_dir}",
                                      evidence=f"template outputs differ by {rel:.2g} (relative) from template.onnx",
                                      fix="pass the --checkpoint the directory was exported from")
        return tracker

    info = v.describe()
    info["threads"] = threads
    from ..modeldir import onnx_digest

    info["fingerprint"] = v.weights_key if v.is_reference else onnx_digest(v.model_dir)
    return Entrant(model=model, backend=v.backend, precision=v.precision, make_tracker=make, info=info,
                   is_reference=v.is_reference)


def default_sequences(results_root: Union[str, Path], synthetic: int = 1, data_dir: Optional[Path] = None,
                      synthetic_frames: int = 60, make: bool = True) -> List[str]:
    """The shared ``bag`` sequence plus ``synthetic`` generated sequences (written once under the results folder;
    only named, not written, unless ``make``; a missing background video is refused either way)."""
    from .data import DEFAULT_SEQUENCE_NAME, DEFAULT_VIDEO_NAME, default_data_dir
    from .synthetic import SyntheticSpec, make_synthetic_sequence

    video = (default_data_dir() if data_dir is None else Path(data_dir)) / DEFAULT_VIDEO_NAME
    specs: List[str] = []
    bag = video.parent / DEFAULT_SEQUENCE_NAME
    if bag.is_dir():
        specs.append(str(bag))
    for seed in range(synthetic):
        out = Path(results_root) / SYNTHETIC_DIR / f"synthetic-s{seed}-f{synthetic_frames}"
        if not (out / OTB_GT).is_file():
            if not video.is_file():
                raise InputError(f"no background video for the synthetic sequence: {video} is missing",
                                 fix="set SIAMTRT_DATA to the folder holding bag.avi, or pass --sequence")
            if make:
                make_synthetic_sequence(out, video, SyntheticSpec(frames=synthetic_frames, seed=seed,
                                                                  background_start=37 * seed))
        specs.append(str(out))
    if not specs:
        raise InputError("no default sequences found", evidence=f"looked for {bag}",
                         fix="pass --sequence PATH or set SIAMTRT_DATA")
    return specs


def run_accuracy(models: Sequence[Union[str, Path]] = (), config: Optional[str] = None,
                 checkpoint: Optional[Union[str, Path]] = None, backends: Sequence[str] = ("onnxruntime",),
                 precisions: Sequence[str] = (), sequences: Sequence[Union[str, Path]] = (), synthetic: int = 1,
                 synthetic_frames: int = 60, max_frames: Optional[int] = None, polygon_mode: str = "minmax",
                 results_root: Union[str, Path] = DEFAULT_RESULTS, force: bool = False,
                 threads: Optional[int] = None, reference: bool = True,
                 json_out: Optional[Union[str, Path]] = None, plot_out: Optional[Union[str, Path]] = None,
                 cache_root: Union[str, Path] = DEFAULT_CACHE, progress: bool = True) -> AccuracyReport:
    """OPE of each backend/precision of one model on the given (or default) sequences.

    Args:
        models, config, checkpoint, backends, precisions: see :func:`siamtrt.benchmarks.variants.resolve_variants`.
        sequences (Sequence[str | Path]): OTB folders, dataset roots, videos (``VIDEO:GT`` or gt beside). Defaults
            to shared/data/bag plus ``synthetic`` synthetic sequences.
        synthetic (int): synthetic sequences added when ``sequences`` is empty. Defaults to 1.
        synthetic_frames (int): their length. Defaults to 60.
        max_frames (int): evaluate only the first frames of each sequence (reduced runs). Defaults to None.
        polygon_mode (str): VOT polygon → box conversion ("minmax" or "area"). Defaults to "minmax".
        results_root (str | Path): results folder (rule 14 layout). Defaults to "results".
        force (bool): re-run existing results. Defaults to False.
        threads (int): CPU threads for every backend. Defaults to the physical core count.
        reference (bool): also run the torch reference (skipped with a note if it cannot run). Defaults to True.
        json_out, plot_out (str | Path): report files. Default to None.

    Raises:
        SiamtrtError: bad arguments, unreadable sequences or models, failing backends.
    """
    from ..runtime.cpu import cpu_threads

    threads = cpu_threads(threads)
    # outputs checked once, before any work, against what the run reads (a missing synthetic sequence is written
    # only once the backends are accepted: a refused run writes nothing)
    loaded = load_sequences(sequences, polygon_mode)
    defaults = partial(default_sequences, results_root, synthetic, synthetic_frames=synthetic_frames)
    named = [] if sequences else defaults(make=False)
    results.check_report_outputs(json_out, plot_out, results_root,
                                 inputs=[checkpoint] + [f for s in loaded for f in s.input_files()],
                                 input_dirs=[d for s in loaded for d in s.input_dirs()] + named
                                 + [m for m in models if Path(m).is_dir()])
    to_make = [n for n in named if Path(n).parent == Path(results_root) / SYNTHETIC_DIR
               and not (Path(n) / OTB_GT).is_file()]  # synthetic sequences, written once the run is accepted
    if named:
        loaded = load_sequences([n for n in named if n not in to_make], polygon_mode)
    check_video_lengths(loaded)
    seqs = [truncate(s, max_frames) for s in loaded]
    variants = resolve_variants(models, config, checkpoint, backends, precisions, reference=reference,
                                cache_root=cache_root, progress=progress)
    explicit_ref = REFERENCE_BACKEND in backends
    entrants = [variant_entrant(v, threads) for v in variants]
    entrant_of = dict(zip(map(id, variants), entrants))
    # a backend that cannot run here is refused before any entrant runs, unless saved results cover its sequences
    # (a sequence not yet made has none)
    check_available(variants, needed=lambda v: bool(to_make)
                    or bool(pending(entrant_of[id(v)], seqs, results_root, force)[1]))
    if to_make:
        seqs = [truncate(s, max_frames) for s in load_sequences(defaults(), polygon_mode)]
    report = evaluate(entrants, seqs, results_root, force, json_out, plot_out, progress,
                      skip_errors_for_reference=not explicit_ref)
    report.trained = all(v.trained for v in variants)
    report.weights = list(dict.fromkeys(v.weights_line for v in variants if v.meta))
    if not report.trained:
        report.notes.append("random weights give flat score maps: a 1e-5 numeric difference can flip the arg-max "
                            "between near-equal peaks and the trajectories part for good, so even exact ports agree "
                            "only partly here — judge deployments on a trained checkpoint")
    if max_frames:
        report.notes.append(f"reduced run: first {max_frames} frames of each sequence")
    if report.json_path:  # rewrite with the fields set after evaluation
        results.dump_json(report.json_path, report.to_dict())
    return report


__all__ = ["AccuracyReport", "Entrant", "check_video_lengths", "evaluate", "run_accuracy",
           "pending", "run_entrant", "track_sequence", "truncate",
           "default_sequences", "variant_entrant"]
