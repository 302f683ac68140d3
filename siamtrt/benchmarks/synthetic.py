"""Synthetic tracking sequences with exact ground truth, composited over real video frames.

Why: accuracy code has to be exercised on real pixels without downloading a dataset. A procedurally textured
rectangle moves along a smooth path, scales and rotates over the frames of a real video (``bag.avi``), and its
ground truth is computed from the same affine transform that rendered it — so it is exact (up to the 2 decimals
written). The output is a user-style OTB folder (``img/%08d.jpg``, ``groundtruth_rect.txt``), plus the VOT polygons
(``groundtruth.txt``) and, optionally, the same frames as a video with a ground-truth file beside it.

Coordinates: the texture's pixel centres are integers; a box ``x, y, w, h`` covers pixels ``x .. x + w - 1``, so
its OTB centre ``x + (w - 1) / 2`` is the object's centre. Polygons are written in the same box frame (their
min/max is the axis-aligned box).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from ..errors import InputError
from ..outputs import check_replaceable, staged_dir
from ..runtime.sequences import OTB_GT, VOT_GT, Sequence, load_folder_sequence

#: the record of how a sequence was made; it also marks a folder as a synthetic sequence siamtrt wrote
SYNTHETIC_JSON = "synthetic.json"
#: the frame files of a written sequence (img/00000001.jpg ...)
_FRAME_NAME = re.compile(r"^\d{8}\.jpg$")
#: smallest side, in pixels, of the object at its smallest scale
MIN_OBJECT_PX = 4


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of one synthetic sequence (defaults: 60 frames, ±30 % scale, ±25° rotation)."""

    frames: int = 60
    seed: int = 0
    object_size: Tuple[int, int] = (72, 56)  # w, h of the texture at scale 1
    scale_amplitude: float = 0.3
    max_rotation_deg: float = 25.0
    motion_fraction: float = 0.8  # fraction of the free space the centre sweeps
    background_start: int = 0
    jpeg_quality: int = 95


def check_spec(spec: SyntheticSpec) -> None:
    """Refuse, before any work, parameters that cannot make a sequence.

    Raises:
        InputError: fewer than 2 frames, an object side below :data:`MIN_OBJECT_PX` at its smallest scale (0 failed
            inside OpenCV), a scale amplitude of 1 or more (the scale reached 0 and went negative: boxes jumped),
            a non-finite rotation, a motion fraction outside (0, 1], a negative background start or a JPEG quality
            outside 0..100.
    """
    if spec.frames < 2:
        raise InputError(f"a sequence needs at least 2 frames (got {spec.frames})", fix="use --frames 2 or more")
    a = spec.scale_amplitude
    if not math.isfinite(a):
        raise InputError(f"--scale-amplitude {a} is not a number", fix="e.g. --scale-amplitude 0.3 (the default)")
    if not abs(a) < 1:
        raise InputError(f"--scale-amplitude {a} makes the object's scale 1 + {a} x sin(...) reach 0 or below",
                         evidence="the scale varies in 1 ± the amplitude; at 1 or more the object vanishes and its "
                                  "boxes flip",
                         fix="use an amplitude below 1, e.g. --scale-amplitude 0.3 (the default)")
    w, h = spec.object_size
    smallest = min(w, h) * (1 - abs(a))
    if min(w, h) < MIN_OBJECT_PX or smallest < MIN_OBJECT_PX:
        raise InputError(f"--object-size {w},{h} is too small for a textured object",
                         evidence=f"its smallest side is {smallest:g} px at scale {1 - abs(a):g}; at least "
                                  f"{MIN_OBJECT_PX} px is needed",
                         fix="use a larger --object-size (default 72,56) or a smaller --scale-amplitude")
    if not math.isfinite(spec.max_rotation_deg):
        raise InputError(f"--max-rotation {spec.max_rotation_deg} is not a number of degrees",
                         fix="e.g. --max-rotation 25 (the default)")
    if not 0 < spec.motion_fraction <= 1:
        raise InputError(f"motion_fraction {spec.motion_fraction} is outside (0, 1]", fix="use e.g. 0.8 (the default)")
    if spec.background_start < 0:
        raise InputError(f"background_start {spec.background_start} is negative", fix="use a frame index >= 0")
    if not 0 <= spec.jpeg_quality <= 100:
        raise InputError(f"jpeg_quality {spec.jpeg_quality} is outside 0..100", fix="use e.g. 95 (the default)")


