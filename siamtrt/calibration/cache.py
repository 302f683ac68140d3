"""TensorRT calibration cache for the implicit-INT8 path (TensorRT 8.x–10.x, i.e. JetPack 5 and 6).

TensorRT 10.1 deprecated and 11.0 removed implicit quantization (``IInt8EntropyCalibrator2``); the QDQ models of
:mod:`.qdq` (``--target tensorrt``) are the way forward. JetPack 5 (TensorRT 8.5) and JetPack 6 (8.6 / 10.3) still
build implicit-INT8 engines from a calibrator, and a calibrator whose ``read_calibration_cache()`` returns this
file skips calibration on the device entirely.

Format (what ``IInt8EntropyCalibrator2::writeCalibrationCache`` produces)::

    TRT-<version code>-EntropyCalibration2
    <tensor name>: <hex of the float32 scale, big-endian>

with ``scale = amax / 127`` per tensor (symmetric int8). The version code is ``NV_TENSORRT_VERSION``:
``major*1000 + minor*100 + patch`` up to TensorRT 9 (8.5.2 → 8502), ``major*10000 + minor*100 + patch`` from 10
(10.3.0 → 100300); write the cache for the TensorRT that builds the engine.

**Tensor names must match the TensorRT network's tensor names.** The ONNX parser names each network tensor after
the ONNX tensor it comes from, so the cache lists the ONNX model's input and node-output names — the engine must be
built from the very ONNX file the cache was computed on (the fp32 ``template.onnx`` / ``search.onnx`` of the source
directory, not a QDQ one). Names TensorRT does not find are ignored; tensors without an entry stay in higher
precision.

The amax values come from the same per-tensor statistics as the QDQ models (:mod:`.ranges`): the requested method
for the backbone/neck, ``max`` downstream of the correlation.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Dict, Iterable, Optional, Union

import numpy as np

from ..errors import CalibrationError
from ..metadata import SEARCH_INPUT, TEMPLATE_INPUT
from ..modeldir import BRANCHES, TRT_CACHE_FILES, ModelDir
from ..outputs import atomic_file
from .graph import correlation_convs, downstream_tensors, name_nodes
from .ranges import DEFAULT_METHOD, IMAGE_RANGE, Ranges, collect_statistics, compute_ranges

LOG = logging.getLogger(__name__)

ALGORITHM = "EntropyCalibration2"


def write_trt_caches(model_dir: Union[str, Path], calib, out_dir: Optional[Union[str, Path]] = None, *,
                     method: str = DEFAULT_METHOD, head_method: str = DEFAULT_METHOD, trt_version: Optional[str] = None,
                     batch: int = 4) -> Dict[str, Path]:
    """Caches for both branches of an fp32 model directory (what a build step for implicit INT8 calls).

    Args:
        model_dir (str | Path): the fp32 directory whose ONNX files the engines are built from.
        calib (str | Path | CalibrationSet): calibration crops from calibration/collect.py.
        out_dir (str | Path): where to write the caches (``TRT_CACHE_FILES``). Defaults to ``model_dir``.
        method (str): backbone/neck range method. Defaults to "max".
        head_method (str): range method after the correlation. Defaults to "max".
        trt_version (str): TensorRT version of the build machine. Defaults to the installed one.
        batch (int): crops per calibration run. Defaults to 4.

    Returns:
        dict: branch → cache path (``out_dir / TRT_CACHE_FILES[branch]``, the names the build step looks for).
    """
    from .data import CalibrationSet, load_calibration

    src = ModelDir.open(model_dir, require_fp32=True, require_conv=True)
    cset = calib if isinstance(calib, CalibrationSet) else load_calibration(calib)
    cset.check_model(src)
    out_dir = Path(out_dir) if out_dir is not None else src.path
    step = batch if src.dynamic_batch else 1
    kernels = cset.kernels_for(src)
    out = {}
    for branch in BRANCHES:
        feeds, total = cset.branch_feeds(branch, kernels, step)
        out[branch] = write_trt_cache(src.onnx(branch), feeds, out_dir / TRT_CACHE_FILES[branch], method=method,
                                      head_method=head_method, trt_version=trt_version, total=total)
    return out


def version_code(version: str) -> int:
    """``NV_TENSORRT_VERSION`` for a version string ("8.5.2" → 8502, "10.3.0" → 100300).

    Raises:
        CalibrationError: not a ``major.minor[.patch]`` version.
    """
    try:
        parts = [int(p) for p in str(version).split(".")[:3]]
        major, minor = parts[0], parts[1]
        patch = parts[2] if len(parts) > 2 else 0
    except (ValueError, IndexError):
        raise CalibrationError(f"TensorRT version {version!r} is not major.minor[.patch]",
                               fix="pass e.g. --trt-version 8.5.2 (JetPack 5.1) or 10.3.0 (JetPack 6.1)") from None
    return major * (10000 if major >= 10 else 1000) + minor * 100 + patch


def installed_trt_version() -> Optional[str]:
    """Version of an importable ``tensorrt`` (None when absent)."""
    try:
        import tensorrt  # noqa: F401
    except Exception:  # ImportError, or a broken CUDA install raising at import
        return None
    return getattr(tensorrt, "__version__", None)


def scale_hex(scale: float) -> str:
    """The cache's text form of one scale: the float32 bits, big-endian hex (1/127 → ``3c010204``)."""
    return struct.pack(">f", float(scale)).hex()


