"""Which videos a many-video run tracks, and with which init box: folders, list files and paths → :class:`VideoJob`.

Everything here is cheap (file listings and small text files), so a run checks it all before it exports a model,
starts Ray or creates its output folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from ..errors import InputError, SiamtrtError
from ..runtime.sequences import VIDEO_EXTS

LOG = logging.getLogger(__name__)
LIST_EXTS = (".txt", ".lst", ".list")
PathLike = Union[str, Path]


@dataclass
class VideoJob:
    """One video to track.

    Attributes:
        name (str): unique name, the stem of its result file.
        source (str): video file or image folder.
        bbox (list[float] | None): init box x, y, w, h; None is reported as a failed video.
        bbox_from (str): where the box came from ("bbox file (KEY)", "ground truth" or "").
    """

    name: str
    source: str
    bbox: Optional[List[float]]
    bbox_from: str = ""


def _is_image_folder(p: Path) -> bool:
    from ..runtime.video import IMAGE_EXTS

    for sub in ("img", "color", "imgs", "images", "."):
        d = p / sub
        if d.is_dir() and any(f.suffix.lower() in IMAGE_EXTS for f in d.iterdir()):
            return True
    return False


def _expand(spec: PathLike) -> List[Path]:
    p = Path(spec)
    if p.is_file() and p.suffix.lower() in LIST_EXTS:
        lines = [ln.strip() for ln in p.read_text().splitlines()]
        return [Path(ln) if Path(ln).is_absolute() else p.parent / ln for ln in lines if ln and not ln.startswith("#")]
    if p.is_dir() and not _is_image_folder(p):
        return sorted(c for c in p.iterdir() if (c.is_file() and c.suffix.lower() in VIDEO_EXTS)
                      or (c.is_dir() and _is_image_folder(c)))
    return [p]


def read_bbox_file(path: PathLike) -> Dict[str, List[float]]:
    """Init boxes by video: JSON ``{name: [x, y, w, h]}`` or text lines ``name,x,y,w,h`` (name = file name, stem or
    path as listed).

    Raises:
        InputError: unreadable file or a malformed line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"bbox file {path} does not exist", fix="pass --bbox-file with lines name,x,y,w,h")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
            return {str(k): [float(v) for v in vals] for k, vals in data.items()}
        except (ValueError, TypeError, AttributeError) as e:
            raise InputError(f"bbox file {path} is not a JSON object of name: [x, y, w, h]", evidence=str(e)[:200],
                             fix='write {"video": [x, y, w, h], ...}') from None
    out: Dict[str, List[float]] = {}
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.replace("\t", ",").split(",")]
        try:
            name, vals = parts[0], [float(v) for v in parts[1:5]]
        except ValueError:
            vals = []
        if len(parts) != 5 or len(vals) != 4:
            raise InputError(f"{path}:{i}: expected name,x,y,w,h", evidence=repr(line[:200]),
                             fix="one line per video: name,x,y,w,h (name = file name, stem or listed path)")
        out[name] = vals
    return out


def _gt_box(p: Path) -> Optional[List[float]]:
    from ..runtime.boxes import read_box_file
    from ..runtime.sequences import find_gt

    gt = find_gt(p)
    return None if gt is None else [float(v) for v in read_box_file(gt)[0]]


def _job_name(p: Path) -> str:
    return p.stem if p.is_file() or p.suffix.lower() in VIDEO_EXTS else p.name


def _init_box(p: Path, name: str, boxes: Dict[str, List[float]]):
    for key in (str(p), p.name, name):
        if key in boxes:
            return boxes[key], f"bbox file ({key})"
    try:
        box = _gt_box(p)
    except SiamtrtError:
        box = None
    return box, ("ground truth" if box is not None else "")


def discover_jobs(videos: Union[PathLike, Sequence[PathLike]], bbox_file: Optional[PathLike] = None
                  ) -> List[VideoJob]:
    """Videos to track from folders (their videos and sequence/image folders), list files (one path per line) or
    paths; init boxes from ``bbox_file``, else the first ground-truth line beside the video / in the folder.

    A video without a box is kept (it is reported as failed, the others go on); a path that does not exist is not.

    Raises:
        InputError: nothing found, paths that do not exist, or two videos with the same name.
    """
    specs = [videos] if isinstance(videos, (str, Path)) else list(videos)
    paths: List[Path] = []
    for s in specs:
        paths += _expand(s)
    if not paths:
        raise InputError(f"no videos found in {[str(s) for s in specs]}",
                         evidence=f"looked for {', '.join(VIDEO_EXTS)} files and image folders",
                         fix="pass a folder of videos, a list file (one path per line) or video paths")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise InputError(f"{len(missing)} of {len(paths)} videos do not exist",
                         evidence=", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""),
                         fix="correct the paths given to --videos (or the lines of the list file)")
    boxes = read_bbox_file(bbox_file) if bbox_file else {}
    used: set = set()
    jobs: List[VideoJob] = []
    seen: Dict[str, Path] = {}
    for p in paths:
        name = _job_name(p)
        if name in seen:
            raise InputError(f"two videos named '{name}': {seen[name]} and {p}",
                             fix="rename one (the name is the output file name)")
        seen[name] = p
        box, src = _init_box(p, name, boxes)
        used.update(k for k in (str(p), p.name, name) if k in boxes)
        jobs.append(VideoJob(name=name, source=str(p), bbox=box, bbox_from=src))
    unused = sorted(set(boxes) - used)
    if unused:
        LOG.warning("bbox file %s: %d of its names match no video given: %s%s (a misspelt name leaves its video to "
                    "the ground truth, or without a box)", bbox_file, len(unused), ", ".join(unused[:5]),
                    " ..." if len(unused) > 5 else "")
    return jobs


__all__ = ["LIST_EXTS", "VideoJob", "discover_jobs", "read_bbox_file"]
