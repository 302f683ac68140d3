"""FP16 ONNX of both branches: weights and activations in half precision, I/O kept float32.

Library: ``onnxconverter_common.float16.convert_float_to_float16`` (Microsoft's converter, the one ONNX Runtime's
docs point to). Why: it rewrites initializers and value types, inserts the boundary Casts, keeps graph I/O float32
(``keep_io_types``) so the runtime's Tracker runs the directory unchanged, and takes op/node block lists for what
must stay float32. ModelOpt AutoCast does the same with a range rule but needs torch ≥ 2.8 and onnxruntime-gpu.
The result is also what TensorRT 11 needs for FP16 (strong typing: the precision lives in the ONNX).

Kept in float32 (``node_block_list``):

* the stem (the convolution reading the 0..255 crop): its filters' response to the crop's constant level is
  cancelled by the folded BatchNorm bias, so fp16 rounding of its weights is magnified (mobilev2: the deepest
  template kernel fell to 0.97 cosine with an fp16 stem, 0.999 without); it is < 1 % of the MACs;
* the depthwise correlations — each output is a sum of products of two feature maps and can exceed fp16's 65504
  on real images; ~1 % of the search branch;
* the graph's own Cast nodes (onnxconverter-common 1.16 retypes their outputs but not their ``to`` attribute);
* any node whose output magnitude on the calibration crops exceeds ``data_max`` (ModelOpt AutoCast's rule;
  default 4096, well below fp16's 65504 so unseen frames have 16× head-room); without crops, on seeded noise crops
  (:func:`probe_feeds`), which catch gross overflows only.

:func:`half_model` is the one converter: ``quantize.py --precision fp16`` and ``build_engine.py --fp16`` (where the
builder needs an FP16 ONNX) both call it.

Weights beyond fp16 range are clamped by the converter (``max_finite_val``); tiny ones to ``min_positive_val``.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import CalibrationError
from ..modeldir import BRANCHES, ONNX_FILES, ModelDir
from .data import CalibrationSet, load_calibration
from .derive import check_model_out_dir, derived_metadata, save_branch, staged_model_dir
from .graph import correlation_convs, name_nodes, stem_convs
from .qdq import BranchResult, QuantizeSummary

LOG = logging.getLogger(__name__)

DEFAULT_DATA_MAX = 4096.0


def _large_output_nodes(model, onnx_path: Path, feeds, total: Optional[int], data_max: float, branch: str
                        ) -> List[str]:
    """Nodes with any output beyond ±data_max on the calibration feeds."""
    from .ranges import collect_statistics

    stats = collect_statistics(onnx_path, feeds, op_types=None, total=total, progress=f"FP16 {branch} ranges")
    big = {t for t, (lo, hi) in stats.minmax.items() if max(abs(lo), abs(hi)) > data_max}
    return [n.name for n in model.graph.node if any(o in big for o in n.output)]


def half_model(model, branch: str, feeds: Optional[Iterable[Dict[str, np.ndarray]]] = None,
               total: Optional[int] = None, *, data_max: float = DEFAULT_DATA_MAX, exclude: Sequence[str] = ()
               ) -> Tuple[Any, List[str]]:
    """THE guarded FP16 conversion of one branch (``quantize.py --precision fp16`` and ``build_engine.py --fp16``).

    Keeps in float32 the stem, the correlations, the graph's Casts and, when ``feeds`` are given, every node whose
    output exceeds ±``data_max`` on them (see the module docstring); graph I/O stays float32.

    Args:
        model (onnx.ModelProto): the fp32 branch (nodes get names here if they lack them; modified in place).
        branch (str): "template" or "search" (for messages).
        feeds (Iterable[dict]): input feeds for the range guard. Defaults to None (no range guard).
        total (int): number of feeds, for the progress bar. Defaults to None.
        data_max (float): output magnitude above which a node stays float32. Defaults to 4096.
        exclude (Sequence[str]): extra node names kept in float32 (names absent from this branch are ignored).

    Returns:
        tuple: (fp16 ModelProto, names of the nodes kept in float32).

    Raises:
        CalibrationError: the converter failed.
    """
    import onnx
    from onnxconverter_common import float16

    name_nodes(model)
    names = {n.name for n in model.graph.node}
    blocked = stem_convs(model) + correlation_convs(model)
    blocked += [n.name for n in model.graph.node if n.op_type == "Cast"]  # see the module docstring
    if feeds is not None:
        with tempfile.TemporaryDirectory(prefix="siamtrt-fp16-") as tmp:
            named = Path(tmp) / "named.onnx"
            onnx.save(model, str(named))
            blocked += _large_output_nodes(model, named, feeds, total, data_max, branch)
    blocked = list(dict.fromkeys(blocked + [e for e in exclude if e in names]))
    # stale value_info (from the exporter's shape inference) would pin tensors the converter retypes; it
    # re-infers shapes itself
    del model.graph.value_info[:]
    try:
        with warnings.catch_warnings():  # one UserWarning per tiny weight clamped to 1e-7: harmless, hundreds
            warnings.simplefilter("ignore")
            half = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=blocked)
    except Exception as e:  # the converter raises plain Exceptions / onnx errors
        raise CalibrationError(f"onnxconverter-common could not convert the {branch} model to fp16",
                               evidence=f"{type(e).__name__}: {str(e)[:300]}") from None
    return half, blocked


def probe_feeds(template_onnx: Union[str, Path], exemplar_size: int, instance_size: int, batch: int = 1,
                count: int = 2, seed: int = 0) -> Dict[str, List[Dict[str, np.ndarray]]]:
    """Seeded noise crops (0..255) for the range guard when no calibration crops are given: template feeds, and
    search feeds with the kernels the FP32 template branch computes from them (ONNX Runtime CPU).

    Noise is no substitute for real crops (``--calib``) but shows gross overflows (a node scaled beyond FP16's
    range on any input)."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    sess = ort.InferenceSession(str(template_onnx), providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    feeds: Dict[str, List[Dict[str, np.ndarray]]] = {"template": [], "search": []}
    for _ in range(count):
        z = rng.uniform(0, 255, (batch, 3, exemplar_size, exemplar_size)).astype(np.float32)
        kernels = dict(zip(out_names, sess.run(None, {"template": z})))
        feeds["template"].append({"template": z})
        feeds["search"].append(dict(kernels, search=rng.uniform(0, 255, (batch, 3, instance_size, instance_size))
                                    .astype(np.float32)))
    return feeds


