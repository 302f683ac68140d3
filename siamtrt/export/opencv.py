"""OpenCV export target: the three ONNX files ``cv2.TrackerDaSiamRPN`` loads, built from a DaSiamRPN vot/otb model.

What OpenCV's tracker expects (opencv/opencv ``modules/video/src/tracking/tracker_dasiamrpn.cpp``, 4.x and 5.x):

* ``dasiamrpn_model.onnx``, one input (BGR 0..255 crop, no normalisation): at init the tracker feeds the 127×127
  exemplar and reads tensor ``63`` (the AlexNet features, [1,256,6,6]); per frame it feeds the 271×271 search crop and
  reads the unconnected outputs in order: first ``delta`` ([1,20,19,19], DaSiamRPN's ``regress_adjust`` over the loc
  correlation ``65``), then ``score`` ([1,10,19,19], the cls correlation ``68``). ``65`` and ``68`` are Convs whose
  weights ([20,256,4,4], [10,256,4,4]) the tracker replaces at init with ``Net::setParam``.
* ``dasiamrpn_kernel_cls1.onnx`` / ``dasiamrpn_kernel_r1.onnx``: features [1,256,6,6] → [1,2560,4,4] / [1,5120,4,4]
  (DaSiamRPN ``conv_cls1`` / ``conv_r1``), which the tracker reshapes to [10,256,4,4] / [20,256,4,4].

OpenCV 5's tracker asks for "onnx_node_output_0!63" and so on, which its dnn resolves by tensor name (measured with
5.1: node names do not matter, a missing tensor name fails setParam). OpenCV 4.x asks for "63", "65", "68", which its
ONNX importer gives a layer only when the node has no name (legacy naming: a nameless node is named after its first
output). :func:`write_opencv_files` therefore writes nameless nodes whose outputs carry these tensor names (4.x: by
OpenCV's source, not run here). Graphs are exported from the torch model with torch.onnx (BatchNorm folded),
then renamed and stamped opset 11 (every op is a Conv, MaxPool or Relu, whose float semantics opset 11 already has)
so that older OpenCV releases parse them. Every export checks itself three ways: ONNX Runtime against PyTorch, the
installed OpenCV's dnn against ONNX Runtime (with the kernels set the way the tracker sets them), and, from a model
directory, against that directory's template.onnx / search.onnx.

The tracker's constants are compiled into OpenCV (:data:`OPENCV_TRACK`); :class:`RuntimeAsOpenCV` runs this project's
runtime pieces (crop, post-processing, a backend over a model directory) with those constants and OpenCV's
conventions, and :func:`compare_with_opencv` measures how far OpenCV's boxes are from it (docs/opencv.md).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import __version__
from ..config import AnchorConfig, ModelConfig, TrackConfig, get_config
from ..errors import ExportError, InputError, folder_listing
from ..metadata import decode, set_onnx_metadata
from ..modeldir import ModelDir, check_target
from ..outputs import check_replaceable, staged_dir
from ..progress import progress_bar
from .checkpoint import load_checkpoint, require_checkpoint
from .models import build_model
from .onnx import EXPORT_OPSET, PARITY_RTOL, _torch_export, third_party_logs

log = logging.getLogger(__name__)

#: file of each TrackerDaSiamRPN.Params field (its defaults: the tracker finds them in the working directory)
OPENCV_FILES = {"model": "dasiamrpn_model.onnx", "kernel_cls1": "dasiamrpn_kernel_cls1.onnx",
                "kernel_r1": "dasiamrpn_kernel_r1.onnx"}
#: tensor names in dasiamrpn_model.onnx (63 / 65 / 68 are what the tracker addresses; the others keep the numbering)
TENSORS = {"features": "63", "loc_search": "64", "loc_xcorr": "65", "loc": "66", "cls_search": "67", "cls": "68"}
KERNEL_INPUT, KERNEL_OUTPUT = "features", "kernel"
MODEL_INPUT = "search"
#: opset stamped on the files (see module docstring); IR version 6 is the one that goes with opset 11
OPENCV_OPSET, OPENCV_IR_VERSION = 11, 6
_OPSET11_SAFE_OPS = ("Conv", "MaxPool", "Relu")

# OpenCV's compiled-in tracker constants (tracker_dasiamrpn.cpp, struct trackerConfig): windowInfluence 0.43,
# lr 0.4, penaltyK 0.055, exemplarSize 127, instanceSize 271, totalStride 8, contextAmount 0.5, ratios
# {0.33, 0.5, 1, 2, 3}, scale 8; the kernel shapes [10|20, 256, 4, 4] and the 5×19×19 score reshape are literals.
OPENCV_TRACK = TrackConfig(penalty_k=0.055, window_influence=0.43, lr=0.4, exemplar_size=127, instance_size=271,
                           base_size=0, context_amount=0.5, flavour="dasiamrpn")
#: the constants above as one record (ONNX metadata of the files, comparison JSON)
OPENCV_CONSTANTS = {k: getattr(OPENCV_TRACK, k) for k in ("penalty_k", "window_influence", "lr", "exemplar_size",
                                                           "instance_size", "context_amount")}
OPENCV_ANCHOR = AnchorConfig(stride=8, ratios=(0.33, 0.5, 1.0, 2.0, 3.0), scales=(8.0,))
OPENCV_CHANNELS = 256  # feature channels of the kernels the tracker reshapes
OPENCV_FIX = ("export a DaSiamRPN vot or otb model (--config SiamRPNvot | SiamRPNotb with its checkpoint), or run this "
              "model with the siamtrt runtime (siamtrt export ..., then siamtrt track)")


# --------------------------------------------------------------------------------------------- what OpenCV runs
def opencv_refusals(cfg: ModelConfig) -> List[str]:
    """Every way ``cfg`` differs from the one network layout OpenCV's tracker runs (empty: it runs)."""
    if cfg.family != "dasiamrpn":
        return [f"family {cfg.family} (pysot SiamRPN++: depthwise correlation heads; OpenCV's tracker runs DaSiamRPN's "
                "up-channel AlexNet only)"]
    why = []
    channels = int(cfg.rpn_args.get("feature_out", 256))
    if channels != OPENCV_CHANNELS:
        why.append(f"{channels} kernel channels (OpenCV reshapes the kernels to [10|20, {OPENCV_CHANNELS}, 4, 4])")
    if cfg.backbone_args.get("size", 1) != 1:
        why.append(f"AlexNet width x{cfg.backbone_args.get('size')} (OpenCV's layout is the x1 AlexNet)")
    if int(cfg.rpn_args.get("anchor_num", 5)) != OPENCV_ANCHOR.anchor_num or cfg.anchor != OPENCV_ANCHOR:
        why.append(f"anchors {cfg.anchor} (OpenCV's: {OPENCV_ANCHOR})")
    t, o = cfg.track, OPENCV_TRACK
    for name in ("exemplar_size", "instance_size", "base_size", "context_amount"):
        if getattr(t, name) != getattr(o, name):
            why.append(f"{name} {getattr(t, name)} (OpenCV's: {getattr(o, name)})")
    if t.adaptive_instance_size is not None:
        why.append(f"adaptive search size {t.adaptive_instance_size} for small targets (OpenCV searches at "
                   f"{o.instance_size} only; its score map is a literal 5x19x19)")
    return why


