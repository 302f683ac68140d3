"""Track a video end to end (what ``python runtime/track.py`` calls): frames in, one box line per frame out.

Output file: one line per frame, ``x,y,w,h,score`` per target (several targets: their groups follow each other on
the line); frame 0 is the given box with score 1. FPS counts the tracker's own time (crop + inference +
post-processing, init included), not decoding, drawing or writing — pysot tools/test.py's definition; the wall-clock
rate is reported beside it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import cv2
import numpy as np

from ..errors import InputError
from .tracker import Tracker, check_boxes
from .video import open_frames

LOG = logging.getLogger(__name__)
COLOURS = ((0, 255, 0), (0, 0, 255), (255, 0, 0), (0, 255, 255), (255, 0, 255), (255, 255, 0))


def parse_bbox(text: str) -> List[float]:
    """"x,y,w,h" → four floats (InputError otherwise)."""
    parts = [p for p in str(text).replace(" ", ",").split(",") if p]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) != 4:
        raise InputError(f"--bbox must be four numbers x,y,w,h, got {text!r}", fix="e.g. --bbox 316,140,112,115")
    return vals


@dataclass
class TrackRun:
    """What a tracking run produced (printed by the CLI)."""

    model: str
    backend: str
    backend_reason: str
    mode: str
    video: str
    frames: int
    targets: int
    tracker_seconds: float
    wall_seconds: float
    boxes: np.ndarray  # (frames, N, 4)
    scores: np.ndarray  # (frames, N)
    out: Optional[Path] = None
    save_video: Optional[Path] = None
    stage_seconds: Dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.tracker_seconds if self.tracker_seconds > 0 else float("inf")

    def summary(self) -> str:
        stages = ", ".join(f"{k} {1000 * v / max(self.frames - 1, 1):.2f} ms" for k, v in self.stage_seconds.items())
        lines = [f"tracked {self.frames} frames x {self.targets} target(s) of {self.video} with {self.model} "
                 f"[{self.backend}: {self.backend_reason}; mode {self.mode}]",
                 f"FPS: {self.fps:.1f} (tracker time, init included), {self.frames / self.wall_seconds:.1f} wall-clock "
                 f"(decode, draw and write included)",
                 f"per frame: {stages}"]
        if self.out:
            lines.append(f"boxes: {self.out}")
        if self.save_video:
            lines.append(f"video: {self.save_video}")
        return "\n".join(lines)


def _draw(frame: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    img = frame.copy()
    for i, ((x, y, w, h), s) in enumerate(zip(boxes, scores)):
        c = COLOURS[i % len(COLOURS)]
        p0, p1 = (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h)))
        cv2.rectangle(img, p0, p1, c, 2)
        cv2.putText(img, f"{s:.2f}", (p0[0], max(p0[1] - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, c, 1)
    return img


def track_video(model: Union[str, Path], video: Union[str, int, Path], bbox: Union[Sequence[float], np.ndarray],
                out: Optional[Union[str, Path]] = None, save_video: Optional[Union[str, Path]] = None,
                show: bool = False, backend: str = "auto", max_frames: Optional[int] = None,
                progress: bool = True, mode: Optional[str] = None, **backend_options: Any) -> TrackRun:
    """Track the box(es) through a video, camera or image folder.

    Args:
        model (str | Path): exported model directory.
        video (str | int | Path): video file, image folder or camera index.
        bbox: x,y,w,h of the target in frame 0, or an (N, 4) array for several targets.
        out (str | Path): text file for the boxes. Defaults to None (not written).
        save_video (str | Path): video with the boxes drawn (mp4v codec). Defaults to None.
        show (bool): display frames in a window (q / Esc stops). Defaults to False.
        backend (str): "auto", "onnxruntime" or "tensorrt". Defaults to "auto".
        max_frames (int): stop after this many frames. Defaults to None.
        progress (bool): tqdm progress bar. Defaults to True.
        mode (str): tracking mode, "short" | "longterm" | "distractor" | "longterm+distractor". Defaults to None
            (the model's default mode).
        **backend_options: e.g. threads=4.

    Raises:
        InputError: unreadable/empty video, bad bbox, unwritable output. ModelDirError: bad model directory.
    """
    if max_frames is not None and max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {max_frames}")
    tracker = Tracker.from_model_dir(model, backend=backend, mode=mode, **backend_options)
    src = open_frames(video, max_frames=max_frames)
    writer = None
    out_f = None
    bar = None
    try:
        boxes0, _ = check_boxes(bbox, src.size)
        n = len(boxes0)
        if show:
            if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
                # GTK/Qt builds may abort the process without a display; refuse cleanly instead.
                raise InputError("--show needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set",
                                 fix="drop --show and use --save-video out.mp4 (or run with a display / ssh -X)")
            try:
                cv2.namedWindow("siamtrt", cv2.WINDOW_NORMAL)
            except cv2.error as e:
                raise InputError("--show needs a display and an OpenCV build with GUI support",
                                 evidence=str(e).strip().splitlines()[-1][:200],
                                 fix="drop --show and use --save-video out.mp4, or pip install opencv-python") from None
        if out is not None:
            out = Path(out)
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                out_f = open(out, "w")
            except OSError as e:
                raise InputError(f"cannot write the box file {out}", evidence=str(e),
                                 fix="choose a writable --out path") from None
        if save_video is not None:
            save_video = Path(save_video)
            save_video.parent.mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(str(save_video), cv2.VideoWriter_fourcc(*"mp4v"), src.fps, src.size)
            if not writer.isOpened():
                raise InputError(f"cannot write the video {save_video}",
                                 evidence=f"cv2.VideoWriter (mp4v, {src.fps:.1f} fps, {src.size}) did not open",
                                 fix="use a .mp4 or .avi path in a writable folder")
        all_boxes: List[np.ndarray] = []
        all_scores: List[np.ndarray] = []
        stage: Dict[str, float] = {}
        t_track = 0.0
        frames = iter(src)
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=src.frame_count, unit="frame", desc="tracking", leave=False)
        with tracker:
            t_wall = time.perf_counter()  # sessions loaded; from here on: decode + track + draw + write
            for i, frame in enumerate(frames):
                t0 = time.perf_counter()
                if i == 0:
                    tracker.init(frame, boxes0)
                    b, s = boxes0.copy(), np.ones(n)
                else:
                    res = tracker.track(frame)
                    b, s = res.boxes, res.scores
                t_track += time.perf_counter() - t0
                if i > 0:
                    for k, v in tracker.last_timings.items():
                        stage[k] = stage.get(k, 0.0) + v
                all_boxes.append(b)
                all_scores.append(s)
                if out_f is not None:
                    out_f.write(",".join(f"{x:.2f},{y:.2f},{w:.2f},{h:.2f},{sc:.4f}"
                                         for (x, y, w, h), sc in zip(b, s)) + "\n")
                if writer is not None or show:
                    img = _draw(frame, b, s)
                    if writer is not None:
                        writer.write(img)
                    if show:
                        cv2.imshow("siamtrt", img)
                        if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                            break
                if bar is not None:
                    bar.update(1)
                    if i % 10 == 9 and t_track > 0:
                        bar.set_postfix(fps=f"{(i + 1) / t_track:.1f}")
            t_end = time.perf_counter()
    finally:
        if bar is not None:  # closed before any error line is printed (not drawn over the bar)
            bar.close()
        src.close()
        if out_f is not None:
            out_f.close()
        if writer is not None:
            writer.release()
        if show:
            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass
    return TrackRun(model=str(model), backend=tracker.backend.name, backend_reason=tracker.backend_reason,
                    mode=tracker.mode.name,
                    video=str(video), frames=len(all_boxes),
                    targets=n, tracker_seconds=t_track, wall_seconds=t_end - t_wall,
                    boxes=np.stack(all_boxes), scores=np.stack(all_scores), out=out, save_video=save_video,
                    stage_seconds=stage)
