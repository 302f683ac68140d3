"""The run's record in the output folder (``summary.json`` / ``summary.csv``) and what a rerun may reuse.

``summary.json`` holds ``run`` (the model's identity, format, backend, start time) and ``videos`` (one
:func:`~siamtrt.batch.video.summary_row` per video). Both files are rewritten atomically after every video, so an
interrupted run leaves a valid summary. A rerun skips a video only when its result file exists, its entry is ``ok``,
it was made for the same request (init box and frame limit) and the summary was written by the same model (same ONNX
files, by sha256) with the same backend: results of another model or request are never passed off as this one's. The
summary keeps the entries of the folder's other videos (a rerun over some of them does not forget the rest).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..metadata import file_sha256
from ..modeldir import BRANCHES, ModelDir
from ..outputs import atomic_file, output_error
from .errors import BatchError
from .jobs import VideoJob
from .video import SUMMARY_FIELDS, video_request
from .writers import result_path

LOG = logging.getLogger(__name__)

SUMMARY_JSON, SUMMARY_CSV = "summary.json", "summary.csv"
#: the identity fields a rerun must match to reuse finished videos
IDENTITY_KEYS = ("template_onnx_sha256", "search_onnx_sha256", "backend")


def model_identity(md: ModelDir, backend: str) -> Dict[str, Any]:
    """What made the results: the model directory's path, its ONNX files' sha256, checkpoint hash, weights and
    precision, and the backend asked for."""
    ident: Dict[str, Any] = {"path": str(Path(md.path).resolve()), "backend": backend,
                             "checkpoint_sha256": md.checkpoint_sha256, "weights": md.weights_line,
                             "precision": md.precision}
    for b in BRANCHES:
        onnx = md.onnx(b)
        ident[f"{b}_onnx_sha256"] = file_sha256(onnx) if onnx.is_file() else None
    return ident


@dataclass
class PreviousRun:
    """What an earlier run left in the output folder: its ``run`` record and its ``videos`` entries."""

    info: Dict[str, Any] = field(default_factory=dict)
    videos: Dict[str, Dict[str, Any]] = field(default_factory=dict)


def load_summary(out_dir: Union[str, Path]) -> PreviousRun:
    """The previous run's summary (empty when there is none or it cannot be read)."""
    path = Path(out_dir) / SUMMARY_JSON
    if not path.is_file():
        return PreviousRun()
    try:
        doc = json.loads(path.read_text())
        return PreviousRun(dict(doc.get("run", {})), dict(doc.get("videos", {})))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        LOG.warning("Ray: %s cannot be read; every video is tracked again", path)
        return PreviousRun()


def write_summary(out_dir: Union[str, Path], videos: Dict[str, Dict[str, Any]], info: Dict[str, Any]) -> None:
    """summary.json + summary.csv, each written under a temporary name and renamed (never half-written).

    Raises:
        OutputError: the folder refused the write (disk full, removed): the run stops, as every later video would
            fail the same way, saying what was kept.
    """
    out_dir = Path(out_dir)
    try:
        with atomic_file(out_dir / SUMMARY_JSON) as f:
            f.write(json.dumps({"run": info, "videos": videos}, indent=1, sort_keys=True))
        with atomic_file(out_dir / SUMMARY_CSV, newline="") as f:
            w = csv.DictWriter(f, SUMMARY_FIELDS, extrasaction="ignore")
            w.writeheader()
            for name in sorted(videos):
                w.writerow(videos[name])
    except OSError as e:
        raise output_error(out_dir / SUMMARY_JSON, e, kept=(
            "the run stops; the finished videos' result files are complete, the summary is the last one written "
            "(a rerun tracks again what it does not record)")) from None


def _check_same_model(out: Path, previous: PreviousRun, identity: Dict[str, Any]) -> None:
    old = previous.info.get("model_identity")
    if old is None:  # a summary written before identities were recorded: only the path can be compared
        if previous.info.get("model") not in (None, identity["path"]):
            raise BatchError(f"{out} holds results of another model",
                             evidence=f"summary.json: model {previous.info.get('model')}; now {identity['path']}",
                             fix="pass --no-resume to track every video again with this model (its files are "
                                 "replaced), or choose another --out")
        LOG.warning("Ray: %s/summary.json records no model hash; resuming on the path alone", out)
        return
    diff = [k for k in IDENTITY_KEYS if old.get(k) != identity.get(k)]
    if diff:
        ev = "; ".join(f"{k}: {str(old.get(k))[:16]} then, {str(identity.get(k))[:16]} now" for k in diff)
        raise BatchError(f"{out} holds results of another model ({old.get('path')}, {old.get('weights')}); resuming "
                         f"would mix them with {identity['path']}'s", evidence=ev,
                         fix="pass --no-resume to track every video again with this model (its files are replaced), "
                             "or choose another --out")


