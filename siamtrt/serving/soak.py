"""Triton soak: many sequences started and ended over and over on the stateful tracker model, some abandoned
mid-sequence (the client disconnects without END), the server's memory watched all along.

``streams`` client threads each track ``frames_per_stream`` frames as a chain of sequences of random length (each on
a fresh connection, starting at a random frame of the looped video with that frame's box); a sequence is abandoned
with probability ``abandon``. Checked:

* the server's memory (tritonserver plus its Python-backend processes, as PSS: pages they share counted once,
  :func:`siamtrt.benchmarks.soak.tree_pss_bytes`) stays flat after warm-up (:func:`siamtrt.benchmarks.soak.rss_trend`);
* abandoned sequences are released: after ``idle_seconds`` the tracker model logs their release (it drops a sequence
  not seen for that long, at the next request of any stream), and a request continuing one is refused;
* no stream sees another's state: every sequence's boxes equal a fresh in-process runtime tracker's on the same
  frames (to ``box_tolerance`` px: batched ONNX Runtime convolutions may round differently from batch 1).
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..benchmarks.results import weights_label
from ..benchmarks.soak import pingpong_index, rss_trend, series, tree_pss_by_process, tree_pss_bytes
from ..modeldir import ModelDir
from ..runtime import Tracker
from .client import RemoteTracker
from .repository import ServingError, write_repository
from .server import TritonServer
from .stateful import RELEASE_LOG
from ..progress import progress_bar

LOG = logging.getLogger(__name__)
PathLike = Union[str, Path]


@dataclass
class SequenceRecord:
    """One sequence a stream ran: where it started in the looped video, its init box, the boxes it got back."""

    stream: int
    sequence_id: int
    start: int
    box: Tuple[float, ...]
    boxes: List[np.ndarray] = field(default_factory=list)
    abandoned: bool = False


class _Progress:
    """Frames done by all streams (read by the RSS sampler), with an optional progress line."""

    def __init__(self, total: int, show: bool):
        self.done = 0
        self.lock = threading.Lock()
        self.bar = progress_bar(total, "Triton soak", "frame", show, mininterval=2.0)

    def add(self, n: int = 1) -> None:
        with self.lock:
            self.done += n
            if self.bar is not None:
                self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_stream(url: str, protocol: str, model: str, stream: int, frames: Sequence[np.ndarray],
                boxes: Sequence[Tuple[float, ...]], total: int, seq_len: Tuple[int, int], abandon: float, seed: int,
                progress: _Progress, records: List[SequenceRecord]) -> None:
    rng = np.random.default_rng(seed + 1000 * stream)
    done = 0
    while done < total:
        length = int(min(rng.integers(seq_len[0], seq_len[1] + 1), total - done))
        if total - done - length == 1:  # never leave a 1-frame remainder: a START alone cannot carry END
            length += 1
        start = int(rng.integers(0, 2 * (len(frames) - 1)))
        rec = SequenceRecord(stream, 0, start, tuple(boxes[pingpong_index(start, len(frames))]),
                             abandoned=bool(rng.random() < abandon))
        rt = RemoteTracker(url, protocol, model)
        try:
            rt.init(frames[pingpong_index(start, len(frames))], rec.box)
            rec.sequence_id = rt.sequence_id
            for k in range(1, length):
                box, _ = rt.track(frames[pingpong_index(start + k, len(frames))],
                                  last=(k == length - 1 and not rec.abandoned))
                rec.boxes.append(box)
                progress.add()
        finally:
            rt.close()  # an abandoned sequence: the client disconnects without END
        records.append(rec)
        done += length
        progress.add()  # the START frame


def _sample_memory(pid: int, progress: _Progress, stop: threading.Event, every: float, warmup: float,
                   samples: List[Tuple[float, int, int]], by_process: Dict[str, Dict[str, float]]) -> None:
    """PSS of the server's process tree every ``every`` s; per process once after warm-up and at the end."""
    t0 = time.monotonic()
    while not stop.is_set():
        samples.append((time.monotonic() - t0, progress.done, tree_pss_bytes(pid)))
        if "after_warmup" not in by_process and progress.done >= warmup:
            by_process["after_warmup"] = tree_pss_by_process(pid)
        stop.wait(every)
    by_process["end"] = tree_pss_by_process(pid)


def _growth_by_process(by_process: Dict[str, Dict[str, float]]) -> Dict[str, Dict[str, Optional[float]]]:
    start, end = by_process.get("after_warmup", {}), by_process.get("end", {})
    return {k: {"after_warmup_mb": start.get(k), "end_mb": end.get(k),
                "growth_mb": end[k] - start[k] if k in start and k in end else None}
            for k in sorted(set(start) | set(end))}


