"""Track a video end to end (what ``siamtrt track`` / ``python runtime/track.py`` call): frames in, boxes out.

:func:`track_video` runs its steps in the order that reports a user's mistake soonest, each step one function:

1. :func:`check_request` — names and numbers (backend, mode, format, frame counts) and every output path, before
   anything is opened or written;
2. the frames (:func:`siamtrt.runtime.video.open_frames`, first frame decoded) and the initial boxes, checked against
   that frame or drawn on it (:func:`select_box`, when ``bbox`` is None and ``show`` is on);
3. the tracker (model directory read and checked; sessions load when the loop starts);
4. the outputs (:class:`TrackOutputs`: the box file as ``NAME.part`` rows flushed per frame, the drawn video under
   ``NAME.part.<ext>``, the window), renamed into place only when the run completes;
5. the frame loop (:func:`_loop`), with the next frame decoded in a thread while the network runs.

An interrupted run (Ctrl-C, SIGTERM) keeps every frame tracked so far in the ``.part`` files and raises
:class:`~siamtrt.errors.Interrupted` saying so; an existing ``--out`` file is replaced only by a complete new one.
A frame's box row and its video frame are written together (a stop signal waits for both), and so are the renames
that complete a run. A run never starts over the ``.part`` files an earlier one left (they are refused, not
overwritten), and a drawn video is checked readable, frame count and all, before it takes its final name: OpenCV's
writer reports no error when the disk fills up. A write that fails (disk full, folder removed) is an
:class:`~siamtrt.errors.OutputError` naming what was kept.
Box files are written by :class:`~siamtrt.runtime.boxes.BoxWriter` (txt | csv | mot | json; ``-`` is stdout).
FPS counts the tracker's own time (crop + inference + post-processing, init included), not decoding, drawing or
writing — pysot tools/test.py's definition; the wall-clock rate is reported beside it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..errors import InputError, Interrupted, OutputError, SiamtrtError
from ..outputs import check_writable, deferred_interrupt, output_error, part_path, refuse_binary
from ..progress import progress_bar
from .backends import ALIASES, BACKENDS, backend_class
from .boxes import BoxWriter, box_format_for
from .modes import parse_mode
from .tracker import Tracker, check_boxes
from .video import FrameSource, ReadAhead, check_frame_range, open_frames

LOG = logging.getLogger(__name__)
COLOURS = ((0, 255, 0), (0, 0, 255), (255, 0, 0), (0, 255, 255), (255, 0, 255), (255, 255, 0))
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")
WINDOW = "siamtrt"


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
    boxes: Optional[np.ndarray]  # (frames, N, 4); None when the run was asked not to keep them (keep_results)
    scores: Optional[np.ndarray]  # (frames, N); likewise
    out: Optional[Path] = None
    save_video: Optional[Path] = None
    stage_seconds: Dict[str, float] = field(default_factory=dict)
    weights: str = "unknown"
    untrained: bool = False
    start_frame: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.tracker_seconds if self.tracker_seconds > 0 else float("inf")

    def summary(self) -> str:
        stages = ", ".join(f"{k} {1000 * v / max(self.frames - 1, 1):.2f} ms" for k, v in self.stage_seconds.items())
        start = f" from frame {self.start_frame}" if self.start_frame else ""
        lines = [f"tracked {self.frames} frames x {self.targets} target(s) of {self.video}{start} with {self.model} "
                 f"[{self.backend}: {self.backend_reason}; mode {self.mode}] [weights: {self.weights}"
                 f"{' — UNTRAINED' if self.untrained else ''}]",
                 f"FPS: {self.fps:.1f} (tracker time, init included), "
                 f"{self.frames / max(self.wall_seconds, 1e-9):.1f} wall-clock (decode, draw and write included)",
                 f"per frame: {stages}"]
        if self.out:
            lines.append(f"boxes: {self.out}")
        if self.save_video:
            lines.append(f"video: {self.save_video}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ 1. the request
def check_request(out: Optional[Union[str, Path]] = None, save_video: Optional[Union[str, Path]] = None,
                  fmt: Optional[str] = None, backend: str = "auto", mode: Optional[str] = None,
                  max_frames: Optional[int] = None, start_frame: int = 0, show: bool = False,
                  video: Optional[Union[str, int, Path]] = None, model: Optional[Union[str, Path]] = None) -> str:
    """Check everything that needs no file opened and no model loaded; returns the box format to write.

    Raises:
        InputError: bad numbers, unknown format or mode, outputs that cannot be written (a directory, one of the
            job's inputs — the video or a file of the model directory —, an existing binary file, named twice, also
            by way of their ``.part`` names, or whose ``.part`` file an earlier run left), ``--show`` without a
            display.
        BackendError: unknown backend name (the closest valid one suggested).
    """
    check_frame_range(max_frames, start_frame)
    if backend != "auto" and ALIASES.get(backend, backend) not in BACKENDS:
        backend_class(backend)  # raises: unknown name, with the closest valid one
    if mode is not None:
        parse_mode(mode)
    fmt = box_format_for(out, fmt)
    if save_video is not None and Path(save_video).suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"--save-video {save_video}: OpenCV picks the container from the file name's suffix",
                         evidence=f"suffix {Path(save_video).suffix or '(none)'!r}; "
                                  f"written: {', '.join(VIDEO_SUFFIXES)}",
                         fix="end the name with .mp4 (or .avi)")
    inputs = [video] + (sorted(p for p in Path(model).iterdir() if p.is_file()) if model and Path(model).is_dir()
                        else [])
    check_writable([out, save_video], what=["--out", "--save-video"], inputs=inputs,
                   partials=_partial_outputs(out, save_video))
    if out is not None and str(out) != "-":
        refuse_binary(out)
    if show:
        _check_display()
    return fmt


def _check_display() -> None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        # GTK/Qt builds may abort the process without a display; refuse cleanly instead.
        raise InputError("--show needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set",
                         fix="drop --show and use --save-video out.mp4 (or run with a display / ssh -X)")


# --------------------------------------------------------------------------------------------- 2. initial boxes
def select_box(frame: np.ndarray) -> np.ndarray:
    """Let the user draw the target on ``frame`` (OpenCV's ROI selector, as pysot's demo does): drag, then Enter.

    Raises:
        InputError: no GUI in this OpenCV build, or the selection was cancelled (empty box).
    """
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
        x, y, w, h = cv2.selectROI(WINDOW, frame, showCrosshair=True, fromCenter=False)
    except cv2.error as e:
        raise InputError("drawing the box needs an OpenCV build with GUI support",
                         evidence=str(e).strip().splitlines()[-1][:200],
                         fix="pass --bbox x,y,w,h, or pip install opencv-python (not -headless)") from None
    if w <= 0 or h <= 0:
        raise InputError("no box was drawn on the first frame (selection cancelled)",
                         fix="drag a box around the target and press Enter or Space, or pass --bbox x,y,w,h")
    LOG.info("runtime: box drawn on the first frame: --bbox %d,%d,%d,%d", x, y, w, h)
    return np.asarray([[x, y, w, h]], np.float64)


def initial_boxes(bbox: Optional[Union[Sequence[float], np.ndarray]], src: FrameSource, show: bool) -> np.ndarray:
    """The (N, 4) boxes of the first frame: ``bbox`` checked against it, or drawn on it when ``show`` is on.

    Raises:
        InputError: no box and no window to draw one, or a box outside / degenerate in the frame.
    """
    if bbox is None:
        if not show:
            raise InputError("no target box given", fix="pass --bbox x,y,w,h, or --show to draw it on the first frame")
        bbox = select_box(src.first)
    return check_boxes(bbox, src.size)[0]


# ------------------------------------------------------------------------------------------------- 4. outputs
def _draw(frame: np.ndarray, boxes: np.ndarray, scores: np.ndarray, lost: Optional[np.ndarray] = None) -> np.ndarray:
    img = frame.copy()
    for i, ((x, y, w, h), s) in enumerate(zip(boxes, scores)):
        c = COLOURS[i % len(COLOURS)]
        p0, p1 = (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h)))
        cv2.rectangle(img, p0, p1, c, 2)
        label = f"{s:.2f}" + (" lost" if lost is not None and lost[i] else "")
        cv2.putText(img, label, (p0[0], max(p0[1] - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, c, 1)
    return img


def partial_video_path(path: Path) -> Path:
    """``out.mp4`` → ``out.part.mp4``: the drawn video until the run completes (OpenCV needs the real suffix)."""
    return path.with_name(f"{path.stem}.part{path.suffix}")


def _partial_outputs(out, save_video) -> List[Tuple[Path, str]]:
    """(path, what) of the files the outputs are written as until the run completes."""
    found = []
    if out is not None and str(out) != "-":
        found.append((part_path(out), "--out's partial file"))
    if save_video is not None:
        found.append((partial_video_path(Path(save_video)), "--save-video's partial file"))
    return found


_WARNED_UNTRAINED: set = set()


def _warn_untrained(info) -> None:
    """The untrained-weights warning, once per weights and process (it names them): a report tracks the same models
    over and over, and an FP32 directory and its FP16 / INT8 copies carry the same weights (it printed the warning
    five times, then once per directory)."""
    if info.untrained_warning and info.untrained_warning not in _WARNED_UNTRAINED:
        _WARNED_UNTRAINED.add(info.untrained_warning)
        LOG.warning("%s", info.untrained_warning)


def _readable_frames(path: Path) -> int:
    """Frames OpenCV can read back from a video file by its header (0 when it does not open)."""
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
    finally:
        cap.release()


class TrackOutputs:
    """The box file, the drawn video and the window of one run: opened together, completed or abandoned together.

    Args:
        out (str | Path | None): box file ("-" = stdout). fmt (str): its format.
        save_video (str | Path | None): drawn video. fps (float), size ((w, h)): of the source.
        show (bool): display the frames (q / Esc stops the run, which then completes normally).

    Raises:
        InputError: the video writer does not open (nothing has been written then: the box file is opened after it).
    """

    def __init__(self, out: Optional[Union[str, Path]], fmt: str, save_video: Optional[Union[str, Path]],
                 fps: float, size: Tuple[int, int], show: bool):
        self.video_path = Path(save_video) if save_video is not None else None
        self.video = None
        self.frames = 0
        self.boxes: Optional[BoxWriter] = None
        self.show = show
        if self.video_path is not None:
            tmp = partial_video_path(self.video_path)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            self.video = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
            if not self.video.isOpened():
                self.video.release()
                tmp.unlink(missing_ok=True)
                raise InputError(f"cannot write the video {self.video_path}",
                                 evidence=f"cv2.VideoWriter (mp4v, {fps:.1f} fps, {size}) did not open",
                                 fix="use a .mp4 or .avi path in a writable folder")
        if show:
            try:
                cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
            except cv2.error as e:
                self.abandon()
                raise InputError("--show needs a display and an OpenCV build with GUI support",
                                 evidence=str(e).strip().splitlines()[-1][:200],
                                 fix="drop --show and use --save-video out.mp4, or pip install opencv-python") from None
        if out is not None:
            self.boxes = BoxWriter(out, fmt)

    def write(self, index: int, frame: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
              lost: Optional[np.ndarray] = None) -> bool:
        """Record one frame (row on disk, video frame written: both or, interrupted before, neither); returns False
        when the user asked to stop (q / Esc)."""
        img = _draw(frame, boxes, scores, lost) if self.video is not None or self.show else None
        with deferred_interrupt():
            if self.boxes is not None:
                self.boxes.write(index, boxes, scores)
            if self.video is not None:
                self.video.write(img)
            self.frames += 1
        if self.show:
            cv2.imshow(WINDOW, img)
            if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                return False
        return True

    def commit(self) -> Tuple[Optional[Path], Optional[Path]]:
        """Complete every output (rename into place, a stop signal waiting until all are); returns (box file, video).

        Raises:
            OutputError: the drawn video cannot be read back whole (the box file is completed first) or a rename
                failed.
        """
        with deferred_interrupt():
            bad_video = self._finish_video()
            out = self.boxes.commit() if self.boxes is not None else None
            if self.video_path is not None and bad_video is None:
                tmp = partial_video_path(self.video_path)
                try:
                    os.replace(tmp, self.video_path)
                except OSError as e:
                    raise output_error(self.video_path, e, kept=f"the video is in {tmp}") from None
        self._close_window()
        if bad_video is not None:
            raise OutputError(f"the drawn video {self.video_path} could not be completed"
                              + (f"; the boxes are complete in {out}" if out else ""), evidence=bad_video,
                              fix="free disk space or write the video to another folder, then run again")
        return out, self.video_path

    def _finish_video(self) -> Optional[str]:
        """Release the video writer and read the file back; returns why it is not whole, None when it is."""
        if self.video is None:
            return None
        self.video.release()
        self.video = None
        tmp = partial_video_path(self.video_path)
        readable = _readable_frames(tmp)
        if readable == self.frames:
            return None
        return (f"{tmp} reads back {readable} of the {self.frames} frames written (OpenCV's writer reports no "
                "error when a write fails, e.g. on a full disk)")

    def abandon(self) -> str:
        """Close everything without completing it; returns where the partial results are, for the message.

        Outputs that received no frame are removed (a run that failed before its first frame leaves nothing).
        """
        where = []
        frames = self.frames
        if self.boxes is not None:
            part = self.boxes.close()
            if frames == 0 and part is not None:
                part.unlink(missing_ok=True)
            elif part is not None or self.boxes.where == "stdout":
                where.append(f"boxes so far in {self.boxes.where}")
        if self.video is not None:
            bad_video = self._finish_video()
            tmp = partial_video_path(self.video_path)
            if frames == 0:
                tmp.unlink(missing_ok=True)
            elif bad_video is None:
                where.append(f"video so far in {tmp}")
            else:
                where.append(f"the video so far could not be completed ({bad_video})")
        self._close_window()
        return "; ".join(where) or ("no frame was tracked" if frames == 0 else "no output was requested")

    def _close_window(self) -> None:
        if self.show:
            self.show = False
            try:
                cv2.destroyAllWindows()
            except cv2.error:
                pass


# ----------------------------------------------------------------------------------------------------- 5. loop
@dataclass
class _LoopState:
    boxes: Optional[List[np.ndarray]] = None  # every frame's boxes / scores, kept only when asked (keep_results)
    scores: Optional[List[np.ndarray]] = None
    stage: Dict[str, float] = field(default_factory=dict)
    tracker_seconds: float = 0.0


def _postfix(res, state: _LoopState, i: int) -> Dict[str, str]:
    post = {"fps": f"{(i + 1) / state.tracker_seconds:.1f}"} if state.tracker_seconds > 0 else {}
    if res is not None and res.mode.startswith("longterm"):  # the long-term state a user watches for
        n_lost = int(np.count_nonzero(res.lost))
        post["lost"] = f"{n_lost}/{len(res.lost)}"
        post["search"] = "global" if n_lost else "local"
        post["size"] = str(int(np.max(res.instance_size)))
    return post


def _loop(tracker: Tracker, frames, boxes0: np.ndarray, outputs: TrackOutputs, first_index: int, bar,
          state: _LoopState) -> None:
    """Init on the first frame, track the rest; each frame's boxes go to the outputs as soon as they exist."""
    res = None
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        if i == 0:
            tracker.init(frame, boxes0)
            b, s, lost = boxes0.copy(), np.ones(len(boxes0)), None
        else:
            res = tracker.track(frame)
            b, s, lost = res.boxes, res.scores, res.lost
        state.tracker_seconds += time.perf_counter() - t0
        if i > 0:
            for k, v in tracker.last_timings.items():
                state.stage[k] = state.stage.get(k, 0.0) + v
        keep_going = outputs.write(first_index + i, frame, b, s, lost)
        if state.boxes is not None:
            state.boxes.append(b)
            state.scores.append(s)
        if bar is not None:
            bar.update(1)
            if i % 10 == 9 or (res is not None and res.mode.startswith("longterm")):
                bar.set_postfix(_postfix(res, state, i))
        if not keep_going:
            break