def check_opencv_config(cfg: ModelConfig) -> None:
    """Refuse a model OpenCV's tracker cannot run.

    Raises:
        ExportError: what (the model), evidence (each difference from OpenCV's layout), fix.
    """
    why = opencv_refusals(cfg)
    if why:
        raise ExportError(f"cv2.TrackerDaSiamRPN cannot run {cfg.name}", evidence="; ".join(why), fix=OPENCV_FIX)


def opencv_layer_name(tensor: str, version: Optional[str] = None) -> str:
    """The name the installed OpenCV gives the layer producing ``tensor`` (what its tracker passes to setParam)."""
    if version is None:
        import cv2

        version = cv2.__version__
    return tensor if int(str(version).split(".")[0]) < 5 else f"onnx_node_output_0!{tensor}"


# --------------------------------------------------------------------------------------------------- the graphs
class _SearchNet(nn.Module):
    """dasiamrpn_model.onnx: features → (delta, score); the correlation weights are placeholders set at init."""

    def __init__(self, model: nn.Module):
        super().__init__()
        a, f = model.anchor, model.feature_out
        self.features = model.featureExtract
        self.loc_search, self.cls_search, self.regress_adjust = model.conv_r2, model.conv_cls2, model.regress_adjust
        self.register_buffer("loc_kernel", torch.zeros(4 * a, f, 4, 4))
        self.register_buffer("cls_kernel", torch.zeros(2 * a, f, 4, 4))

    def forward(self, x):
        f = self.features(x)
        delta = self.regress_adjust(F.conv2d(self.loc_search(f), self.loc_kernel))  # first: OpenCV's outs[0]
        score = F.conv2d(self.cls_search(f), self.cls_kernel)
        return delta, score


