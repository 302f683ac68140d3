"""Evaluation sequences as a user's dataset holds them: OTB folders, VOT polygons, or a video plus a ground-truth file.

Layouts read:
- **OTB**: ``<seq>/img/*.jpg|png`` + ``<seq>/groundtruth_rect.txt`` (``x,y,w,h`` per line; commas, tabs or spaces).
- **VOT**: ``<seq>/groundtruth.txt`` with 8 values per line (polygon corners), frames in ``img/``, ``color/`` or the
  folder itself. Polygons become axis-aligned boxes with :func:`polygon_to_rect` (``minmax`` by default — the same
  conversion that produced ``bag/groundtruth_rect.txt`` — or pysot's area-preserving ``area``).
- **dataset root**: a folder whose sub-folders are sequences (sorted by name).
- **video**: any file OpenCV reads, with a ground-truth file given explicitly or found beside it
  (``<video>.txt``, ``<stem>.txt``, ``<stem>_gt.txt``, ``<stem>_groundtruth.txt``, ``groundtruth_rect.txt``,
  ``groundtruth.txt``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence as Seq, Tuple, Union

import numpy as np

from ..errors import InputError
from .boxes import polygon_to_rect, read_box_file

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTS = (".avi", ".mp4", ".mkv", ".mov", ".mpg", ".mpeg", ".webm", ".m4v")
OTB_GT = "groundtruth_rect.txt"
VOT_GT = "groundtruth.txt"
FRAME_DIRS = ("img", "color", "imgs", "images")


@dataclass
class Sequence:
    """One evaluation sequence: frames (image files or a video) plus axis-aligned ground truth."""

    name: str
    gt: np.ndarray  # [N, 4] x, y, w, h
    frames: Optional[List[Path]] = None  # image files, or None for a video
    video: Optional[Path] = None
    polygons: Optional[np.ndarray] = None  # [N, 8] when the source had them
    source: str = ""
    gt_file: Optional[Path] = None  # the ground-truth file read
    folder: Optional[Path] = None  # the sequence folder (folder sequences)

    def input_files(self) -> List[Path]:
        """The files this sequence is read from (ground truth, video): outputs must never replace them."""
        return [p for p in (self.gt_file, self.video) if p is not None]

    def input_dirs(self) -> List[Path]:
        """The folders this sequence is read from (the sequence folder): outputs must not be written into them."""
        return [self.folder] if self.folder is not None else []

    def __len__(self) -> int:
        return len(self.gt)

    @property
    def init_box(self) -> np.ndarray:
        return self.gt[0].copy()

    def iter_frames(self, limit: Optional[int] = None) -> Iterator[np.ndarray]:
        """Yield BGR uint8 frames in order (at most ``limit``)."""
        import cv2

        n = len(self) if limit is None else min(limit, len(self))
        if self.frames is not None:
            for p in self.frames[:n]:
                img = cv2.imread(str(p), cv2.IMREAD_COLOR)
                if img is None:
                    raise InputError(f"cannot decode image {p}", fix="check the file (truncated or not an image?)")
                yield img
            return
        from ..runtime.video import FrameSource  # the runtime's reader: same decoding, same errors

        count = 0
        with FrameSource(self.video, max_frames=n) as src:
            for img in src:
                count += 1
                yield img
        if count < n:
            raise InputError(f"{self.video}: could only decode {count} of {n} frames",
                             evidence=f"ground truth has {len(self)} lines",
                             fix="the ground-truth file must have one line per decodable frame")


def _frame_files(folder: Path) -> List[Path]:
    for sub in FRAME_DIRS:
        if (folder / sub).is_dir():
            folder = folder / sub
            break
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


def _gt_from_values(vals: np.ndarray, polygon_mode: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    if vals.shape[1] == 8:
        return polygon_to_rect(vals, polygon_mode), vals
    return vals, None


def load_folder_sequence(folder: Union[str, Path], polygon_mode: str = "minmax",
                         gt_file: Optional[Union[str, Path]] = None) -> Sequence:
    """Read an OTB- or VOT-layout sequence folder (``groundtruth_rect.txt`` preferred over ``groundtruth.txt``).

    Raises:
        InputError: no frames, no ground truth, or a frame count that differs from the ground-truth lines.
    """
    folder = Path(folder)
    frames = _frame_files(folder)
    if not frames:
        raise InputError(f"{folder}: no image frames found",
                         evidence=f"looked in {folder} and its {'/'.join(FRAME_DIRS)} sub-folders for {IMAGE_EXTS}",
                         fix="use the OTB layout: <seq>/img/00000001.jpg ... plus groundtruth_rect.txt")
    if gt_file is None:
        gt_file = find_gt(folder)
        if gt_file is None:
            raise InputError(f"{folder}: no ground-truth file", evidence=f"looked for {OTB_GT} and {VOT_GT}",
                             fix="add groundtruth_rect.txt (x,y,w,h per frame)")
    vals = read_box_file(gt_file, polygon=None)
    polys = None
    if vals.shape[1] == 4 and Path(gt_file).name == OTB_GT and (folder / VOT_GT).is_file():
        other = read_box_file(folder / VOT_GT, polygon=None)
        polys = other if other.shape == (len(vals), 8) else None
    gt, p8 = _gt_from_values(vals, polygon_mode)
    if len(frames) != len(gt):
        raise InputError(f"{folder}: {len(frames)} frames but {len(gt)} ground-truth lines in {Path(gt_file).name}",
                         fix="the sequence needs one ground-truth line per frame (trim the extra frames or lines)")
    return Sequence(name=folder.name, gt=gt, frames=frames, polygons=p8 if p8 is not None else polys,
                    source=str(folder), gt_file=Path(gt_file), folder=folder)


def find_gt(path: Path) -> Optional[Path]:
    """The ground-truth file of a sequence folder (``groundtruth_rect.txt``, else ``groundtruth.txt``) or the one
    conventionally stored beside a video, if any."""
    path = Path(path)
    if path.is_dir():
        cands = [path / OTB_GT, path / VOT_GT]
    else:
        stem = path.with_suffix("")
        cands = [Path(str(path) + ".txt"), stem.with_suffix(".txt"), Path(f"{stem}_gt.txt"),
                 Path(f"{stem}_groundtruth.txt"), path.parent / OTB_GT, path.parent / VOT_GT]
    return next((c for c in cands if c.is_file()), None)


def load_video_sequence(video: Union[str, Path], gt_file: Optional[Union[str, Path]] = None,
                        polygon_mode: str = "minmax") -> Sequence:
    """A video file plus its ground-truth file (found beside the video when not given).

    The frame count is checked lazily while decoding (containers often misreport it).

    Raises:
        InputError: missing video or ground truth.
    """
    video = Path(video)
    if not video.is_file():
        raise InputError(f"video {video} does not exist", fix="pass an existing video file")
    gt_path = Path(gt_file) if gt_file is not None else find_gt(video)
    if gt_path is None:
        raise InputError(f"no ground-truth file for {video}",
                         evidence=f"looked for {video.name}.txt, {video.stem}.txt, {video.stem}_gt.txt, "
                                  f"{OTB_GT}, {VOT_GT} beside it",
                         fix=f"pass one: --sequence {video}:path/to/gt.txt")
    gt, p8 = _gt_from_values(read_box_file(gt_path, polygon=None), polygon_mode)
    return Sequence(name=video.stem, gt=gt, video=video, polygons=p8, source=f"{video} + {gt_path}",
                    gt_file=gt_path)


def _is_sequence_folder(p: Path) -> bool:
    return (p / OTB_GT).is_file() or (p / VOT_GT).is_file()


def load_sequences(specs: Seq[Union[str, Path]], polygon_mode: str = "minmax") -> List[Sequence]:
    """Resolve user arguments into sequences.

    Each spec is a sequence folder, a dataset root (sub-folders that are sequences), a video (ground truth found
    beside it) or ``VIDEO:GT_FILE``.

    Raises:
        InputError: a spec that is none of these, or duplicate sequence names.
    """
    out: List[Sequence] = []
    for spec in specs:
        s = str(spec)
        gt = None
        if not Path(s).exists() and ":" in s:
            s, gt = s.rsplit(":", 1)
        p = Path(s)
        if p.is_file() and (p.suffix.lower() in VIDEO_EXTS or gt is not None):
            out.append(load_video_sequence(p, gt, polygon_mode))
        elif p.is_dir() and _is_sequence_folder(p):
            out.append(load_folder_sequence(p, polygon_mode))
        elif p.is_dir() and any(_is_sequence_folder(c) for c in p.iterdir() if c.is_dir()):
            out.extend(load_folder_sequence(c, polygon_mode) for c in sorted(p.iterdir())
                       if c.is_dir() and _is_sequence_folder(c))
        else:
            raise InputError(f"cannot read {spec} as a sequence",
                             evidence="not a video, not a folder with groundtruth_rect.txt/groundtruth.txt, "
                                      "not a folder of such folders" if p.exists() else "path does not exist",
                             fix="pass an OTB-layout folder (img/ + groundtruth_rect.txt), a dataset root, "
                                 "a video with a ground-truth file beside it, or VIDEO:GT_FILE")
    names = [q.name for q in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"duplicate sequence names {dup}",
                         fix="results are stored per sequence name: rename one of the folders/videos")
    return out
