"""Ray soak: many short videos with worker processes SIGKILLed during the run; nothing may be lost.

The run tracks ``videos`` short videos (windows of a source video, written as image folders) on ``workers`` actors
and kills one worker process ``kills`` times: each time the actor that is tracking a fresh video (the first one, then
its replacement) is killed once its result file has rows. Checked afterwards: the summary holds every video, every
video is ``ok`` (the killed ones tried again on the replacement actor), every result file holds every frame and
equals the single-process runtime's boxes, and a rerun skips them all (nothing left to do).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ..errors import InputError
from .many import track_many
from .writers import read_results, result_path

LOG = logging.getLogger(__name__)
PathLike = Union[str, Path]


def make_short_videos(source: PathLike, out_dir: PathLike, count: int, frames: int, boxes: np.ndarray) -> Path:
    """Write ``count`` image-folder videos of ``frames`` frames each (windows of ``source`` at spread-out offsets)
    and ``boxes.txt`` with their init boxes: ``boxes[offset]``, one box per source frame (e.g. its ground truth).

    Returns:
        Path: the folder holding the videos and ``boxes.txt``.

    Raises:
        InputError: ``source`` is shorter than ``frames``, or a window starts on a frame without a valid box.
    """
    import cv2

    from ..runtime.video import open_frames

    src = list(open_frames(source))
    if len(src) < frames:
        raise InputError(f"{source} has {len(src)} frames, fewer than the {frames} of each short video",
                         fix="pass fewer frames per video")
    out = Path(out_dir)
    lines = []
    for i in range(count):
        offset = (i * 37) % (len(src) - frames + 1)
        img = out / f"short{i:03d}" / "img"
        img.mkdir(parents=True, exist_ok=True)
        for k in range(frames):
            cv2.imwrite(str(img / f"{k + 1:08d}.jpg"), src[offset + k], [cv2.IMWRITE_JPEG_QUALITY, 95])
        box = np.asarray(boxes[offset], np.float64)
        if not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
            raise InputError(f"no valid init box for frame {offset} of {source}", evidence=f"box {box.tolist()}",
                             fix="pass one valid x,y,w,h box per source frame")
        lines.append(f"short{i:03d}," + ",".join(f"{float(v):.2f}" for v in box))
    (out / "boxes.txt").write_text("\n".join(lines) + "\n")
    return out


class _Killer:
    """on_event hook: kills the worker of a fresh video ``kills`` times, each time on the actor that replaced the one
    killed before (one worker killed again and again). The replacement is recognised by the killed video's retry,
    which the scheduler hands to it first."""

    def __init__(self, out: Path, fmt: str, kills: int, min_rows: int = 3, timeout: float = 60.0):
        self.out, self.fmt, self.left = out, fmt, kills
        self.min_rows, self.timeout = min_rows, timeout
        self.victim: Optional[int] = None  # pid to kill next; None: the first fresh video's worker
        self.waiting_for_retry_of: Optional[str] = None
        self.log: List[Dict[str, Any]] = []

    def __call__(self, kind: str, info: Dict[str, Any]) -> None:
        if kind != "submitted" or self.left <= 0:
            return
        if info["attempt"] > 1:
            if info["name"] == self.waiting_for_retry_of:  # the replacement actor: kill it next
                self.victim, self.waiting_for_retry_of = info["pid"], None
            return
        if self.waiting_for_retry_of is not None or (self.victim is not None and info["pid"] != self.victim):
            return
        final = result_path(self.out, info["name"], self.fmt)
        part = final.with_name(final.name + ".part")
        deadline = time.monotonic() + self.timeout
        rows = 0
        while rows < self.min_rows:
            if final.exists() or time.monotonic() > deadline:
                return  # finished before its rows were seen: the next fresh video of this worker is the one
            rows = max(0, part.read_text().count("\n") - 1) if part.exists() else 0
            time.sleep(0.005)
        os.kill(info["pid"], signal.SIGKILL)
        self.left -= 1
        self.waiting_for_retry_of = info["name"]
        self.log.append({"video": info["name"], "pid": info["pid"], "rows_before_kill": rows})


def ray_soak(model: PathLike, videos_dir: PathLike, out: PathLike, kills: int = 2, workers: int = 2,
             num_cpus: Optional[int] = None, progress: bool = True, verify: bool = True
             ) -> Dict[str, Any]:
    """Track every video of ``videos_dir`` (with its ``boxes.txt``) while killing a worker ``kills`` times (CSV
    results: their rows are on disk as written, so a kill lands after the first rows).

    Returns:
        dict: ``kills`` (video, pid, rows written before each kill), ``worker_deaths``, ``videos``, ``ok_videos``,
        ``summary_complete``, ``frames_complete``, ``equal_to_runtime`` (None when not verified), ``rerun_tracked``
        (videos a rerun had left to do), ``seconds``, ``ok`` (all checks passed).
    """
    from .jobs import discover_jobs

    videos_dir, out = Path(videos_dir), Path(out)
    jobs = discover_jobs(videos_dir, videos_dir / "boxes.txt")
    fmt = "csv"
    killer = _Killer(out, fmt, kills)
    t0 = time.perf_counter()
    rep = track_many(model, jobs, out, workers=workers, fmt=fmt, retries=1, on_event=killer, num_cpus=num_cpus,
                     progress=progress)
    seconds = time.perf_counter() - t0
    lengths = {j.name: len(list((Path(j.source) / "img").iterdir())) for j in jobs}
    files = {n: result_path(out, n, fmt) for n in lengths}
    frames_complete = all(files[n].is_file() and len(read_results(files[n]).boxes) == lengths[n] for n in lengths)
    equal = None
    if verify:
        from ..runtime import Tracker

        with Tracker.from_model_dir(model, backend="onnxruntime", threads=1) as tracker:
            equal = all(_equals_runtime(tracker, j, files[j.name]) for j in jobs if files[j.name].is_file())
    rerun = track_many(model, jobs, out, workers=workers, fmt=fmt, num_cpus=num_cpus, progress=False)
    result = {"kind": "ray", "model": str(model), "videos": len(jobs),
              "frames_per_video": sorted(set(lengths.values())),
              "workers": rep.workers, "kills": killer.log, "worker_deaths": rep.worker_deaths,
              "ok_videos": len(jobs) - len(rep.failed), "failed": rep.failed,
              "summary_complete": sorted(rep.videos) == sorted(lengths),
              "retried": sorted(n for n, r in rep.videos.items() if r.get("attempts", 1) > 1),
              "frames_complete": frames_complete, "equal_to_runtime": equal, "rerun_tracked": rerun.tracked,
              "seconds": seconds, "frames": rep.frames_tracked}
    result["ok"] = (len(killer.log) == kills and rep.worker_deaths == kills and not rep.failed
                    and result["summary_complete"] and frames_complete and equal is not False
                    and not rerun.tracked)
    return result


def _equals_runtime(tracker, job, path: Path) -> bool:
    """The result file equals ``tracker`` (a single-process runtime Tracker, initialised here) on the same video."""
    from ..runtime.video import open_frames

    got = read_results(path)
    for i, f in enumerate(open_frames(job.source)):
        if i == 0:
            tracker.init(f, np.asarray(job.bbox, np.float64))
            continue
        res = tracker.track(f)
        if not (np.array_equal(got.boxes[i, 0], res.bbox) and got.scores[i, 0] == res.score):
            LOG.warning("Ray soak: %s frame %d differs from the single-process runtime", job.name, i)
            return False
    return True


def format_ray_table(r: Dict[str, Any]) -> str:
    kills = "; ".join(f"{k['video']} (pid {k['pid']}, {k['rows_before_kill']} rows written)" for k in r["kills"])
    return "\n".join([
        f"Ray soak: {r['videos']} videos x {r['frames_per_video']} frames on {r['workers']} workers, "
        f"{len(r['kills'])} kills: {kills}",
        f"  worker deaths {r['worker_deaths']}, videos ok {r['ok_videos']}/{r['videos']} (tried again: "
        f"{', '.join(r['retried']) or 'none'}), summary complete {r['summary_complete']}, every frame written "
        f"{r['frames_complete']}, equal to the runtime {r['equal_to_runtime']}, left for a rerun "
        f"{r['rerun_tracked'] or 'nothing'}: {'ok' if r['ok'] else 'FAILED'} ({r['seconds']:.1f} s)"])


__all__ = ["format_ray_table", "make_short_videos", "ray_soak"]