class _KernelNet(nn.Module):
    """dasiamrpn_kernel_*.onnx: template features → one up-channel kernel (DaSiamRPN conv_cls1 / conv_r1)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, f):
        return self.conv(f)


def _for_opencv(model: onnx.ModelProto, rename: Dict[str, str]) -> onnx.ModelProto:
    """Nameless nodes, the tensor names OpenCV addresses, opset 11 / IR 6, no exporter annotations.

    Args:
        rename: weight initializer name → the name of the output of the Conv that reads it.
    """
    g = model.graph
    ops = sorted({n.op_type for n in g.node} - set(_OPSET11_SAFE_OPS))
    if ops:
        raise ExportError("the exported OpenCV graph holds ops outside Conv / MaxPool / Relu",
                          evidence=f"ops: {ops}", fix="report this with the torch version")
    names = {n.output[0]: rename[n.input[1]] for n in g.node if len(n.input) > 1 and n.input[1] in rename}
    missing = sorted(set(rename.values()) - set(names.values()))
    if missing:
        raise ExportError("could not find the Convs OpenCV addresses in the exported graph",
                          evidence=f"tensors {missing} not produced", fix="report this with the torch version")
    for n in g.node:
        n.name = ""  # OpenCV 4.x names a nameless node's layer after its first output ("63")
        n.input[:] = [names.get(i, i) for i in n.input]
        n.output[:] = [names.get(o, o) for o in n.output]
    for v in list(g.input) + list(g.output):
        v.name = names.get(v.name, v.name)
        del v.metadata_props[:]
    del g.value_info[:]
    del model.metadata_props[:]
    del model.opset_import[:]
    model.opset_import.add(domain="", version=OPENCV_OPSET)
    model.ir_version = OPENCV_IR_VERSION
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:
        raise ExportError(f"the OpenCV graph fails the ONNX checker at opset {OPENCV_OPSET}", evidence=str(e)[:400],
                          fix="report this with the torch and onnx versions") from e
    return model


def _export(module: nn.Module, example: torch.Tensor, path: Path, input_name: str, outputs: List[str],
            rename: Dict[str, str], meta: Dict[str, Any]) -> onnx.ModelProto:
    _torch_export(module, (example,), path, [input_name], outputs, None, EXPORT_OPSET)
    model = _for_opencv(onnx.load(str(path)), rename)
    model.producer_name = "siamtrt"
    set_onnx_metadata(model, meta)
    onnx.save(model, str(path))
    return model


def write_opencv_files(model: nn.Module, out_dir: Path, meta: Dict[str, Any]) -> Dict[str, Path]:
    """Write the three files for a DaSiamRPN torch ``model`` (256-channel layout) into ``out_dir``.

    Returns:
        dict: TrackerDaSiamRPN.Params field ("model", "kernel_cls1", "kernel_r1") → path written.
    """
    model = model.eval()
    e, i = OPENCV_TRACK.exemplar_size, OPENCV_TRACK.instance_size
    paths = {k: Path(out_dir) / v for k, v in OPENCV_FILES.items()}
    with torch.no_grad():
        fshape = tuple(model.featureExtract(torch.zeros(1, 3, e, e)).shape)
    if fshape != (1, OPENCV_CHANNELS, 6, 6):
        raise ExportError("the model's features are not the [1, 256, 6, 6] OpenCV's kernel nets take",
                          evidence=f"features of a {e}x{e} exemplar: {list(fshape)}", fix=OPENCV_FIX)
    last_conv = max(k for k, m in enumerate(model.featureExtract) if isinstance(m, nn.Conv2d))
    # the exporter folds the final BatchNorm into this Conv, which keeps its weight's name
    search_rename = {f"features.{last_conv}.weight": TENSORS["features"], "loc_search.weight": TENSORS["loc_search"],
                     "loc_kernel": TENSORS["loc_xcorr"], "regress_adjust.weight": TENSORS["loc"],
                     "cls_search.weight": TENSORS["cls_search"], "cls_kernel": TENSORS["cls"]}
    with torch.no_grad():
        main = _export(_SearchNet(model), torch.rand(1, 3, i, i) * 255, paths["model"], MODEL_INPUT,
                       [TENSORS["loc"], TENSORS["cls"]], search_rename, {**meta, "opencv_file": "model"})
        for key, conv in (("kernel_cls1", model.conv_cls1), ("kernel_r1", model.conv_r1)):
            _export(_KernelNet(conv), torch.rand(fshape), paths[key], KERNEL_INPUT, [KERNEL_OUTPUT], {},
                    {**meta, "opencv_file": key})
    order = [n.output[0] for n in main.graph.node]
    if order.index(TENSORS["loc"]) > order.index(TENSORS["cls"]):  # OpenCV 4.x lists outputs in layer order
        raise ExportError("the exporter put the score branch before the delta branch",
                          evidence=f"node outputs in order: {order}", fix="report this with the torch version")
    return paths


# ------------------------------------------------------------------------------------------------------ checks
def _relative(ref: np.ndarray, got: np.ndarray) -> Dict[str, float]:
    err = float(np.abs(np.asarray(ref, np.float64) - got).max())
    return {"max_abs": err, "rel": err / max(float(np.abs(ref).max()), 1e-12)}


def opencv_paths(folder: Union[str, Path]) -> Dict[str, Path]:
    """The three files in ``folder``, by TrackerDaSiamRPN.Params field.

    Raises:
        InputError: a file is missing.
    """
    folder = Path(folder)
    missing = [f for f in OPENCV_FILES.values() if not (folder / f).is_file()]
    if missing:
        raise InputError(f"{folder} lacks {missing}", evidence=folder_listing(folder),
                         fix=f"write them with siamtrt export --target opencv ... --out {folder}")
    return {k: folder / v for k, v in OPENCV_FILES.items()}


def is_opencv_export(folder: Union[str, Path]) -> bool:
    """Whether ``folder`` holds the three files this exporter wrote and nothing else: each is recognised by the
    ``siamtrt.opencv_file`` entry its metadata carries (what ``--force`` may replace)."""
    folder = Path(folder)
    if not folder.is_dir() or sorted(p.name for p in folder.iterdir()) != sorted(OPENCV_FILES.values()):
        return False
    for key, name in OPENCV_FILES.items():
        try:
            model = onnx.load(str(folder / name), load_external_data=False)
        except Exception:  # a folder, DecodeError, google.protobuf errors: not a file this exporter wrote
            return False
        if decode({p.key: p.value for p in model.metadata_props}).get("opencv_file") != key:
            return False
    return True


class OrtOpenCVFiles:
    """The three files in ONNX Runtime, run the way the tracker runs them (the correlation weights, which the tracker
    sets with setParam, are fed as inputs; the main graph takes any input side, as OpenCV's dnn does).

    ``template(z)`` → {"features", "kernel_cls1", "kernel_r1"}; ``search(x, kernels)`` → (delta, score).
    """

    def __init__(self, paths: Dict[str, Path], threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads
        main = onnx.load(str(paths["model"]))
        g = main.graph
        for d in g.input[0].type.tensor_type.shape.dim[2:]:
            d.ClearField("dim_value")
            d.dim_param = "side"
        for o in g.output:
            o.type.tensor_type.ClearField("shape")
        self.weight = {n.output[0]: n.input[1] for n in g.node if n.output[0] in (TENSORS["loc_xcorr"], TENSORS["cls"])}
        self.shapes = {}
        for init in [x for x in g.initializer if x.name in self.weight.values()]:
            self.shapes[init.name] = list(init.dims)
            g.input.append(onnx.helper.make_tensor_value_info(init.name, onnx.TensorProto.FLOAT, list(init.dims)))
            g.initializer.remove(init)
        g.output.append(onnx.helper.make_empty_tensor_value_info(TENSORS["features"]))
        providers = ["CPUExecutionProvider"]
        self.main = ort.InferenceSession(main.SerializeToString(), opts, providers=providers)
        self.kernel_nets = {k: ort.InferenceSession(str(paths[k]), opts, providers=providers)
                            for k in ("kernel_cls1", "kernel_r1")}

    def template(self, z: np.ndarray) -> Dict[str, np.ndarray]:
        feed = {MODEL_INPUT: z, **{w: np.zeros(s, np.float32) for w, s in self.shapes.items()}}
        feats = self.main.run([TENSORS["features"]], feed)[0]
        return {"features": feats, **{k: s.run(None, {KERNEL_INPUT: feats})[0] for k, s in self.kernel_nets.items()}}

    def search(self, x: np.ndarray, kernels: Dict[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        lw, cw = self.weight[TENSORS["loc_xcorr"]], self.weight[TENSORS["cls"]]
        feed = {MODEL_INPUT: x, lw: kernels["kernel_r1"].reshape(self.shapes[lw]),
                cw: kernels["kernel_cls1"].reshape(self.shapes[cw])}
        delta, score = self.main.run([TENSORS["loc"], TENSORS["cls"]], feed)
        return delta, score


class OpenCVDnnFiles:
    """The three files in the installed OpenCV's dnn, driven as TrackerDaSiamRPN drives them: forward to the features,
    the two kernel nets, reshape, ``setParam`` on the layers it names, forward the unconnected outputs in order.

    Same interface as :class:`OrtOpenCVFiles`.

    Raises:
        ExportError: OpenCV cannot load the files or address the layers its tracker addresses.
    """

    def __init__(self, paths: Dict[str, Path]):
        import cv2

        self.version = cv2.__version__
        self.names = {t: opencv_layer_name(t) for t in (TENSORS["features"], TENSORS["loc_xcorr"], TENSORS["cls"])}
        with self._errors():
            self.main = cv2.dnn.readNet(str(paths["model"]))
            self.kernel_nets = {k: cv2.dnn.readNet(str(paths[k])) for k in ("kernel_cls1", "kernel_r1")}
            self.outputs = self.main.getUnconnectedOutLayersNames()
        if len(self.outputs) != 2:
            raise ExportError(f"OpenCV {self.version} sees {len(self.outputs)} unconnected outputs in "
                              f"{paths['model'].name}, its tracker reads two (delta, score)",
                              evidence=str(self.outputs), fix="report this with the OpenCV version")

    @contextlib.contextmanager
    def _errors(self):
        import cv2

        try:
            yield
        except cv2.error as e:
            raise ExportError(f"OpenCV {self.version} cannot run the files the way TrackerDaSiamRPN does",
                              evidence=str(e).strip().splitlines()[-1][:400],
                              fix="report this with the OpenCV version; the files follow OpenCV's own layout") from None

    def template(self, z: np.ndarray) -> Dict[str, np.ndarray]:
        with self._errors():
            self.main.setInput(np.ascontiguousarray(z, np.float32))
            feats = self.main.forward(self.names[TENSORS["features"]])
            out = {"features": feats}
            for key, net in self.kernel_nets.items():
                net.setInput(feats)
                out[key] = net.forward()
        return out

    def search(self, x: np.ndarray, kernels: Dict[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        a = OPENCV_ANCHOR.anchor_num
        with self._errors():
            for tensor, blob in ((TENSORS["loc_xcorr"], kernels["kernel_r1"].reshape(4 * a, OPENCV_CHANNELS, 4, 4)),
                                 (TENSORS["cls"], kernels["kernel_cls1"].reshape(2 * a, OPENCV_CHANNELS, 4, 4))):
                lid = self.main.getLayerId(self.names[tensor])  # OpenCV 4.x: by id; 5.x: by name
                self.main.setParam(lid if lid >= 0 else self.names[tensor], 0, np.ascontiguousarray(blob))
            self.main.setInput(np.ascontiguousarray(x, np.float32))
            delta, score = self.main.forward(self.outputs)
        return delta, score


def _random_pair(seed: int) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    e, i = OPENCV_TRACK.exemplar_size, OPENCV_TRACK.instance_size
    return ((rng.random((1, 3, e, e)) * 255).astype(np.float32), (rng.random((1, 3, i, i)) * 255).astype(np.float32))


def _compare(reference, files, seed: int) -> Dict[str, Dict[str, float]]:
    """Run both on the same random exemplar and search crop; ``reference`` gives (kernels dict, delta, score)."""
    z, x = _random_pair(seed)
    k = files.template(z)
    delta, score = files.search(x, k)
    ref_k, ref_delta, ref_score = reference(z, x)
    return {**{name: _relative(ref_k[name], k[name]) for name in ref_k},
            "delta": _relative(ref_delta, delta), "score": _relative(ref_score, score)}


def check_against_torch(model: nn.Module, paths: Dict[str, Path], seed: int = 0) -> Dict[str, Dict[str, float]]:
    """ONNX Runtime on the three files vs the torch model (relative errors per output)."""
    def reference(z, x):
        with torch.no_grad():
            cls_k, loc_k = model.template(torch.from_numpy(z))
            cls, loc = model.track(torch.from_numpy(x), cls_k, loc_k)
        return {"kernel_cls1": cls_k.numpy(), "kernel_r1": loc_k.numpy()}, loc.numpy(), cls.numpy()

    return _compare(reference, OrtOpenCVFiles(paths), seed)


def check_against_model_dir(paths: Dict[str, Path], md: ModelDir, seed: int = 0) -> Dict[str, Dict[str, float]]:
    """ONNX Runtime on the three files vs the model directory's template.onnx / search.onnx."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    tsess, ssess = (ort.InferenceSession(str(md.onnx(b)), opts, providers=["CPUExecutionProvider"])
                    for b in ("template", "search"))

    def reference(z, x):
        kernels = dict(zip(md.template_outputs, tsess.run(list(md.template_outputs), {"template": z})))
        cls, loc = ssess.run(["cls", "loc"], {"search": x, **kernels})
        return {"kernel_cls1": kernels["cls_kernel"], "kernel_r1": kernels["loc_kernel"]}, loc, cls

    return _compare(reference, OrtOpenCVFiles(paths), seed)


