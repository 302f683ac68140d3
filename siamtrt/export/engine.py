"""Build ``template.engine`` and ``search.engine`` from an exported model directory (``export/build_engine.py``).

One code path for every TensorRT package (see trt_compat.py): precision comes from a plan decided once per branch —
the ONNX's own precision in a strongly typed network where the builder has one, builder flags where it only has weak
typing, and for ``--fp16`` on an FP32 export with a strongly-typed-only builder (TensorRT 11, tensorrt_rtx) an FP16
copy of the ONNX made here (I/O kept float32). Nothing is downgraded silently: unsupported combinations raise with the
command that fixes them, and the precision actually built goes into the sidecar and the summary.

The correlation (docs/CONTRACT.md) decides the batch handling of the search engine:
* ``--xcorr conv``: TensorRT's parser needs the runtime-weight Conv's channel count (N·C) at build time, so a
  dynamic-batch export is built with a *fixed* batch of ``--max-batch`` (the runtime pads fewer targets);
* ``--xcorr plugin``: the DepthwiseXCorr plugin takes any N, so the engine gets a 1..N optimization profile.
The template branch has no correlation and always gets the 1..N profile.

Every engine is written with a JSON sidecar (sidecar.py) that the runtime checks before deserializing. The options
are one dataclass (build_options.BuildOptions); the directory is read through ``siamtrt.modeldir.ModelDir`` and
checked against the capability table (``TARGETS[<package>]``); engines go into a staged copy of the output directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import EngineError, ExportError, InputError, folder_listing
from ..locations import derived_model_dir
from ..gpu.cuda import CudaProbe, probe_cuda
from ..gpu.tensorrt import TrtLogger, TrtModule, import_tensorrt
from ..modeldir import BRANCHES, ENGINE_FILES, ONNX_FILES, ModelDir, build_command, check_target, track_command
from ..outputs import atomic_path, check_writable, staged_dir
from ..progress import progress_bar
from . import sidecar as sc
from .build_options import BuildOptions
from .trt_compat import BuilderCaps, detect, network_flags

log = logging.getLogger(__name__)


def quantize_command(model_dir: Path, calib_file: str = "calib.npz") -> str:
    """The command that quantizes the FP32 directory ``model_dir`` for TensorRT (into ``<model_dir>-int8``)."""
    d = Path(model_dir)
    return (f"siamtrt quantize --model {d} --calib {calib_file} --precision int8 --target tensorrt "
            f"--out {derived_model_dir(d, 'int8')}")


def _int8_fix(source: Path, calib_file: str) -> str:
    """Quantize ``source`` for TensorRT, then build the new directory."""
    return (quantize_command(source, calib_file)
            + "\n" + build_command(derived_model_dir(source, "int8"), "--int8"))


def quantize_source(md: ModelDir) -> Tuple[Path, str]:
    """The FP32 directory to quantize for TensorRT and its calibration file: for a derived (fp16 / int8) directory,
    the source and crops its metadata records (quantize refuses a derived directory), else ``md`` itself."""
    q = md.quantization
    if not q:
        return md.path, "calib.npz"
    src = Path(str(q.get("source_dir") or "FP32_DIR"))
    if not src.is_absolute() and not src.is_dir() and (md.path.parent / src).is_dir():
        src = md.path.parent / src  # recorded relative to where quantize ran: beside the derived directory
    return src, str(q.get("calib_file") or "calib.npz")


def check_qdq_target(md: ModelDir) -> None:
    """Refuse, before parsing, an INT8 directory quantized for another engine (--target onnxruntime / openvino):
    its Q/DQ form is not TensorRT's, and the ONNX parser failed on it with a cut-off message.

    Raises:
        EngineError: the metadata records another quantization target (the fix quantizes the source for TensorRT).
    """
    target = (md.quantization or {}).get("target")
    if md.precision == "int8" and target not in (None, "tensorrt"):
        raise EngineError(f"{md.path} was quantized for --target {target}, not for TensorRT",
                          evidence=f"metadata quantization.target = {target!r}; TensorRT takes the Q/DQ form of "
                                   "--target tensorrt (int8 symmetric activations and weights, zero points 0, float "
                                   "bias)",
                          fix="quantize the FP32 source for TensorRT, then build from the new directory:\n"
                              + _int8_fix(*quantize_source(md)))


# ---------------------------------------------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PrecisionPlan:
    """How one branch gets its precision on this builder."""

    precision: str               # what the engine computes in (fp32 | fp16 | int8)
    strongly_typed: bool         # network created STRONGLY_TYPED
    flags: Tuple[str, ...] = ()  # BuilderFlag names set (weak typing)
    convert_fp16: bool = False   # FP16 copy of the ONNX made here
    calibration_cache: bool = False  # implicit INT8: scales from a TensorRT calibration cache (TensorRT <= 10)

    @property
    def typing(self) -> str:
        return "strong" if self.strongly_typed else "weak"

    def describe(self) -> str:
        how = "strongly typed" if self.strongly_typed else "weakly typed"
        if self.flags:
            how += " + " + "/".join(self.flags) + " flag"
        if self.convert_fp16:
            how += ", FP16 ONNX converted here"
        if self.calibration_cache:
            how += ", implicit INT8 from a calibration cache"
        return f"{self.precision} ({how})"


def plan_precision(requested: str, onnx_precision: str, caps: BuilderCaps, model_dir: Path,
                   branch: str, calib: bool = False, source: Optional[Tuple[Path, str]] = None) -> PrecisionPlan:
    """Decide how ``requested`` is built from an ONNX of ``onnx_precision`` on a builder with ``caps``.

    ``calib``: calibration crops were given, so INT8 from an FP32 model may take TensorRT's implicit path (a
    calibrator reading the cache :mod:`siamtrt.calibration.cache` writes), where the builder still has one.
    ``source``: the FP32 directory and calibration file the INT8 fixes quantize (:func:`quantize_source`; default
    ``model_dir`` and calib.npz).

    Raises:
        EngineError: INT8 without a quantized model (says how to make one), a precision below the ONNX's
            (FP32 engine from an FP16/INT8 export), or a builder that can express none of the needed forms.
    """
    onnx_file = model_dir / ONNX_FILES[branch]
    int8_fix = _int8_fix(*(source or (model_dir, "calib.npz")))
    strong = caps.strongly_typed
    if requested == onnx_precision:
        if strong or requested == "fp32":
            return PrecisionPlan(requested, strongly_typed=strong)
        flag = {"fp16": "FP16", "int8": "INT8"}[requested]
        if not (caps.weak_typing if flag == "FP16" else caps.int8_flag):
            raise EngineError(f"{caps.package} {caps.version} can neither type the network strongly nor set {flag}",
                              fix="upgrade TensorRT (>= 8.5)")
        return PrecisionPlan(requested, strongly_typed=False, flags=(flag,))
    if requested == "int8" and onnx_precision == "fp32" and calib:
        if not caps.int8_calibrator:
            raise EngineError(f"{caps.package} {caps.version} has no implicit INT8 (no calibrators): --calib needs "
                              "TensorRT 8.x-10.x (JetPack 5 / 6)",
                              evidence="IInt8EntropyCalibrator2 / BuilderFlag.INT8 missing; TensorRT 11 and "
                                       "tensorrt_rtx take INT8 only as explicit Q/DQ nodes",
                              fix="quantize explicitly, then build from the new directory:\n" + int8_fix)
        flags = ("INT8", "FP16") if caps.weak_typing else ("INT8",)  # FP16 for what stays out of INT8
        return PrecisionPlan("int8", strongly_typed=False, flags=flags, calibration_cache=True)
    if requested == "int8":
        raise EngineError(f"--int8 needs a quantized (Q/DQ) model, and {onnx_file} is {onnx_precision}",
                          evidence=f"metadata precision of {onnx_file.name}: {onnx_precision!r}; TensorRT 10+ and "
                                   "tensorrt_rtx take INT8 only as explicit Q/DQ nodes (no calibrators)",
                          fix="quantize the FP32 model with real video crops, then build from the new directory:\n"
                              + int8_fix + ("\n(TensorRT 8.x-10.x also builds implicit INT8 from this directory: "
                                            "add --calib calib.npz)" if onnx_precision == "fp32" else ""))
    if requested == "fp16" and onnx_precision == "fp32":
        if caps.weak_typing:
            return PrecisionPlan("fp16", strongly_typed=False, flags=("FP16",))
        if strong:
            return PrecisionPlan("fp16", strongly_typed=True, convert_fp16=True)
        raise EngineError(f"{caps.package} {caps.version} offers no way to build FP16", fix="upgrade TensorRT")
    raise EngineError(f"cannot build a {requested} engine from {onnx_file}, which is {onnx_precision}",
                      evidence="siamtrt does not lower a quantized or FP16 model back to a higher precision",
                      fix=f"build with --{onnx_precision} (or omit the precision flag), or pass the FP32 model "
                          "directory for --fp32/--fp16")


# ---------------------------------------------------------------------------------------------------------------
# ONNX preparation
# ---------------------------------------------------------------------------------------------------------------

def _dim_values(value_info) -> List[Union[int, str]]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value_info.type.tensor_type.shape.dim]


def onnx_inputs(model) -> Dict[str, List[Union[int, str]]]:
    """Input name → dims (int, or a symbolic name for dynamic axes) of an ``onnx.ModelProto``."""
    inits = {i.name for i in model.graph.initializer}
    return {i.name: _dim_values(i) for i in model.graph.input if i.name not in inits}


def fix_batch(model, batch: int) -> None:
    """Give every graph input/output a static batch (axis 0), in place; stale value_info is dropped."""
    for vi in list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = batch
    del model.graph.value_info[:]


def fp16_copy(model, branch: str, model_dir: Path, meta: Dict[str, Any]):
    """FP16 copy of one FP32 branch for strongly typed builders, through THE guarded converter
    (:func:`siamtrt.calibration.fp16.half_model`, as ``quantize.py --precision fp16``): stem, correlations and Casts
    stay float32, and so does every node whose output exceeds the FP16 guard on probe crops
    (:func:`siamtrt.calibration.fp16.probe_feeds`: seeded noise through the FP32 template branch). I/O stays float32.

    Returns:
        tuple: (fp16 ModelProto, names of the nodes kept in float32).
    """
    try:
        import onnxconverter_common  # noqa: F401
    except ImportError:
        raise EngineError("--fp16 on this TensorRT needs an FP16 ONNX, and onnxconverter-common is not installed",
                          fix='pip install -e ".[rtx]" (brings it), or make an FP16 model directory with '
                              "calibration/quantize.py --precision fp16") from None
    from ..calibration.fp16 import half_model, probe_feeds

    first = onnx_inputs(model)[branch]
    batch = first[0] if isinstance(first[0], int) and first[0] > 0 else 1
    feeds = probe_feeds(model_dir / ONNX_FILES["template"], int(meta["exemplar_size"]), int(meta["instance_size"]),
                        batch)
    return half_model(model, branch, feeds[branch], len(feeds[branch]))


# ---------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class EngineResult:
    """One written engine."""

    branch: str
    engine: Path
    sidecar: Path
    plan: PrecisionPlan
    seconds: float
    layers: Dict[str, Any]
    profile: Dict[str, Any]

    @property
    def megabytes(self) -> float:
        return self.engine.stat().st_size / 1e6


@dataclass
class BuildReport:
    """What :func:`build_engine` did: engines, builder, warnings; ``summary()`` is what the CLI prints."""

    model: ModelDir
    out_dir: Path
    trt: str
    caps: BuilderCaps
    gpu: str
    xcorr: str
    engines: List[EngineResult] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    plugin: Optional[str] = None
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"TensorRT: {self.caps.describe()}; GPU: {self.gpu}; xcorr: {self.xcorr}"
                 + (f" ({self.plugin})" if self.plugin else ""), f"model: {self.model.describe()}"]
        if self.model.untrained_warning:
            lines.append(self.model.untrained_warning)
        head = f"{'engine':<17}{'precision':<52}{'batch':<10}{'layers':>7}{'MB':>8}{'build s':>9}"
        lines += [head, "-" * len(head)]
        for e in self.engines:
            b = e.profile.get("batch", {})
            batch = f"fixed {b['fixed']}" if b.get("fixed") else f"{b.get('min', '?')}..{b.get('max', '?')}"
            n = e.layers.get("engine_layers", e.layers.get("network_layers", 0))
            lines.append(f"{e.engine.name:<17}{e.plan.describe():<52}{batch:<10}{n:>7}{e.megabytes:>8.2f}"
                         f"{e.seconds:>9.2f}")
        for e in self.engines:
            prec = e.layers.get("engine_precisions")
            src = "engine inspector"
            if prec is None:
                prec = e.layers.get("network_output_types", {})
                src = "network layer output types" + (" (weak typing: the builder may pick lower precision)"
                                                      if e.plan.typing == "weak" else "")
            lines.append(f"{e.engine.name}: per-layer precision ({src}): "
                         + ", ".join(f"{k} {v}" for k, v in sorted(prec.items())))
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"wrote {', '.join(str(e.engine) for e in self.engines)} (+ .json sidecars) in "
                     f"{self.seconds:.1f} s")
        if self.gpu == "built without GPU":  # the engines need a GPU; what runs here is the ONNX directory
            lines.append(f"next (on the target GPU): {track_command(self.out_dir, 'tensorrt')}   |   here, without a "
                         f"GPU: {track_command(self.model.path, 'onnxruntime')}")
        else:
            lines.append(f"next: {track_command(self.out_dir, 'tensorrt')}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Builder pieces
# ---------------------------------------------------------------------------------------------------------------

def _probe_builder(trt: TrtModule, caps: BuilderCaps, probe: CudaProbe, logger) -> Any:
    """Create the Builder, with a clear error where this package needs a GPU to build."""
    try:
        builder = trt.module.Builder(logger)
    except (TypeError, RuntimeError) as e:  # full TensorRT without a driver: "factory function returned nullptr"
        builder, err = None, e
    else:
        err = None
    if builder is None:
        raise EngineError(f"{trt.describe()} cannot create a builder here",
                          evidence=(f"{probe.describe()}; " if not probe.available else "") + (str(err)[:200] if err
                                   else "; ".join(logger.errors)[-300:]),
                          fix="full TensorRT builds need an NVIDIA GPU (build on the target device); on a machine "
                              'without one, pip install -e ".[rtx]" (tensorrt-rtx, conv mode only)')
    return builder


def _register_plugin(trt: TrtModule, caps: BuilderCaps, plugin_lib: Optional[Path]) -> Dict[str, Any]:
    """Register the DepthwiseXCorr creator before parsing; return the sidecar's plugin record."""
    import ctypes

    from ..plugin.kernel import LIBRARY_NAME, build_dir

    lib = Path(plugin_lib) if plugin_lib is not None else build_dir() / LIBRARY_NAME
    if plugin_lib is not None and not lib.is_file():
        raise EngineError(f"plugin library {lib} does not exist",
                          fix="build it: python -m siamtrt.plugin.build --cpp")
    if lib.is_file():
        ctypes.CDLL(str(lib), mode=getattr(ctypes, "RTLD_GLOBAL", 0))
        return {"implementation": "cpp", "library": str(lib.resolve()), "name": "DepthwiseXCorr", "version": "1"}
    if caps.python_plugin_v3:
        from ..plugin.python_plugin import register

        register(trt.module)
        return {"implementation": "python", "module": "siamtrt.plugin.python_plugin",
                "name": "DepthwiseXCorr", "version": "1"}
    raise EngineError(f"{trt.describe()} needs the C++ DepthwiseXCorr plugin for --xcorr plugin (no Python "
                      "IPluginV3 before TensorRT 10), and it is not built",
                      evidence=f"looked for {lib}",
                      fix="python -m siamtrt.plugin.build --cpp --tensorrt-root /usr (JetPack), then "
                          "rerun with --plugin-lib " + str(lib))