def cache_text(amax: Dict[str, float], trt_version: str) -> str:
    """Cache file contents for tensor name → amax (scale = amax / 127; zero amax gets the smallest scale)."""
    lines = [f"TRT-{version_code(trt_version)}-{ALGORITHM}"]
    for name, a in amax.items():
        a = float(a)
        if not np.isfinite(a):
            raise CalibrationError(f"tensor '{name}' has a non-finite calibration range ({a})",
                                   fix="check the model for NaN/inf on the calibration crops")
        scale = max(a, 1e-8) / 127.0
        lines.append(f"{name}: {scale_hex(scale)}")
    return "\n".join(lines) + "\n"


def parse_cache(text: str) -> Dict[str, float]:
    """Read a cache back (name → scale), for checks and tests."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("TRT-"):
        raise CalibrationError("not a TensorRT calibration cache", evidence=repr(text[:80]))
    out = {}
    for ln in lines[1:]:
        name, _, hx = ln.rpartition(": ")
        out[name] = struct.unpack(">f", bytes.fromhex(hx.strip()))[0]
    return out


def write_trt_cache(onnx_path: Union[str, Path], feeds: Iterable[Dict[str, np.ndarray]], out: Union[str, Path], *,
                    method: str = DEFAULT_METHOD, head_method: str = DEFAULT_METHOD, trt_version: Optional[str] = None,
                    total: Optional[int] = None) -> Path:
    """Calibrate every float tensor of an fp32 ONNX model on ``feeds`` and write the TensorRT cache.

    Args:
        onnx_path (str | Path): the fp32 ONNX file the engine will be built from.
        feeds (Iterable[dict]): calibration feed dicts (see :mod:`.data`).
        out (str | Path): cache file to write.
        method (str): range method for the backbone/neck. Defaults to "max".
        head_method (str): range method after the correlation. Defaults to "max".
        trt_version (str): TensorRT version of the build machine. Defaults to the installed one, else 8.6.1.
        total (int): number of samples (progress bar). Defaults to None.
    """
    import onnx

    if trt_version is None:
        trt_version = installed_trt_version()
        if trt_version is None:
            trt_version = "8.6.1"
            LOG.warning("INT8: no tensorrt module here; writing the calibration cache for TensorRT %s "
                        "(pass --trt-version to match the build machine)", trt_version)
    code = version_code(trt_version)
    model = onnx.load(str(onnx_path))
    name_nodes(model)
    head = downstream_tensors(model, correlation_convs(model))
    stats = collect_statistics(onnx_path, feeds, op_types=None, histograms=(method, head_method) != ("max", "max"),
                               total=total, progress=f"TRT cache {Path(out).stem}")
    ranges: Ranges = compute_ranges(stats, {t: (head_method if t in head else method) for t in stats.names},
                                    fixed={TEMPLATE_INPUT: IMAGE_RANGE, SEARCH_INPUT: IMAGE_RANGE})
    # network order (inputs, then node outputs) makes the file readable next to the graph
    order = [i.name for i in model.graph.input] + [o for n in model.graph.node for o in n.output]
    amax = {n: ranges.amax(n) for n in order if n in ranges.values}
    out = Path(out)
    with atomic_file(out) as f:
        f.write(cache_text(amax, trt_version))
    LOG.info("INT8: TensorRT calibration cache %s: %d tensors, header TRT-%d-%s", out, len(amax), code, ALGORITHM)
    return out


__all__ = ["ALGORITHM", "cache_text", "installed_trt_version", "parse_cache", "scale_hex",
           "version_code", "write_trt_cache", "write_trt_caches"]
