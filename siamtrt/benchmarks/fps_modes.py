"""Per-mode frame time, side by side in one run (``benchmarks/fps.py --mode ...``).

Every requested mode gets its own Tracker over ONE shared backend (same sessions, same threads), and the modes are
interleaved frame by frame on the same decoded frames, so machine load hits them alike. Reported per mode: median
and p90 frame time (crop + search + post-processing, and the distractor templates in distractor mode) and its ratio
to short mode. Long-term frames are split: *local* frames (searched at the model's own instance size) and *global*
frames (the lost-state search at ``lost_instance_size``). On a video where the target is never lost a long-term
tracker only runs local frames, so the global cost is measured by an extra long-term tracker kept in the lost
state on every frame ("longterm (global)").
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import InputError, Interrupted
from ..progress import progress_bar
from .variants import Variant, check_available

TARGETS = {"longterm": 1.05, "distractor": 1.15}  # issue 10 item 5: frame-time ratio to short mode


def weights_label(meta: Dict[str, Any]) -> str:
    """What the weights are (siamtrt.metadata.weights_line where available), for every figure's label."""
    try:
        from ..metadata import weights_line

        return weights_line(meta)
    except Exception:  # noqa: BLE001 - older metadata helpers: say what the directory records
        return str(meta.get("weights") or meta.get("checkpoint_sha256"))


def run_mode_fps(model_dir: Union[str, Path], modes: Sequence[str], video: Union[str, Path],
                 bbox: Sequence[float], frames: int = 60, warmup: int = 3, threads: Optional[int] = None,
                 backend: str = "auto", progress: bool = True) -> Dict[str, Any]:
    """Time each mode on the same frames (interleaved) and return a JSON-ready dict (see the module docstring).

    Raises:
        InputError: unknown mode, too-short video. ModelDirError: a mode the directory was not exported for.
        BackendError: a backend that cannot run the directory here.
    """
    from ..runtime import Tracker
    from ..runtime.modes import parse_mode
    from ..runtime.video import FrameSource

    from ..runtime.backends import accepted_options, choose_backend
    from ..runtime.cpu import cpu_threads

    threads = cpu_threads(threads)  # the number used is what the report records (None read as "default")

    names = list(dict.fromkeys(["short"] + [parse_mode(m).name for m in modes]))
    backend = choose_backend(backend, model_dir)[0]   # "auto" → the name whose options apply
    check_available([Variant(backend, Path(model_dir), {})])  # before the progress bar and the first frame
    base = Tracker.from_model_dir(model_dir, backend=backend, **accepted_options(backend, {"threads": threads}))
    trackers = {m: Tracker(base.backend, base.info, mode=m) for m in names}
    forced = None
    if any(parse_mode(m).longterm for m in names):
        forced = Tracker(base.backend, base.info, mode="longterm")
        trackers["longterm (global)"] = forced
    rec: Dict[str, List[float]] = {k: [] for k in trackers}
    found: Dict[str, List[int]] = {k: [] for k in trackers}
    # long-term trackers' frames split by the instance size they searched (the forced one's should all be global)
    local_lt: Dict[str, List[float]] = {m: [] for m in trackers if parse_mode(m.split(" ")[0]).longterm}
    global_lt: Dict[str, List[float]] = {m: [] for m in local_lt}
    bar = progress_bar(warmup + frames, "fps modes", "frame", progress, leave=False)
    try:
        with FrameSource(video, max_frames=warmup + frames + 1) as src:
            it = iter(src)
            first = next(it)
            fh, fw = first.shape[:2]
            for t in trackers.values():
                t.init(first, np.asarray(bbox, np.float64))
            done = 0
            for frame in it:
                for name, t in trackers.items():
                    if t is forced:  # keep it in the lost state: every frame is a global search
                        t._next_search(np.ones(t.num_targets, bool), (fw, fh))
                    t0 = time.perf_counter()
                    r = t.track(frame)
                    dt = time.perf_counter() - t0
                    if done >= warmup:
                        rec[name].append(dt)
                        found[name].append(int(r.distractors.sum()))
                        if name in local_lt:
                            lost_size = t.info.track.lost_instance_size
                            (global_lt if int(r.instance_size[0]) == lost_size else local_lt)[name].append(dt)
                done += 1
                if bar is not None:
                    bar.update(1)
                if done >= warmup + frames:
                    break
    except KeyboardInterrupt:
        from .fps import INTERRUPTED

        raise Interrupted(INTERRUPTED) from None
    finally:
        if bar is not None:  # closed before any error line is printed
            bar.close()
    base.backend.deactivate()
    if done <= warmup:
        raise InputError(f"{video} has too few frames for {warmup} warm-up frames", fix="lower --warmup")
    rows = _mode_rows(rec, found, local_lt, global_lt)
    return {"model": str(model_dir), "arch": base.info.meta.get("arch"), "weights": weights_label(base.info.meta),
            "backend": base.backend.name, "threads": threads, "video": str(video), "frames": frames,
            "warmup": warmup, "schedule": "interleaved per frame, one shared backend", "rows": rows}


