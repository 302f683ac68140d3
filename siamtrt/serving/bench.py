"""Frames/s of N concurrent streams through a Triton server vs the same N streams in-process, in one run.

In-process: N runtime Trackers stepped round-robin in one Python thread (one batch-1 search call per stream per
frame, ONNX Runtime with the same thread count as each server branch). Server: N client threads, one sequence
each, on the stateful tracker model; the search model's dynamic batcher merges the streams' calls, and the server's
own statistics give the average search batch (inferences / executions). Each configuration runs once after a
warm-up sequence; the runs alternate in-process / server per stream count so drifting machine load hits both.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..benchmarks.results import weights_label
from ..figures import pyplot, save_png
from ..runtime import Tracker
from ..modeldir import ModelDir
from .client import track_streams, track_video
from .repository import write_repository
from .server import TritonServer

LOG = logging.getLogger(__name__)


def in_process_fps(model_dir: Union[str, Path], frames: List[np.ndarray], box: Sequence[float], streams: int,
                   threads: int = 1) -> Dict[str, float]:
    """N independent Trackers over the same frames, stepped round-robin in one thread."""
    trackers = [Tracker.from_model_dir(model_dir, backend="onnxruntime", threads=threads) for _ in range(streams)]
    t0 = time.perf_counter()
    for t in trackers:
        t.init(frames[0], box)
    for f in frames[1:]:
        for t in trackers:
            t.track(f)
    sec = time.perf_counter() - t0
    n = streams * (len(frames) - 1)
    return {"seconds": sec, "frames": n, "fps_total": n / sec, "fps_per_stream": (len(frames) - 1) / sec}


def _model_stats(url: str, model: str) -> Dict[str, int]:
    """Cumulative inference / execution counts of one model (their ratio over a run = mean batch formed)."""
    import tritonclient.http as h

    st = h.InferenceServerClient(url).get_inference_statistics(model)["model_stats"][0]
    return {"inferences": int(st["inference_count"]), "executions": int(st["execution_count"])}


def server_fps(server: TritonServer, frames: List[np.ndarray], box: Sequence[float], streams: int,
               protocol: str = "grpc", prefix: str = "siamtrt") -> Dict[str, float]:
    """N concurrent client streams through the server (wall time from the first START to the last answer)."""
    before = _model_stats(server.http_url, f"{prefix}_search")
    tbefore = _model_stats(server.http_url, f"{prefix}_tracker")
    t0 = time.perf_counter()
    res = track_streams(server.url(protocol), [(frames, box)] * streams, protocol=protocol,
                        model=f"{prefix}_tracker")
    sec = time.perf_counter() - t0
    after = _model_stats(server.http_url, f"{prefix}_search")
    tafter = _model_stats(server.http_url, f"{prefix}_tracker")
    t_exe = max(1, tafter["executions"] - tbefore["executions"])
    tracker_batch = (tafter["inferences"] - tbefore["inferences"]) / t_exe
    inf = after["inferences"] - before["inferences"]
    exe = max(1, after["executions"] - before["executions"])
    lat = np.concatenate([r.latencies for r in res])
    n = streams * (len(frames) - 1)
    return {"seconds": sec, "frames": n, "fps_total": n / sec, "fps_per_stream": (len(frames) - 1) / sec,
            "search_batch_mean": inf / exe, "tracker_batch_mean": tracker_batch,
            "latency_ms_p50": float(np.median(lat) * 1e3), "latency_ms_p90": float(np.percentile(lat, 90) * 1e3),
            "boxes": [r.boxes for r in res]}


def _measure(model_dir: Union[str, Path], frames: List[np.ndarray], box: Sequence[float], streams: Sequence[int],
             protocol: str, threads: int, queue_delay_us: int, work: Path, weights: str) -> List[Dict[str, Any]]:
    """One row per stream count: in-process and server runs, alternating, on a repository written into ``work``."""
    repo = write_repository(model_dir, work / "repo", max_batch=max(streams), queue_delay_us=queue_delay_us,
                            threads=threads, overwrite=True).out
    ref = Tracker.from_model_dir(model_dir, backend="onnxruntime", threads=threads)
    ref.init(frames[0], box)
    ref_boxes = np.stack([np.asarray(box, np.float64)] + [ref.track(f).bbox for f in frames[1:]])
    rows: List[Dict[str, Any]] = []
    with TritonServer(repo) as server:
        track_video(server.url(protocol), frames[:5], box, protocol)  # warm-up (sessions, first BLS calls)
        in_process_fps(model_dir, frames[:5], box, 1, threads)
        for n in streams:
            ip = in_process_fps(model_dir, frames, box, n, threads)
            sv = server_fps(server, frames, box, n, protocol)
            diff = max(float(np.abs(b - ref_boxes).max()) for b in sv.pop("boxes"))
            rows.append({"streams": n, "weights": weights, "in_process": ip, "server": sv, "max_box_diff_px": diff,
                         "server_vs_in_process": sv["fps_total"] / ip["fps_total"]})
            LOG.info("serving bench: %d streams: in-process %.1f f/s, server %.1f f/s (search batch %.2f)", n,
                     ip["fps_total"], sv["fps_total"], sv["search_batch_mean"])
    return rows


def run_serving_benchmark(model_dir: Union[str, Path], frames: List[np.ndarray], box: Sequence[float],
                          streams: Sequence[int] = (1, 4, 8), protocol: str = "grpc", threads: int = 1,
                          queue_delay_us: int = 2000, work_dir: Optional[Union[str, Path]] = None
                          ) -> Dict[str, Any]:
    """Measure in-process and server frames/s for each stream count; returns the report dict.

    Boxes through the server are compared with the in-process runtime's on the way (``max_box_diff_px``: 0 when
    identical; batched ONNX Runtime convolutions may round differently from batch-1 ones on real models).
    """
    import shutil
    import tempfile

    info = ModelDir.open(model_dir)
    weights = weights_label(info.meta)
    own_work = work_dir is None  # a folder of ours (the repository, ~40 MB for alex): removed when done
    work = Path(work_dir or tempfile.mkdtemp(prefix="siamtrt-serving-bench-"))
    try:
        rows = _measure(model_dir, frames, box, streams, protocol, threads, queue_delay_us, work, weights)
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    one = next((r for r in rows if r["streams"] == 1), None)
    for r in rows:
        if one is not None:
            # Cost of N streams relative to one: seconds for the N-stream run over seconds for the 1-stream run.
            r["server_cost_vs_1_stream"] = r["server"]["seconds"] / one["server"]["seconds"]
            r["in_process_cost_vs_1_stream"] = r["in_process"]["seconds"] / one["in_process"]["seconds"]
    return {"model": str(model_dir), "arch": info.meta.get("arch"), "weights": weights, "protocol": protocol,
            "frames_per_stream": len(frames), "threads_per_branch": threads, "queue_delay_us": queue_delay_us,
            "load_average_1min": os.getloadavg()[0], "cpus": os.cpu_count(), "rows": rows}


def format_table(report: Dict[str, Any]) -> str:
    head = (f"{'streams':>7} {'in-process f/s':>15} {'server f/s':>11} {'server/in-proc':>15} {'search batch':>13} "
            f"{'p50 ms':>7} {'cost vs 1 (server / in-proc)':>29} {'max box diff px':>16}  weights")
    lines = [f"Serving: {report['arch']} via Triton ({report['protocol']}), {report['frames_per_stream']} frames per "
             f"stream, {report['threads_per_branch']} ORT thread(s) per branch", head, "-" * len(head)]
    for r in report["rows"]:
        cost = (f"{r.get('server_cost_vs_1_stream', float('nan')):.2f}x / "
                f"{r.get('in_process_cost_vs_1_stream', float('nan')):.2f}x")
        lines.append(f"{r['streams']:>7} {r['in_process']['fps_total']:>15.1f} {r['server']['fps_total']:>11.1f} "
                     f"{r['server_vs_in_process']:>15.2f} {r['server']['search_batch_mean']:>13.2f} "
                     f"{r['server']['latency_ms_p50']:>7.1f} {cost:>29} {r['max_box_diff_px']:>16.2e}  {r['weights']}")
    return "\n".join(lines)


def plot_serving(report: Dict[str, Any], out_png: Union[str, Path]) -> Path:
    plt = pyplot()

    rows = report["rows"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(x - 0.2, [r["in_process"]["fps_total"] for r in rows], 0.4, label="in-process (runtime)")
    ax.bar(x + 0.2, [r["server"]["fps_total"] for r in rows], 0.4, label=f"Triton ({report['protocol']})")
    for i, r in enumerate(rows):
        ax.annotate(f"batch {r['server']['search_batch_mean']:.1f}", (i + 0.2, r["server"]["fps_total"]),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"{r['streams']} stream{'s' if r['streams'] > 1 else ''}" for r in rows])
    ax.set_ylabel("frames/s, all streams")
    ax.set_title(f"{report['arch']} ({report['weights']}): streams through Triton vs in-process", fontsize=9)
    ax.legend()
    return save_png(fig, out_png, dpi=120)


__all__ = ["format_table", "in_process_fps", "plot_serving", "run_serving_benchmark", "server_fps", "weights_label"]
