"""Measurement (not a test): wall-clock frames/s of ``track_video`` with and without the read-ahead thread, the two
interleaved round by round over the same video, and whether the boxes are identical.

    PYTHONPATH=. python tests/cli/measure_read_ahead.py MODEL_DIR [--threads 1] [--rounds 4] [--video bag.avi]

Prints one JSON line (per-round frames/s of each, median ratio, load average, boxes identical).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from siamtrt.runtime.run import track_video

DEFAULT_VIDEO = Path(__file__).resolve().parents[3] / "shared" / "data" / "bag.avi"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--video", default=str(DEFAULT_VIDEO))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=4)
    a = ap.parse_args()
    fps = {True: [], False: []}
    boxes = {}
    load0 = os.getloadavg()[0]
    for r in range(a.rounds):
        for ahead in ((True, False) if r % 2 == 0 else (False, True)):
            run = track_video(a.model, a.video, [316, 140, 112, 115], progress=False, read_ahead=ahead,
                              threads=a.threads, backend="onnxruntime")
            fps[ahead].append(round(run.frames / run.wall_seconds, 2))
            assert ahead not in boxes or np.array_equal(boxes[ahead], run.boxes)
            boxes[ahead] = run.boxes
    print(json.dumps({"model": a.model, "threads": a.threads, "rounds": a.rounds,
                      "load_1min_start_end": [round(load0, 1), round(os.getloadavg()[0], 1)],
                      "wall_fps_read_ahead": fps[True], "wall_fps_decode_on_demand": fps[False],
                      "median_ratio": round(float(np.median(fps[True]) / np.median(fps[False])), 3),
                      "boxes_identical": bool(np.array_equal(boxes[True], boxes[False]))}))


if __name__ == "__main__":
    main()
