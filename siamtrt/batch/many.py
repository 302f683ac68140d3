"""Track many videos with one runtime tracker per Ray actor; results streamed to one file per video.

Files in the output folder:

* ``<name>.csv`` or ``<name>.parquet`` — one row per frame: ``frame, x, y, w, h, score`` (frame 0 is the init box,
  score 1, as runtime/track.py writes it). Rows are streamed to ``<name>.<ext>.part`` while the video is tracked and
  the file is renamed to its final name only when the video is complete, so a final file is always whole.
* ``<name>.<ext>.lock`` — JSON (worker pid, host, start time) while a worker is on the video.
* ``summary.json`` / ``summary.csv`` — one entry per video: status (``ok`` / ``failed``), frames, seconds,
  frames/s, worker, error. Rewritten atomically after every video, so an interrupted run leaves a valid summary.

Resume: a rerun skips every video whose final file exists and whose summary entry is ``ok``; everything else
(failed, interrupted, new) is tracked again from frame 0 (a tracker's state is its whole past, so partial videos
are redone, never appended to).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import InputError, SiamtrtError

LOG = logging.getLogger(__name__)

FORMATS = ("csv", "parquet")
COLUMNS = ("frame", "x", "y", "w", "h", "score")
VIDEO_EXTS = (".avi", ".mp4", ".mkv", ".mov", ".mpg", ".mpeg", ".webm", ".m4v")
LIST_EXTS = (".txt", ".lst", ".list")


class BatchError(SiamtrtError):
    """A many-video run cannot start (no videos, bad options, Ray unavailable)."""


@dataclass
class VideoJob:
    """One video to track: unique name (output file stem), source (video file or image folder), init box or None
    (reported as failed), and where the box came from."""

    name: str
    source: str
    bbox: Optional[List[float]]
    bbox_from: str = ""


# ---------------------------------------------------------------------------------------------------- discovery
def _is_image_folder(p: Path) -> bool:
    from ..runtime.video import IMAGE_EXTS

    for sub in ("img", "color", "imgs", "images", "."):
        d = p / sub
        if d.is_dir() and any(f.suffix.lower() in IMAGE_EXTS for f in d.iterdir()):
            return True
    return False


def _expand(spec: Union[str, Path]) -> List[Path]:
    p = Path(spec)
    if p.is_file() and p.suffix.lower() in LIST_EXTS:
        lines = [ln.strip() for ln in p.read_text().splitlines()]
        return [Path(ln) if Path(ln).is_absolute() else p.parent / ln for ln in lines if ln and not ln.startswith("#")]
    if p.is_dir() and not _is_image_folder(p):
        return sorted(c for c in p.iterdir() if (c.is_file() and c.suffix.lower() in VIDEO_EXTS)
                      or (c.is_dir() and _is_image_folder(c)))
    return [p]


def read_bbox_file(path: Union[str, Path]) -> Dict[str, List[float]]:
    """Init boxes by video: JSON ``{name: [x, y, w, h]}`` or text lines ``name,x,y,w,h`` (name = file name, stem or
    path as listed).

    Raises:
        InputError: unreadable file or a malformed line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"bbox file {path} does not exist", fix="pass --bbox-file with lines name,x,y,w,h")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        return {str(k): [float(v) for v in vals] for k, vals in data.items()}
    out: Dict[str, List[float]] = {}
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.replace("\t", ",").split(",")]
        try:
            name, vals = parts[0], [float(v) for v in parts[1:5]]
        except ValueError:
            vals = []
        if len(parts) != 5 or len(vals) != 4:
            raise InputError(f"{path}:{i}: expected name,x,y,w,h", evidence=repr(line[:200]))
        out[name] = vals
    return out


def _gt_box(p: Path) -> Optional[List[float]]:
    from ..runtime.boxes import read_box_file
    from ..runtime.sequences import find_video_gt

    cands = [p / "groundtruth_rect.txt", p / "groundtruth.txt"] if p.is_dir() else [find_video_gt(p)]
    for c in cands:
        if c is not None and c.is_file():
            return [float(v) for v in read_box_file(c)[0]]
    return None