def plan_resume(jobs: Sequence[VideoJob], out: Union[str, Path], fmt: str, identity: Dict[str, Any],
                resume: bool = True, max_frames: Optional[int] = None
                ) -> Tuple[List[VideoJob], List[str], Dict[str, Dict[str, Any]]]:
    """(videos to track, names already done, the summary's entries to keep) for a run into ``out``.

    Kept: the entries of the videos skipped, and (resuming, same model) those of the folder's videos this run does
    not name. A finished video is tracked again when the init box or ``max_frames`` differ from its entry's (or the
    entry records none: a summary of an older siamtrt).

    Raises:
        BatchError: ``resume`` and ``out`` holds a summary written by another model or backend.
    """
    out = Path(out)
    previous = load_summary(out) if resume else PreviousRun()
    if previous.videos or previous.info:
        _check_same_model(out, previous, identity)
    todo: List[VideoJob] = []
    skipped: List[str] = []
    kept: Dict[str, Dict[str, Any]] = {}
    names = {j.name for j in jobs}
    kept = {n: row for n, row in previous.videos.items() if n not in names}
    for j in jobs:
        prev = previous.videos.get(j.name)
        if prev and prev.get("status") == "ok" and result_path(out, j.name, fmt).is_file():
            asked = video_request(j, max_frames)
            made = {k: prev.get(k, "(not recorded)") for k in asked}
            if made == asked:
                kept[j.name] = prev
                skipped.append(j.name)
                continue
            LOG.info("Ray: %s is tracked again: its result was made for %s, this run asks %s", j.name,
                     ", ".join(f"{k} {v}" for k, v in made.items()), ", ".join(f"{k} {v}" for k, v in asked.items()))
        todo.append(j)
    return todo, skipped, kept


@dataclass
class ManyReport:
    """What :func:`~siamtrt.batch.many.track_many` did; ``summary()`` is what the command prints."""

    out: Path
    workers: int
    resource: str
    videos: Dict[str, Dict[str, Any]]
    skipped: List[str] = field(default_factory=list)
    tracked: List[str] = field(default_factory=list)
    seconds: float = 0.0  # from the first video submitted to the last one done (actors already started)
    startup_seconds: float = 0.0  # Ray connection + actors loading their trackers
    worker_deaths: int = 0
    model: Optional[Dict[str, Any]] = None

    @property
    def failed(self) -> List[str]:
        return sorted(n for n, r in self.videos.items() if r["status"] != "ok")

    @property
    def frames_tracked(self) -> int:
        return sum(self.videos[n]["frames"] for n in self.tracked if self.videos[n]["status"] == "ok")

    @property
    def fps(self) -> float:
        return self.frames_tracked / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        ok = len(self.videos) - len(self.failed)
        lines = [f"Ray: {len(self.tracked)} videos tracked, {len(self.skipped)} already done (resume), {ok} ok, "
                 f"{len(self.failed)} failed; {self.workers} workers ({self.resource}); {self.frames_tracked} frames "
                 f"in {self.seconds:.2f} s = {self.fps:.1f} frames/s (+{self.startup_seconds:.1f} s startup)"
                 + (f"; {self.worker_deaths} worker(s) died and were replaced" if self.worker_deaths else ""),
                 f"results: {self.out}/<video>.csv|parquet, summary: {self.out}/{SUMMARY_JSON}"]
        for n in self.failed:
            lines.append(f"  failed {n}: {self.videos[n]['error'].splitlines()[0][:160]}")
        lines += [f"  warning {n}: {r['warning']}" for n, r in sorted(self.videos.items()) if r.get("warning")]
        return "\n".join(lines)


__all__ = ["IDENTITY_KEYS", "ManyReport", "PreviousRun", "load_summary", "model_identity", "plan_resume",
           "write_summary"]