def _network_layers(trt: TrtModule, network) -> Dict[str, Any]:
    """Layer count and output types per layer of a parsed network (what is known without a GPU)."""
    types: Dict[str, int] = {}
    kinds: Dict[str, int] = {}
    per_layer: Dict[str, str] = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        kind = str(layer.type).split(".")[-1]
        kinds[kind] = kinds.get(kind, 0) + 1
        if layer.num_outputs:
            t = str(layer.get_output(0).dtype).split(".")[-1]
            per_layer[layer.name] = t
            t = "shape/index (int, bool)" if t in ("INT64", "INT32", "BOOL", "UINT8") else t
            types[t] = types.get(t, 0) + 1
    return {"network_layers": network.num_layers, "network_layer_types": kinds, "network_output_types": types,
            "network_layer_dtypes": per_layer}


def _inspect_engine(trt: TrtModule, plan: bytes, logger) -> Dict[str, Any]:
    """Per-layer precision from the engine inspector (needs a CUDA device: only called after the probe)."""
    m = trt.module
    runtime = m.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None or not hasattr(engine, "create_engine_inspector"):
        return {}
    inspector = engine.create_engine_inspector()
    info = json.loads(inspector.get_engine_information(m.LayerInformationFormat.JSON))
    layers = info.get("Layers", [])
    prec: Dict[str, int] = {}
    for layer in layers:
        dtype = "unknown"
        if isinstance(layer, dict):
            outs = layer.get("Outputs") or []
            fmt = outs[0].get("Format/Datatype", "") if outs and isinstance(outs[0], dict) else ""
            for key in ("Int8", "Half", "Float", "BFloat16", "FP8", "Int32", "Int64", "Bool"):
                if key.lower() in fmt.lower():
                    dtype = key
                    break
        prec[dtype] = prec.get(dtype, 0) + 1
    return {"engine_layers": len(layers), "engine_precisions": prec}


