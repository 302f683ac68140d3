"""Frame sources for the tracker: a video file, a camera index, or a folder of images (OTB ``img/`` layout too).

Every failure a user can cause — missing path, a file OpenCV cannot decode, a video with no frames, a camera that
does not open, a start frame past the end — is an InputError naming the path and the fix, raised when the source is
opened (not on frame 37). :class:`ReadAhead` decodes the next frame in a thread while the network runs on this one
(OpenCV's decoder and the inference libraries release the GIL), keeping at most two decoded frames in memory.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np

from ..errors import InputError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def check_frame_range(max_frames: Optional[int] = None, start_frame: int = 0) -> None:
    """The frame options every reader takes, refused before anything opens: ``max_frames`` ≥ 1, ``start_frame`` ≥ 0.

    Raises:
        InputError: either is out of range.
    """
    if max_frames is not None and max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {max_frames}")
    if start_frame < 0:
        raise InputError(f"--start-frame must be 0 or more, got {start_frame}")


class FrameSource:
    """Iterate BGR uint8 frames from a video, camera or image folder.

    Args:
        spec (str | int | Path): video path, image folder, or camera index ("0" counts as a camera index).
        max_frames (int): stop after this many frames. Defaults to None (all).
        start_frame (int): skip this many frames first (frame ``start_frame`` becomes the first). Defaults to 0.

    Attributes:
        kind (str): "video", "camera" or "images". fps (float): frames per second (30 when unknown).
        frame_count (int | None): frames this source yields, when known. first (np.ndarray): the first frame
        (frame ``start_frame``), read on open. start_frame (int): index of ``first`` in the source.
        decode_shortfall ((int, int) | None): after a pass over a video file that ended early, (frames decoded,
        frames its header announced): a truncated or damaged file.

    Raises:
        InputError: missing path, unreadable file, camera that will not open, zero frames, a start frame past
            the end, or ``max_frames`` < 1.
    """

    def __init__(self, spec: Union[str, int, Path], max_frames: Optional[int] = None, start_frame: int = 0):
        self.spec = spec
        self.max_frames = max_frames
        self.start_frame = int(start_frame)
        check_frame_range(max_frames, self.start_frame)
        self._cap = None
        self._files: List[Path] = []
        self.fps = 30.0
        self.frame_count: Optional[int] = None
        self.decode_shortfall: Optional[Tuple[int, int]] = None
        s = str(spec)
        if isinstance(spec, int) or s.isdigit():
            self.kind = "camera"
            self._open_capture(int(s), f"camera {s}")
        else:
            path = Path(s)
            if not path.exists():
                raise InputError(f"video {path} does not exist",
                                 fix="pass a video file, a folder of images, or a camera index such as 0")
            if path.is_dir():
                self.kind = "images"
                self._files = self._list_images(path)
                self._check_start(len(self._files), f"image folder {path}")
                self._files = self._files[self.start_frame:]
                self.frame_count = len(self._files)
            else:
                self.kind = "video"
                if path.stat().st_size == 0:
                    raise InputError(f"video {path} is empty (0 bytes)", fix="re-copy or re-encode the file")
                self._open_capture(str(path), f"video {path}")
        if self.max_frames is not None and self.frame_count is not None:
            self.frame_count = min(self.frame_count, self.max_frames)
        self.first = self._read_first()

    # ------------------------------------------------------------------------------------------------ opening
    def _open_capture(self, target: Union[int, str], label: str) -> None:
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            if self.kind == "camera":
                raise InputError(f"{label} cannot be opened by OpenCV",
                                 evidence=f"cv2.VideoCapture({target}).isOpened() is False; OpenCV {cv2.__version__}",
                                 fix=f"check that a camera is connected as index {target} (Linux: ls /dev/video*), "
                                     "that this user may read it (the video group) and that no other program holds "
                                     "it; or pass a video file or image folder")
            raise InputError(f"{label} cannot be opened by OpenCV",
                             evidence=f"cv2.VideoCapture({target!r}).isOpened() is False; OpenCV {cv2.__version__}",
                             fix="check the file, or convert the video to H.264 MP4 or MJPEG AVI "
                                 "(ffmpeg -i in.xxx out.mp4)")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        if fps and np.isfinite(fps) and fps > 0:
            self.fps = float(fps)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._label = label
        if self.kind == "video" and n > 0:
            self._check_start(n, label)
        for skipped in range(self.start_frame):  # read, not seek: CAP_PROP_POS_FRAMES lands on key frames
            if not cap.grab():
                cap.release()
                self._cap = None
                raise InputError(f"--start-frame {self.start_frame} is past the end of {label}",
                                 evidence=f"only {skipped} frames could be read", fix="choose a smaller --start-frame")
        self.frame_count = max(n - self.start_frame, 0) if n > 0 and self.kind == "video" else None

    def _check_start(self, n: int, label: str) -> None:
        if self.start_frame >= n:
            raise InputError(f"--start-frame {self.start_frame} is past the end of {label}",
                             evidence=f"it has {n} frames (0..{n - 1})", fix=f"choose a --start-frame below {n}")

    @staticmethod
    def _list_images(path: Path) -> List[Path]:
        folder = path / "img" if (path / "img").is_dir() else path
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise InputError(f"image folder {folder} holds no images",
                             evidence=f"looked for {', '.join(IMAGE_EXTS)}",
                             fix="pass a folder of frames (or an OTB sequence folder with img/), or a video file")
        return files

    def _read_image(self, p: Path) -> np.ndarray:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"image {p} cannot be decoded", fix="remove or re-save the file")
        first = getattr(self, "first", None)
        if first is not None and img.shape != first.shape:
            raise InputError(f"image {p} is {img.shape[1]}x{img.shape[0]}, the sequence's first frame "
                             f"{first.shape[1]}x{first.shape[0]}: boxes in one frame's pixels mean nothing in "
                             "another's",
                             evidence=f"first frame {self._files[0].name}",
                             fix="give every frame of the folder one size (e.g. resize them with OpenCV or ffmpeg)")
        return img

    def _read_first(self) -> np.ndarray:
        if self.kind == "images":
            return self._read_image(self._files[0])
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self.close()
            raise InputError(f"{self._label} has no readable frames",
                             evidence="the first cv2.VideoCapture.read() returned nothing"
                                      + (f" (after skipping {self.start_frame} frames)" if self.start_frame else ""),
                             fix="check the camera (another program may hold it)" if self.kind == "camera" else
                             "check that the file is a complete, supported video (ffprobe FILE)")
        return frame

    # ----------------------------------------------------------------------------------------------- reading
    @property
    def size(self) -> Tuple[int, int]:
        """(width, height) of the frames."""
        return self.first.shape[1], self.first.shape[0]

    def __iter__(self) -> Iterator[np.ndarray]:
        """Frames from the first one (already read on open), then the rest; one pass only."""
        limit = self.max_frames if self.max_frames is not None else float("inf")
        if limit < 1:
            return
        yield self.first
        count = 1
        if self.kind == "images":
            for p in self._files[1:]:
                if count >= limit:
                    break
                yield self._read_image(p)
                count += 1
            return
        while count < limit:
            ok, frame = self._cap.read()
            if not ok or frame is None:
                if self.kind == "video" and self.frame_count is not None and count < self.frame_count - 1:
                    self.decode_shortfall = (count, self.frame_count)  # one short: containers' counts may round
                break
            yield frame
            count += 1
        self.close()

    def __len__(self) -> int:
        if self.frame_count is None:
            raise TypeError("frame count unknown (camera or stream)")
        return self.frame_count

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_frames(spec: Union[str, int, Path], max_frames: Optional[int] = None, start_frame: int = 0) -> FrameSource:
    """Open a video file, camera index or image folder (see :class:`FrameSource`)."""
    return FrameSource(spec, max_frames=max_frames, start_frame=start_frame)


_END = object()


class ReadAhead:
    """Iterate ``frames`` while a thread decodes the next one (one-frame read-ahead; at most two frames held).

    The consumer gets the frames in order and unchanged. An error in the reader is raised in the consumer at the
    frame where it happened; :meth:`close` (or leaving the ``with`` block, e.g. on Ctrl-C) stops the reader before
    the source is closed.

    Args:
        frames (Iterable[np.ndarray]): the frame iterator (e.g. a :class:`FrameSource`), consumed by the thread only.
    """

    def __init__(self, frames: Iterable[np.ndarray]):
        self._frames = frames
        self._q: "queue.Queue" = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="siamtrt-read-ahead", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for frame in self._frames:
                if not self._put(frame):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            self._put(_Failure(e))
            return
        self._put(_END)

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            item = self._q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        """Stop the reader thread and wait for it (idempotent)."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._q.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(0.05)

    def __enter__(self) -> "ReadAhead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error
