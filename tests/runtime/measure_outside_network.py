"""Measurement (not a test): the tracker's work outside the network per frame, with the state on the ground truth.

    PYTHONPATH=. python tests/runtime/measure_outside_network.py MODEL_DIR [--backend openvino] [--threads 2]
        [--frames 120] [--sequence ../shared/data/bag] [--sweep-mb 16]

Before every frame the state is set to the previous frame's ground-truth box (teacher forcing), so the crop is the
size a tracker that follows the target cuts, whatever stand-in weights do to a free-running state (a random head
lets the box grow to the frame, and a frame-sized search window costs several times more to crop). Per frame:
``Tracker.last_timings`` crop / search / post and the wall time of ``track``; prints one JSON line with the medians
and the share of the frame spent outside the network (track − search), the load average at start and end.

Two more passes say why that work costs more inside the loop than on its own: the network's outputs of the first
pass replayed with nothing run in between (``replay``: crop and post-processing with warm caches), and replayed after
a sweep over ``--sweep-mb`` MiB of memory (``replay_sweep``: caches evicted as the network evicts them, no network).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from siamtrt.benchmarks.data import default_sequence
from siamtrt.runtime import Tracker
from siamtrt.runtime.boxes import xywh_to_cxcywh
from siamtrt.runtime.sequences import load_folder_sequence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--sequence", type=Path, default=default_sequence(), help="OTB/VOT-layout sequence folder")
    ap.add_argument("--sweep-mb", type=int, default=16, help="memory swept before each replayed search")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    seq = load_folder_sequence(a.sequence)
    gt = seq.gt
    frames = list(seq.iter_frames(a.frames + 1))
    sweep = np.zeros(a.sweep_mb << 20, np.uint8)
    with Tracker.from_model_dir(a.model, backend=a.backend, threads=a.threads) as t:
        outputs: list = []
        run_search = t.backend.run_search

        def record(x, kernels):
            out = run_search(x, kernels)
            outputs.append(tuple(np.array(o) for o in out))  # a copy: a backend may reuse its output buffers
            return out

        t.backend.run_search = record
        passes = {"network": _teacher_forced(t, frames, gt)}
        for name, evict in (("replay", None), ("replay_sweep", sweep)):
            t.backend.run_search = _replayer(outputs, evict)
            passes[name] = _teacher_forced(t, frames, gt)
        backend = t.backend.name
    med = {name: {k: float(np.median(v)) * 1e3 for k, v in stages.items()} for name, stages in passes.items()}
    outside = {name: m["track"] - m["search"] for name, m in med.items()}
    print(json.dumps({"model": a.model, "backend": backend, "threads": a.threads,
                      "frames": len(passes["network"]["track"]),
                      "median_ms": {k: round(v, 3) for k, v in med["network"].items()},
                      "outside_ms": round(outside["network"], 3),
                      "outside_share": round(outside["network"] / med["network"]["track"], 4),
                      "replayed_ms": {name: {"crop": round(med[name]["crop"], 3), "post": round(med[name]["post"], 3),
                                             "outside": round(outside[name], 3)}
                                      for name in ("replay", "replay_sweep")},
                      "load_average": [load0, os.getloadavg()[0]]}))


def _replayer(outputs: list, sweep=None):
    """A ``run_search`` that returns the recorded outputs in order, after one write per cache line of ``sweep``."""
    recorded = iter(outputs)

    def run(x, kernels):
        if sweep is not None:
            sweep[::64] += 1
        return next(recorded)
    return run


def _teacher_forced(t: Tracker, frames, gt) -> dict:
    """Per-frame seconds of crop / search / post / track, the state set to the previous ground-truth box each time."""
    stages = {"crop": [], "search": [], "post": [], "track": []}
    t.init(frames[0], gt[0])
    for i, frame in enumerate(frames[1:], 1):
        box = xywh_to_cxcywh(gt[i - 1])[None]
        t.center, t.size = box[:, :2], box[:, 2:]
        t0 = time.perf_counter()
        t.track(frame)
        dt = time.perf_counter() - t0
        if i > 5:  # warm-up
            for k in ("crop", "search", "post"):
                stages[k].append(t.last_timings[k])
            stages["track"].append(dt)
    return stages


if __name__ == "__main__":
    main()
