"""Helpers shared by the batch tests (a module with a unique name: several test folders have a conftest)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from siamtrt.runtime import Tracker
from siamtrt.runtime.video import open_frames


def runtime_results(model, source, box, max_frames=None):
    """(boxes (F, 1, 4), scores (F, 1)) of the single-process runtime, frame 0 = the init box with score 1: what a
    batch result file must hold."""
    t = Tracker.from_model_dir(model, backend="onnxruntime", threads=1)
    boxes, scores = [], []
    for i, f in enumerate(open_frames(source, max_frames=max_frames)):
        if i == 0:
            t.init(f, np.asarray(box, np.float64))
            boxes.append(np.asarray(box, np.float64))
            scores.append(1.0)
        else:
            res = t.track(f)
            boxes.append(res.bbox)
            scores.append(res.score)
    return np.stack(boxes)[:, None], np.asarray(scores)[:, None]


def assert_equals_runtime(got, model, source, box, max_frames=None):
    """A result file read back (VideoResults) equals the single-process runtime, bit for bit."""
    boxes, scores = runtime_results(model, source, box, max_frames)
    np.testing.assert_array_equal(got.boxes, boxes)
    np.testing.assert_array_equal(got.scores, scores)


def kill_when_rows(part: Path, pid: int, min_bytes: int = 2000, timeout: float = 30.0) -> int:
    """SIGKILL ``pid`` once ``part`` (a .csv.part being written) holds ``min_bytes``; returns its lines then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < min_bytes):
        time.sleep(0.01)
    lines = part.read_text().count("\n") if part.exists() else 0
    os.kill(pid, signal.SIGKILL)
    return lines


def long_image_video(root: Path, bag_sequence: Path, name: str = "long", repeats: int = 2) -> Path:
    """An image-folder video of bag's frames ``repeats`` times (symlinks), long enough for a kill to land mid-video."""
    img = root / name / "img"
    img.mkdir(parents=True)
    frames = sorted((bag_sequence / "img").iterdir())
    for k, src in enumerate(frames * repeats):
        os.symlink(src, img / f"{k + 1:08d}.jpg")
    return img.parent
