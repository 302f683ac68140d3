"""OpenCV's ``cv2.TrackerDaSiamRPN`` against this project's runtime given OpenCV's constants, frame by frame.

OpenCV compiles its tracker's constants in and differs from DaSiamRPN's own tracker in a few conventions
(docs/opencv.md). :class:`RuntimeAsOpenCV` is the runtime's DaSiamRPN flavour — the same crop, crop-size,
post-processing and clipping functions the runtime's Tracker calls — with those differences transcribed
(:class:`Conventions`). :func:`compare_with_opencv` runs OpenCV's tracker and such runtimes over one video in one pass:

* ``runtime, ONNX Runtime on DIR``: the siamtrt model directory on the runtime's ONNX Runtime backend (end to end);
* ``runtime, OpenCV dnn outputs``: the same post-processing fed by OpenCV's dnn running the three files, which
  separates the transcription of OpenCV's post-processing from the two inference engines' rounding;
* with ``ablations``: the latter with one convention put back to DaSiamRPN's, measuring what each difference does.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..config import TrackConfig, get_config
from ..errors import ExportError, InputError
from ..figures import pyplot, save_png
from ..progress import progress_bar
from ..metadata import decode
from ..modeldir import ModelDir, check_target
from ..outputs import atomic_file
from .opencv import (OPENCV_ANCHOR, OPENCV_CONSTANTS, OPENCV_TRACK, OpenCVDnnFiles, check_against_model_dir,
                     check_opencv_config, opencv_paths)
from .onnx import PARITY_RTOL

WINDOWS = ("opencv", "dasiamrpn")
PAD_COLOURS = ("round", "truncate")


def opencv_window(score_size: int, anchor_num: int) -> np.ndarray:
    """OpenCV's cosine window, ``cv::createHanningWindow``: sqrt(outer(hann, hann)), tiled per anchor (k = a·S² + i·S
    + j). DaSiamRPN (and the runtime) use outer(hann, hann): OpenCV's is wider (cell (1,1) of a 19×19 map: 0.030 vs
    0.0009; cell (4,4): 0.41 vs 0.17), so off-centre candidates are penalised less."""
    h = np.hanning(score_size)
    return np.tile(np.sqrt(np.outer(h, h)).ravel(), anchor_num)


def opencv_rect(center: Sequence[float], size: Sequence[float]) -> Tuple[int, int, int, int]:
    """``TrackerDaSiamRPN::update``'s integer box from its float32 state: x = int(cx − int(w/2)), y = int(cy −
    int(h/2)), w = int(w), h = int(h) (C++ int(): truncation toward zero). The state itself stays float."""
    cx, cy, w, h = (np.float32(v) for v in (*center, *size))
    half_w, half_h = int(w / np.float32(2)), int(h / np.float32(2))
    return int(cx - np.float32(half_w)), int(cy - np.float32(half_h)), int(w), int(h)


@dataclass(frozen=True)
class Conventions:
    """What :class:`RuntimeAsOpenCV` takes from OpenCV (the defaults) or, for ablations, from DaSiamRPN.

    Attributes:
        constants (TrackConfig): penalty_k, window_influence, lr (and sizes). Defaults to :data:`OPENCV_TRACK`.
        window (str): "opencv" (:func:`opencv_window`) or "dasiamrpn" (outer(hann, hann)). Defaults to "opencv".
        pad (str): padding colour from the float channel mean: "round" (OpenCV's copyMakeBorder saturates to the
            nearest uint8) or "truncate" (DaSiamRPN's numpy assignment). Defaults to "round".
    """

    constants: TrackConfig = OPENCV_TRACK
    window: str = "opencv"
    pad: str = "round"

    def __post_init__(self):
        if self.window not in WINDOWS or self.pad not in PAD_COLOURS:
            raise ValueError(f"window must be one of {WINDOWS}, pad one of {PAD_COLOURS}")


class FileBranches:
    """:class:`~siamtrt.export.opencv.OpenCVDnnFiles` (or ``OrtOpenCVFiles``) behind the two backend calls the
    runtime makes (``run_template`` → cls/loc kernels, ``run_search`` → (cls, loc))."""

    def __init__(self, files):
        self.files = files

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    def run_template(self, z: np.ndarray) -> Dict[str, np.ndarray]:
        k = self.files.template(z)
        return {"cls_kernel": k["kernel_cls1"], "loc_kernel": k["kernel_r1"]}

    def run_search(self, x: np.ndarray, kernels: Dict[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        delta, score = self.files.search(x, {"kernel_cls1": kernels["cls_kernel"], "kernel_r1": kernels["loc_kernel"]})
        return score, delta


class RuntimeAsOpenCV:
    """The runtime's DaSiamRPN flavour with OpenCV's conventions: what OpenCV's boxes should equal.

    Same as the runtime (centre x + w/2, crop origin round(x − c), search side s_z + 2·((I − E)/2)/scale_z,
    DaSiamRPN's penalty and smoothing order, clipping) except for OpenCV's differences, transcribed: its constants,
    its window, its padding colour (:class:`Conventions`), an integer ``cv::Rect`` at init and :func:`opencv_rect` on
    output. Not transcribed: OpenCV's float32 arithmetic (the runtime computes in float64), so a value on an integer
    boundary may round one pixel apart.

    Args:
        branches: a runtime backend over a model directory, or :class:`FileBranches`.
        conventions (Conventions): Defaults to OpenCV's.
    """

    def __init__(self, branches, conventions: Optional[Conventions] = None):
        from ..runtime.geometry import geometry
        from ..runtime.postprocess import PostParams

        self.branches = branches
        self.conventions = conventions = Conventions() if conventions is None else conventions
        t, a = conventions.constants, OPENCV_ANCHOR
        self.track = t
        self.params = PostParams(penalty_k=t.penalty_k, window_influence=t.window_influence, lr=t.lr, flavour=t.flavour)
        geo = geometry(t.score_size(a.stride), a.stride, a.ratios, a.scales, t.flavour)
        if conventions.window == "opencv":
            geo = dataclasses.replace(geo, window=opencv_window(geo.score_size, geo.anchor_num))
        self.geometry = geo
        self.center = self.size = self.avg_chans = None
        self.kernels: Dict[str, np.ndarray] = {}

    @classmethod
    def from_model_dir(cls, model_dir: Union[str, Path], conventions: Optional[Conventions] = None,
                       backend: str = "onnxruntime", **options: Any) -> "RuntimeAsOpenCV":
        """Over a siamtrt model directory (an fp32 conv-mode DaSiamRPN vot/otb export) on a runtime backend."""
        from ..config import ModelConfig
        from ..runtime.backends import backend_class

        md = ModelDir.open(model_dir)
        check_target(md, "opencv")
        check_opencv_config(ModelConfig.from_dict(md.meta["config"]))
        return cls(backend_class(backend).from_model_dir(model_dir, md.meta, **options), conventions)

    def init(self, frame: np.ndarray, rect: Sequence[int]) -> None:
        """Start on ``rect`` (integers x, y, w, h, as cv::Rect holds them)."""
        from ..runtime.crop import crop_batch
        from ..runtime.geometry import template_side

        t = self.track
        x, y, w, h = (int(v) for v in rect)
        self.center = np.array([[x + w / 2, y + h / 2]])
        self.size = np.array([[w, h]], np.float64)
        mean = np.mean(frame, axis=(0, 1))
        # crop_batch writes the colour truncated to uint8: a rounded mean makes that OpenCV's rounding
        self.avg_chans = np.round(mean) if self.conventions.pad == "round" else mean
        side = template_side(self.size, t.context_amount).astype(np.int64)
        z = crop_batch(frame, self.center, t.exemplar_size, side, self.avg_chans, t.flavour)
        self.branches.activate()
        self.kernels = self.branches.run_template(z)

    def update(self, frame: np.ndarray) -> Tuple[Tuple[int, int, int, int], np.ndarray, float]:
        """Track one frame: (OpenCV's integer box, the runtime's float x,y,w,h box, score)."""
        from ..runtime.boxes import cxcywh_to_xywh
        from ..runtime.crop import crop_batch
        from ..runtime.geometry import crop_sizes
        from ..runtime.postprocess import postprocess

        t = self.track
        cs = crop_sizes(self.size, t.context_amount, t.exemplar_size, t.instance_size, t.flavour)
        x = crop_batch(frame, self.center, t.instance_size, cs.search_side, self.avg_chans, t.flavour)
        cls, loc = self.branches.run_search(x, self.kernels)
        res = postprocess(cls, loc, self.geometry, self.center, self.size, cs.scale_z,
                          (frame.shape[1], frame.shape[0]), self.params)
        self.center, self.size = res.center, res.size
        box = cxcywh_to_xywh(np.concatenate([res.center, res.size], axis=1))[0]
        return opencv_rect(res.center[0], res.size[0]), box, float(res.score[0])

    def close(self) -> None:
        self.branches.deactivate()


# --------------------------------------------------------------------------------------------------- comparison
@dataclass
class Run:
    """One runtime's boxes over the video (row 0: the init box). ``boxes`` are integer (OpenCV's conversion)."""

    boxes: List[Tuple[int, int, int, int]] = field(default_factory=list)
    float_boxes: List[np.ndarray] = field(default_factory=list)
    scores: List[float] = field(default_factory=list)


def agreement(opencv: np.ndarray, boxes: np.ndarray, opencv_scores: np.ndarray, scores: np.ndarray,
              float_boxes: np.ndarray) -> Dict[str, Any]:
    """Figures over the tracked frames (row 0, the init box, excluded): IoU and centre error of the integer boxes,
    identical boxes, the first frame more than 1 px apart, score difference, IoU against the float boxes."""
    from ..runtime.boxes import iou_xywh, xywh_to_cxcywh

    a, b = opencv[1:].astype(np.float64), boxes[1:].astype(np.float64)
    iou = iou_xywh(a, b)
    ca, cb = xywh_to_cxcywh(a), xywh_to_cxcywh(b)
    err = np.hypot(ca[:, 0] - cb[:, 0], ca[:, 1] - cb[:, 1])
    apart = np.flatnonzero(err > 1.0)
    return {"tracked_frames": int(len(iou)), "mean_iou": float(iou.mean()), "min_iou": float(iou.min()),
            "max_centre_error": float(err.max()), "mean_centre_error": float(err.mean()),
            "identical_frames": int(np.all(a == b, axis=1).sum()),
            "first_frame_over_1px": int(apart[0] + 1) if len(apart) else None,
            "max_score_difference": float(np.abs(opencv_scores[1:] - scores[1:]).max()),
            "mean_iou_vs_float_boxes": float(iou_xywh(a, float_boxes[1:]).mean()),
            "iou": iou.tolist(), "centre_error": err.tolist()}


@dataclass
class OpenCVComparison:
    """OpenCV's boxes and each runtime's, with their agreement (:func:`agreement`)."""

    video: str
    rect: Tuple[int, int, int, int]
    opencv_dir: str
    weights: str
    opencv_version: str
    opencv: np.ndarray  # (F, 4) int
    opencv_scores: np.ndarray  # (F,)
    runs: Dict[str, Run]

    def figures(self, name: str) -> Dict[str, Any]:
        r = self.runs[name]
        return agreement(self.opencv, np.asarray(r.boxes), self.opencv_scores, np.asarray(r.scores),
                         np.asarray(r.float_boxes))

    def summary(self) -> str:
        lines = [f"OpenCV {self.opencv_version} TrackerDaSiamRPN vs the siamtrt runtime with OpenCV's constants — "
                 f"{Path(self.video).name}, box {','.join(map(str, self.rect))}, weights: {self.weights}",
                 f"  {'runtime':46s} {'frames':>6s} {'IoU mean':>9s} {'IoU min':>8s} {'centre max':>11s} "
                 f"{'identical':>9s} {'1st >1px':>8s} {'|Δscore|':>9s}"]
        for name in self.runs:
            f = self.figures(name)
            first = "-" if f["first_frame_over_1px"] is None else str(f["first_frame_over_1px"])
            lines.append(f"  {name:46s} {f['tracked_frames']:6d} {f['mean_iou']:9.4f} {f['min_iou']:8.4f} "
                         f"{f['max_centre_error']:9.2f}px {f['identical_frames']:9d} {first:>8s} "
                         f"{f['max_score_difference']:9.2g}")
        return "\n".join(lines)

    def to_dict(self) -> Dict[str, Any]:
        return {"video": self.video, "rect": list(self.rect), "opencv_dir": self.opencv_dir, "weights": self.weights,
                "opencv_version": self.opencv_version, "opencv_constants": OPENCV_CONSTANTS,
                "opencv": {"boxes": self.opencv.tolist(), "scores": np.round(self.opencv_scores, 6).tolist()},
                "runs": {name: {"figures": self.figures(name), "boxes": np.asarray(r.boxes).tolist(),
                                "float_boxes": np.round(np.asarray(r.float_boxes), 4).tolist(),
                                "scores": np.round(r.scores, 6).tolist()} for name, r in self.runs.items()}}

    def save_json(self, path: Union[str, Path]) -> Path:
        with atomic_file(path) as f:
            json.dump(self.to_dict(), f, indent=1)
        return Path(path)

    def plot(self, path: Union[str, Path]) -> Path:
        """Per-frame IoU and centre error of every runtime against OpenCV (matplotlib PNG)."""
        plt = pyplot()

        frames = np.arange(1, len(self.opencv))
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
        for name in self.runs:
            f = self.figures(name)
            top.plot(frames, f["iou"], lw=1, label=name)
            bottom.plot(frames, f["centre_error"], lw=1, label=name)
        top.set_ylabel("IoU with OpenCV's box")
        top.set_ylim(-0.02, 1.02)
        top.legend(fontsize=7, loc="center right")
        top.set_title(f"OpenCV {self.opencv_version} TrackerDaSiamRPN vs siamtrt runtime (OpenCV's constants), "
                      f"{Path(self.video).name}\nweights: {self.weights}", fontsize=9)
        bottom.set_ylabel("centre error (px)")
        bottom.set_yscale("symlog", linthresh=1.0)
        bottom.set_ylim(0, None)
        bottom.set_xlabel("frame")
        return save_png(fig, path)


def opencv_tracker(opencv_dir: Union[str, Path]):
    """``cv2.TrackerDaSiamRPN`` over the three files in ``opencv_dir`` (InputError when one is missing)."""
    import cv2

    if not hasattr(cv2, "TrackerDaSiamRPN"):
        raise InputError(f"OpenCV {cv2.__version__} has no TrackerDaSiamRPN (it came with 4.5.5)",
                         fix="pip install 'opencv-python-headless>=4.5.5'")
    params = cv2.TrackerDaSiamRPN_Params()
    for key, path in opencv_paths(opencv_dir).items():
        setattr(params, key, str(path))
    return cv2.TrackerDaSiamRPN.create(params)


def files_arch(opencv_dir: Union[str, Path]) -> Tuple[str, str]:
    """(architecture, weights kind + checkpoint) recorded in dasiamrpn_model.onnx's siamtrt metadata."""
    import onnx

    path = opencv_paths(opencv_dir)["model"]
    meta = decode({p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props})
    if "arch" not in meta:
        raise InputError(f"{path} carries no siamtrt metadata (not written by export/to_opencv.py)",
                         fix="compare files written by siamtrt export --target opencv")
    return str(meta["arch"]), f"{meta.get('weights')} ({str(meta.get('checkpoint_sha256'))[:16]})"


def ablations(model_track: TrackConfig) -> Dict[str, Conventions]:
    """OpenCV's conventions with one put back to DaSiamRPN's (the model's own constants, its window, its padding)."""
    own = dataclasses.replace(OPENCV_TRACK, penalty_k=model_track.penalty_k,
                              window_influence=model_track.window_influence, lr=model_track.lr)
    return {"OpenCV dnn outputs, model's PK/WI/LR": Conventions(constants=own),
            "OpenCV dnn outputs, DaSiamRPN's window": Conventions(window="dasiamrpn"),
            "OpenCV dnn outputs, pad colour truncated": Conventions(pad="truncate")}


def compare_with_opencv(opencv_dir: Union[str, Path], video: Union[str, Path], rect: Sequence[float], *,
                        model_dir: Optional[Union[str, Path]] = None, with_ablations: bool = False,
                        max_frames: Optional[int] = None, threads: int = 1,
                        progress: bool = True) -> OpenCVComparison:
    """Track ``video`` with cv2.TrackerDaSiamRPN on ``opencv_dir`` and with :class:`RuntimeAsOpenCV`, in one pass.

    Args:
        opencv_dir: the three files (export/to_opencv.py).
        video: video file or image folder.
        rect: x, y, w, h in whole pixels (OpenCV's tracker takes a cv::Rect).
        model_dir: the siamtrt model directory of the same weights (checked first); adds the end-to-end run on
            ONNX Runtime. Defaults to None.
        with_ablations (bool): add the runs of :func:`ablations`. Defaults to False.
        max_frames (int): stop after this many frames. Defaults to None (all).
        threads (int): ONNX Runtime threads. Defaults to 1.
        progress (bool): a progress line over the frames. Defaults to True.

    Raises:
        InputError: a non-integer box, missing files or video. ExportError: the directory holds other weights.
    """
    import cv2
    from ..runtime.tracker import check_boxes, check_frame
    from ..runtime.video import open_frames

    if len(rect) != 4 or any(float(v) != int(float(v)) for v in rect):
        raise InputError(f"OpenCV's tracker takes an integer box x,y,w,h, got {list(rect)}",
                         fix="give whole pixels, e.g. --bbox 316,140,112,115")
    rect = tuple(int(float(v)) for v in rect)
    paths = opencv_paths(opencv_dir)
    arch, weights = files_arch(opencv_dir)
    check_opencv_config(get_config(arch))
    dnn = FileBranches(OpenCVDnnFiles(paths))
    runtimes: Dict[str, RuntimeAsOpenCV] = {}
    if model_dir is not None:
        md = ModelDir.open(model_dir)
        bad = {k: v for k, v in check_against_model_dir(paths, md).items() if not v["rel"] <= PARITY_RTOL}
        if bad:
            raise ExportError(f"{opencv_dir} and {model_dir} hold different weights",
                              evidence="; ".join(f"{k}: relative error {v['rel']:.3g}" for k, v in bad.items()),
                              fix="compare the OpenCV files with the model directory of the same checkpoint")
        runtimes[f"runtime, ONNX Runtime on {Path(model_dir).name}/"] = RuntimeAsOpenCV.from_model_dir(
            model_dir, threads=threads)
    runtimes["runtime, OpenCV dnn outputs"] = RuntimeAsOpenCV(dnn)
    if with_ablations:
        runtimes.update({name: RuntimeAsOpenCV(dnn, conv) for name, conv in ablations(get_config(arch).track).items()})
    ocv = opencv_tracker(opencv_dir)
    runs = {name: Run() for name in runtimes}
    ocv_boxes: List[Tuple[int, ...]] = []
    ocv_scores: List[float] = []
    with open_frames(video, max_frames) as frames:
        bar = progress_bar(frames.frame_count, "OpenCV vs runtime", "frame", progress)
        try:
            for i, frame in enumerate(frames):
                frame = check_frame(frame)
                if i == 0:
                    check_boxes(rect, (frame.shape[1], frame.shape[0]))
                    ocv.init(frame, rect)
                    ocv_boxes.append(rect)
                    ocv_scores.append(1.0)
                    for name, rt in runtimes.items():
                        rt.init(frame, rect)
                        runs[name].boxes.append(rect)
                        runs[name].float_boxes.append(np.asarray(rect, np.float64))
                        runs[name].scores.append(1.0)
                else:
                    _, box = ocv.update(frame)
                    ocv_boxes.append(tuple(int(v) for v in box))
                    ocv_scores.append(float(ocv.getTrackingScore()))
                    for name, rt in runtimes.items():
                        r_int, r_box, r_score = rt.update(frame)
                        runs[name].boxes.append(r_int)
                        runs[name].float_boxes.append(r_box)
                        runs[name].scores.append(r_score)
                bar.update(1)
        finally:
            bar.close()
            for rt in runtimes.values():
                rt.close()
    return OpenCVComparison(video=str(video), rect=rect, opencv_dir=str(opencv_dir), weights=weights,
                            opencv_version=cv2.__version__, opencv=np.asarray(ocv_boxes, np.int64),
                            opencv_scores=np.asarray(ocv_scores), runs=runs)
