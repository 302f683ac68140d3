"""INT8 explicit quantization (QDQ ONNX) of both branches, in the flavour each runtime runs fast.

Library: ``onnxruntime.quantization.quantize_static`` (QDQ format). Why this one: it is the quantizer maintained
by the runtime that executes the CPU flavour (its QDQ → QLinearConv fusions are what make int8 fast there), it
writes standard ONNX QuantizeLinear/DequantizeLinear that TensorRT's parser accepts when the zero points are 0,
it supports per-channel weights, node exclusion and externally supplied ranges (``calibration_cache_path``), and it
is already a dependency. NVIDIA ModelOpt would place Q/DQ by TensorRT's fusion rules but pulls torch ≥ 2.8,
onnxruntime-gpu and cupy — too heavy for a CPU pipeline; hand-inserting nodes is what this module avoids.

Two flavours, because one cannot serve both runtimes (the mobilev2 search branch on ONNX Runtime 1.32, this
2-core CPU: uint8 asymmetric activations run at 0.44× the FP32 time, symmetric int8 at 1.00× — no gain):

* ``onnxruntime`` (default): uint8 asymmetric activations, int8 symmetric per-channel weights (VNNI path).
* ``tensorrt``: int8 symmetric activations and weights (all zero points 0), per-channel weights, bias left in
  float (TensorRT's DequantizeLinear takes no int32) — what ``export/build_engine.py --int8`` consumes.

What stays in float (``excluded_nodes`` in the metadata lists it):

* the depthwise correlations — Convs whose weights are a graph tensor: TensorRT cannot quantize them and their
  "weights" change per target;
* the tail — every node from the last convolution of each path to the ``cls``/``loc`` (or kernel) outputs;
* the stem — the convolution(s) reading the 0..255 image (see :func:`stem_convs`);
* the convolutions nearest the input, up to a share of the MACs (``float_prefix``, :func:`input_prefix_convs`).

Ranges are per tensor (see :mod:`.ranges`): observed min/max by default (``--method max``), percentile or entropy
on request for the backbone/neck; everything after a correlation keeps ``max`` (the score peak is an outlier by
nature; clipping it costs tracking accuracy). Residual Adds are not quantized (see :data:`OP_TYPES`).

How these choices were made (mobilev2 search branch, realistic random weights, cls cosine vs FP32 on 40 bag.avi
crops with FP32 kernels): whole-graph ORT defaults (MinMax, per-tensor weights) 0.81; correlation and tail float
with entropy ranges 0.69; max ranges + stem float 0.935 (int8 stem weights alone cost 0.15); + residual Adds
float and the first 5 % of MACs float 0.99. The template branch, which runs once per target, keeps 25 % of its
MACs in float.

Why not fewer float layers on mobilev2 (its search ratio sits at ~0.40× FP32 single-threaded, 0.37× with only the
stem float): quantizing any one of the first ten prefix convolutions alone costs 0.01–0.05 of cls cosine, the next
ten 0.000–0.008 each but 0.011 together (contiguous float prefix to conv k: 19 → 0.988, 16 → 0.987, 13 → 0.980,
10 → 0.970); and a float set with holes in it is *slower* than the contiguous prefix (each hole adds a
Q/DQ pair and two NCHWc layout reorders). Where the rest of the time goes (ORT profile, int8): the 6 float
correlations ~4 ms, the float prefix ~8 ms (its 22/33/132/198-channel layers miss ORT's NCHWc kernels in FP32 too),
int8 convolutions ~22 ms at VNNI rate.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import CalibrationError
from ..metadata import SEARCH_INPUT, TEMPLATE_INPUT, file_sha256
from .data import MIN_RECOMMENDED_SEARCH, CalibrationSet, load_calibration
from .modeldir import derived_metadata, open_model_dir, save_branch
from .graph import (correlation_convs, downstream_tensors, input_prefix_convs, name_nodes, named_model, stem_convs,
                    tail_nodes)
from .ranges import METHODS, Ranges, collect_statistics, compute_ranges, save_ort_cache

LOG = logging.getLogger(__name__)

#: Ops given Q/DQ. Conv carries nearly all the compute; Relu/Clip are folded into the preceding QLinearConv's output
#: range, MaxPool (alex) keeps the int8 chain unbroken. Residual Adds (mobilev2, r50) stay float: quantizing the
#: residual stream re-rounds it at every block (mobilev2 search, stem + first 5 % MACs float: cls cosine 0.950 with
#: Add quantized, 0.988 without, same speed within noise).
OP_TYPES = ("Conv", "Relu", "Clip", "MaxPool")
IMAGE_RANGE = (0.0, 255.0)  # template/search crops are BGR 0..255: the input range is known, not estimated
#: Share of conv MACs, nearest the input, kept in float (see input_prefix_convs), per branch. The template branch
#: runs once per target, so its int8 speed-up is worth little while its rounding persists in every frame's
#: correlation: it keeps more in float (mobilev2 deepest kernel cosine: 0.87 at 5 %, 0.97 at 10 %, 0.994 at 20 %).
DEFAULT_FLOAT_PREFIX = {"template": 0.25, "search": 0.05}
#: Range method default. Measured on the mobilev2 search branch (stem float, everything else int8, 32 crops):
#: max 0.935 cls cosine, percentile(99.99) 0.921, entropy 0.713 — clipping hurts a network whose score peak is
#: the signal, and ORT's entropy search on 2048-bin histograms is also slow (~5 s per tensor set of 130).
DEFAULT_METHOD = "max"


@dataclass(frozen=True)
class Flavour:
    """How one target wants its QDQ model (a row of the capability table)."""

    name: str
    activation_type: str   # onnxruntime.quantization.QuantType member name
    weight_type: str
    extra_options: Tuple[Tuple[str, Any], ...]
    note: str

    def quant_types(self):
        from onnxruntime.quantization import QuantType

        return getattr(QuantType, self.activation_type), getattr(QuantType, self.weight_type)


TARGETS: Dict[str, Flavour] = {
    "onnxruntime": Flavour("onnxruntime", "QUInt8", "QInt8",
                           (("ActivationSymmetric", False), ("WeightSymmetric", True)),
                           "uint8 asymmetric activations + int8 per-channel weights (ORT CPU QLinearConv, VNNI)"),
    "tensorrt": Flavour("tensorrt", "QInt8", "QInt8",
                        (("ActivationSymmetric", True), ("WeightSymmetric", True), ("QuantizeBias", False)),
                        "int8 symmetric activations and per-channel weights, zero points 0, float bias "
                        "(TensorRT explicit quantization)"),
}


class _DropPreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def _no_preprocess_nag():
    """quantize_static logs "Please consider to run pre-processing" twice on the root logger. Our exports are
    already BatchNorm-folded, shape-inferred and simplified (export/to_onnx.py runs onnxslim), which is what
    ``quant_pre_process`` would do, so the hint is noise here."""
    filt = _DropPreprocessHint()
    root = logging.getLogger()
    root.addFilter(filt)
    try:
        yield
    finally:
        root.removeFilter(filt)


# ------------------------------------------------------------------------------------------------- quantization
@dataclass
class BranchResult:
    """What quantizing one branch did."""

    branch: str
    path: Path
    samples: int
    excluded: List[str]
    methods: Dict[str, int]
    qdq_nodes: int
    seconds: float
    ranges: Optional[Ranges] = None


def quantize_branch(src: Union[str, Path], dst: Union[str, Path], feeds: Iterable[Dict[str, np.ndarray]], *,
                    target: str = "onnxruntime", method: str = DEFAULT_METHOD, head_method: str = "max",
                    exclude: Sequence[str] = (), total: Optional[int] = None, branch: str = "search",
                    percentile: float = 99.99, float_prefix: Optional[float] = None) -> Tuple[Any, BranchResult]:
    """Quantize one ONNX model to QDQ int8; returns the (unsaved, metadata-less) ModelProto and a result.

    Args:
        src (str | Path): float32 ONNX model.
        dst (str | Path): where :func:`quantize_int8` will save it (used for the result only).
        feeds (Iterable[dict]): calibration feed dicts for this model.
        target (str): "onnxruntime" or "tensorrt". Defaults to "onnxruntime".
        method (str): range method for the backbone/neck. Defaults to "max".
        head_method (str): range method for tensors downstream of a correlation. Defaults to "max".
        exclude (Sequence[str]): extra node names kept in float. Defaults to ().
        total (int): number of feed samples (progress bar). Defaults to None.
        branch (str): "template" or "search" (messages). Defaults to "search".
        percentile (float): for the percentile method. Defaults to 99.99.
        float_prefix (float): share of conv MACs nearest the input kept in float. Defaults to
            DEFAULT_FLOAT_PREFIX[branch] (template 0.25, search 0.05).

    Raises:
        CalibrationError: unknown target/method, unknown excluded node names, or a calibration failure.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    if target not in TARGETS:
        raise CalibrationError(f"unknown quantization target '{target}'", evidence=f"valid: {list(TARGETS)}",
                               fix="use --target onnxruntime (CPU) or --target tensorrt")
    for m in (method, head_method):
        if m not in METHODS:
            raise CalibrationError(f"unknown calibration method '{m}'", evidence=f"valid: {METHODS}",
                                   fix="use --method entropy, max or percentile")
    flavour = TARGETS[target]
    float_prefix = DEFAULT_FLOAT_PREFIX.get(branch, 0.05) if float_prefix is None else float(float_prefix)
    t0 = time.perf_counter()
    model = onnx.load(str(src))
    name_nodes(model)
    corr = correlation_convs(model)
    tail = tail_nodes(model)
    names = {n.name for n in model.graph.node}
    unknown = sorted(set(exclude) - names)
    if unknown:
        raise CalibrationError(f"--exclude names nodes that the {branch} model does not have: {unknown}",
                               evidence=f"{len(names)} nodes, e.g. {sorted(names)[:5]}",
                               fix="list node names with: python -c \"import onnx; print([n.name for n in "
                                   f"onnx.load('{src}').graph.node])\"")
    stem = stem_convs(model)
    prefix = [n for n in input_prefix_convs(model, float_prefix) if n not in stem]
    excluded = list(dict.fromkeys(stem + prefix + corr + tail + list(exclude)))
    head = downstream_tensors(model, corr)
    fixed = {t: IMAGE_RANGE for t in (TEMPLATE_INPUT, SEARCH_INPUT)}
    with tempfile.TemporaryDirectory(prefix="siamtrt-qdq-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        onnx.save(model, str(prepared))
        stats = collect_statistics(prepared, feeds, op_types=OP_TYPES,
                                   histograms=(method, head_method) != ("max", "max"), total=total,
                                   progress=f"INT8 {branch}")
        per_tensor = {t: (head_method if t in head else method) for t in stats.names}
        ranges = compute_ranges(stats, per_tensor, percentile=percentile, fixed=fixed)
        cache = save_ort_cache(ranges, Path(tmp) / "ranges.json")
        act, wgt = flavour.quant_types()
        extra = dict(flavour.extra_options)
        try:
            with _no_preprocess_nag():
                quantize_static(str(prepared), str(Path(tmp) / "quant.onnx"), None, quant_format=QuantFormat.QDQ,
                                op_types_to_quantize=list(OP_TYPES), per_channel=True, reduce_range=False,
                                activation_type=act, weight_type=wgt, nodes_to_exclude=excluded,
                                calibrate_method=CalibrationMethod.MinMax, extra_options=extra,
                                calibration_cache_path=str(cache))
        except Exception as e:  # the quantizer raises ValueError/RuntimeError/onnx errors
            raise CalibrationError(f"onnxruntime.quantization failed on the {branch} model",
                                   evidence=f"{type(e).__name__}: {str(e)[:400]}",
                                   fix="try another --method, or --exclude the node it names") from None
        qmodel = onnx.load(str(Path(tmp) / "quant.onnx"))
    qdq = sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in qmodel.graph.node)
    if qdq == 0:
        raise CalibrationError(f"the quantized {branch} model contains no QuantizeLinear/DequantizeLinear nodes",
                               evidence=f"excluded {len(excluded)} of {len(names)} nodes",
                               fix="exclude fewer nodes (--exclude)")
    res = BranchResult(branch=branch, path=Path(dst), samples=stats.samples, excluded=excluded,
                       methods=ranges.method_counts(), qdq_nodes=qdq, seconds=time.perf_counter() - t0,
                       ranges=ranges)
    LOG.info("INT8: %s: %d Q/DQ nodes, %d nodes kept in float (%d stem, %d input-side, %d correlation, %d tail), "
             "ranges %s, %.1fs", branch, qdq, len(excluded), len(stem), len(prefix), len(corr), len(tail),
             res.methods, res.seconds)
    return qmodel, res