def discover_jobs(videos: Union[str, Path, Sequence[Union[str, Path]]],
                  bbox_file: Optional[Union[str, Path]] = None) -> List[VideoJob]:
    """Videos to track from folders (their videos and sequence/image folders), list files (one path per line) or
    paths; init boxes from ``bbox_file``, else the first ground-truth line beside the video / in the folder.

    Raises:
        InputError: nothing found, or two videos with the same name.
    """
    specs = [videos] if isinstance(videos, (str, Path)) else list(videos)
    paths: List[Path] = []
    for s in specs:
        paths += _expand(s)
    if not paths:
        raise InputError(f"no videos found in {[str(s) for s in specs]}",
                         evidence=f"looked for {', '.join(VIDEO_EXTS)} files and image folders",
                         fix="pass a folder of videos, a list file (one path per line) or video paths")
    boxes = read_bbox_file(bbox_file) if bbox_file else {}
    jobs, seen = [], {}
    for p in paths:
        name = p.stem if p.is_file() or p.suffix.lower() in VIDEO_EXTS else p.name
        if name in seen:
            raise InputError(f"two videos named '{name}': {seen[name]} and {p}",
                             fix="rename one (the name is the output file name)")
        seen[name] = p
        box, src = None, ""
        for key in (str(p), p.name, name):
            if key in boxes:
                box, src = boxes[key], f"bbox file ({key})"
                break
        if box is None and p.exists():
            try:
                box = _gt_box(p)
            except SiamtrtError:
                box = None
            src = "ground truth" if box is not None else ""
        jobs.append(VideoJob(name=name, source=str(p), bbox=box, bbox_from=src))
    return jobs


# ------------------------------------------------------------------------------------------------------ writing
class ResultWriter:
    """Streams rows to ``<final>.part`` and renames it to ``final`` on :meth:`commit` (CSV or Parquet)."""

    def __init__(self, final: Path, fmt: str, flush_every: int = 50):
        self.final = Path(final)
        self.part = self.final.with_name(self.final.name + ".part")
        self.fmt = fmt
        self.flush_every = flush_every
        self._rows: List[tuple] = []
        self._count = 0
        if fmt == "csv":
            self._f = open(self.part, "w", newline="")
            self._csv = csv.writer(self._f)
            self._csv.writerow(COLUMNS)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            self._schema = pa.schema([("frame", pa.int64())] + [(c, pa.float64()) for c in COLUMNS[1:]])
            self._pq = pq.ParquetWriter(str(self.part), self._schema)

    def add(self, frame: int, box: np.ndarray, score: float) -> None:
        self._rows.append((frame, *[float(v) for v in box], float(score)))
        if len(self._rows) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        if self.fmt == "csv":
            self._csv.writerows([(r[0], *[repr(v) for v in r[1:]]) for r in self._rows])  # repr: exact round trip
            self._f.flush()
        else:
            import pyarrow as pa

            cols = list(zip(*self._rows))
            self._pq.write_table(pa.table({c: list(v) for c, v in zip(COLUMNS, cols)}, schema=self._schema))
        self._count += len(self._rows)
        self._rows = []

    def commit(self) -> int:
        """Flush, close and atomically rename to the final name; returns the number of rows."""
        self.flush()
        self.close()
        os.replace(self.part, self.final)
        return self._count

    def close(self) -> None:
        if self.fmt == "csv":
            if not self._f.closed:
                self._f.close()
        elif self._pq is not None:
            self._pq.close()
            self._pq = None

    def abort(self) -> None:
        self.close()
        try:
            self.part.unlink()
        except OSError:
            pass


def result_path(out_dir: Union[str, Path], name: str, fmt: str) -> Path:
    return Path(out_dir) / f"{name}.{fmt}"