def _released_in_log(log_text: str) -> int:
    return sum(int(m) for m in re.findall(re.escape(RELEASE_LOG) + r" (\d+)", log_text))


def _continuing_refused(url: str, protocol: str, model: str, rec: SequenceRecord, frame: np.ndarray) -> bool:
    """True when the server refuses a request continuing an abandoned sequence (it was released)."""
    rt = RemoteTracker(url, protocol, model, sequence_id=rec.sequence_id)
    rt.sequence_id = rec.sequence_id
    try:
        rt.track(frame, last=True)
        return False
    except ServingError:
        return True
    finally:
        rt.close()


def _verify(model_dir: PathLike, frames: Sequence[np.ndarray], records: Sequence[SequenceRecord],
            progress: bool = True) -> float:
    """Largest box difference (px) between the server's sequences and fresh in-process trackers on the same frames."""
    worst = 0.0
    bar = _Progress(sum(len(r.boxes) for r in records), progress)
    if bar.bar is not None:
        bar.bar.set_description("in-process check")
    with Tracker.from_model_dir(model_dir, backend="onnxruntime", threads=1) as t:
        for rec in records:
            t.init(frames[pingpong_index(rec.start, len(frames))], np.asarray(rec.box, np.float64))
            for k, got in enumerate(rec.boxes, 1):
                want = t.track(frames[pingpong_index(rec.start + k, len(frames))]).bbox
                worst = max(worst, float(np.abs(np.asarray(got) - want).max()))
            bar.add(len(rec.boxes))
    bar.close()
    return worst


def _run_streams(url: str, protocol: str, model: str, frames: Sequence[np.ndarray],
                 boxes: Sequence[Sequence[float]], streams: int, frames_per_stream: int, seq_len: Tuple[int, int],
                 abandon: float, seed: int, prog: _Progress, records: List[SequenceRecord]) -> float:
    """Run the client streams concurrently, one thread each; returns their wall time.

    Raises:
        ServingError: a stream failed (after every stream has finished).
    """
    errors: List[BaseException] = []

    def run(i: int) -> None:
        try:
            _run_stream(url, protocol, model, i, frames, boxes, frames_per_stream, seq_len, abandon, seed, prog,
                        records)
        except BaseException as e:  # reported after every stream has finished
            errors.append(e)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    prog.close()
    if errors:
        raise ServingError("a soak stream failed", evidence=str(errors[0])[:800])
    return time.perf_counter() - t0


def _release_checks(server: TritonServer, url: str, protocol: str, model: str, frames: Sequence[np.ndarray],
                    boxes: Sequence[Sequence[float]], abandoned: Sequence[SequenceRecord], idle_seconds: float
                    ) -> Tuple[int, int]:
    """After the idle timeout and one more request (any request lets the model drop idle sequences): (sequences the
    tracker model logged as released, abandoned sequences whose continuation was refused (at most 5 tried))."""
    time.sleep(idle_seconds + 1.0)
    probe = RemoteTracker(url, protocol, model)
    try:
        probe.init(frames[0], boxes[0])
        probe.track(frames[1], last=True)
    finally:
        probe.close()
    time.sleep(1.0)
    released = _released_in_log(server.log_tail(1 << 26))
    refused = sum(_continuing_refused(url, protocol, model, r, frames[0]) for r in abandoned[:5])
    return released, refused