# ---------------------------------------------------------------------------------------------- track_video
def track_video(model: Union[str, Path], video: Union[str, int, Path],
                bbox: Optional[Union[Sequence[float], np.ndarray]] = None,
                out: Optional[Union[str, Path]] = None, save_video: Optional[Union[str, Path]] = None,
                show: bool = False, backend: str = "auto", max_frames: Optional[int] = None,
                progress: bool = True, mode: Optional[str] = None, fmt: Optional[str] = None,
                start_frame: int = 0, read_ahead: bool = True, progress_desc: Optional[str] = None,
                keep_results: bool = True, **backend_options: Any) -> TrackRun:
    """Track the box(es) through a video, camera or image folder.

    Args:
        model (str | Path): exported model directory.
        video (str | int | Path): video file, image folder or camera index.
        bbox: x,y,w,h of the target in the first frame, or an (N, 4) array for several targets. Defaults to None:
            drawn on the first frame (needs ``show``).
        out (str | Path): box file ("-" = stdout). Defaults to None (not written).
        save_video (str | Path): video with the boxes drawn (mp4v codec). Defaults to None.
        show (bool): display frames in a window (q / Esc stops). Defaults to False.
        backend (str): "auto", "onnxruntime" or "tensorrt". Defaults to "auto".
        max_frames (int): stop after this many frames. Defaults to None.
        progress (bool): progress line (tqdm on a terminal, plain lines in a log). Defaults to True.
        progress_desc (str): the progress line's job and phase (a caller's, e.g. "report: tracking INT8 (2/3)").
            Defaults to "track <video name>".
        mode (str): "short" | "longterm" | "distractor" | "longterm+distractor". Defaults to None (the model's).
        fmt (str): box file format, "txt" | "csv" | "mot" | "json". Defaults to None (from ``out``'s suffix, else
            txt).
        start_frame (int): first frame to track (the box is given in it). Defaults to 0.
        read_ahead (bool): decode the next frame in a thread while the network runs. Defaults to True.
        keep_results (bool): keep every frame's boxes and scores in memory for ``TrackRun.boxes`` / ``.scores``
            (about 280 bytes a frame per target: unbounded on a live stream). False keeps nothing per frame (the
            rows go to ``out`` only; ``boxes`` / ``scores`` are None), as ``siamtrt track`` runs. Defaults to True.
        **backend_options: e.g. threads=4.

    Raises:
        InputError: bad request, unreadable/empty video, bad bbox, unwritable output. ModelDirError: bad model
        directory. BackendError: unknown or unavailable backend. Interrupted: Ctrl-C / SIGTERM during the run (its
        message says where the frames tracked so far are).
    """
    fmt = check_request(out, save_video, fmt, backend, mode, max_frames, start_frame, show, video, model)
    src = open_frames(video, max_frames=max_frames, start_frame=start_frame)
    tracker = None
    try:
        boxes0 = initial_boxes(bbox, src, show)
        tracker = Tracker.from_model_dir(model, backend=backend, mode=mode, **backend_options)
        tracker.backend.activate()  # a backend that cannot run here is refused before any warning or output
        _warn_untrained(tracker.info)
        outputs = TrackOutputs(out, fmt, save_video, src.fps, src.size, show)
    except BaseException:
        src.close()
        if tracker is not None:
            tracker.close()
        raise
    state = _LoopState(boxes=[], scores=[]) if keep_results else _LoopState()
    bar = None
    frames = None
    interrupted = False
    failure: Optional[SiamtrtError] = None
    try:
        with tracker:
            t_wall = time.perf_counter()  # sessions loaded; from here on: decode + track + draw + write
            bar = progress_bar(src.frame_count, progress_desc or f"track {Path(str(video)).name}", "frame", progress,
                               leave=False)
            frames = ReadAhead(src) if read_ahead else iter(src)
            _loop(tracker, frames, boxes0, outputs, src.start_frame, bar, state)
            t_end = time.perf_counter()
    except KeyboardInterrupt:
        interrupted = True
    except SiamtrtError as e:  # a frame that cannot be decoded, a write that failed: say what was kept
        failure = e
    except BaseException:
        outputs.abandon()
        raise
    finally:
        if bar is not None:  # closed before any message is printed (not drawn over the bar)
            bar.close()
        if isinstance(frames, ReadAhead):
            frames.close()
        src.close()
    if interrupted:
        where = outputs.abandon()
        raise Interrupted(f"interrupted after {outputs.frames} frames; {where}")
    if failure is not None:
        where = outputs.abandon()
        raise type(failure)(f"{failure.what} (stopped after {outputs.frames} frames; {where})", failure.evidence,
                            failure.fix) from None
    if src.decode_shortfall:
        LOG.warning("%s: decoded %d of the %d frames its header announces; the rest could not be decoded (a "
                    "truncated or damaged file?); the results cover the frames decoded", video, *src.decode_shortfall)
    out_path, video_path = outputs.commit()
    n = len(boxes0)
    boxes = scores = None
    if state.boxes is not None:
        boxes = np.stack(state.boxes) if state.boxes else np.zeros((0, n, 4))
        scores = np.stack(state.scores) if state.scores else np.zeros((0, n))
    return TrackRun(model=str(model), backend=tracker.backend.name, backend_reason=tracker.backend_reason,
                    mode=tracker.mode.name, video=str(video), frames=outputs.frames, targets=n,
                    tracker_seconds=state.tracker_seconds, wall_seconds=t_end - t_wall, boxes=boxes, scores=scores,
                    out=out_path if out is not None and str(out) != "-" else None, save_video=video_path,
                    stage_seconds=state.stage, weights=tracker.info.weights_line,
                    untrained=bool(tracker.info.untrained_warning), start_frame=src.start_frame)


__all__ = ["TrackOutputs", "TrackRun", "check_request", "initial_boxes", "parse_bbox", "partial_video_path",
           "select_box", "track_video"]