def read_results(path: Union[str, Path]) -> np.ndarray:
    """(frames, 6) array frame, x, y, w, h, score from a result file (CSV or Parquet)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(str(path))
        return np.stack([np.asarray(t.column(c).to_numpy(), np.float64) for c in COLUMNS], 1)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return np.asarray([[float(v) for v in r] for r in rows[1:]], np.float64).reshape(-1, len(COLUMNS))


def track_one(tracker, job: VideoJob, out_dir: Union[str, Path], fmt: str = "csv",
              max_frames: Optional[int] = None, worker: str = "", flush_every: int = 50) -> Dict[str, Any]:
    """Track one video with ``tracker`` (a runtime Tracker) and stream its rows; returns its summary entry.

    Never raises for a bad video: decoding errors, a missing box or a tracker error become ``status: failed`` with
    the error text (the partial file is removed). A killed process leaves its ``.part`` / ``.lock`` files behind,
    which the next run ignores and replaces.
    """
    from ..runtime.video import open_frames

    out_dir = Path(out_dir)
    final = result_path(out_dir, job.name, fmt)
    lock = final.with_name(final.name + ".lock")
    row: Dict[str, Any] = {"name": job.name, "source": job.source, "status": "failed", "frames": 0, "seconds": 0.0,
                           "fps": 0.0, "worker": worker, "error": "", "file": "", "bbox_from": job.bbox_from}
    t0 = time.perf_counter()
    writer = None
    try:
        lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                                    "worker": worker}))
        if job.bbox is None:
            raise InputError(f"{job.name}: no init box", evidence="not in the bbox file, no ground truth beside it",
                             fix="add a line 'name,x,y,w,h' to --bbox-file")
        src = open_frames(job.source, max_frames=max_frames)
        writer = ResultWriter(final, fmt, flush_every)
        n = 0
        for i, frame in enumerate(src):
            if i == 0:
                tracker.init(frame, np.asarray(job.bbox, np.float64))
                writer.add(0, np.asarray(job.bbox, np.float64), 1.0)
            else:
                res = tracker.track(frame)
                box, score = res.bbox, res.score
                writer.add(i, box, score)
            n += 1
        row["frames"] = writer.commit()
        writer = None
        row.update(status="ok", file=final.name)
    except Exception as e:  # one bad video is reported, the others go on
        row["error"] = (str(e) if isinstance(e, SiamtrtError) else f"{type(e).__name__}: {e}")[:1000]
        if writer is not None:
            writer.abort()
    finally:
        try:
            lock.unlink()
        except OSError:
            pass
    row["seconds"] = round(time.perf_counter() - t0, 4)
    row["fps"] = round(row["frames"] / row["seconds"], 2) if row["seconds"] > 0 and row["frames"] else 0.0
    return row


# ------------------------------------------------------------------------------------------------------ summary
SUMMARY_FIELDS = ("name", "status", "frames", "seconds", "fps", "worker", "file", "source", "bbox_from", "error")


def load_summary(out_dir: Union[str, Path]) -> Dict[str, Dict[str, Any]]:
    path = Path(out_dir) / "summary.json"
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()).get("videos", {}))
    except (json.JSONDecodeError, AttributeError):
        return {}


def write_summary(out_dir: Union[str, Path], videos: Dict[str, Dict[str, Any]], info: Dict[str, Any]) -> None:
    """summary.json + summary.csv, each written to a temporary file and renamed (never half-written)."""
    out_dir = Path(out_dir)
    tmp = out_dir / "summary.json.tmp"
    tmp.write_text(json.dumps({"run": info, "videos": videos}, indent=1, sort_keys=True))
    os.replace(tmp, out_dir / "summary.json")
    tmp = out_dir / "summary.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, SUMMARY_FIELDS, extrasaction="ignore")
        w.writeheader()
        for name in sorted(videos):
            w.writerow(videos[name])
    os.replace(tmp, out_dir / "summary.csv")


@dataclass
class ManyReport:
    """What :func:`track_many` did; ``summary()`` is what the CLI prints."""

    out: Path
    workers: int
    resource: str
    videos: Dict[str, Dict[str, Any]]
    skipped: List[str] = field(default_factory=list)
    tracked: List[str] = field(default_factory=list)
    seconds: float = 0.0  # from the first video submitted to the last one done (actors already started)
    startup_seconds: float = 0.0  # Ray connection + actors loading their trackers

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
                 f"in {self.seconds:.2f} s = {self.fps:.1f} frames/s (+{self.startup_seconds:.1f} s startup)",
                 f"results: {self.out}/<video>.csv|parquet, summary: {self.out}/summary.json"]
        for n in self.failed:
            lines.append(f"  failed {n}: {self.videos[n]['error'].splitlines()[0][:160]}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------- Ray
class _TrackerWorker:
    """Body of the Ray actor: one runtime Tracker (ONNX Runtime single-threaded: one actor per core)."""

    def __init__(self, model: str, backend: str, threads: int):
        from ..runtime import Tracker

        options = {"threads": threads} if backend in ("onnxruntime", "ort") else {}
        self.tracker = Tracker.from_model_dir(model, backend=backend, **options)
        self.id = f"{socket.gethostname()}:{os.getpid()}"

    def pid(self) -> int:
        return os.getpid()

    def track(self, job: VideoJob, out_dir: str, fmt: str, max_frames: Optional[int]) -> Dict[str, Any]:
        return track_one(self.tracker, job, out_dir, fmt, max_frames, worker=self.id)


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise BatchError("ray is not installed", evidence=repr(e), fix='pip install -e ".[batch]"') from None
    return ray


def connect_ray(address: Optional[str] = None, num_cpus: Optional[int] = None):
    """(ray, whether this call started it): joins ``address`` (a running cluster, "auto") or starts a local Ray
    instance (``num_cpus`` CPUs) unless one is already initialised in this process; the caller shuts down only
    what it started."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray, False
    kw: Dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address is None and num_cpus is not None:
        kw["num_cpus"] = num_cpus
    ray.init(address=address, **kw)
    return ray, True


