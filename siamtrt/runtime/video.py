"""Frame sources for the tracker: a video file, a camera index, or a folder of images (OTB ``img/`` layout too).

Every failure a user can cause — missing path, a file OpenCV cannot decode, a video with no frames, a camera that
does not open — is an InputError naming the path and the fix, raised when the source is opened (not on frame 37).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np

from ..errors import InputError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class FrameSource:
    """Iterate BGR uint8 frames from a video, camera or image folder.

    Args:
        spec (str | int | Path): video path, image folder, or camera index ("0" counts as a camera index).
        max_frames (int): stop after this many frames. Defaults to None (all).

    Attributes:
        kind (str): "video", "camera" or "images". fps (float): frames per second (30 when unknown).
        frame_count (int | None): number of frames when known. first (np.ndarray): frame 0, read on open.

    Raises:
        InputError: missing path, unreadable file, camera that will not open, or zero frames.
    """

    def __init__(self, spec: Union[str, int, Path], max_frames: Optional[int] = None):
        self.spec = spec
        self.max_frames = max_frames
        self._cap = None
        self._files: List[Path] = []
        self.fps = 30.0
        self.frame_count: Optional[int] = None
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
            raise InputError(f"{label} cannot be opened by OpenCV",
                             evidence=f"cv2.VideoCapture({target!r}).isOpened() is False; OpenCV {cv2.__version__}",
                             fix="check the path / device, or convert the video to H.264 MP4 or MJPEG AVI "
                                 "(ffmpeg -i in.xxx out.mp4)")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        if fps and np.isfinite(fps) and fps > 0:
            self.fps = float(fps)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = n if n > 0 and self.kind == "video" else None
        self._label = label

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
        return img

    def _read_first(self) -> np.ndarray:
        if self.kind == "images":
            return self._read_image(self._files[0])
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self.close()
            raise InputError(f"{self._label} has no readable frames",
                             evidence="the first cv2.VideoCapture.read() returned nothing",
                             fix="check that the file is a complete, supported video (ffprobe FILE)")
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


def open_frames(spec: Union[str, int, Path], max_frames: Optional[int] = None) -> FrameSource:
    """Open a video file, camera index or image folder (see :class:`FrameSource`)."""
    return FrameSource(spec, max_frames=max_frames)