def convert_fp16(model_dir: Union[str, Path], out_dir: Union[str, Path],
                 calib: Optional[Union[str, Path, CalibrationSet]] = None, *, data_max: float = DEFAULT_DATA_MAX,
                 exclude: tuple = (), force: bool = False) -> QuantizeSummary:
    """Write an FP16 copy of an fp32 model directory (``calibration/quantize.py --precision fp16``).

    Args:
        model_dir (str | Path): fp32 directory.
        out_dir (str | Path): derived directory to write (complete or not at all: :func:`.derive.staged_model_dir`).
        calib (str | Path | CalibrationSet): optional calibration crops, used to find overflow-prone nodes.
            Defaults to None (then only the stem, the correlations and Casts are kept in float32).
        data_max (float): output magnitude above which a node stays float32. Defaults to 4096.
        exclude (tuple): extra node names kept in float32. Defaults to ().
        force (bool): accept crops collected on other weights of the same architecture, and replace an ``out_dir``
            made from other weights (``--force``, as for int8). Defaults to False.

    Raises:
        ModelDirError: see :meth:`siamtrt.modeldir.ModelDir.open`. CalibrationError: conversion or onnx.checker
        failure. InputError: an output directory that cannot take a model directory.
    """
    import onnx

    t0 = time.perf_counter()
    src = ModelDir.open(model_dir, require_fp32=True, require_conv=True)
    out_dir = check_model_out_dir(out_dir, source=src.path, force=force)
    cset = None
    if calib is not None:
        cset = calib if isinstance(calib, CalibrationSet) else load_calibration(calib)
        cset.check_model(src, other_weights=force)
    models = {b: onnx.load(str(src.onnx(b))) for b in BRANCHES}
    for m in models.values():
        name_nodes(m)
    names = {b: {n.name for n in m.graph.node} for b, m in models.items()}
    unknown = sorted(set(exclude) - names["template"] - names["search"])
    if unknown:
        raise CalibrationError(f"--exclude names nodes found in neither branch: {unknown}",
                               fix="list node names with onnx.load('DIR/search.onnx').graph.node")
    kernels = cset.kernels_for(src, other_weights=force) if cset is not None else None
    converted = {b: _convert_branch(src, b, models[b], cset, kernels, data_max, exclude) for b in BRANCHES}
    summary = QuantizeSummary(out_dir=out_dir, source=src.path, precision="fp16", target="any")
    with staged_model_dir(out_dir, source=src.path, force=force) as stage:  # written only once both branches converted
        for branch, (half, details, res) in converted.items():
            save_branch(half, stage, branch, derived_metadata(src, branch, "fp16", details))
            res.path = out_dir / ONNX_FILES[branch]
            summary.branches.append(res)
    summary.seconds = time.perf_counter() - t0
    return summary


def _convert_branch(src: ModelDir, branch: str, model, cset: Optional[CalibrationSet], kernels, data_max: float,
                    exclude) -> Tuple[Any, Dict[str, Any], BranchResult]:
    """(fp16 model, its ``quantization`` metadata, result row) of one branch; the range guard runs on the
    calibration crops, or without them on seeded noise crops (what ``build_engine.py --fp16`` uses)."""
    import onnxconverter_common

    b0 = time.perf_counter()
    if cset is not None:
        feeds, n = cset.branch_feeds(branch, kernels)
    else:
        batch = 2 if src.dynamic_batch else 1
        probe = probe_feeds(src.onnx("template"), src.exemplar_size, src.instance_size, batch)
        feeds, n = probe[branch], len(probe[branch]) * batch  # crops (the progress counts rows)
    half, blocked = half_model(model, branch, feeds, n, data_max=data_max, exclude=exclude)
    details = {"library": "onnxconverter_common.float16", "library_version": onnxconverter_common.__version__,
               "keep_io_types": True, "data_max": data_max,
               "range_guard": "calibration crops" if cset is not None else "seeded noise crops",
               "excluded_nodes": blocked, "calib_file": cset.path.name if cset is not None and cset.path else None,
               "source_dir": str(src.path), "source_sha256": src.sha256(branch)}
    res = BranchResult(branch=branch, path=src.onnx(branch), samples=n, excluded=blocked, methods={}, qdq_nodes=0,
                       seconds=time.perf_counter() - b0)
    LOG.info("FP16: %s: %d nodes kept in float32: %s", branch, len(blocked), blocked[:8])
    return half, details, res


__all__ = ["DEFAULT_DATA_MAX", "convert_fp16", "half_model", "probe_feeds"]