def _set_workspace(trt: TrtModule, caps: BuilderCaps, config, gib: Optional[float]) -> None:
    if gib is None:
        return
    nbytes = int(gib * (1 << 30))
    if caps.memory_pools:
        config.set_memory_pool_limit(trt.module.MemoryPoolType.WORKSPACE, nbytes)
    else:
        config.max_workspace_size = nbytes


def _timing_cache(trt: TrtModule, caps: BuilderCaps, config, path: Optional[Path]) -> Tuple[bool, Optional[str]]:
    """Load ``path`` into the config; returns (usable, note). tensorrt_rtx's cache calls are no-ops (it warns)."""
    if path is None:
        return False, None
    if not caps.timing_cache:
        return False, f"this TensorRT has no timing cache API; {path} not used"
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = config.create_timing_cache(data)
        ok = config.set_timing_cache(cache, False)
    noop = [w for w in caught if "no-op" in str(w.message).lower()]
    if noop:
        return False, (f"{trt.describe()} treats timing caches as no-ops (its set_timing_cache says so); {path} is "
                       "neither read nor written")
    if ok is False:
        return False, f"timing cache {path} was rejected (other TensorRT version or GPU?); starting a fresh one"
    return True, (f"timing cache {path} loaded ({len(data)} bytes)" if data else None)


