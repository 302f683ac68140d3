"""Track many videos with one runtime tracker per Ray actor; results streamed to one file per video.

Files in the output folder:

* ``<name>.csv`` or ``<name>.parquet`` — one row per frame and target: ``frame,target,x,y,w,h,score``
  (:mod:`siamtrt.batch.writers`); ``<name>.<ext>.part`` while the video is tracked, renamed when complete.
* ``<name>.<ext>.lock`` — JSON (worker pid, host, start time), flock'ed by the worker while it is on the video.
* ``track-many.lock`` — JSON (driver pid, host, start time) while a run writes into the folder, flock'ed: a second
  run on the same folder is refused (the OS releases the lock when the run's process dies, even by SIGKILL).
* ``summary.json`` / ``summary.csv`` — the model's identity and one entry per video (status, frames, seconds,
  frames/s, worker, attempts, error, warning), rewritten atomically after every video (:mod:`siamtrt.batch.summary`).

:func:`track_many` checks everything cheap first (format, videos and boxes, output folder, Ray, the model directory,
the model that wrote an existing summary), and only then creates the output folder and starts Ray.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

from ..errors import Interrupted
from ..modeldir import ModelDir
from ..outputs import check_writable
from .errors import BatchError
from .jobs import VideoJob, discover_jobs
from .scheduler import connect_ray, import_ray, run_jobs
from .summary import ManyReport, model_identity, plan_resume, write_summary
from .writers import RESULT_FORMATS, hold_lock, lock_holder, partial_paths

LOG = logging.getLogger(__name__)
PathLike = Union[str, Path]
#: the run's lock in the output folder (one run writes into a folder at a time)
RUN_LOCK = "track-many.lock"


def check_run(videos: Union[PathLike, Sequence[PathLike], Sequence[VideoJob]], out: PathLike,
              bbox_file: Optional[PathLike] = None, fmt: str = "csv") -> List[VideoJob]:
    """The cheap checks of a run, before any model export, Ray start or output folder: returns the videos.

    Raises:
        BatchError: unknown format, Ray or (Parquet) pyarrow not installed. InputError: no videos, missing paths,
            duplicate names, a malformed bbox file, an output folder that cannot be written.
    """
    if fmt not in RESULT_FORMATS:
        raise BatchError(f"unknown result format '{fmt}'", evidence=f"valid: {', '.join(RESULT_FORMATS)}",
                         fix="--format csv or --format parquet")
    jobs = list(videos) if _are_jobs(videos) else discover_jobs(videos, bbox_file)
    check_writable([], dirs=[out])
    import_ray()
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as e:
            raise BatchError("--format parquet needs pyarrow", evidence=repr(e), fix='pip install -e ".[batch]"'
                             ) from None
    return jobs


def _are_jobs(videos) -> bool:
    return isinstance(videos, (list, tuple)) and bool(videos) and all(isinstance(v, VideoJob) for v in videos)


def track_many(model: PathLike, videos: Union[PathLike, Sequence[PathLike], Sequence[VideoJob]], out: PathLike,
               bbox_file: Optional[PathLike] = None, address: Optional[str] = None, workers: Optional[int] = None,
               fmt: str = "csv", backend: str = "onnxruntime", threads: int = 1, max_frames: Optional[int] = None,
               resume: bool = True, progress: bool = True, retries: int = 1,
               on_event: Optional[Callable[[str, Dict[str, Any]], None]] = None,
               num_cpus: Optional[int] = None) -> ManyReport:
    """Track every video with one tracker actor per core (per GPU when the cluster has GPUs).

    Args:
        model (str | Path): model directory (readable by every worker).
        videos: folder(s), list file(s) or video paths (see :func:`~siamtrt.batch.jobs.discover_jobs`), or the
            :class:`VideoJob` list :func:`check_run` returned.
        out (str | Path): output folder (shared by the workers: a local folder, or shared storage on a cluster).
        bbox_file (str | Path): init boxes (see :func:`~siamtrt.batch.jobs.read_bbox_file`). Defaults to ground
            truth beside the videos.
        address (str): Ray cluster address ("auto" = the running cluster). Defaults to None: the Ray instance this
            process already initialised, else a new local one (stopped at the end).
        workers (int): actors. Defaults to the cluster's GPUs if any (backend tensorrt/auto), else its CPUs.
        fmt (str): "csv" or "parquet". Defaults to "csv".
        backend (str): runtime backend in each actor. Defaults to "onnxruntime".
        threads (int): inference threads per actor (for backends that take them). Defaults to 1.
        max_frames (int): stop each video after this many frames. Defaults to None (all).
        resume (bool): skip videos this model already finished in ``out``. Defaults to True.
        progress (bool): a progress line over videos. Defaults to True.
        retries (int): times a video is tried again after its worker died. Defaults to 1.
        on_event (callable): ``on_event(kind, info)`` with kind "submitted" (info: name, worker pid, attempt) or
            "done" (the summary entry). Defaults to None.
        num_cpus (int): CPUs of a new local Ray instance. Defaults to Ray's choice (all cores).

    Returns:
        ManyReport.

    Raises:
        BatchError: bad format, Ray unavailable, actors that cannot load the model, another run writing into
            ``out``, or (resume) ``out`` holding another model's results. InputError: no videos, missing paths,
            duplicate names. ModelDirError. OutputError: ``out`` refused the summary (disk full).
    """
    jobs = check_run(videos, out, bbox_file, fmt)
    md = ModelDir.open(model)
    identity = model_identity(md, backend)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        todo, skipped, summary = plan_resume(jobs, out, fmt, identity, resume, max_frames)
        _refuse_live_workers(out, todo, fmt)
        _warn_leftovers(out, todo, fmt)
        info = {"model": identity["path"], "model_identity": identity, "format": fmt, "backend": backend,
                "started": time.time()}
        ray, started_here = connect_ray(address, num_cpus)

        def done(row: Dict[str, Any]) -> None:
            summary[row["name"]] = row
            write_summary(out, summary, info)

        try:
            sched = run_jobs(ray, todo, identity["path"], str(out.resolve()), fmt, backend, threads, max_frames,
                             workers, retries, done, on_event, progress, progress_total=len(jobs),
                             progress_initial=len(skipped))
        except KeyboardInterrupt:
            raise Interrupted(_interrupted_text(out, todo, summary, fmt)) from None
        finally:
            if started_here:
                ray.shutdown()
        write_summary(out, summary, info)
    names = {j.name for j in jobs}
    return ManyReport(out=out, workers=sched.workers, resource=sched.resource,
                      videos={n: row for n, row in summary.items() if n in names}, skipped=skipped,
                      tracked=[j.name for j in todo], seconds=sched.seconds, startup_seconds=sched.startup_seconds,
                      worker_deaths=sched.worker_deaths, model=identity)


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Only one run writes into ``out`` at a time: two runs on one folder tracked the same videos twice, each
    renaming the other's ``.part`` files away, and the last summary written marked finished videos failed.

    :func:`~siamtrt.batch.writers.hold_lock` on ``OUT/track-many.lock`` (JSON: pid, host, start time), which the OS
    releases when the process ends however it ends; the file is removed at the end of the run.

    Raises:
        BatchError: another run holds the lock, or the file system has no locks.
    """
    path = out / RUN_LOCK

    def busy(holder: str) -> BatchError:
        return BatchError(f"{out} is being written by another track-many run", evidence=f"{path}: {holder}",
                          fix="wait until that run ends (a rerun then resumes), or choose another --out")

    with hold_lock(path, busy) as before:
        if before:
            LOG.warning("Ray: %s was left by an earlier run that did not end cleanly (killed?); it is no longer "
                        "running, so its lock is taken over", path)
        yield


