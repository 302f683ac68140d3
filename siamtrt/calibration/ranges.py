"""Activation statistics from real crops, and the per-tensor ranges every INT8 artefact is derived from.

One pass over the calibration feeds with ONNX Runtime's own calibrators (``onnxruntime.quantization.calibrate``)
collects every calibrated tensor's min/max (``MinMaxCalibrater``: reduce nodes in the graph, cheap) or, when a
clipping method is asked for, its histogram (``HistogramCalibrater``, ~10× slower). Ranges are then computed with a
method chosen *per tensor* — ``max`` (observed min/max), ``percentile`` or ``entropy`` (TensorRT's KL-divergence
threshold search, as ORT's ``HistogramCollector`` implements it). The same ranges feed the QDQ models of both
targets (through ORT's calibration cache) and the legacy TensorRT calibration cache, so every INT8 artefact agrees
on its scales.

Why per tensor: in a Siamese tracker the score-map peak *is* the outlier. Clipping activations after the depthwise
correlation flattens the very response that locates the target, so the head (everything downstream of a
correlation) keeps ``max`` whatever the backbone uses. On the realistic random-weight mobilev2, ``max`` also won in
the backbone (cls cosine 0.935 vs percentile 0.921 and entropy 0.713), hence the default.

Feeding is chunked (``chunk`` samples per collect call, results merged across chunks) because ORT's calibrators keep
every intermediate output of one ``collect_data`` call in memory: the r50 search branch produces ~300 MB of
activations per crop.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import CalibrationError
from ..modeldir import collect_command
from ..progress import progress_bar

LOG = logging.getLogger(__name__)

METHODS = ("entropy", "max", "percentile")
#: Range method default. Measured on the mobilev2 search branch (stem float, everything else int8, 32 crops):
#: max 0.935 cls cosine, percentile(99.99) 0.921, entropy 0.713 — clipping hurts a network whose score peak is
#: the signal, and ORT's entropy search on 2048-bin histograms is also slow (~5 s per tensor set of 130).
DEFAULT_METHOD = "max"
DEFAULT_NUM_BINS = 2048        # histogram resolution (TensorRT's calibrators use 2048 too)
ENTROPY_QUANTIZED_BINS = 128   # int8 has 128 levels on each side of zero
DEFAULT_PERCENTILE = 99.99
IMAGE_RANGE = (0.0, 255.0)  # template/search crops are BGR 0..255: the input range is known, not estimated

Feed = Dict[str, np.ndarray]
Range = Tuple[float, float]


@dataclass
class Statistics:
    """Per-tensor statistics of one ONNX model over the calibration feeds.

    ``minmax[name] = (min, max)`` always; ``histograms[name] = (hist, edges, min, max, threshold)`` in ORT's
    ``HistogramCollector`` layout (signed histogram over ``[-threshold, threshold]``) when collected — only the
    percentile and entropy methods need them, and they cost ~10× the min/max pass.
    """

    model: str
    minmax: Dict[str, Range]
    samples: int
    seconds: float
    histograms: Optional[Dict[str, tuple]] = None
    num_bins: int = DEFAULT_NUM_BINS

    @property
    def names(self) -> List[str]:
        return list(self.minmax)

    def observed(self, name: str) -> Range:
        return self.minmax[name]


@dataclass
class Ranges:
    """The chosen (low, high) range of every calibrated tensor, and which method produced it."""

    values: Dict[str, Range]
    methods: Dict[str, str]
    samples: int
    extra: Dict[str, object] = field(default_factory=dict)

    def method_counts(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for m in self.methods.values():
            out[m] = out.get(m, 0) + 1
        return dict(sorted(out.items()))

    def amax(self, name: str) -> float:
        lo, hi = self.values[name]
        return max(abs(lo), abs(hi))


class _ListReader:
    """ORT ``CalibrationDataReader`` over a list of feed dicts (the library's expected interface)."""

    def __init__(self, feeds: Sequence[Feed]):
        self._it = iter(feeds)

    def get_next(self) -> Optional[Feed]:
        return next(self._it, None)

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def _chunks(feeds: Iterable[Feed], size: int) -> Iterator[List[Feed]]:
    buf: List[Feed] = []
    for f in feeds:
        buf.append(f)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


@contextlib.contextmanager
def _quiet():
    """ORT's calibrators print progress lines to stdout; route them to the debug log instead."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        yield
    text = sink.getvalue().strip()
    if text:
        LOG.debug("INT8: onnxruntime calibrator said: %s", text.replace("\n", " | ")[:500])


def collect_statistics(model_path: Union[str, Path], feeds: Iterable[Feed], *,
                       op_types: Optional[Sequence[str]] = None, histograms: bool = False,
                       num_bins: int = DEFAULT_NUM_BINS, chunk: int = 4, progress: Optional[str] = None,
                       total: Optional[int] = None) -> Statistics:
    """Min/max (and optionally histograms) of every float tensor touched by ``op_types`` nodes over ``feeds``.

    Args:
        model_path (str | Path): float32 ONNX model.
        feeds (Iterable[dict]): feed dicts ``{input_name: ndarray}`` (any batch size the model accepts).
        op_types (Sequence[str]): node types whose inputs/outputs are calibrated. Defaults to None (all).
        histograms (bool): also collect histograms (needed by percentile / entropy). Defaults to False.
        num_bins (int): histogram bins. Defaults to 2048.
        chunk (int): feed dicts per ORT collect call (bounds memory). Defaults to 4.
        progress (str): the progress line's description; None turns it off. Defaults to None.
        total (int): number of feeds, for the progress bar. Defaults to None.

    Returns:
        Statistics: min/max per tensor (and histograms when asked), merged over all feeds.

    Raises:
        CalibrationError: no feed was given, or ONNX Runtime rejected a feed.
    """
    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    t0 = time.perf_counter()
    samples = 0
    with tempfile.TemporaryDirectory(prefix="siamtrt-calib-") as tmp:
        with _quiet():
            if histograms:
                calibrator = create_calibrator(Path(model_path), list(op_types or []),
                                               augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                               calibrate_method=CalibrationMethod.Entropy,
                                               extra_options={"num_bins": num_bins,
                                                              "num_quantized_bins": ENTROPY_QUANTIZED_BINS})
            else:
                calibrator = create_calibrator(Path(model_path), list(op_types or []),
                                               augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                               calibrate_method=CalibrationMethod.MinMax)
        bar = progress_bar(total, progress or "", "crop", progress is not None, leave=False)
        try:
            for part in _chunks(feeds, chunk):
                try:
                    with _quiet():
                        calibrator.collect_data(_ListReader(part))
                except Exception as e:  # onnxruntime raises its own InvalidArgument/Fail types
                    names = {k: tuple(v.shape) for k, v in part[0].items()}
                    raise CalibrationError(f"ONNX Runtime could not run {Path(model_path).name} on the calibration "
                                           f"feeds", evidence=f"feed {names}: {str(e).splitlines()[0][:300]}",
                                           fix="re-collect the calibration file for this model directory: "
                                               "siamtrt collect --model DIR ...") from None
                n = sum(next(iter(f.values())).shape[0] for f in part)
                samples += n
                bar.update(n)
        finally:
            bar.close()
        if samples == 0:
            raise CalibrationError(f"no calibration data reached {Path(model_path).name}",
                                   evidence="the calibration feed iterator was empty",
                                   fix=f"collect crops first: {collect_command()}")
        if histograms:
            hist = dict(calibrator.collector.histogram_dict)
            minmax = {n: (float(h[2]), float(h[3])) for n, h in hist.items()}
        else:
            hist = None
            minmax = {n: (float(np.asarray(v.range_value[0] if hasattr(v, "range_value") else v[0]).min()),
                          float(np.asarray(v.range_value[1] if hasattr(v, "range_value") else v[1]).max()))
                      for n, v in calibrator.calibrate_tensors_range.items()}
        del calibrator
    return Statistics(model=str(model_path), minmax=minmax, samples=samples, seconds=time.perf_counter() - t0,
                      histograms=hist, num_bins=num_bins)


def _method_ranges(stats: Statistics, names: Sequence[str], method: str, percentile: float) -> Dict[str, Range]:
    """Ranges of ``names`` with one method, computed by ORT's ``HistogramCollector``."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    if not names:
        return {}
    if method == "max":
        return {n: stats.observed(n) for n in names}
    if stats.histograms is None:
        raise CalibrationError(f"the {method} method needs histograms, but only min/max were collected",
                               fix="collect_statistics(..., histograms=True)")
    coll = HistogramCollector(method=method, symmetric=False, num_bins=stats.num_bins,
                              num_quantized_bins=ENTROPY_QUANTIZED_BINS, percentile=percentile, scenario="same")
    coll.histogram_dict = {n: stats.histograms[n] for n in names}
    with _quiet():
        result = coll.compute_entropy() if method == "entropy" else coll.compute_percentile()
    out = {}
    for n in names:
        lo, hi = float(result[n][0]), float(result[n][1])
        olo, ohi = stats.observed(n)
        # never wider than what was observed (ORT clamps entropy; make it explicit for both)
        out[n] = (max(lo, olo), min(hi, ohi))
    return out


def compute_ranges(stats: Statistics, method: Union[str, Mapping[str, str]], *, default: str = "max",
                   percentile: float = DEFAULT_PERCENTILE, fixed: Optional[Mapping[str, Range]] = None) -> Ranges:
    """Per-tensor ranges from the histograms.

    Args:
        stats (Statistics): from :func:`collect_statistics`.
        method (str | Mapping[str, str]): one method for all tensors, or tensor name → method.
        default (str): method for tensors missing from a mapping. Defaults to "max".
        percentile (float): for the percentile method. Defaults to 99.99.
        fixed (Mapping[str, Range]): ranges known a priori (e.g. the image inputs, 0..255). Defaults to None.

    Raises:
        CalibrationError: unknown method name.
    """
    names = stats.names
    per = {n: (method if isinstance(method, str) else method.get(n, default)) for n in names}
    bad = sorted({m for m in per.values() if m not in METHODS})
    if bad:
        raise CalibrationError(f"unknown calibration method(s) {bad}", evidence=f"valid: {METHODS}",
                               fix="use --method entropy, max or percentile")
    values: Dict[str, Range] = {}
    for m in METHODS:
        values.update(_method_ranges(stats, [n for n in names if per[n] == m], m, percentile))
    for n, r in (fixed or {}).items():
        if n in values:
            values[n] = (float(r[0]), float(r[1]))
            per[n] = "fixed"
    return Ranges(values=values, methods=per, samples=stats.samples, extra={"percentile": percentile})


def save_ort_cache(ranges: Ranges, path: Union[str, Path]) -> Path:
    """Write the ranges as ONNX Runtime's calibration cache (``quantize_static(calibration_cache_path=...)``).

    They are stored under ``CalibrationMethod.MinMax`` (a plain range per tensor); the method actually used per
    tensor is recorded in the model metadata instead.
    """
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    data = {n: TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
            for n, (lo, hi) in ranges.values.items()}
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), Path(path))
    return Path(path)


__all__ = ["DEFAULT_METHOD", "IMAGE_RANGE", "METHODS", "Ranges", "Statistics", "collect_statistics", "compute_ranges",
           "save_ort_cache"]