def triton_soak(model_dir: PathLike, frames: Sequence[np.ndarray], boxes: Sequence[Sequence[float]],
                streams: int = 8, frames_per_stream: int = 2000, seq_len: Tuple[int, int] = (20, 200),
                abandon: float = 0.15, idle_seconds: float = 5.0, protocol: str = "grpc", seed: int = 0,
                warmup_fraction: float = 0.1, memory_goal_mb: float = 20.0, box_tolerance: float = 1e-3,
                verify: bool = True, sample_seconds: float = 0.5, progress: bool = True,
                work_dir: Optional[PathLike] = None) -> Dict[str, Any]:
    """Run the Triton soak against a real local tritonserver (see the module docstring).

    Args:
        model_dir (str | Path): model directory to serve.
        frames: the video's frames (played forwards and backwards). boxes: an init box per frame.
        streams (int), frames_per_stream (int): concurrent clients and the frames each sends. Default to 8, 2000.
        seq_len (tuple): shortest and longest sequence. Defaults to (20, 200).
        abandon (float): probability that a sequence is abandoned. Defaults to 0.15.
        idle_seconds (float): the repository's sequence idle timeout. Defaults to 5.
        warmup_fraction (float): frames before the RSS baseline. Defaults to 0.1.
        memory_goal_mb (float): largest growth of the server's PSS after warm-up. Defaults to 20.
        box_tolerance (float): largest box difference to the in-process runtime, px. Defaults to 1e-3.
        verify (bool): compare every sequence with the in-process runtime. Defaults to True.

    Returns:
        dict: the figures (RSS trend and series, sequences started / ended / abandoned, released, refused, largest
        box difference) and ``ok``.

    Raises:
        ServingError: no tritonserver, or a stream failed.
    """
    if not 2 <= seq_len[0] <= seq_len[1]:
        raise ServingError(f"sequence lengths {seq_len} must satisfy 2 <= shortest <= longest",
                           fix="a sequence is a START frame plus at least one tracked frame")
    info = ModelDir.open(model_dir)
    work = Path(work_dir or tempfile.mkdtemp(prefix="siamtrt-triton-soak-"))
    repo = write_repository(model_dir, work / "repo", max_batch=streams, idle_seconds=idle_seconds, threads=1,
                            overwrite=True).out
    records: List[SequenceRecord] = []
    samples: List[Tuple[float, int, int]] = []
    by_process: Dict[str, Dict[str, float]] = {}
    total = streams * frames_per_stream
    prog = _Progress(total, progress)
    with TritonServer(repo, log_path=work / "tritonserver.log") as server:
        url, model = server.url(protocol), "siamtrt_tracker"
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_memory, args=(server.proc.pid, prog, stop, sample_seconds,
                                                             warmup_fraction * total, samples, by_process),
                                   daemon=True)
        sampler.start()
        try:
            seconds = _run_streams(url, protocol, model, frames, boxes, streams, frames_per_stream, seq_len, abandon,
                                   seed, prog, records)
            abandoned = [r for r in records if r.abandoned]
            released, refused = _release_checks(server, url, protocol, model, frames, boxes, abandoned, idle_seconds)
        finally:
            stop.set()
            sampler.join()
    worst = _verify(model_dir, frames, records, progress) if verify else None
    x = [s[1] for s in samples]
    pss = [s[2] for s in samples]
    trend = rss_trend(x, pss, warmup_fraction * total)
    checks = {"memory": trend["max_growth_mb"] is not None and trend["max_growth_mb"] <= memory_goal_mb,
              "abandoned_released": released == len(abandoned),
              "continuing_refused": refused == min(5, len(abandoned)),
              "streams_isolated": worst is None or worst <= box_tolerance}
    return {"kind": "triton", "model": str(model_dir), "arch": info.arch, "weights": weights_label(info.meta),
            "protocol": protocol, "streams": streams, "frames_per_stream": frames_per_stream, "frames": prog.done,
            "seconds": seconds, "fps": prog.done / seconds if seconds > 0 else 0.0, "seq_len": list(seq_len),
            "idle_seconds": idle_seconds, "sequences": len(records), "ended": len(records) - len(abandoned),
            "abandoned": len(abandoned), "released_idle": released, "continuing_refused": refused,
            "max_box_diff_px": worst, "box_tolerance_px": box_tolerance, "memory": trend,
            "memory_measure": "PSS", "memory_goal_mb": memory_goal_mb, "warmup_frames": warmup_fraction * total,
            "memory_by_process": _growth_by_process(by_process),
            "series": series(x, np.asarray(pss) / 2 ** 20, [s[0] for s in samples]), "checks": checks,
            "ok": all(checks.values()), "server_log": str(work / "tritonserver.log")}


def format_triton_table(r: Dict[str, Any]) -> str:
    t = r["memory"]
    fmt = (lambda v, s=".1f": "-" if v is None else format(v, s))
    return "\n".join([
        f"Triton soak: {r['arch']} ({r['weights']}), {r['streams']} streams x {r['frames_per_stream']} frames "
        f"({r['frames']} in {r['seconds']:.0f} s, {r['fps']:.1f} frames/s), sequences of {r['seq_len'][0]}-"
        f"{r['seq_len'][1]} frames",
        f"  sequences {r['sequences']} (ended {r['ended']}, abandoned {r['abandoned']}); released after "
        f"{r['idle_seconds']:g} s idle: {r['released_idle']}; continuing an abandoned one refused: "
        f"{r['continuing_refused']}",
        f"  server memory (PSS) after warm-up: baseline {fmt(t['baseline_mb'])} MB, max growth "
        f"{fmt(t['max_growth_mb'])} MB (goal <= {r['memory_goal_mb']:g}), slope {fmt(t['slope_mb_per_1k'], '.3f')} "
        "MB/1k frames; largest box "
        f"difference to the in-process runtime {fmt(r['max_box_diff_px'], '.2e')} px",
        "  PSS growth by process after warm-up: " + "; ".join(
            f"{k} {fmt(v['growth_mb'])} MB" for k, v in r.get("memory_by_process", {}).items()),
        "  " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in r["checks"].items())])


__all__ = ["SequenceRecord", "format_triton_table", "triton_soak"]