def _refuse_live_workers(out: Path, todo: Sequence[VideoJob], fmt: str) -> None:
    """A run killed by SIGKILL leaves its Ray workers finishing their videos for a few seconds: a rerun that replaced
    their ``.part`` files then would interleave two writers in one file. Refused while a process holds the ``flock``
    of a video's ``.lock``; a ``.lock`` nobody holds is stale, whatever pid it names (dead, or alive by reuse), and is
    replaced.

    Raises:
        BatchError: some video is still being written by such a process.
    """
    live = []
    for j in todo:
        record = lock_holder(partial_paths(out, j.name, fmt)[1])
        if record is not None:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                record = f"pid {int(json.loads(record)['pid'])}"
            live.append(f"{j.name} ({record[:80]})")
    if live:
        raise BatchError(f"{len(live)} video(s) in {out} are still being written by a worker of an earlier run that "
                         "stopped", evidence=f"a process holds the flock of their .lock files: {', '.join(live[:5])}"
                                             f"{' ...' if len(live) > 5 else ''}",
                         fix="wait a few seconds (Ray ends the workers of a driver that is gone) and rerun, or end "
                             "those processes first (kill PID)")


def _warn_leftovers(out: Path, todo: Sequence[VideoJob], fmt: str) -> None:
    """Partial files of an earlier run that was killed (no run holds ``out`` now): replaced, and said so."""
    left = [j.name for j in todo if any(p.exists() for p in partial_paths(out, j.name, fmt))]
    if left:
        LOG.warning("Ray: %d video(s) left unfinished by an earlier run that stopped: %s%s; their partial files "
                    "(NAME.%s.part / .lock) are replaced and the videos tracked again from frame 0", len(left),
                    ", ".join(left[:5]), " ..." if len(left) > 5 else "", fmt)


def _interrupted_text(out: Path, todo: Sequence[VideoJob], summary: Dict[str, Dict[str, Any]], fmt: str) -> str:
    """What an interrupted run kept: the videos it finished, the partial rows of the others."""
    finished = [j.name for j in todo if j.name in summary]
    partial = [j.name for j in todo if j.name not in summary and partial_paths(out, j.name, fmt)[0].is_file()]
    text = (f"interrupted after {len(finished)} of the {len(todo)} videos this run tracks (their files and "
            f"{out / 'summary.json'} are complete)")
    if partial:
        text += (f"; rows so far of {len(partial)} unfinished: {', '.join(partial[:5])}"
                 f"{' ...' if len(partial) > 5 else ''} in {out}/NAME.{fmt}.part")
    return text + "; rerun the same command to finish: finished videos are kept, unfinished ones tracked again"


__all__ = ["RUN_LOCK", "check_run", "output_lock", "track_many"]