def _save_timing_cache(config, path: Path) -> None:
    cache = config.get_timing_cache()
    if cache is not None:
        with atomic_path(path) as tmp:
            tmp.write_bytes(bytes(cache.serialize()))


# ---------------------------------------------------------------------------------------------------------------
# The build
# ---------------------------------------------------------------------------------------------------------------

def _profile_for(branch: str, inputs: Dict[str, List], md: ModelDir, opts: BuildOptions,
                 fixed: Optional[int]) -> Dict[str, Any]:
    """min/opt/max shapes per input (only inputs with dynamic axes need one)."""
    sizes = md.instance_sizes
    dla = opts.dla_core is not None
    shapes = {}
    for name, dims in inputs.items():
        lo, opt, hi = [], [], []
        for axis, d in enumerate(dims):
            if isinstance(d, int) and d > 0:
                triple = (d, d, d)
            elif axis == 0:  # DLA needs static shapes: min = opt = max
                triple = (opts.max_batch,) * 3 if dla else (1, opts.opt_batch, opts.max_batch)
            else:  # dynamic spatial size: DaSiamRPN's adaptive search (271 or 287), the long-term lost size
                if name != "search":
                    raise EngineError(f"{ONNX_FILES[branch]} input '{name}' has an unexpected dynamic axis {axis} "
                                      f"({d})",
                                      fix="re-export the model directory with siamtrt export")
                s_opt = md.instance_size
                triple = (s_opt, s_opt, s_opt) if dla else (min(sizes), s_opt, max(sizes))
            lo.append(triple[0])
            opt.append(triple[1])
            hi.append(triple[2])
        shapes[name] = {"min": lo, "opt": opt, "max": hi}
    first = next(iter(shapes.values()))
    if fixed:
        batch = {"fixed": fixed}
    else:
        batch = {"min": first["min"][0], "opt": first["opt"][0], "max": first["max"][0]}
    return {"batch": batch, "shapes": shapes}


