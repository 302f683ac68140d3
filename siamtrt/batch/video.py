"""Tracking one video of a many-video run: the runtime Tracker over its frames, rows streamed to its result file,
one summary row back (built here, once, for every outcome)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from ..errors import InputError, SiamtrtError
from .errors import BatchError
from .jobs import VideoJob
from .writers import hold_lock, lock_path, open_result_writer, result_path

#: the summary's columns (summary.csv keeps this order)
SUMMARY_FIELDS = ("name", "status", "frames", "seconds", "fps", "worker", "attempts", "file", "source", "bbox_from",
                  "error", "warning")


def video_request(job: VideoJob, max_frames: Optional[int] = None) -> Dict[str, Any]:
    """What a video's result was made for (its init box and frame limit): a rerun reuses the result only for the
    same request (:func:`~siamtrt.batch.summary.plan_resume`)."""
    return {"init_box": None if job.bbox is None else [float(v) for v in job.bbox], "max_frames": max_frames}


def summary_row(job: VideoJob, worker: str = "", *, status: str = "failed", frames: int = 0, seconds: float = 0.0,
                file: str = "", error: str = "", attempts: int = 1, max_frames: Optional[int] = None,
                warning: str = "") -> Dict[str, Any]:
    """A video's summary entry (the one place it is built, for every outcome).

    Args:
        job (VideoJob): the video.
        worker (str): who tracked it ("host:pid", or the pid of a worker that died). Defaults to "".
        status (str): "ok" or "failed". Defaults to "failed".
        frames (int): rows in its result file. seconds (float): wall time on the worker.
        file (str): result file name in the output folder ("" when none; ``NAME.part`` for a partial one).
        error (str): why it failed (first 1000 characters). attempts (int): tries so far. Defaults to 1.
        max_frames (int): the frame limit asked for (None: all); recorded with the init box
            (:func:`video_request`). Defaults to None.
        warning (str): what an ``ok`` video's result lacks (a file that decoded fewer frames than it declares).
            Defaults to "".
    """
    seconds = round(float(seconds), 4)
    return {"name": job.name, "source": job.source, "status": status, "frames": int(frames), "seconds": seconds,
            "fps": round(frames / seconds, 2) if seconds > 0 and frames else 0.0, "worker": worker,
            "attempts": int(attempts), "file": file, "bbox_from": job.bbox_from, "error": error[:1000],
            "warning": warning,
            **video_request(job, max_frames)}


def _error_text(e: BaseException) -> str:
    return str(e) if isinstance(e, SiamtrtError) else f"{type(e).__name__}: {e}"


def track_one(tracker, job: VideoJob, out_dir: Union[str, Path], fmt: str = "csv", max_frames: Optional[int] = None,
              worker: str = "", attempts: int = 1) -> Dict[str, Any]:
    """Track one video with ``tracker`` (a runtime Tracker) and stream its rows; returns its summary entry.

    Never raises for a bad video: a decoding error, a missing box or a tracker error becomes ``status: failed`` with
    the error text; rows tracked before a failure stay in ``NAME.part`` (named in the entry). The video's ``.lock`` is
    flock'ed while it is written (:func:`~siamtrt.batch.writers.hold_lock`); a killed process leaves its ``.part`` /
    ``.lock`` files behind (the OS releases the lock), which the next attempt replaces.
    """
    from ..runtime.video import open_frames

    final = result_path(out_dir, job.name, fmt)
    lock = lock_path(final)
    t0 = time.perf_counter()
    writer = None
    held = contextlib.ExitStack()

    def busy(holder: str) -> BatchError:
        return BatchError(f"{job.name} is being tracked by another process", evidence=f"{lock}: {holder}",
                          fix="rerun once that process has ended")

    try:
        held.enter_context(hold_lock(lock, busy, worker=worker))
        if job.bbox is None:
            raise InputError(f"{job.name}: no init box", evidence="not in the bbox file, no ground truth beside it",
                             fix="add a line 'name,x,y,w,h' to --bbox-file")
        src = open_frames(job.source, max_frames=max_frames)
        writer = open_result_writer(final, fmt)
        box0 = np.asarray(job.bbox, np.float64)
        for i, frame in enumerate(src):
            if i == 0:
                tracker.init(frame, box0)
                writer.write(0, box0[None], np.ones(1))
            else:
                res = tracker.track(frame)
                writer.write(i, res.boxes, res.scores)
        writer.commit()
        short = src.decode_shortfall
        return summary_row(job, worker, status="ok", frames=writer.frames, seconds=time.perf_counter() - t0,
                           file=final.name, attempts=attempts, max_frames=max_frames,
                           warning=f"the file ended after {short[0]} of the {short[1]} frames expected (truncated or "
                                   "damaged?); the result covers the frames decoded" if short else "")
    except Exception as e:  # one bad video is reported, the others go on
        part = writer.close() if writer is not None else None
        return summary_row(job, worker, frames=writer.frames if writer is not None else 0,
                           seconds=time.perf_counter() - t0, file=part.name if part else "",
                           error=_error_text(e), attempts=attempts, max_frames=max_frames)
    finally:
        held.close()  # after the writer's last byte


__all__ = ["SUMMARY_FIELDS", "summary_row", "track_one", "video_request"]