def _mode_rows(rec: Dict[str, List[float]], found: Dict[str, List[int]], local_lt: Dict[str, List[float]],
               global_lt: Dict[str, List[float]]) -> List[Dict[str, Any]]:
    """One row per mode: median and p90 frame time, ratio to short mode, distractor counts, local/global split."""
    from ..runtime.modes import parse_mode

    med = {k: float(np.median(v)) * 1000 for k, v in rec.items() if v}
    short = med["short"]
    rows = []
    for k, v in rec.items():
        row = {"mode": k, "frames": len(v), "median_ms": med[k], "p90_ms": float(np.percentile(v, 90)) * 1000,
               "ratio_to_short": med[k] / short}
        if parse_mode(k.split(" ")[0]).distractor:
            row["frames_with_distractors"] = int(np.count_nonzero(found[k]))
            row["distractors_per_frame"] = float(np.mean(found[k]))
        if k in local_lt:
            row["local_frames"] = len(local_lt[k])
            row["global_frames"] = len(global_lt[k])
            if local_lt[k]:
                row["local_median_ms"] = float(np.median(local_lt[k])) * 1000
                row["local_ratio_to_short"] = row["local_median_ms"] / short
        key = "longterm" if k.startswith("longterm") and "distractor" not in k else (
            "distractor" if k == "distractor" else None)
        if key and k != "longterm (global)":
            row["target_ratio"] = TARGETS[key]
        rows.append(row)
    return rows


def mode_table(rep: Dict[str, Any]) -> str:
    """The per-mode table (ratios to short mode measured in this run)."""
    lines = [f"per-mode frame time: {rep['arch']} [{rep['weights']}] on {Path(rep['video']).name}, "
             f"{rep['backend']}, {rep['threads'] or 'default'} threads, {rep['frames']} frames ({rep['schedule']})",
             f"{'mode':<24}{'median ms':>10}{'p90 ms':>9}{'x short':>9}{'local x short':>15}{'global fr':>11}"
             f"{'distr./fr':>10}{'target':>9}"]
    for r in rep["rows"]:
        local = f"{r['local_ratio_to_short']:.3f}" if "local_ratio_to_short" in r else "-"
        glob = str(r.get("global_frames", "-"))
        target = f"<= {r['target_ratio']:.2f}" if "target_ratio" in r else ""
        dist = f"{r['distractors_per_frame']:.2f}" if "distractors_per_frame" in r else "-"
        lines.append(f"{r['mode']:<24}{r['median_ms']:>10.2f}{r['p90_ms']:>9.2f}{r['ratio_to_short']:>9.3f}"
                     f"{local:>15}{glob:>11}{dist:>10}{target:>9}")
    return "\n".join(lines)


__all__ = ["run_mode_fps", "mode_table", "TARGETS"]
