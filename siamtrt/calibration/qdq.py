"""INT8 explicit quantization (QDQ ONNX) of both branches, for the engine that will run them (the Q/DQ target).

Library: ``onnxruntime.quantization.quantize_static`` (QDQ format). Why this one: it is the quantizer maintained
by the runtime that executes the CPU targets (its QDQ → QLinearConv fusions are what make int8 fast there), it
writes standard ONNX QuantizeLinear/DequantizeLinear that TensorRT's parser accepts when the zero points are 0,
it supports per-channel weights, node exclusion and externally supplied ranges (``calibration_cache_path``), and it
is already a dependency. NVIDIA ModelOpt would place Q/DQ by TensorRT's fusion rules but pulls torch ≥ 2.8,
onnxruntime-gpu and cupy — too heavy for a CPU pipeline; hand-inserting nodes is what this module avoids.

Q/DQ targets (:data:`QDQ_TARGETS`), because one Q/DQ model cannot serve every engine (the mobilev2 search branch on
ONNX Runtime 1.32, this 2-core CPU: uint8 asymmetric activations run at 0.44× the FP32 time, symmetric int8 at
1.00× — no gain), and because each engine's fidelity and speed differ:

* ``onnxruntime`` (default): uint8 asymmetric activations, int8 symmetric per-channel weights (VNNI path).
* ``openvino``: the same arithmetic, the fidelity search measured on OpenVINO, and the stem a candidate of the
  search (OpenVINO runs a 3-channel int8 stem on AMX; ONNX Runtime's is slower than its float one).
* ``tensorrt``: int8 symmetric activations and weights (all zero points 0), per-channel weights, bias left in
  float (TensorRT's DequantizeLinear takes no int32) — what ``export/build_engine.py --int8`` consumes.

What stays in float (``excluded_nodes`` in the metadata lists it):

* the depthwise correlations — Convs whose weights are a graph tensor: TensorRT cannot quantize them and their
  "weights" change per target;
* the tail — every node from the last convolution of each path to the ``cls``/``loc`` (or kernel) outputs;
* the stem — the convolution(s) reading the 0..255 image (see :func:`stem_convs`), except for targets that search
  it (openvino: quantized where the fidelity target allows);
* the convolutions nearest the input, as many as the model in hand needs: :func:`quantize_int8` measures the
  fidelity of the INT8 pair on calibration crops and grows this float prefix until ``min_cosine`` (default 0.98)
  is met (:mod:`.sensitivity`; ranges are collected once by :class:`BranchQuantizer`, each candidate is one
  ``quantize_static`` call with another ``nodes_to_exclude``). ``float_prefix`` (a share of the MACs,
  :func:`input_prefix_convs`) forces a minimum prefix.

The fixed recipe below (search 5 %, template 25 % of MACs float) was the default until issue 13 showed it fitted to
one family of weights; it is :data:`DEFAULT_FLOAT_PREFIX` and is reproduced by
``min_cosine=0, float_prefix=DEFAULT_FLOAT_PREFIX`` in :func:`quantize_int8`.

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
from ..modeldir import ONNX_FILES, ModelDir
from ..runtime.openvino import bf16_plan_text
from .derive import check_model_out_dir, derived_metadata, save_branch, staged_model_dir
from .graph import (conv_macs, correlation_convs, downstream_tensors, input_prefix_convs, mac_share, name_nodes,
                    named_model, stem_convs, tail_nodes)
from .ranges import DEFAULT_METHOD, IMAGE_RANGE, METHODS, Ranges, collect_statistics, compute_ranges, save_ort_cache
from .sensitivity import (DEFAULT_FIDELITY_SAMPLES, DEFAULT_HELD_OUT, DEFAULT_MARGIN, DEFAULT_MIN_COSINE,
                          FallbackResult, FidelityProbe, bf16_fidelity, fidelity_subsets, prefix_fallback,
                          quantizable_convs, template_target)

LOG = logging.getLogger(__name__)

#: Ops given Q/DQ. Conv carries nearly all the compute; Relu/Clip are folded into the preceding QLinearConv's output
#: range, MaxPool (alex) keeps the int8 chain unbroken. Residual Adds (mobilev2, r50) stay float: quantizing the
#: residual stream re-rounds it at every block (mobilev2 search, stem + first 5 % MACs float: cls cosine 0.950 with
#: Add quantized, 0.988 without, same speed within noise).
OP_TYPES = ("Conv", "Relu", "Clip", "MaxPool")
#: Share of conv MACs, nearest the input, kept in float (see input_prefix_convs), per branch. The template branch
#: runs once per target, so its int8 speed-up is worth little while its rounding persists in every frame's
#: correlation: it keeps more in float (mobilev2 deepest kernel cosine: 0.87 at 5 %, 0.97 at 10 %, 0.994 at 20 %).
DEFAULT_FLOAT_PREFIX = {"template": 0.25, "search": 0.05}


@dataclass(frozen=True)
class QdqTarget:
    """A Q/DQ target: how one engine wants its INT8 model (a row of the quantization capability table).

    Attributes:
        name (str): the ``--target`` name. activation_type / weight_type (str): ``onnxruntime.quantization.QuantType``
            member names. extra_options (tuple): ``quantize_static`` extra options (symmetry, bias).
        engine (str): the runtime backend whose arithmetic the fidelity search measures (registry name).
        stem_searched (bool): the stem is a candidate of the fidelity search (int8 where fidelity allows) instead
            of always float — for engines whose int8 stem is faster than their float one.
        note (str): one line for logs and the docs.
        bf16_check (bool): also measure whether the engine's bf16 hint keeps the chosen pair's outputs, and record
            it in the metadata (``quantization.bf16``, what OpenVINO's ``precision="auto"`` reads). Defaults to False.
    """

    name: str
    activation_type: str
    weight_type: str
    extra_options: Tuple[Tuple[str, Any], ...]
    engine: str
    stem_searched: bool
    note: str
    bf16_check: bool = False

    def quant_types(self):
        from onnxruntime.quantization import QuantType

        return getattr(QuantType, self.activation_type), getattr(QuantType, self.weight_type)


_ASYMMETRIC = (("ActivationSymmetric", False), ("WeightSymmetric", True))
#: Q/DQ targets. onnxruntime and openvino write the same Q/DQ arithmetic (uint8 asymmetric activations measured
#: 0.9991 vs 0.9981 cls cosine and 0.135x vs 0.159x of ORT FP32 search time for symmetric int8 in OpenVINO, alex
#: stand-in, stem int8), but their engines differ where it matters: ORT's int8 stem (3 input channels) is *slower*
#: than its float one (alex search 0.52x vs 0.39x of FP32), OpenVINO's runs on AMX and halves the INT8 search time
#: (0.14x vs 0.26x), so only openvino searches the stem; and each directory's fidelity is measured on its engine.
QDQ_TARGETS: Dict[str, QdqTarget] = {
    "onnxruntime": QdqTarget("onnxruntime", "QUInt8", "QInt8", _ASYMMETRIC, engine="onnxruntime", stem_searched=False,
                             note="uint8 asymmetric activations + int8 per-channel weights (ORT CPU QLinearConv, "
                                  "VNNI); stem float"),
    "openvino": QdqTarget("openvino", "QUInt8", "QInt8", _ASYMMETRIC, engine="openvino", stem_searched=True,
                          note="uint8 asymmetric activations + int8 per-channel weights (OpenVINO CPU, VNNI / AMX); "
                               "fidelity measured in OpenVINO; the stem int8 where fidelity allows",
                          bf16_check=True),
    "tensorrt": QdqTarget("tensorrt", "QInt8", "QInt8",
                          (("ActivationSymmetric", True), ("WeightSymmetric", True), ("QuantizeBias", False)),
                          engine="onnxruntime", stem_searched=False,
                          note="int8 symmetric activations and per-channel weights, zero points 0, float bias "
                               "(TensorRT explicit quantization; fidelity measured on ONNX Runtime, which executes "
                               "the same Q/DQ arithmetic)"),
}


def qdq_target(name: str) -> QdqTarget:
    """The :class:`QdqTarget` called ``name``.

    Raises:
        CalibrationError: unknown name (lists the valid ones).
    """
    if name not in QDQ_TARGETS:
        raise CalibrationError(f"unknown quantization target '{name}'", evidence=f"valid: {list(QDQ_TARGETS)}",
                               fix="use --target onnxruntime (ORT CPU), openvino (OpenVINO CPU) or tensorrt")
    return QDQ_TARGETS[name]


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
    fallback: Optional[FallbackResult] = None   # what the per-model fidelity search chose (None: fixed set)
    float_mac_share: Optional[float] = None      # share of the conv MACs (constant weights) left float
    stem_int8: List[str] = field(default_factory=list)   # stem convolutions quantized (targets that search the stem)


class BranchQuantizer:
    """One branch's statistics and ranges, collected once; :meth:`quantize` then re-quantizes with any float set.

    What makes the per-model fallback (:mod:`.sensitivity`) cheap: each candidate float set is one
    ``quantize_static`` call on the cached ranges (ORT's ``calibration_cache_path``), no new calibration pass.
    Use as a context manager (it holds a temporary directory with the prepared model and the range cache).

    Raises:
        CalibrationError: unknown target/method, unknown excluded node names, or a calibration failure.
    """

    def __init__(self, src: Union[str, Path], feeds: Iterable[Dict[str, np.ndarray]], *,
                 target: str = "onnxruntime", method: str = DEFAULT_METHOD, head_method: str = DEFAULT_METHOD,
                 total: Optional[int] = None, branch: str = "search", percentile: float = 99.99):
        import onnx

        self.qdq_target = qdq_target(target)
        for m in (method, head_method):
            if m not in METHODS:
                raise CalibrationError(f"unknown calibration method '{m}'", evidence=f"valid: {METHODS}",
                                       fix="use --method entropy, max or percentile")
        t0 = time.perf_counter()
        self.src, self.branch, self.target = Path(src), branch, target
        self.model = onnx.load(str(src))
        name_nodes(self.model)
        self.names = {n.name for n in self.model.graph.node}
        self.corr = correlation_convs(self.model)
        self.tail = tail_nodes(self.model)
        self.stem = stem_convs(self.model)
        head = downstream_tensors(self.model, self.corr)
        fixed = {t: IMAGE_RANGE for t in (TEMPLATE_INPUT, SEARCH_INPUT)}
        self._tmp = tempfile.TemporaryDirectory(prefix="siamtrt-qdq-")
        tmp = Path(self._tmp.name)
        self.prepared = tmp / "prepared.onnx"
        onnx.save(self.model, str(self.prepared))
        try:
            self.stats = collect_statistics(self.prepared, feeds, op_types=OP_TYPES,
                                            histograms=(method, head_method) != ("max", "max"), total=total,
                                            progress=f"INT8 {branch}")
        except BaseException:
            self._tmp.cleanup()
            raise
        per_tensor = {t: (head_method if t in head else method) for t in self.stats.names}
        self.ranges = compute_ranges(self.stats, per_tensor, percentile=percentile, fixed=fixed)
        self.cache = save_ort_cache(self.ranges, tmp / "ranges.json")
        self.seconds = time.perf_counter() - t0
        self._count = 0

    def __enter__(self) -> "BranchQuantizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._tmp.cleanup()

    def check_names(self, nodes: Sequence[str]) -> None:
        """Raises CalibrationError when ``nodes`` names nodes this model does not have."""
        unknown = sorted(set(nodes) - self.names)
        if unknown:
            raise CalibrationError(f"--exclude names nodes that the {self.branch} model does not have: {unknown}",
                                   evidence=f"{len(self.names)} nodes, e.g. {sorted(self.names)[:5]}",
                                   fix="list node names with: python -c \"import onnx; print([n.name for n in "
                                       f"onnx.load('{self.src}').graph.node])\"")

    def quantize(self, excluded: Sequence[str]):
        """The QDQ ModelProto with ``excluded`` nodes kept float (ranges from the cache).

        Raises:
            CalibrationError: the quantizer failed, or produced no Q/DQ node.
        """
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

        self.check_names(excluded)
        self._count += 1
        out = Path(self._tmp.name) / f"quant{self._count}.onnx"
        act, wgt = self.qdq_target.quant_types()
        try:
            with _no_preprocess_nag():
                quantize_static(str(self.prepared), str(out), None, quant_format=QuantFormat.QDQ,
                                op_types_to_quantize=list(OP_TYPES), per_channel=True, reduce_range=False,
                                activation_type=act, weight_type=wgt, nodes_to_exclude=list(excluded),
                                calibrate_method=CalibrationMethod.MinMax,
                                extra_options=dict(self.qdq_target.extra_options),
                                calibration_cache_path=str(self.cache))
        except Exception as e:  # the quantizer raises ValueError/RuntimeError/onnx errors
            raise CalibrationError(f"onnxruntime.quantization failed on the {self.branch} model",
                                   evidence=f"{type(e).__name__}: {str(e)[:400]}",
                                   fix="try another --method, or --exclude the node it names") from None
        qmodel = onnx.load(str(out))
        out.unlink()
        if not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in qmodel.graph.node):
            raise CalibrationError(f"the quantized {self.branch} model contains no QuantizeLinear/DequantizeLinear "
                                   "nodes", evidence=f"excluded {len(set(excluded))} of {len(self.names)} nodes",
                                   fix="exclude fewer nodes (--exclude)")
        return qmodel

    def result(self, qmodel, dst: Union[str, Path], excluded: Sequence[str], seconds: float) -> "BranchResult":
        qdq = sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in qmodel.graph.node)
        return BranchResult(branch=self.branch, path=Path(dst), samples=self.stats.samples, excluded=list(excluded),
                            methods=self.ranges.method_counts(), qdq_nodes=qdq, seconds=seconds, ranges=self.ranges)


def step_line(step: Dict[str, Any]) -> str:
    """One fidelity-search step as printed: float prefix length, its last conv, MAC share, fidelity reached."""
    last = f" (to {step['last']})" if step.get("last") else " (start set)"
    return (f"float prefix {step['prefix']:3d}{last}, {step['mac_share'] * 100:5.1f} % of conv MACs float: "
            f"cls {step['cls']:.4f} loc {step['loc']:.4f}")


@dataclass
class QuantizeSummary:
    """What ``calibration/quantize.py`` did (printed by the script)."""

    out_dir: Path
    source: Path  # the fp32 directory it was made from
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
            if b.float_mac_share is not None:
                lines.append(f"           float set: {len(b.excluded)} nodes, {b.float_mac_share * 100:.1f} % of conv "
                             "MACs")
            if b.fallback is not None:
                lines.append(f"           fidelity {b.fallback.line()}")
                lines += [f"             step: {step_line(st)}" for st in b.fallback.steps]
                if b.stem_int8:
                    lines.append(f"           stem int8: {', '.join(b.stem_int8)}")
                if b.fallback.note:
                    lines.append(f"           note: {b.fallback.note}")
        fid = self.details.get("fidelity") or {}
        if fid.get("held_out"):
            h, verdict = fid["held_out"], {True: "meets the target", False: "BELOW the target", None: ""}
            lines.append(f"  held-out check on {fid['held_out_crops']} other calibration crops (worst template): pair "
                         f"cls {h['cls']:.4f} loc {h['loc']:.4f} {verdict[fid.get('held_out_met')]}".rstrip())
        elif fid:
            lines.append("  held-out check: none (no calibration crop was left over: the figures above are in-sample)")
        bf16 = self.details.get("bf16")
        if bf16:
            lines.append("  bf16 hint (OpenVINO float layers): " + (
                f"{bf16_plan_text(bf16)}; worst template cls {bf16['cls']:.4f} "
                f"loc {bf16['loc']:.4f} vs the FP32 source on {bf16['crops']} "
                f"{'held-out ' if fid.get('held_out_crops') else 'in-sample '}crops: "
                + ("kept — precision auto uses bf16" if bf16["passed"] else "NOT kept — the backend stays f32")
                if "cls" in bf16 else f"not measured ({bf16.get('reason')})"))
        for f in self.extra_files:
            lines.append(f"  {f}")
        lines.append(f"  total {self.seconds:.1f}s")
        lines.append(f"next: siamtrt report --ref {self.source} --cand {self.out_dir} --video VIDEO --bbox x,y,w,h")
        return "\n".join(lines)


def quantize_int8(model_dir: Union[str, Path], calib: Union[str, Path, CalibrationSet], out_dir: Union[str, Path],
                  *, target: str = "onnxruntime", method: str = DEFAULT_METHOD, head_method: str = DEFAULT_METHOD,
                  float_prefix: Optional[Dict[str, float]] = None, exclude: Sequence[str] = (), trt_cache: bool = False,
                  trt_version: Optional[str] = None, batch: int = 4,
                  min_cosine: Optional[float] = DEFAULT_MIN_COSINE,
                  fidelity_samples: int = DEFAULT_FIDELITY_SAMPLES, held_out: int = DEFAULT_HELD_OUT,
                  margin: float = DEFAULT_MARGIN, threads: Optional[int] = None, progress: bool = True,
                  force: bool = False) -> QuantizeSummary:
    """Quantize both branches of an fp32 model directory to QDQ int8 (``calibration/quantize.py --precision int8``).

    Steps (one function each): check the options; open the model and the calibration set; collect each branch's
    ranges once (:class:`BranchQuantizer`); choose each branch's float set on the engine of ``target``
    (:func:`choose_float_sets`: template first, then the search branch on the INT8 pair); check the chosen pair on
    held-out crops; write the directory (only once everything succeeded).

    The float set is chosen per model (:mod:`.sensitivity`): from the set whose reasons hold for any weights
    (correlations, tail, and the stem unless the target searches it) plus ``float_prefix``/``exclude``, the float
    prefix grows (bisection) until the INT8 template + INT8 search pair keeps ``min(cls, loc)`` cosine ≥
    ``min_cosine`` (+ ``margin``) against FP32 for the worst template of ``fidelity_samples`` calibration crops; the
    result is then measured on ``held_out`` other crops. ``min_cosine=0`` keeps the start set (measured, not
    searched).

    Args:
        model_dir (str | Path): fp32 directory written by export/to_onnx.py.
        calib (str | Path | CalibrationSet): calibration file from calibration/collect.py (or the loaded set).
        out_dir (str | Path): derived directory to write.
        target (str): a :data:`QDQ_TARGETS` name: "onnxruntime", "openvino" or "tensorrt". Defaults to
            "onnxruntime".
        method (str): backbone/neck range method: max, percentile or entropy. Defaults to "max".
        head_method (str): range method after the correlation. Defaults to "max".
        float_prefix (dict): branch → share of conv MACs nearest the input forced float (part of the start set).
            Defaults to 0 for both (the fidelity search decides); the former fixed recipe was template 0.25,
            search 0.05 (DEFAULT_FLOAT_PREFIX) with ``min_cosine=0``.
        exclude (Sequence[str]): extra node names forced float (template or search). Defaults to ().
        trt_cache (bool): also write TensorRT calibration caches for implicit INT8 (TensorRT ≤ 10, JetPack 5/6)
            next to the models. Defaults to False.
        trt_version (str): TensorRT version the cache is for (e.g. "8.5.2"). Defaults to the installed one.
        batch (int): crops per calibration run. Defaults to 4.
        min_cosine (float): fidelity target of the pair (None or ≤ 0: keep the start set). Defaults to 0.98.
        fidelity_samples (int): calibration search crops the float set is searched on. Defaults to 32.
        held_out (int): other calibration crops the chosen pair is checked on (0: none). Defaults to 32.
        margin (float): added to the target on the calibration subset. Defaults to 0.003.
        threads (int): threads of the fidelity runs. Defaults to the physical cores.
        progress (bool): progress lines (siamtrt.progress: a bar on a terminal, plain lines in a log). Defaults to True.
        force (bool): accept a calibration file collected on other weights of the same architecture, and replace an
            ``out_dir`` made from other weights. Defaults to False.

    Raises:
        ModelDirError / CalibrationError: see :meth:`siamtrt.modeldir.ModelDir.open`, :func:`load_calibration`,
            :class:`BranchQuantizer`.
    """
    from ..runtime.cpu import cpu_threads

    t0 = time.perf_counter()
    qt = qdq_target(target)
    prefix, target_cos = check_int8_options(float_prefix, min_cosine, fidelity_samples, held_out, margin)
    src, cset, node_names = open_int8_inputs(model_dir, calib, out_dir, exclude, force=force)
    threads = cpu_threads(threads)
    details = common_details(qt, src, cset, method, head_method, prefix)
    LOG.info("INT8: onnxruntime.quantization %s, target %s (%s), fidelity on %s, method %s / head %s, forced float "
             "prefix %s of MACs, min cosine %s, calibration %s", details["library_version"], qt.name, qt.note,
             qt.engine, method, head_method, prefix, target_cos, cset.summary())
    with contextlib.ExitStack() as stack:
        bqs = collect_ranges(stack, src, cset, qt, method, head_method, batch, force=force)
        subset, held = fidelity_subsets(cset, fidelity_samples, held_out)
        if held is None and held_out:
            LOG.warning("INT8: no held-out check: the fidelity search took all %d search crops of the calibration "
                        "file (--fidelity-samples %d), so every fidelity figure is in-sample; collect at least %d "
                        "crops (calibration/collect.py --max-samples) for a held-out check", len(subset[1]),
                        fidelity_samples, fidelity_samples + held_out)
        probe = FidelityProbe(src.onnx("template"), src.onnx("search"), *subset, src.template_outputs,
                              threads=threads, engine=qt.engine, meta=src.meta)
        stack.callback(probe.close)
        results = choose_float_sets(bqs, probe, out_dir, qt, prefix, exclude, node_names, target_cos, margin,
                                    progress)
        held_fid = held_out_fidelity(src, held, results, threads, qt, target_cos)
        if qt.bf16_check:
            details["bf16"] = bf16_record(src, held or subset, results, threads, target_cos)
    fidelity = fidelity_record(results, probe, held, held_fid, target_cos, margin, threads, qt)
    summary = QuantizeSummary(out_dir=Path(out_dir), source=src.path, precision="int8", target=qt.name,
                              details=dict(details, fidelity=fidelity))
    caches = {}
    # written only once both branches succeeded, and complete or not at all (staged_model_dir: Ctrl-C included)
    with staged_model_dir(out_dir, source=src.path, force=force) as stage:
        if trt_cache:
            from .cache import write_trt_caches

            caches = write_trt_caches(src.path, cset, stage, method=method, head_method=head_method,
                                      trt_version=trt_version, batch=batch)
            summary.extra_files.extend(Path(out_dir) / p.name for p in caches.values())
        write_int8_directory(src, stage, results, summary, caches)
    for res in summary.branches:
        res.path = Path(out_dir) / res.path.name
    summary.seconds = time.perf_counter() - t0
    return summary


def check_int8_options(float_prefix: Optional[Dict[str, float]], min_cosine: Optional[float],
                       fidelity_samples: int, held_out: int, margin: float) -> Tuple[Dict[str, float], float]:
    """(forced float prefix per branch, fidelity target) after checking the options.

    Raises:
        CalibrationError: a prefix outside [0, 1] or for an unknown branch; a fidelity option out of range.
    """
    prefix = dict({b: 0.0 for b in DEFAULT_FLOAT_PREFIX}, **(float_prefix or {}))
    bad = {k: v for k, v in prefix.items() if k not in DEFAULT_FLOAT_PREFIX or not 0.0 <= float(v) <= 1.0}
    if bad:
        raise CalibrationError(f"float prefix must map template/search to a share in [0, 1], got {bad}",
                               fix="e.g. --float-prefix 0.05 (search) --template-float-prefix 0.25")
    target_cos = float(min_cosine or 0.0)
    if not 0.0 <= target_cos <= 1.0 or fidelity_samples < 1 or held_out < 0 or not 0.0 <= margin < 1.0:
        raise CalibrationError("bad fidelity options",
                               evidence=f"min_cosine={min_cosine}, fidelity_samples={fidelity_samples}, "
                                        f"held_out={held_out}, margin={margin}",
                               fix="use --min-cosine in [0, 1] (0 = no search; e.g. 0.98), --fidelity-samples >= 1, "
                                   "--held-out-samples >= 0")
    return prefix, target_cos


def open_int8_inputs(model_dir: Union[str, Path], calib: Union[str, Path, CalibrationSet],
                     out_dir: Union[str, Path], exclude: Sequence[str], force: bool = False
                     ) -> Tuple[ModelDir, CalibrationSet, Dict[str, set]]:
    """(source directory, calibration set, node names per branch), checked against each other.

    Raises:
        ModelDirError: not an fp32 conv-mode directory. CalibrationError: output = source, a calibration file for
            another model (or other weights, unless ``force``), ``exclude`` names that exist in neither branch.
        InputError: an ``out_dir`` that cannot take the copy (:func:`.derive.check_model_out_dir`: one made from
            other weights only with ``force``).
    """
    src = ModelDir.open(model_dir, require_fp32=True, require_conv=True)
    check_model_out_dir(out_dir, source=src.path, force=force)  # refused before any work; written staged at the end
    cset = calib if isinstance(calib, CalibrationSet) else load_calibration(calib)
    cset.check_model(src, other_weights=force)
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
    return src, cset, node_names


def common_details(qt: QdqTarget, src: ModelDir, cset: CalibrationSet, method: str, head_method: str,
                   prefix: Dict[str, float]) -> Dict[str, Any]:
    """The ``quantization`` metadata both branches share."""
    import onnxruntime

    return {
        "library": "onnxruntime.quantization", "library_version": onnxruntime.__version__, "format": "QDQ",
        "target": qt.name, "fidelity_engine": qt.engine, "activation_type": qt.activation_type,
        "weight_type": qt.weight_type, "per_channel": True,
        "symmetric_activations": dict(qt.extra_options)["ActivationSymmetric"], "stem_searched": qt.stem_searched,
        "method": method, "head_method": head_method, "float_prefix": prefix, "op_types": list(OP_TYPES),
        "calib_file": cset.path.name if cset.path else None,
        "calib_sha256": file_sha256(cset.path) if cset.path else None, "source_dir": str(src.path),
    }


def collect_ranges(stack: contextlib.ExitStack, src: ModelDir, cset: CalibrationSet, qt: QdqTarget, method: str,
                   head_method: str, batch: int, force: bool = False) -> Dict[str, BranchQuantizer]:
    """One :class:`BranchQuantizer` per branch (ranges collected once; closed with ``stack``)."""
    step = batch if src.dynamic_batch else 1
    kernels = cset.kernels_for(src, other_weights=force)
    bqs = {}
    for branch in ("template", "search"):
        feeds, total = cset.branch_feeds(branch, kernels, step)
        bqs[branch] = stack.enter_context(BranchQuantizer(src.onnx(branch), feeds, target=qt.name, method=method,
                                                          head_method=head_method, total=total, branch=branch))
    return bqs


def start_set(bq: BranchQuantizer, qt: QdqTarget, prefix: float, exclude: Sequence[str],
              names: set) -> Tuple[List[str], List[str]]:
    """(start float set, candidate convs in the order the float prefix grows over them) of one branch.

    The start set holds what stays float whatever the fidelity: correlations, tail, the stem unless ``qt``
    searches it, the forced ``prefix`` share of MACs and the ``exclude`` names of this branch. A searched stem is
    the first candidate: if the start set misses the target, the stem is the first convolution made float again.
    """
    fixed = list(bq.corr + bq.tail) + ([] if qt.stem_searched else list(bq.stem))
    forced = [n for n in input_prefix_convs(bq.model, prefix) if n not in fixed]
    start = list(dict.fromkeys(fixed + forced + [e for e in exclude if e in names]))
    return start, quantizable_convs(bq.model, start)


def choose_float_sets(bqs: Dict[str, BranchQuantizer], probe: FidelityProbe, out_dir: Union[str, Path],
                      qt: QdqTarget, prefix: Dict[str, float], exclude: Sequence[str], node_names: Dict[str, set],
                      target_cos: float, margin: float, progress: bool) -> Dict[str, Tuple[Any, BranchResult]]:
    """{branch: (QDQ model, result)}: each branch's float set chosen by :func:`.sensitivity.prefix_fallback`.

    The template branch first, against :func:`.sensitivity.template_target` on the FP32 search fed its kernels;
    then the search branch on the pair (the chosen INT8 template's kernels into the candidate INT8 search).
    """
    results: Dict[str, Tuple[Any, BranchResult]] = {}
    for branch in ("template", "search"):
        t1 = time.perf_counter()
        bq = bqs[branch]
        start, convs = start_set(bq, qt, prefix[branch], exclude, node_names[branch])
        if branch == "template":
            goal = template_target(target_cos) if target_cos > 0 else 0.0

            def measure(extra, bq=bq, start=start):
                return probe.template_fidelity(bq.quantize(start + extra))
        else:
            goal = target_cos
            pair_kernels = probe.run_template(results["template"][0])

            def measure(extra, bq=bq, start=start):
                return probe.search_fidelity(bq.quantize(start + extra), pair_kernels)
        fb = prefix_fallback(convs, conv_macs(bq.model), measure, goal, branch=branch,
                             margin=margin if branch == "search" else 0.0, progress=progress)
        excluded = list(dict.fromkeys(start + fb.float_nodes))
        qmodel = bq.quantize(excluded)
        res = bq.result(qmodel, Path(out_dir) / ONNX_FILES[branch], excluded, bq.seconds + time.perf_counter() - t1)
        res.fallback = fb
        res.float_mac_share = mac_share(conv_macs(bq.model), excluded)
        res.stem_int8 = [n for n in bq.stem if n not in excluded]
        results[branch] = (qmodel, res)
        LOG.info("INT8: %s: %s", branch, fb.line())
        if not fb.met and target_cos > 0:
            LOG.warning("INT8: %s: %s", branch, fb.note)
    return results


def held_out_fidelity(src: ModelDir, held, results: Dict[str, Tuple[Any, BranchResult]], threads: int,
                      qt: QdqTarget, target_cos: float) -> Optional[Dict[str, float]]:
    """The chosen pair's fidelity on the held-out crops (None without any); warns when it misses the target."""
    if held is None:
        return None
    probe = FidelityProbe(src.onnx("template"), src.onnx("search"), *held, src.template_outputs, threads=threads,
                          engine=qt.engine, meta=src.meta)
    try:
        fid = probe.pair_fidelity(results["template"][0], results["search"][0])
    finally:
        probe.close()
    if target_cos > 0 and fid["fidelity"] < target_cos:
        LOG.warning("INT8: on %d held-out calibration crops the pair reads cls %.4f loc %.4f (worst template), "
                    "below --min-cosine %.3f met on the search subset: raise --fidelity-samples or --min-cosine, "
                    "or collect crops from more videos", len(held[1]), fid["cls"], fid["loc"], target_cos)
    return fid


def bf16_record(src: ModelDir, crops, results: Dict[str, Tuple[Any, BranchResult]], threads: int,
                target_cos: float) -> Dict[str, Any]:
    """Whether the chosen INT8 pair, its float layers under the engine's bf16 hint, still keeps the target against
    the FP32 source (:func:`.sensitivity.bf16_fidelity`, on the held-out crops): INT8's error and bf16's add up in
    what the user's tracker sees. Logged and returned for the metadata."""
    rec = bf16_fidelity(results["template"][0], results["search"][0], crops, src.template_outputs, src.meta,
                        threads=threads, min_cosine=target_cos or DEFAULT_MIN_COSINE,
                        reference=(src.onnx("template"), src.onnx("search")))
    if "cls" in rec:
        LOG.info("INT8: bf16 hint for the float layers (%s): worst template cls %.4f loc %.4f vs the FP32 source on "
                 "%d crops: %s", bf16_plan_text(rec), rec["cls"], rec["loc"], rec["crops"],
                 "kept (precision auto takes bf16)" if rec["passed"] else "NOT kept (the backend stays f32)")
    return rec


def fidelity_record(results: Dict[str, Tuple[Any, BranchResult]], probe: FidelityProbe, held,
                    held_fid: Optional[Dict[str, float]], target_cos: float, margin: float, threads: int,
                    qt: QdqTarget) -> Dict[str, Any]:
    """The ``quantization.fidelity`` metadata entry (what was searched, on what, and what it reached)."""
    search_fb, template_fb = results["search"][1].fallback, results["template"][1].fallback
    fidelity = {"min_cosine": target_cos, "margin": margin,
                "template_target": template_target(target_cos) if target_cos > 0 else 0.0,
                "measure": "worst template: min over templates of min(cls, loc) cosine pooled over its crops",
                "engine": qt.engine, "subset_crops": int(len(probe.search)),
                "subset_templates": int(len(probe.templates)), "threads": threads,
                "pair": dict(search_fb.achieved), "held_out_crops": 0 if held is None else int(len(held[1])),
                "held_out": held_fid, "met": bool(search_fb.met and template_fb.met),
                "held_out_met": None if held_fid is None or target_cos <= 0 else bool(held_fid["fidelity"]
                                                                                      >= target_cos),
                "branches": {}}
    for branch, (_, res) in results.items():
        d = res.fallback.to_dict()
        d.pop("float_nodes")
        d.update(float_mac_share=res.float_mac_share, float_nodes=len(res.excluded), stem_int8=res.stem_int8)
        fidelity["branches"][branch] = d
    return fidelity


def write_int8_directory(src: ModelDir, out_dir: Path, results: Dict[str, Tuple[Any, BranchResult]],
                         summary: QuantizeSummary, caches: Dict[str, Path]) -> None:
    """Save both branches with their metadata (the models are written only once both succeeded)."""
    common = summary.details
    for branch, (qmodel, res) in results.items():
        details = dict(common, samples=res.samples, excluded_nodes=res.excluded, range_methods=res.methods,
                       source_sha256=src.sha256(branch), float_mac_share=res.float_mac_share)
        if branch in caches:
            # the cache's tensor names are those of the *fp32* ONNX it was computed on: record which one
            details["trt_calibration_cache"] = {"file": caches[branch].name, "for_onnx": str(src.onnx(branch)),
                                                "for_onnx_sha256": src.sha256(branch),
                                                "header": caches[branch].read_text().splitlines()[0]}
        res.path = save_branch(qmodel, out_dir, branch, derived_metadata(src, branch, "int8", details))
        summary.branches.append(res)


__all__ = ["OP_TYPES", "QDQ_TARGETS", "BranchQuantizer", "BranchResult", "QdqTarget", "QuantizeSummary",
           "check_int8_options", "choose_float_sets", "collect_ranges", "common_details", "correlation_convs",
           "downstream_tensors", "fidelity_record", "held_out_fidelity", "name_nodes", "open_int8_inputs",
           "qdq_target", "quantize_int8", "start_set", "bf16_record", "tail_nodes",
           "write_int8_directory"]