def is_synthetic_sequence(folder: Union[str, Path]) -> bool:
    """Whether ``folder`` holds a synthetic sequence siamtrt wrote and nothing else.

    Recognised by its ``synthetic.json`` (the background and the spec it was made with) and its layout: ``img/``
    with ``NNNNNNNN.jpg`` frames only, the two ground-truth files, and the optional ``<name>.avi`` / ``<name>.txt``.
    """
    folder = Path(folder)
    try:
        meta = json.loads((folder / SYNTHETIC_JSON).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or "background" not in meta or "frames" not in meta:
        return False
    names = {folder.name, str(meta.get("name") or folder.name)}
    allowed = {SYNTHETIC_JSON, OTB_GT, VOT_GT} | {f"{n}{ext}" for n in names for ext in (".avi", ".txt")}
    for p in folder.iterdir():
        if p.name == "img" and p.is_dir():
            if any(not (f.is_file() and _FRAME_NAME.match(f.name)) for f in p.iterdir()):
                return False
        elif p.name not in allowed or not p.is_file():
            return False
    return True


def check_sequence_out(out_dir: Union[str, Path], overwrite: bool = False) -> Path:
    """Refuse, before any work, a folder a synthetic sequence cannot be written to.

    Accepted: a new or empty folder; with ``overwrite``, a synthetic sequence siamtrt wrote (replaced once the new
    one is complete).

    Raises:
        InputError: ``out_dir`` is a file, cannot be created, or is a non-empty folder (without ``overwrite``; with
            it, one that is not a synthetic sequence).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder", evidence="a synthetic sequence is a folder (img/ + "
                         "ground-truth files) named after the sequence",
                         fix="give a new folder path, e.g. out/synthetic-s0")
    return check_replaceable(out, overwrite=overwrite, flag="--overwrite", recognise=is_synthetic_sequence,
                             what="sequence folder", kind="synthetic sequence",
                             layout=f"a written sequence holds {SYNTHETIC_JSON}, img/, {OTB_GT}, {VOT_GT} and the "
                                    "optional <name>.avi / <name>.txt only")


def make_texture(size: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A distinctive BGR texture: smooth colour noise, saturated shapes and a dark border."""
    import cv2

    w, h = size
    tex = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    tex = cv2.GaussianBlur(tex, (0, 0), sigmaX=max(w, h) / 10)
    tex = cv2.normalize(tex, None, 30, 225, cv2.NORM_MINMAX)
    for _ in range(6):
        colour = tuple(float(c) for c in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(max(3, min(w, h) // 10), max(4, min(w, h) // 3)))
        if rng.random() < 0.5:
            cv2.circle(tex, (cx, cy), r, colour, -1, lineType=cv2.LINE_AA)
        else:
            cv2.rectangle(tex, (cx - r, cy - r // 2), (cx + r, cy + r // 2), colour, -1)
    cv2.rectangle(tex, (0, 0), (w - 1, h - 1), (20, 20, 20), 2)
    return np.clip(tex, 0, 255).astype(np.uint8)


def trajectory(spec: SyntheticSpec, frame_size: Tuple[int, int]) -> np.ndarray:
    """Per-frame (cx, cy, scale, angle_deg), with the object always fully inside the frame."""
    fw, fh = frame_size
    w, h = spec.object_size
    smax = 1.0 + abs(spec.scale_amplitude)
    half_diag = 0.5 * math.hypot(w, h) * smax + 2.0
    ax, ay = (fw / 2 - half_diag) * spec.motion_fraction, (fh / 2 - half_diag) * spec.motion_fraction
    if ax <= 0 or ay <= 0:
        raise InputError(f"object {w}x{h} at scale {smax:.2f} does not fit in {fw}x{fh} frames",
                         evidence=f"turning at any angle it needs a {2 * half_diag:.0f} px wide clear square, and "
                                  "room to move",
                         fix="use a smaller --object-size or --scale-amplitude")
    u = np.arange(spec.frames) / max(spec.frames - 1, 1)
    cx = (fw - 1) / 2 + ax * np.sin(2 * np.pi * u)
    cy = (fh - 1) / 2 + ay * np.sin(4 * np.pi * u + 0.5) * 0.9
    scale = 1.0 + spec.scale_amplitude * np.sin(2 * np.pi * u + 1.0)
    angle = spec.max_rotation_deg * np.sin(3 * np.pi * u)
    return np.stack([cx, cy, scale, angle], axis=1)


def _affine(tex_size: Tuple[int, int], cx: float, cy: float, scale: float, angle_deg: float) -> np.ndarray:
    """2x3 matrix: texture pixel-centre coords → frame pixel-centre coords."""
    w, h = tex_size
    a = math.radians(angle_deg)
    c, s = math.cos(a) * scale, math.sin(a) * scale
    tx, ty = (w - 1) / 2, (h - 1) / 2
    return np.array([[c, -s, cx - (c * tx - s * ty)], [s, c, cy - (s * tx + c * ty)]], np.float64)


def object_polygon(tex_size: Tuple[int, int], m: np.ndarray) -> np.ndarray:
    """The 4 corners (8 values) of the rendered texture, in box coordinates (see module docstring)."""
    w, h = tex_size
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
    pts = corners @ m[:, :2].T + m[:, 2] + 0.5
    return pts.reshape(-1)


def _backgrounds(video: Path, start: int, n: int) -> List[np.ndarray]:
    """``n`` frames from ``video`` starting at ``start``, ping-ponging when the video is shorter."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    if not frames:
        raise InputError(f"cannot decode any frame of {video}", fix="pass a video OpenCV can read (--background)")
    cycle = frames + frames[-2:0:-1] if len(frames) > 1 else frames
    return [cycle[(start + i) % len(cycle)] for i in range(n)]


def render_sequence(background: Union[str, Path], spec: SyntheticSpec = SyntheticSpec()
                    ) -> Tuple[List[np.ndarray], np.ndarray, np.ndarray]:
    """Render frames in memory.

    Returns:
        tuple: (frames as BGR uint8, boxes [N, 4] x,y,w,h, polygons [N, 8]).
    """
    import cv2

    check_spec(spec)
    bgs = _backgrounds(Path(background), spec.background_start, spec.frames)
    fh, fw = bgs[0].shape[:2]
    path = trajectory(spec, (fw, fh))  # refuses an object that does not fit before its texture is made
    rng = np.random.default_rng(spec.seed)
    tex = make_texture(spec.object_size, rng)
    ones = np.full(tex.shape[:2], 255, np.uint8)
    frames, polys = [], []
    for bg, (cx, cy, s, ang) in zip(bgs, path):
        m = _affine(spec.object_size, cx, cy, s, ang)
        warped = cv2.warpAffine(tex, m, (fw, fh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha = cv2.warpAffine(ones, m, (fw, fh), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT)[..., None].astype(np.float32) / 255.0
        frames.append((bg.astype(np.float32) * (1 - alpha) + warped.astype(np.float32) * alpha + 0.5)
                      .astype(np.uint8))
        polys.append(object_polygon(spec.object_size, m))
    polys_arr = np.asarray(polys)
    xs, ys = polys_arr[:, 0::2], polys_arr[:, 1::2]
    boxes = np.stack([xs.min(1), ys.min(1), xs.max(1) - xs.min(1), ys.max(1) - ys.min(1)], axis=1)
    return frames, boxes, polys_arr


def make_synthetic_sequence(out_dir: Union[str, Path], background: Union[str, Path],
                            spec: SyntheticSpec = SyntheticSpec(), video: bool = False,
                            name: Optional[str] = None, overwrite: bool = False) -> Sequence:
    """Write an OTB-layout synthetic sequence (and optionally ``<name>.avi`` + ``<name>.txt``) and read it back.

    The sequence is written into a folder beside ``out_dir`` and renamed into place when complete: an error or an
    interruption leaves ``out_dir`` as it was.

    Args:
        out_dir (str | Path): sequence folder to create (its name is the sequence name); new or empty.
        background (str | Path): video whose frames form the background (e.g. ``shared/data/bag.avi``).
        spec (SyntheticSpec): motion / size / seed. Defaults to SyntheticSpec().
        video (bool): also write the frames as an MJPG AVI with its ground-truth file. Defaults to False.
        name (str): sequence name for the video files. Defaults to the folder name.
        overwrite (bool): replace an existing synthetic sequence siamtrt wrote in ``out_dir`` (any other non-empty
            folder is refused). Defaults to False.

    Returns:
        Sequence: the folder read back exactly as a user's dataset is read.

    Raises:
        InputError: bad ``spec`` (:func:`check_spec`), ``out_dir`` (:func:`check_sequence_out`) or background, an
        object that does not fit in the frames.
    """
    import cv2

    out = check_sequence_out(out_dir, overwrite)
    name = name or out.name
    frames, boxes, polys = render_sequence(background, spec)  # checks the spec before any rendering
    with staged_dir(out, overwrite=True) as stage:
        (stage / "img").mkdir()
        for i, f in enumerate(frames):
            target = stage / "img" / f"{i + 1:08d}.jpg"
            if not cv2.imwrite(str(target), f, [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality]):
                raise InputError(f"OpenCV could not write {target}", fix="check the free space of the output disk")
        np.savetxt(stage / OTB_GT, boxes, fmt="%.2f", delimiter=",")
        np.savetxt(stage / VOT_GT, polys, fmt="%.2f", delimiter=",")
        meta = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(spec).items()}
        record = {"background": str(background), **meta, **({"name": name} if video and name != out.name else {})}
        (stage / SYNTHETIC_JSON).write_text(json.dumps(record, indent=1))
        if video:
            fh, fw = frames[0].shape[:2]
            wr = cv2.VideoWriter(str(stage / f"{name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (fw, fh))
            if not wr.isOpened():
                raise InputError(f"OpenCV cannot write {out / (name + '.avi')}",
                                 fix="use video=False (image folder only)")
            for f in frames:
                wr.write(f)
            wr.release()
            np.savetxt(stage / f"{name}.txt", boxes, fmt="%.2f", delimiter=",")
    return load_folder_sequence(out)
