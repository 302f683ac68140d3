"""Ray: one tracker actor per core (per GPU when the cluster has GPUs and the backend can use one), videos handed
to whichever actor is free, a dead actor replaced and its video tried again from frame 0 (a tracker's state is its
whole past, so a partial video is redone, never appended to)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from ..outputs import reinstate_interrupt_signals
from ..progress import progress_bar
from .errors import BatchError
from .jobs import VideoJob
from .video import summary_row, track_one
from .writers import partial_paths

#: backends that run on a GPU when the cluster has one ("auto" picks TensorRT when engines and a GPU are there)
GPU_BACKENDS = ("auto", "tensorrt", "trt")
Event = Callable[[str, Dict[str, Any]], None]


class TrackerWorker:
    """Body of the Ray actor: one runtime Tracker, its backend options filtered by the backend's declared names."""

    def __init__(self, model: str, backend: str, threads: int):
        from ..runtime import Tracker
        from ..runtime.backends import accepted_options, choose_backend

        name, _ = choose_backend(backend, model)
        self.tracker = Tracker.from_model_dir(model, backend=name, **accepted_options(name, {"threads": threads}))
        self.id = f"{socket.gethostname()}:{os.getpid()}"

    def pid(self) -> int:
        return os.getpid()

    def track(self, job: VideoJob, out_dir: str, fmt: str, max_frames: Optional[int], attempts: int = 1
              ) -> Dict[str, Any]:
        return track_one(self.tracker, job, out_dir, fmt, max_frames, worker=self.id, attempts=attempts)


def import_ray():
    """The ray module, or a BatchError naming the extra to install."""
    try:
        import ray
    except ImportError as e:
        raise BatchError("ray is not installed", evidence=repr(e), fix='pip install -e ".[batch]"') from None
    return ray


def connect_ray(address: Optional[str] = None, num_cpus: Optional[int] = None):
    """(ray, whether this call started it): joins ``address`` (a running cluster, "auto") or starts a local Ray
    instance (``num_cpus`` CPUs) unless one is already initialised in this process; the caller shuts down only
    what it started."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    kw: Dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                          # Ray's own INFO / WARNING lines ("Started a local Ray instance") only with --verbose
                          "logging_level": logging.DEBUG if logging.getLogger().isEnabledFor(logging.DEBUG)
                          else logging.ERROR}
    if address is None and num_cpus is not None:
        kw["num_cpus"] = num_cpus
    ray.init(address=address, **kw)
    reinstate_interrupt_signals()  # ray.init makes SIGTERM abort the driver (exit 134): it stays a stop (143)
    return ray, True


@dataclass
class Schedule:
    """How a run was scheduled: actors, resource per actor, seconds (first video submitted → last done), actor
    startup seconds, actor deaths."""

    workers: int
    resource: str
    seconds: float = 0.0
    startup_seconds: float = 0.0
    worker_deaths: int = 0


class _Pool:
    """The actors and their pids; a dead one is replaced in place."""

    def __init__(self, ray, model: str, backend: str, threads: int, n: int, use_gpu: bool):
        self.ray = ray
        self.args = (model, backend, threads)
        self.cls = ray.remote(num_gpus=1 if use_gpu else 0, num_cpus=0 if use_gpu else 1, max_restarts=0)(
            TrackerWorker)
        actors = [self.cls.remote(*self.args) for _ in range(n)]
        try:
            self.pids = dict(zip(actors, ray.get([a.pid.remote() for a in actors]))) if actors else {}
        except ray.exceptions.RayError as e:  # the tracker could not be built in the worker
            raise BatchError(f"the tracker actors could not load {model}", evidence=str(e)[-800:],
                             fix="check the model directory with siamtrt track --model DIR first") from None

    def replace(self, actor):
        self.pids.pop(actor, None)
        new = self.cls.remote(*self.args)
        self.pids[new] = self.ray.get(new.pid.remote())
        return new

    def stop(self) -> None:
        for a in list(self.pids):
            self.ray.kill(a)


def run_jobs(ray, jobs: List[VideoJob], model: str, out_dir: str, fmt: str, backend: str = "onnxruntime",
             threads: int = 1, max_frames: Optional[int] = None, workers: Optional[int] = None, retries: int = 1,
             on_done: Optional[Callable[[Dict[str, Any]], None]] = None, on_event: Optional[Event] = None,
             progress: bool = True, progress_total: Optional[int] = None, progress_initial: int = 0) -> Schedule:
    """Track ``jobs`` on the actors of a connected Ray instance; ``on_done(row)`` gets each video's summary entry.

    Args:
        retries (int): times a video is tried again after its worker died. Defaults to 1.
        on_event (callable): ``on_event(kind, info)``, kind "submitted" (info: name, pid, attempt) or "done" (the
            summary entry). Defaults to None.
    """
    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    use_gpu = gpus > 0 and backend in GPU_BACKENDS
    n = workers or (gpus if use_gpu else int(res.get("CPU", 1)))
    n = max(1, min(n, len(jobs))) if jobs else 0
    sched = Schedule(workers=n, resource="1 GPU each" if use_gpu else "1 CPU each")
    t0 = time.perf_counter()
    pool = _Pool(ray, model, backend, threads, n, use_gpu)
    sched.startup_seconds = time.perf_counter() - t0
    queue = [(j, 1) for j in jobs]
    running: Dict[Any, Any] = {}
    bar = progress_bar(progress_total or len(jobs), "track-many", "video", progress, initial=progress_initial)

    def submit(actor) -> None:
        job, attempt = queue.pop(0)
        running[actor.track.remote(job, out_dir, fmt, max_frames, attempt)] = (actor, job, attempt)
        if on_event:
            on_event("submitted", {"name": job.name, "pid": pool.pids.get(actor), "attempt": attempt})

    t1 = time.perf_counter()
    try:
        for a in list(pool.pids):
            if queue:
                submit(a)
        while running:
            (ref,), _ = ray.wait(list(running), num_returns=1)
            actor, job, attempt = running.pop(ref)
            try:
                row = ray.get(ref)
            except ray.exceptions.RayActorError as e:  # the worker process died (killed, OOM, node lost)
                sched.worker_deaths += 1
                dead = pool.pids.get(actor)
                actor = pool.replace(actor)
                if attempt <= retries:
                    queue.insert(0, (job, attempt + 1))
                    submit(actor)
                    continue
                part, lock = partial_paths(out_dir, job.name, fmt)
                with contextlib.suppress(OSError):
                    lock.unlink()  # the dead worker's: nobody is on this video now
                row = summary_row(job, str(dead), attempts=attempt, max_frames=max_frames,
                                  file=part.name if part.is_file() else "",
                                  error=f"worker died while tracking ({type(e).__name__}), {attempt} attempt(s); "
                                        f"rerun to finish this video")
            if on_done:
                on_done(row)
            if on_event:
                on_event("done", row)
            if bar is not None:
                bar.update(1)
            if queue:
                submit(actor)
    finally:
        if bar is not None:
            bar.close()
        sched.seconds = time.perf_counter() - t1
        pool.stop()
    return sched


__all__ = ["GPU_BACKENDS", "Schedule", "TrackerWorker", "connect_ray", "import_ray", "run_jobs"]