@dataclass
class QuantizeSummary:
    """What ``calibration/quantize.py`` did (printed by the script)."""

    out_dir: Path
    precision: str
    target: str
    branches: List[BranchResult] = field(default_factory=list)
    details: Dict[str, Any] = field(default_factory=dict)
    extra_files: List[Path] = field(default_factory=list)
    seconds: float = 0.0

    def __str__(self) -> str:
        int8 = self.precision == "int8"
        head = f"{self.precision.upper()} ({self.target})" if int8 else self.precision.upper()
        lines = [f"{head} model directory written: {self.out_dir}"]
        for b in self.branches:
            mb = b.path.stat().st_size / 2 ** 20 if b.path.is_file() else 0.0
            what = (f"{b.qdq_nodes:4d} Q/DQ nodes  {len(b.excluded):3d} nodes in float  ranges {b.methods}" if int8
                    else f"{len(b.excluded):3d} nodes kept in float32")
            lines.append(f"  {b.branch:8s} {b.path.name:14s} {mb:6.1f} MB  {what}  ({b.samples} crops, "
                         f"{b.seconds:.1f}s)")
        for f in self.extra_files:
            lines.append(f"  {f}")
        lines.append(f"  total {self.seconds:.1f}s")
        lines.append(f"next: python calibration/report.py --ref SOURCE_DIR --cand {self.out_dir} "
                     f"--video VIDEO --bbox x,y,w,h")
        return "\n".join(lines)