def cache_calibrator(trt_module, cache_path: Union[str, Path]):
    """An ``IInt8EntropyCalibrator2`` that serves a calibration cache and no data, so TensorRT (8.x-10.x) reads the
    scales from the cache and never calibrates on the device (the crops were measured once, on any machine, by
    :func:`siamtrt.calibration.cache.write_trt_caches`). ``trt_module``: ``tensorrt`` (or a stand-in in tests)."""
    data = Path(cache_path).read_bytes()

    class CacheCalibrator(trt_module.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.cache_path = str(cache_path)

        def get_batch_size(self):
            return 1

        def get_batch(self, names, *args):  # never called when the cache is accepted; None ends calibration
            return None

        def read_calibration_cache(self, *args):
            return data

        def write_calibration_cache(self, cache, *args):  # the cache came from siamtrt; keep it as written
            return None

    return CacheCalibrator()


def build_engine(model_dir: Union[str, Path], options: Optional[BuildOptions] = None, *,
                 branches: Sequence[str] = BRANCHES, progress: bool = True, trt: Optional[TrtModule] = None,
                 **option_fields: Any) -> BuildReport:
    """Build the engines of a model directory and write them with their sidecars.

    Every option is a field of :class:`~.build_options.BuildOptions` (given as ``options``, or by name:
    ``build_engine(d, precision="fp16", max_batch=4)``). The options and files are checked before TensorRT is
    imported; the engines, sidecars and calibration caches are written into a staged copy of the output directory
    that replaces it only when every engine is built (an error or Ctrl-C leaves it as it was).

    Args:
        model_dir (Path): exported directory (template.onnx, search.onnx), FP32 / FP16 / INT8 (Q/DQ).
        options (BuildOptions): what to build. Defaults to ``BuildOptions()`` (the directory's precision and
            correlation, batch 1, engines written into ``model_dir``).
        branches (list[str]): which engines to build. Defaults to both.
        progress (bool): show a progress bar. Defaults to True.
        trt (TrtModule): TensorRT module to use. Defaults to :func:`siamtrt.gpu.tensorrt.import_tensorrt`.
        **option_fields: :class:`BuildOptions` fields overriding ``options``.

    Returns:
        BuildReport: engines, builder description and notes; ``summary()`` prints them.

    Raises:
        ModelDirError: missing or inconsistent model directory, or one this TensorRT target does not accept
            (:func:`siamtrt.modeldir.check_target`).
        EngineError: an unsupported combination (named with its fix; an INT8 directory quantized for another
            engine), a parser or builder failure.
        InputError: a missing input file, an unwritable output, or an ``out_dir`` holding another model directory.
        ExportError: the plugin-mode conversion failed.
    """
    t_start = time.perf_counter()
    opts = dataclasses.replace(options or BuildOptions(), **option_fields)
    opts.validate()
    bad = [b for b in branches if b not in BRANCHES]
    if bad or not branches:
        raise EngineError(f"unknown branches {bad}", evidence=f"valid: {', '.join(BRANCHES)}")
    md = ModelDir.open(model_dir)
    out_dir = Path(opts.out_dir) if opts.out_dir is not None else md.path
    check_writable([], dirs=[out_dir])
    _refuse_other_model_dir(md, out_dir)
    trt = trt or _import_builder()
    caps = detect(trt)
    check_target(md, trt.package)  # the capability table: what this TensorRT takes from a model directory
    xcorr = opts.xcorr or md.xcorr
    _refuse_xcorr(caps, md, branches, xcorr)
    requested = opts.precision or md.precision
    plans = _plan_branches(requested, md, caps, branches, opts)
    job = _start(trt, caps, md, dataclasses.replace(opts, precision=requested, xcorr=xcorr, out_dir=out_dir),
                 branches)
    log.info("TensorRT: %s; GPU: %s; building %s from %s", caps.describe(), job.report.gpu, ", ".join(branches),
             md.path)
    with staged_dir(out_dir, keep_existing=True) as stage:
        if opts.calib is not None:  # scales for the implicit-INT8 calibrator, from the same statistics as Q/DQ
            from ..calibration.cache import write_trt_caches

            job.caches = write_trt_caches(md.path, opts.calib, stage, trt_version=trt.version)
            job.report.notes.append(f"implicit INT8: scales from {', '.join(p.name for p in job.caches.values())} "
                                    "(written here from --calib)")
        with progress_bar(len(branches) * 3, "TensorRT", "step", progress, leave=False) as bar, \
                tempfile.TemporaryDirectory(prefix="siamtrt-build-") as tmp:
            for branch in branches:
                job.report.engines.append(_build_branch(job, branch, plans[branch], Path(tmp), stage, bar))
    for e in job.report.engines:  # the staged directory is now out_dir
        e.engine, e.sidecar = out_dir / e.engine.name, out_dir / e.sidecar.name
    job.report.seconds = time.perf_counter() - t_start
    return job.report


# ---------------------------------------------------------------------------------------------------------------
# The steps of build_engine
# ---------------------------------------------------------------------------------------------------------------

def _refuse_other_model_dir(md: ModelDir, out_dir: Path) -> None:
    """Refuse an ``out_dir`` that holds another model directory: engines built there sit beside its ONNX files and
    pass for its engines (inspect, track and triton read them as such), and engines already there were replaced."""
    if not out_dir.is_dir() or out_dir.resolve() == md.path.resolve():
        return
    onnx = [f for f in ONNX_FILES.values() if (out_dir / f).is_file()]
    if onnx:
        raise InputError(f"--out {out_dir} holds another model directory, not --model {md.path}",
                         evidence=f"{folder_listing(out_dir, limit=8)}; engines of {md.path} written beside "
                                  f"{' / '.join(onnx)} would pass for that directory's engines, and its engines "
                                  "would be replaced",
                         fix=f"omit --out (the engines go into {md.path}), or give a folder for engines only, e.g. "
                             f"--out {md.path.parent / (md.path.name + '-engines')}")


def _import_builder() -> TrtModule:
    """The TensorRT module, with the install hint for the builder (the extra also brings the FP16 converter)."""
    try:
        return import_tensorrt()
    except EngineError as e:
        raise EngineError(e.what, evidence=e.evidence,
                          fix='pip install -e ".[rtx]" (tensorrt-rtx: builds engines without a GPU, conv mode; also '
                              "brings the FP16 converter), or full TensorRT: JetPack, or pip install tensorrt "
                              "--extra-index-url https://pypi.nvidia.com (builds need a GPU)") from None


def _refuse_xcorr(caps: BuilderCaps, md: ModelDir, branches: Sequence[str], xcorr: str) -> None:
    """The correlation refusals that must happen before any parsing (decided from the builder's API)."""
    if xcorr == "plugin" and "search" in branches and not caps.plugin_layers:
        raise EngineError(f"{caps.package} {caps.version} cannot build --xcorr plugin: its networks have no plugin "
                          "layers",
                          evidence="INetworkDefinition has neither add_plugin_v3 nor add_plugin_v2 (its ONNX parser "
                                   "also aborts the whole process on a plugin node, so siamtrt stops before parsing)",
                          fix=f"build with --xcorr conv ({build_command(md.path, '--xcorr conv')}), or use full "
                              "TensorRT (JetPack / pypi.nvidia.com) for plugin mode")
    if xcorr == "conv" and md.xcorr == "plugin":
        raise EngineError(f"{md.onnx('search')} is in plugin mode; --xcorr conv needs the conv-mode export",
                          fix="re-export with siamtrt export ... --xcorr conv")


def _plan_branches(requested: str, md: ModelDir, caps: BuilderCaps, branches: Sequence[str],
                   opts: BuildOptions) -> Dict[str, PrecisionPlan]:
    """One precision plan per branch, and the refusals that depend on it."""
    check_qdq_target(md)
    source = quantize_source(md)
    plans = {b: plan_precision(requested, md.branch_meta(b)["precision"], caps, md.path, b, opts.calib is not None,
                               source) for b in branches}
    if opts.calib is not None and not any(p.calibration_cache for p in plans.values()):
        raise EngineError("--calib is for --int8 from an FP32 directory (implicit INT8 on TensorRT 8.x-10.x)",
                          evidence=f"precision {requested}, ONNX {md.precision}",
                          fix="drop --calib, or add --int8 with the FP32 model directory")
    if opts.dla_core is not None and requested == "fp32":
        raise EngineError("DLA runs only FP16 and INT8", fix="add --fp16 (or --int8 with a quantized model)")
    return plans


@dataclass
class _BuildJob:
    """What every branch build shares: the TensorRT objects, the directory, the resolved options, the report."""

    trt: TrtModule
    caps: BuilderCaps
    probe: CudaProbe
    logger: Any
    builder: Any
    md: ModelDir
    opts: BuildOptions  # resolved: precision, xcorr and out_dir set; plugin_lib only where a plugin is used
    plugin_record: Optional[Dict[str, Any]]
    report: BuildReport
    caches: Dict[str, Path] = field(default_factory=dict)


def _start(trt: TrtModule, caps: BuilderCaps, md: ModelDir, opts: BuildOptions, branches: Sequence[str]
           ) -> _BuildJob:
    """Builder (with its GPU / DLA refusals), the plugin registration, and the report."""
    probe = probe_cuda()
    logger = TrtLogger.create(trt.module)
    builder = _probe_builder(trt, caps, probe, logger)
    if opts.dla_core is not None and getattr(builder, "num_DLA_cores", 0) <= opts.dla_core:
        raise EngineError(f"--dla {opts.dla_core}: this device has {getattr(builder, 'num_DLA_cores', 0)} DLA cores",
                          evidence=probe.describe(), fix="omit --dla (DLA exists on Jetson Xavier and Orin only)")
    plugin = _register_plugin(trt, caps, opts.plugin_lib) if opts.xcorr == "plugin" and "search" in branches else None
    report = BuildReport(model=md, out_dir=Path(opts.out_dir), trt=trt.describe(), caps=caps,
                         gpu=probe.describe() if probe.available else "built without GPU", xcorr=opts.xcorr,
                         plugin=None if plugin is None else
                         f"{plugin['implementation']} plugin" + (f" {plugin.get('library')}"
                                                                if plugin.get("library") else ""))
    return _BuildJob(trt=trt, caps=caps, probe=probe, logger=logger, builder=builder, md=md,
                     opts=dataclasses.replace(opts, plugin_lib=opts.plugin_lib if plugin else None),
                     plugin_record=plugin, report=report)


def _prepare_onnx(job: _BuildJob, branch: str, plan: PrecisionPlan, tmp: Path):
    """The ONNX the parser reads: plugin nodes, fixed batch for the conv correlation, FP16 copy.

    Returns (path to parse, input dims, fixed batch or None, whether it is a prepared copy).
    """
    import onnx

    src, opts = job.md.onnx(branch), job.opts
    model = onnx.load(str(src))
    inputs = onnx_inputs(model)
    first = next(iter(inputs.values()))
    static_b = first[0] if isinstance(first[0], int) and first[0] > 0 else None
    changed, fixed = False, None
    if static_b is not None and opts.max_batch > static_b:
        raise EngineError(f"{src} was exported with a fixed batch of {static_b}; --max-batch {opts.max_batch} "
                          "needs a dynamic-batch export",
                          fix="re-export without --batch 1: siamtrt export ... (batch is dynamic by default)")
    if static_b is not None:
        fixed = static_b if static_b > 1 else None
    if branch == "search" and opts.xcorr == "plugin" and job.md.xcorr == "conv":
        from .xcorr_plugin_onnx import convert_model_to_plugin

        model, n = convert_model_to_plugin(model)
        if n == 0:
            raise ExportError(f"{src} has no correlation Conv to convert for --xcorr plugin",
                              fix="pass a model directory written by export/to_onnx.py")
        changed = True
    if branch == "search" and opts.xcorr == "conv" and static_b is None:
        fix_batch(model, opts.max_batch)
        fixed, changed = opts.max_batch, True
        if opts.max_batch > 1:
            job.report.notes.append(
                f"{ENGINE_FILES['search']} has a fixed batch of {opts.max_batch} (TensorRT needs the conv "
                f"correlation's N*C channels at build time); fewer targets are padded, costing {opts.max_batch}x the "
                "search work. "
                "--xcorr plugin (full TensorRT) gives a true 1..N profile.")
    if plan.convert_fp16:
        model, kept = fp16_copy(model, branch, job.md.path, job.md.branch_meta(branch))
        job.report.notes.append(f"{branch}: FP16 copy by the guarded converter; {len(kept)} nodes kept in FP32")
        changed = True
    parse_path = src
    if changed:
        parse_path = tmp / ONNX_FILES[branch]
        onnx.save(model, str(parse_path))
    return parse_path, onnx_inputs(model), fixed, changed


def _parse(job: _BuildJob, branch: str, plan: PrecisionPlan, parse_path: Path, changed: bool):
    """Parse into a network (strongly typed where the plan says so); (network, parser, layer summary)."""
    trt = job.trt
    network = job.builder.create_network(network_flags(trt, job.caps, plan.strongly_typed))
    parser = trt.module.OnnxParser(network, job.logger)
    if not parser.parse_from_file(str(parse_path)):
        errs = [parser.get_error(i).desc() for i in range(parser.num_errors)]
        raise EngineError(f"{trt.describe()} could not parse {ONNX_FILES[branch]}"
                          + (" (prepared copy)" if changed else ""),
                          evidence="\n".join(e[:300] for e in errs)[:1500] or "; ".join(job.logger.errors)[-600:],
                          fix="check that the export is current (siamtrt export) and see "
                              "docs/tensorrt.md for what each TensorRT version parses")
    return network, parser, _network_layers(trt, network)


def _configure(job: _BuildJob, branch: str, plan: PrecisionPlan, inputs, fixed):
    """Builder config: workspace, precision flags, calibrator, profile, timing cache, DLA, hardware compatibility.

    Returns (config, profile record, whether a timing cache is in use).
    """
    trt, builder, opts = job.trt, job.builder, job.opts
    config = builder.create_builder_config()
    _set_workspace(trt, job.caps, config, opts.workspace_gib)
    for flag in plan.flags:
        config.set_flag(getattr(trt.module.BuilderFlag, flag))
    if plan.calibration_cache:
        config.int8_calibrator = cache_calibrator(trt.module, job.caches[branch])
    if hasattr(config, "profiling_verbosity"):
        config.profiling_verbosity = trt.module.ProfilingVerbosity.DETAILED
    profile_info = _profile_for(branch, inputs, job.md, opts, fixed)
    if any(not (isinstance(d, int) and d > 0) for dims in inputs.values() for d in dims):
        profile = builder.create_optimization_profile()
        for name, shp in profile_info["shapes"].items():
            profile.set_shape(name, shp["min"], shp["opt"], shp["max"])
        config.add_optimization_profile(profile)
    use_cache, note = _timing_cache(trt, job.caps, config, opts.timing_cache)
    if note and note not in job.report.notes:
        job.report.notes.append(note)
    if opts.dla_core is not None:
        config.default_device_type = trt.module.DeviceType.DLA
        config.DLA_core = opts.dla_core
        config.set_flag(trt.module.BuilderFlag.GPU_FALLBACK)
    if opts.hardware_compatibility != "none":
        level = getattr(getattr(trt.module, "HardwareCompatibilityLevel", None),
                        opts.hardware_compatibility.upper(), None)
        if level is None:
            raise EngineError(f"{trt.describe()} has no hardware compatibility level "
                              f"'{opts.hardware_compatibility}'", fix="omit --hardware-compatibility")
        config.hardware_compatibility_level = level
    return config, profile_info, use_cache


def _serialize(job: _BuildJob, branch: str, network, config, use_cache: bool) -> bytes:
    """Build the serialized engine (and write the timing cache back)."""
    job.logger.errors.clear()
    plan_bytes = job.builder.build_serialized_network(network, config)
    if plan_bytes is None:
        raise EngineError(f"{job.trt.describe()} failed to build {ENGINE_FILES[branch]}",
                          evidence="\n".join(job.logger.errors)[-1500:] or "no TensorRT error message",
                          fix="see docs/tensorrt.md (workspace: --workspace GiB; INT8 needs Q/DQ from "
                              "calibration/quantize.py --target tensorrt)")
    data = bytes(plan_bytes)
    del plan_bytes
    if use_cache:
        _save_timing_cache(config, job.opts.timing_cache)
    return data


def _write_engine(job: _BuildJob, branch: str, plan: PrecisionPlan, data: bytes, layers, profile_info, inputs,
                  seconds: float, stage: Path) -> EngineResult:
    """Engine file (into the staged output directory), inspector layers where a GPU is present, and the sidecar."""
    engine_path = stage / ENGINE_FILES[branch]
    engine_path.write_bytes(data)
    if job.probe.available and job.caps.engine_inspector:
        try:
            layers.update(_inspect_engine(job.trt, data, job.logger))
        except Exception as e:  # the inspector is a report, never a reason to fail the build
            log.warning("TensorRT: engine inspector failed on %s: %s", engine_path.name, e)
    io_desc = {name: {"shape": [d if isinstance(d, int) and d > 0 else -1 for d in dims]}
               for name, dims in inputs.items()}
    side = sc.make_sidecar(
        engine_path=engine_path, branch=branch, trt=job.trt, probe=job.probe, precision=plan.precision,
        xcorr=job.opts.xcorr, typing=plan.typing, source_onnx=sc.onnx_source(job.md.onnx(branch)),
        build_options=dict(job.opts.record(), flags=list(plan.flags), converted_fp16=plan.convert_fp16),
        profile=profile_info, metadata=job.md.branch_meta(branch),
        plugin=job.plugin_record if branch == "search" else None, rebuild=job.opts.rebuild_command(job.md.path),
        build_seconds=seconds, layers=layers, io=io_desc)
    side_path = sc.write_sidecar(engine_path, side)
    log.info("TensorRT: built %s (%.2f MB, %s) in %.2f s", engine_path.name, len(data) / 1e6, plan.describe(),
             seconds)
    return EngineResult(branch, engine_path, side_path, plan, seconds, layers, profile_info)


def _build_branch(job: _BuildJob, branch: str, plan: PrecisionPlan, tmp: Path, stage: Path, bar) -> EngineResult:
    """prepare → parse → configure + build → write, for one branch."""
    t0 = time.perf_counter()
    bar.set_postfix_str(f"{branch}: prepare")
    parse_path, inputs, fixed, changed = _prepare_onnx(job, branch, plan, tmp)
    bar.update(1)
    bar.set_postfix_str(f"{branch}: parse")
    network, parser, layers = _parse(job, branch, plan, parse_path, changed)
    bar.update(1)
    bar.set_postfix_str(f"{branch}: build")
    config, profile_info, use_cache = _configure(job, branch, plan, inputs, fixed)
    data = _serialize(job, branch, network, config, use_cache)
    del network, parser, config
    result = _write_engine(job, branch, plan, data, layers, profile_info, inputs, time.perf_counter() - t0, stage)
    bar.update(1)
    return result


__all__ = ["BuildOptions", "BuildReport", "EngineResult", "PrecisionPlan", "build_engine", "cache_calibrator",
           "check_qdq_target", "fix_batch", "fp16_copy", "onnx_inputs", "plan_precision", "quantize_command",
           "quantize_source"]