def check_in_opencv(paths: Dict[str, Path], seed: int = 0) -> Dict[str, Dict[str, float]]:
    """The installed OpenCV's dnn (:class:`OpenCVDnnFiles`) vs ONNX Runtime on the same files and inputs."""
    ort_files = OrtOpenCVFiles(paths)

    def reference(z, x):
        k = ort_files.template(z)
        return k, *ort_files.search(x, k)

    return _compare(reference, OpenCVDnnFiles(paths), seed)


# ------------------------------------------------------------------------------------------------------- export
@dataclass
class OpenCVExport:
    """What :func:`export_opencv` wrote and measured."""

    out_dir: Path
    paths: Dict[str, Path]
    arch: str
    weights: str
    checkpoint_sha256: str
    checks: Dict[str, Dict[str, Dict[str, float]]] = field(default_factory=dict)
    opencv_version: str = ""
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"OpenCV: {self.arch} ({self.weights}, {self.checkpoint_sha256[:16]}) → {self.out_dir}"]
        for p in self.paths.values():
            lines.append(f"  {p.name}  {p.stat().st_size / 1e6:.1f} MB")
        for what, errs in self.checks.items():
            worst = max(errs.items(), key=lambda kv: kv[1]["rel"])
            lines.append(f"  check {what}: worst {worst[0]} relative {worst[1]['rel']:.2g} (limit {PARITY_RTOL:g})")
        ran = f"run in OpenCV {self.opencv_version}" if self.opencv_version else "not run in OpenCV (skipped)"
        lines.append(f"  for cv2.TrackerDaSiamRPN_Params() model / kernel_cls1 / kernel_r1; {ran}; "
                     f"{self.seconds:.1f} s")
        return "\n".join(lines)