def quantize_int8(model_dir: Union[str, Path], calib: Union[str, Path, CalibrationSet], out_dir: Union[str, Path],
                  *, target: str = "onnxruntime", method: str = DEFAULT_METHOD, head_method: str = "max",
                  float_prefix: Optional[Dict[str, float]] = None, exclude: Sequence[str] = (), trt_cache: bool = False,
                  trt_version: Optional[str] = None, batch: int = 4) -> QuantizeSummary:
    """Quantize both branches of an fp32 model directory to QDQ int8 (``calibration/quantize.py --precision int8``).

    Args:
        model_dir (str | Path): fp32 directory written by export/to_onnx.py.
        calib (str | Path | CalibrationSet): calibration file from calibration/collect.py (or the loaded set).
        out_dir (str | Path): derived directory to write.
        target (str): "onnxruntime" or "tensorrt". Defaults to "onnxruntime".
        method (str): backbone/neck range method: max, percentile or entropy. Defaults to "max".
        head_method (str): range method after the correlation. Defaults to "max".
        float_prefix (dict): branch → share of conv MACs nearest the input kept in float. Defaults to
            DEFAULT_FLOAT_PREFIX (template 0.25, search 0.05); missing branches take the default.
        exclude (Sequence[str]): extra node names kept in float (template or search). Defaults to ().
        trt_cache (bool): also write TensorRT calibration caches for implicit INT8 (TensorRT ≤ 10, JetPack 5/6)
            next to the models. Defaults to False.
        trt_version (str): TensorRT version the cache is for (e.g. "8.5.2"). Defaults to the installed one.
        batch (int): crops per calibration run. Defaults to 4.

    Raises:
        ModelDirError / CalibrationError: see :func:`open_model_dir`, :func:`load_calibration`,
            :func:`quantize_branch`.
    """
    import onnxruntime

    t0 = time.perf_counter()
    if target not in TARGETS:
        raise CalibrationError(f"unknown quantization target '{target}'", evidence=f"valid: {list(TARGETS)}",
                               fix="use --target onnxruntime (CPU) or --target tensorrt")
    prefix = dict(DEFAULT_FLOAT_PREFIX, **(float_prefix or {}))
    bad = {k: v for k, v in prefix.items() if k not in DEFAULT_FLOAT_PREFIX or not 0.0 <= float(v) <= 1.0}
    if bad:
        raise CalibrationError(f"float prefix must map template/search to a share in [0, 1], got {bad}",
                               fix="e.g. --float-prefix 0.05 (search) --template-float-prefix 0.25")
    src = open_model_dir(model_dir, require_fp32=True)
    out_dir = Path(out_dir)
    if out_dir.resolve() == src.path.resolve():
        raise CalibrationError("the output directory is the source directory",
                               fix="pass a new --out, e.g. models/NAME_int8")
    cset = calib if isinstance(calib, CalibrationSet) else load_calibration(calib)
    cset.check_model(src)
    if cset.num_search < MIN_RECOMMENDED_SEARCH:
        LOG.warning("INT8: only %d search crops (recommended ≥ %d): ranges may be noisy", cset.num_search,
                    MIN_RECOMMENDED_SEARCH)
    node_names = {b: {n.name for n in named_model(src.onnx(b)).graph.node} for b in ("template", "search")}
    unknown = sorted(set(exclude) - node_names["template"] - node_names["search"])
    if unknown:
        raise CalibrationError(f"--exclude names nodes found in neither branch: {unknown}",
                               evidence=f"e.g. search nodes {sorted(node_names['search'])[:6]}",
                               fix="list node names with python -c \"import onnx; print([n.name for n in "
                                   f"onnx.load('{src.onnx('search')}').graph.node])\"")
    step = batch if src.dynamic_batch else 1
    kernels = cset.kernels_for(src)
    flavour = TARGETS[target]
    LOG.info("INT8: onnxruntime %s, target %s (%s), method %s / head %s, float prefix %s of MACs, calibration %s",
             onnxruntime.__version__, target, flavour.note, method, head_method, prefix, cset.summary())
    common = {
        "library": "onnxruntime.quantization", "library_version": onnxruntime.__version__, "format": "QDQ",
        "target": target, "activation_type": flavour.activation_type, "weight_type": flavour.weight_type,
        "per_channel": True, "symmetric_activations": dict(flavour.extra_options)["ActivationSymmetric"],
        "method": method, "head_method": head_method, "float_prefix": prefix, "op_types": list(OP_TYPES),
        "calib_file": cset.path.name if cset.path else None,
        "calib_sha256": file_sha256(cset.path) if cset.path else None, "source_dir": str(src.path),
    }
    summary = QuantizeSummary(out_dir=out_dir, precision="int8", target=target, details=common)
    results = {}
    for branch in ("template", "search"):
        feeds, total = cset.branch_feeds(branch, kernels, step)
        qmodel, res = quantize_branch(src.onnx(branch), out_dir / src.onnx(branch).name, feeds, target=target,
                                      method=method, head_method=head_method, float_prefix=prefix[branch],
                                      exclude=[e for e in exclude if e in node_names[branch]], total=total,
                                      branch=branch)
        results[branch] = (qmodel, res)
    caches = {}
    if trt_cache:
        from .cache import write_trt_caches

        caches = write_trt_caches(src.path, cset, out_dir, method=method, head_method=head_method,
                                  trt_version=trt_version, batch=batch)
        summary.extra_files.extend(caches.values())
    # the models are written only once both branches succeeded (no half-written directory on a calibration error)
    for branch, (qmodel, res) in results.items():
        details = dict(common, samples=res.samples, excluded_nodes=res.excluded, range_methods=res.methods,
                       source_sha256=src.sha256(branch))
        if branch in caches:
            # the cache's tensor names are those of the *fp32* ONNX it was computed on: record which one
            details["trt_calibration_cache"] = {"file": caches[branch].name, "for_onnx": str(src.onnx(branch)),
                                                "for_onnx_sha256": src.sha256(branch),
                                                "header": caches[branch].read_text().splitlines()[0]}
        res.path = save_branch(qmodel, out_dir, branch, derived_metadata(src, branch, "int8", details))
        summary.branches.append(res)
    summary.seconds = time.perf_counter() - t0
    return summary


__all__ = ["OP_TYPES", "TARGETS", "BranchResult", "Flavour", "QuantizeSummary", "correlation_convs",
           "downstream_tensors", "name_nodes", "quantize_branch", "quantize_int8", "tail_nodes"]
