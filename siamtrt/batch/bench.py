"""Throughput of :func:`~siamtrt.batch.many.track_many` with different worker counts, in one run on one Ray
instance (each count on a fresh output folder, actors started before the clock starts)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from .many import track_many
from ..figures import pyplot, save_png
from .scheduler import connect_ray


def compare_workers(model: Union[str, Path], videos, bbox_file=None, counts: Sequence[int] = (1, 2),
                    address: Optional[str] = None, num_cpus: Optional[int] = None, max_frames: Optional[int] = None,
                    fmt: str = "csv", work_dir: Optional[Union[str, Path]] = None) -> Dict[str, Any]:
    """Run the same videos with each worker count; returns {"rows": [...], "ratio": fps(max) / fps(min)}."""
    ray, started = connect_ray(address, num_cpus)
    work = Path(work_dir or tempfile.mkdtemp(prefix="siamtrt-many-bench-"))
    rows: List[Dict[str, Any]] = []
    try:
        for n in counts:
            rep = track_many(model, videos, work / f"workers{n}", bbox_file=bbox_file, workers=n, fmt=fmt,
                             max_frames=max_frames, resume=False, progress=False)
            rows.append({"workers": rep.workers, "videos": len(rep.tracked), "failed": len(rep.failed),
                         "frames": rep.frames_tracked, "seconds": rep.seconds, "fps": rep.fps,
                         "startup_seconds": rep.startup_seconds,
                         "load_average_1min": os.getloadavg()[0], "cpus": os.cpu_count()})
    finally:
        if started:
            ray.shutdown()
    base = rows[0]["fps"] if rows and rows[0]["fps"] > 0 else float("nan")
    for r in rows:
        r["speedup_vs_first"] = r["fps"] / base
    return {"rows": rows, "ratio": rows[-1]["fps"] / base if rows else float("nan")}


def plot_workers(report: Dict[str, Any], out_png: Union[str, Path], title: str = "") -> Path:
    plt = pyplot()

    rows = report["rows"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([str(r["workers"]) for r in rows], [r["fps"] for r in rows], color="tab:blue")
    for i, r in enumerate(rows):
        ax.annotate(f"{r['fps']:.1f} f/s (x{r['speedup_vs_first']:.2f})", (i, r["fps"]), ha="center", va="bottom",
                    fontsize=8)
    ax.set_xlabel("Ray tracker actors")
    ax.set_ylabel("frames/s, all videos")
    ax.set_title(title or "track_many throughput", fontsize=9)
    return save_png(fig, out_png, dpi=120)


__all__ = ["compare_workers", "plot_workers"]