def _source(config, checkpoint, model_dir) -> Tuple[ModelConfig, Optional[ModelDir], Optional[Path]]:
    """(config, model dir, checkpoint) after the refusals that need no weights."""
    md = None
    if model_dir is not None:
        md = ModelDir.open(model_dir)
        check_target(md, "opencv")
        cfg = ModelConfig.from_dict(md.meta["config"])
        if config is not None and get_config(config).name != cfg.name:
            raise InputError(f"--config {config} contradicts --model {md.path} ({cfg.name})",
                             fix="drop --config: the directory's metadata names its config")
    else:
        cfg = get_config(config if config is not None else "SiamRPNvot")
    check_opencv_config(cfg)
    if md is not None and checkpoint is None:
        raise InputError(f"{md.path} holds ONNX graphs, not the torch weights the OpenCV files are built from",
                         evidence=f"weights: {md.weights_line}",
                         fix=f"also pass --checkpoint, the file {md.path} was exported from (seeded random "
                             f"weights: --config {cfg.name} --seed N without --model builds them again)")
    return cfg, md, Path(checkpoint) if checkpoint is not None else None


def _torch_model(cfg: ModelConfig, md: Optional[ModelDir], checkpoint: Optional[Path],
                 seed: int) -> Tuple[nn.Module, str, str]:
    """(model, checkpoint sha256 or "random-seed-N", weights kind), checked against ``md`` when given."""
    if checkpoint is not None:
        model = build_model(cfg)
        sha = load_checkpoint(model, checkpoint, cfg)
        if md is not None and md.checkpoint_sha256 != sha:
            raise InputError(f"{checkpoint} is not the checkpoint {md.path} was exported from",
                             evidence=f"sha256 {sha[:16]}… vs the directory's {md.checkpoint_sha256[:16]}…",
                             fix="pass the model.pth the directory was exported from (or drop --model)")
        return model.eval(), sha, "checkpoint"
    from .random_init import make_realistic

    torch.manual_seed(seed)  # the same construction as export_model without a checkpoint
    log.warning("OpenCV: no --checkpoint: SEEDED RANDOM WEIGHTS (seed %d), untrained: for pipeline checks only", seed)
    return make_realistic(build_model(cfg), None, seed=seed).eval(), f"random-seed-{seed}", "random-realistic"