def track_many(model: Union[str, Path], videos: Union[str, Path, Sequence[Union[str, Path]]],
               out: Union[str, Path], bbox_file: Optional[Union[str, Path]] = None, address: Optional[str] = None,
               workers: Optional[int] = None, fmt: str = "csv", backend: str = "onnxruntime", threads: int = 1,
               max_frames: Optional[int] = None, resume: bool = True, progress: bool = True,
               on_event: Optional[Callable[[str, Dict[str, Any]], None]] = None,
               num_cpus: Optional[int] = None) -> ManyReport:
    """Track every video with one tracker actor per core (per GPU when the cluster has GPUs).

    Args:
        model (str | Path): model directory (readable by every worker).
        videos: folder(s), list file(s) or video paths (see :func:`discover_jobs`).
        out (str | Path): output folder (shared by the workers: a local folder, or shared storage on a cluster).
        bbox_file (str | Path): init boxes (see :func:`read_bbox_file`). Defaults to ground truth beside the videos.
        address (str): Ray cluster address ("auto" = the running cluster). Defaults to None: the Ray instance this
            process already initialised, else a new local one (stopped at the end).
        workers (int): actors. Defaults to the cluster's GPUs if any (backend tensorrt/auto), else its CPUs.
        fmt (str): "csv" or "parquet". Defaults to "csv".
        backend (str): runtime backend in each actor. Defaults to "onnxruntime".
        threads (int): ONNX Runtime threads per actor. Defaults to 1.
        max_frames (int): stop each video after this many frames. Defaults to None (all).
        resume (bool): skip videos already finished in ``out``. Defaults to True.
        progress (bool): tqdm over videos. Defaults to True.
        on_event (callable): ``on_event(kind, info)`` with kind "submitted" (info: name, worker pid) or "done" (the
            summary entry). Defaults to None.
        num_cpus (int): CPUs of a new local Ray instance. Defaults to Ray's choice (all cores).

    Returns:
        ManyReport.

    Raises:
        BatchError: bad format, Ray unavailable, no workers. InputError: no videos / duplicate names.
    """
    if fmt not in FORMATS:
        raise BatchError(f"unknown result format '{fmt}'", evidence=f"valid: {', '.join(FORMATS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = discover_jobs(videos, bbox_file)
    previous = load_summary(out) if resume else {}
    summary: Dict[str, Dict[str, Any]] = {}
    todo, skipped = [], []
    for j in jobs:
        prev = previous.get(j.name)
        if resume and prev and prev.get("status") == "ok" and result_path(out, j.name, fmt).is_file():
            summary[j.name] = prev
            skipped.append(j.name)
        else:
            todo.append(j)
    ray, started_here = connect_ray(address, num_cpus)
    info = {"model": str(Path(model).resolve()), "format": fmt, "backend": backend, "started": time.time()}
    t0 = time.perf_counter()
    try:
        res = ray.cluster_resources()
        gpus = int(res.get("GPU", 0))
        use_gpu = gpus > 0 and backend in ("auto", "tensorrt", "trt")
        n_workers = workers or (gpus if use_gpu else int(res.get("CPU", 1)))
        n_workers = max(1, min(n_workers, len(todo))) if todo else 0
        resource = "1 GPU each" if use_gpu else "1 CPU each"
        Actor = ray.remote(num_gpus=1 if use_gpu else 0, num_cpus=0 if use_gpu else 1, max_restarts=0)(
            _TrackerWorker)
        model_s = str(Path(model).resolve())

        def new_actor():
            return Actor.remote(model_s, backend, threads)

        actors = [new_actor() for _ in range(n_workers)]
        try:
            pids = dict(zip(actors, ray.get([a.pid.remote() for a in actors]))) if actors else {}
        except ray.exceptions.RayError as e:  # the tracker could not be built in the worker
            raise BatchError(f"the tracker actors could not load {model_s}", evidence=str(e)[-800:],
                             fix="check the model directory with python runtime/track.py --model DIR first") from None
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        running: Dict[Any, Any] = {}
        queue = list(todo)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), initial=len(skipped), unit="video", desc="videos")

        def submit(actor) -> None:
            job = queue.pop(0)
            ref = actor.track.remote(job, str(out.resolve()), fmt, max_frames)
            running[ref] = (actor, job)
            if on_event:
                on_event("submitted", {"name": job.name, "pid": pids.get(actor)})

        for a in actors:
            if queue:
                submit(a)
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            ref = done[0]
            actor, job = running.pop(ref)
            try:
                row = ray.get(ref)
            except ray.exceptions.RayActorError as e:  # the worker process died (killed, OOM, node lost)
                row = {"name": job.name, "source": job.source, "status": "failed", "frames": 0, "seconds": 0.0,
                       "fps": 0.0, "worker": str(pids.get(actor)), "file": "", "bbox_from": job.bbox_from,
                       "error": f"worker died while tracking ({type(e).__name__}); rerun to finish this video"}
                actor = new_actor()
                pids[actor] = ray.get(actor.pid.remote())
            summary[job.name] = row
            write_summary(out, summary, info)
            if on_event:
                on_event("done", row)
            if bar is not None:
                bar.update(1)
            if queue:
                submit(actor)
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - t1
        for a in list(pids):
            ray.kill(a)
    finally:
        if started_here:
            ray.shutdown()
    write_summary(out, summary, info)
    return ManyReport(out=out, workers=n_workers, resource=resource, videos=summary, skipped=skipped,
                      tracked=[j.name for j in todo], seconds=seconds, startup_seconds=startup)


__all__ = ["BatchError", "FORMATS", "ManyReport", "ResultWriter", "VideoJob", "discover_jobs", "load_summary",
           "read_bbox_file", "read_results", "result_path", "track_many", "track_one", "write_summary"]