def export_opencv(out_dir: Union[str, Path], *, config: Optional[str] = None,
                  checkpoint: Optional[Union[str, Path]] = None, model_dir: Optional[Union[str, Path]] = None,
                  seed: int = 0, overwrite: bool = False, check_opencv: bool = True, progress: bool = False,
                  verbose: bool = False) -> OpenCVExport:
    """Write dasiamrpn_model.onnx, dasiamrpn_kernel_cls1.onnx and dasiamrpn_kernel_r1.onnx into ``out_dir``.

    The weights come from ``checkpoint`` (a DaSiamRPN SiamRPNVOT.model / SiamRPNOTB.model state_dict), or from seeded
    random weights without one. ``model_dir`` (an fp32 conv-mode siamtrt export of a vot/otb model) names the config
    and is the reference the files must reproduce; the torch weights are still rebuilt from ``checkpoint`` (its ONNX
    files hold folded graphs, not the modules), which must be the file the directory was exported from (sha256).

    Args:
        out_dir: folder to write (built under a temporary name and renamed into place when every check passed).
        config (str): SiamRPNvot or SiamRPNotb. Defaults to None (the model directory's, else SiamRPNvot).
        checkpoint: the trained weights. Defaults to None (seeded random weights, labelled untrained).
        model_dir: siamtrt model directory to rebuild and check against. Defaults to None.
        seed (int): random weights' seed, and the check inputs'. Defaults to 0.
        overwrite (bool): replace an earlier OpenCV export in ``out_dir`` (any other non-empty folder is refused).
            Defaults to False.
        check_opencv (bool): run the files in the installed OpenCV's dnn as its tracker does. Defaults to True.
        progress (bool): a progress line over the steps. Defaults to False.
        verbose (bool): show torch / onnxscript output. Defaults to False.

    Raises:
        ExportError: a model OpenCV cannot run (pysot, SiamRPNBIG), or a failed check. ModelDirError: a directory
        OpenCV's target does not take (fp16 / int8, plugin, pysot). InputError, CheckpointError: bad inputs.
    """
    start = time.perf_counter()
    cfg, md, ckpt = _source(config, checkpoint, model_dir)
    if ckpt is not None:
        require_checkpoint(ckpt)  # before the progress line starts
    check_replaceable(out_dir, overwrite=overwrite, flag="--force", recognise=is_opencv_export, what="--out",
                      kind="OpenCV export", layout=f"an OpenCV export holds {', '.join(OPENCV_FILES.values())} only, "
                                                   "each with siamtrt.opencv_file metadata")
    steps = ["weights", "files", "vs PyTorch"] + (["vs --model"] if md is not None else []) + (
        ["OpenCV dnn"] if check_opencv else [])
    with third_party_logs(verbose), staged_dir(out_dir, overwrite=overwrite) as tmp, \
            progress_bar(len(steps), f"OpenCV: {cfg.name}", "step", progress, leave=False) as bar:
        def step(name):
            bar.set_postfix_str(name)
            bar.update(1)

        model, sha, weights = _torch_model(cfg, md, ckpt, seed)
        step("weights")
        meta = {"version": __version__, "arch": cfg.name, "family": cfg.family, "checkpoint_sha256": sha,
                "weights": weights, "opencv_tracker_constants": OPENCV_CONSTANTS}
        paths = write_opencv_files(model, tmp, meta)
        step("files")
        checks = {"onnxruntime vs PyTorch": check_against_torch(model, paths, seed)}
        step("vs PyTorch")
        if md is not None:
            checks[f"onnxruntime vs {md.path.name}/"] = check_against_model_dir(paths, md, seed)
            step("vs --model")
        version = ""
        if check_opencv:
            import cv2

            version = cv2.__version__
            checks[f"OpenCV {version} dnn vs onnxruntime"] = check_in_opencv(paths, seed)
            step("OpenCV dnn")
        bad = [f"{what}: {k} rel {v['rel']:.3g}" for what, errs in checks.items() for k, v in errs.items()
               if not v["rel"] <= PARITY_RTOL]
        if bad:
            raise ExportError(f"the OpenCV files do not reproduce the model beyond {PARITY_RTOL:g} relative error",
                              evidence="; ".join(bad),
                              fix="report this with the torch, onnxruntime and OpenCV versions")
    out_dir = Path(out_dir)
    return OpenCVExport(out_dir=out_dir, paths={k: out_dir / p.name for k, p in paths.items()}, arch=cfg.name,
                        weights=weights, checkpoint_sha256=sha, checks=checks, opencv_version=version,
                        seconds=time.perf_counter() - start)

