"""OpenVINO backend: the fast CPU engine (INT8 convolutions on VNNI / AMX, the correlation as a GroupConvolution).

OpenVINO reads the project's ONNX files unchanged — FP32, FP16 (computed in f32) and the Q/DQ INT8 directories of
``calibration/quantize.py`` (its low-precision transformations turn Q/DQ pairs into int8 kernels) — so one model
directory runs on ONNX Runtime and here alike.

Choices, and why:

* **Static shapes, compiled per input signature.** The CPU plugin refuses a GroupConvolution whose weights (the
  template kernels) have a dynamic shape, so a ``--batch dynamic`` or long-term (287…831) export cannot be compiled
  as it is. Each new feed signature (batch N, search size) gets the model reshaped to those static shapes and
  compiled once (a fraction of a second, and nothing at all on a second start: see the cache); a tracker uses one or
  two signatures (its targets' count; the long-term lost size), so compiled models are kept per signature.
* **One dynamic-size search model for the sizes in between.** The long-term growth (``lost_growth_step`` k > 0)
  searches at a new size every lost frame (~70 between 287 and 831 with k = 8): compiled statically, every ladder
  step of every lost episode compiled a model (alex, 3 episodes: 20 → 34 → 45 s of compiling, RSS 1482 → 1923 MB).
  A search size that is not one of the metadata's ``instance_sizes`` runs on the search model compiled with dynamic
  spatial axes instead (the kernels' shapes stay static, which is all the CPU plugin needs), once per batch chunk:
  the same outputs bit for bit, at the static model's speed (alex FP32, 1 crop, dynamic / static, medians of 7
  interleaved on a loaded 2-core VM: 309 / 368 ms at 295, 524 / 560 at 391, 829 / 845 at 519, 3170 / 2971 at 831).
* **Precision hint f32 by default; bf16 only behind a fidelity record.** On AMX / AVX512-BF16 CPUs OpenVINO's
  default runs float layers in bf16, which broke mobilev2 (cls cosine 0.83 vs f32 on bag.avi crops, score-map argmax
  agreement 25 %) while alex stayed ≥ 0.9998. Whether bf16 holds depends on the weights *and* on the crops: on
  synthetic image-like probes the same mobilev2 read 0.9996, so no check without real crops can clear it. The check
  is therefore made on calibration crops, with the tracker's worst-template measure, by the calibration tools
  (``calibration/quantize.py --target openvino`` records it in the INT8 directory's metadata, ``quantize.py
  --check-bf16`` for any directory in the user cache folder, keyed by the model files' sha256);
  ``precision="auto"`` (the default) takes bf16 where a record passed and f32 otherwise — so f32 for any model
  nobody has measured — ``precision="bf16"`` is refused without a passing record, ``precision="f32"`` never uses
  bf16. Where it passes it pays: alex FP32 search 0.15× of ONNX Runtime FP32's time with bf16 (vs 1.0× in f32).
* **bf16 where it holds, f32 where it does not.** The record says whether the template branch runs bf16 too (it
  runs once per target, but every frame in distractor mode: alex, 4 crops, 20.6 ms in f32 vs 4.7 in bf16) and how
  many of the search branch's first convolutions — and everything they depend on — stay f32 (:func:`keep_f32`). On
  the mobilev2 stand-in bf16 in the template alone took the worst-template cls cosine to 0.95, and its FP32 search
  read 0.975 in bf16 and 0.991 with its first convolution f32, at 0.33× the f32 search time (15 vs 46 ms). The
  check tries the whole pair in bf16 first, then the template f32 with the smallest N that passes.
* **Compiled-model cache** (``CACHE_DIR``) in a user folder (``$SIAMTRT_CACHE/openvino``, else
  ``$XDG_CACHE_HOME/siamtrt/openvino``, else ``~/.cache/siamtrt/openvino``), never inside the model directory (it
  may be read-only); ``cache_dir=`` overrides it, ``cache_dir=False`` turns it off.
* **Threads** = physical cores (``INFERENCE_NUM_THREADS``), ``PERFORMANCE_HINT`` LATENCY (one stream: one frame at a
  time is what a tracker does).
* **Buffers.** Search outputs are the infer request's own tensors (no copy; valid until the next call with the same
  signature, as the contract allows); template outputs are copied (the tracker keeps them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from ..errors import BackendError, ModelDirError
from ..metadata import SEARCH_INPUT, SEARCH_OUTPUTS
from ..modeldir import BRANCHES
from .backend import OR_AUTO, Backend, InputMetadata, resolve_source
from .cpu import cpu_threads

LOG = logging.getLogger(__name__)

#: float-layer precision hints: "auto" (default: f32 unless a passing bf16 record exists), "f32", "bf16"
PRECISIONS = ("f32", "bf16", "auto")
#: file in the cache folder holding bf16 fidelity records (one entry per pair of model files)
BF16_RECORD = "bf16-checks.json"
#: The compiled-model cache is kept under this size: OpenVINO never removes a blob, one r50 FP32 signature is 200 MB,
#: and a day of this project's benchmarks left 2.0 GB in 117 blobs. Least recently used blobs go first (recompiled
#: when next needed), checked when a backend starts.
CACHE_MAX_BYTES = 2 << 30
BF16_CHECK_FIX = ("measure it on your crops: siamtrt quantize --model DIR --calib calib.npz "
                  "--check-bf16 (or quantize with --target openvino)")
#: Batch sizes compiled: a batch of N runs as chunks of these sizes (N = 11: 8 + 3). The correlation folds the
#: batch into its groups, so OpenVINO needs a static batch per compiled model; compiling every N a tracker meets
#: (distractor mode runs the template branch on 4-12 crops a frame with 4 targets, long-term mode splits the targets
#: between two search sizes) kept 17 signatures in rotation and recompiled on the frame path (145 compiles in 600
#: frames, RSS swinging by 100 MB); with chunks a branch needs at most len(BATCH_CHUNKS) signatures per input size.
#: 1-4 run whole: 3 targets as 2 + 1 chunks took 1.1x the time of one batch of 3 (alex INT8; two models in turn).
BATCH_CHUNKS = (8, 4, 3, 2, 1)
#: Input pixels (H·W summed over a request's batch) above which a request is split further: alex's 4-target local
#: batch (4 × 287²). Larger requests ran slower than the same crops one at a time (OpenVINO 2026.4, 2-core AMX VM,
#: alex stand-in, 4 crops, bf16): 831 — 4 × 1 request 343 ms vs one of 4 494 ms and two of 2 493 ms (f32: 1873 vs
#: 2061 ms); 511 — 121 vs 146 ms; at 287 every split was within 5 % (8 crops: 59–62 ms). So the long-term 831 search
#: of several lost targets runs one target per request.
MAX_REQUEST_PIXELS = 4 * 287 * 287
#: compiled (branch, input shapes) signatures kept per backend: the template branch's chunks plus every chunk of up
#: to three search sizes (two local, the long-term one) and of the dynamic-size search model (the long-term growth
#: sizes between them) fit, so nothing is recompiled while a tracker runs; beyond it the least recently used is
#: dropped
MAX_SIGNATURES = 5 * len(BATCH_CHUNKS)
_OV_TYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "i8": np.int8, "u8": np.uint8,
             "i32": np.int32, "i64": np.int64}


def _import_ov():
    try:
        import openvino
    except ImportError as e:
        raise BackendError("openvino is not installed", evidence=repr(e)[:300],
                           fix=f"pip install openvino (x86-64 or aarch64 wheels), {OR_AUTO}") \
            from None
    return openvino


def default_cache_dir() -> Path:
    """The user cache folder for compiled models and bf16 records (see the module docstring)."""
    if os.environ.get("SIAMTRT_CACHE"):
        return Path(os.environ["SIAMTRT_CACHE"]) / "openvino"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "siamtrt" / "openvino"


def batch_chunks(n: int, pixels: int = 0) -> List[int]:
    """The chunk sizes a batch of ``n`` inputs of ``pixels`` (H·W) each runs as: the largest :data:`BATCH_CHUNKS`
    entry that fits ``n`` and :data:`MAX_REQUEST_PIXELS`, repeatedly."""
    cap = max(1, MAX_REQUEST_PIXELS // pixels) if pixels > 0 else BATCH_CHUNKS[0]
    sizes = []
    while n > 0:
        size = next(c for c in BATCH_CHUNKS if c <= min(n, cap))
        sizes.append(size)
        n -= size
    return sizes


def prune_cache(cache_dir: Path, max_bytes: Optional[int] = None) -> List[Path]:
    """Delete the least recently used ``*.blob`` files of ``cache_dir`` until its blobs fit ``max_bytes`` (default
    :data:`CACHE_MAX_BYTES`); returns those deleted. Last use = the later of access and modification time
    (day-level under relatime mounts); the bf16 records and anything else in the folder are left alone."""
    blobs = []
    for path in Path(cache_dir).glob("*.blob"):
        try:
            st = path.stat()
        except OSError:   # removed by another process meanwhile
            continue
        blobs.append((max(st.st_atime, st.st_mtime), st.st_size, path))
    total = sum(size for _, size, _ in blobs)
    max_bytes = CACHE_MAX_BYTES if max_bytes is None else max_bytes
    removed = []
    for _, size, path in sorted(blobs):
        if total <= max_bytes:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        removed.append(path)
    return removed


_CORE: Any = None
_CORE_LOCK = threading.Lock()


def shared_core() -> Any:
    """The process's one ``openvino.Core``, made on first use.

    Every backend, probe and fidelity check shares it: OpenVINO builds have crashed when a process creates and
    queries a second Core (openvinotoolkit/openvino#35338; ultralytics/ultralytics#25864 after ~20 model loads), and
    a test run or a server makes hundreds of backends. Per-backend settings (threads, precision hint, cache folder)
    go into each ``compile_model`` call, never onto the shared Core.
    """
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            _CORE = _import_ov().Core()
        return _CORE


def cpu_has_bf16(core: Any = None) -> bool:
    """Whether the CPU plugin computes bf16 natively here (AVX512-BF16 / AMX); elsewhere the hint means nothing."""
    core = shared_core() if core is None else core
    try:
        return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - an old plugin without the property: assume no bf16
        return False


#: Operation types :func:`keep_f32` counts as convolutions.
CONVOLUTIONS = ("Convolution", "GroupConvolution")


def convolutions(model: Any) -> List[Any]:
    """The convolutions of an ``ov.Model`` in topological order (what :func:`keep_f32`'s count counts)."""
    return [op for op in model.get_ordered_ops() if op.get_type_name() in CONVOLUTIONS]


def keep_f32(core: Any, model: Any, count: int) -> Any:
    """A copy of ``model`` whose first ``count`` convolutions (:func:`convolutions` order) and every operation they
    depend on keep f32 under the bf16 hint (``count`` 0: ``model`` itself).

    The CPU plugin leaves a node in its original precision when its runtime info holds the
    ``DisablePrecisionConversion`` attribute (disabled towards f16, which it reads as "keep f32"). The Python API
    cannot build that attribute (a string in its place fails compilation with "Bad as"), so it goes in the way the
    IR carries it: the model is serialised, the attribute added to those layers, and the IR read back.

    Raises:
        BackendError: ``count`` beyond the model's convolutions, or layer names that do not identify the nodes.
    """
    if count <= 0:
        return model
    convs = convolutions(model)
    if count > len(convs):
        raise BackendError(f"cannot keep the first {count} convolutions f32: the model has {len(convs)}",
                           fix="re-measure bf16 for these files: " + BF16_CHECK_FIX)
    keep, stack = set(), list(convs[:count])
    while stack:
        op = stack.pop()
        name = op.get_friendly_name()
        if name in keep or op.get_type_name() in ("Constant", "Parameter"):
            continue
        keep.add(name)
        stack.extend(i.get_source_output().get_node() for i in op.inputs())
    import tempfile
    import xml.etree.ElementTree as ET

    ov = _import_ov()
    with tempfile.TemporaryDirectory(prefix="siamtrt-ov-") as tmp:
        xml = Path(tmp) / "model.xml"
        ov.save_model(model, str(xml), compress_to_fp16=False)
        tree = ET.parse(xml)
        marked = 0
        for layer in tree.getroot().iter("layer"):
            if layer.get("name") in keep:
                rt = layer.find("rt_info")
                rt = ET.SubElement(layer, "rt_info") if rt is None else rt
                ET.SubElement(rt, "attribute", name="DisablePrecisionConversion", version="0", value="dynamic:f16")
                marked += 1
        weights = np.fromfile(xml.with_suffix(".bin"), np.uint8)
    if marked != len(keep):
        raise BackendError(f"cannot keep the first {count} convolutions f32: {len(keep)} operations to mark, "
                           f"{marked} IR layers of those names", evidence="operation names are not unique",
                           fix="use precision 'f32'")
    return core.read_model(ET.tostring(tree.getroot(), encoding="unicode"), ov.Tensor(weights))


def model_key(template_sha256: str, search_sha256: str) -> str:
    """The key of a pair of model files in the bf16 record file."""
    return hashlib.sha256(f"{template_sha256}|{search_sha256}".encode()).hexdigest()[:32]


def load_bf16_record(cache_dir: Optional[Path], key: str) -> Optional[Dict[str, Any]]:
    """The bf16 fidelity record of a model pair in ``cache_dir`` (None when absent or unreadable)."""
    if cache_dir is None:
        return None
    try:
        return json.loads((Path(cache_dir) / BF16_RECORD).read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def bf16_plan(rec: Dict[str, Any]) -> Tuple[bool, int]:
    """(template_bf16, f32_convs) of a bf16 record or one of its steps: whether the template branch runs bf16 too,
    and how many of the search's first convolutions stay f32. A record of the older check (no steps) measured the
    whole pair in bf16."""
    return bool(rec.get("template_bf16", "steps" not in rec)), int(rec.get("f32_convs", 0))


def bf16_plan_text(rec: Dict[str, Any]) -> str:
    """The plan of :func:`bf16_plan` as every command prints it."""
    template_bf16, f32_convs = bf16_plan(rec)
    return f"template {'bf16' if template_bf16 else 'f32'}, search convolutions kept f32: {f32_convs}"


def stale_bf16_record(rec: Dict[str, Any]) -> Optional[str]:
    """Why a bf16 record no longer speaks for this machine's OpenVINO (another version measured it: other kernels,
    other rounding), else None. A record that names no version is taken as it is, and so is any record where
    OpenVINO is not installed (nothing here would use it)."""
    measured = rec.get("openvino")
    try:
        running = _import_ov().__version__
    except BackendError:
        return None
    return f"measured with OpenVINO {measured}, running {running}" if measured and measured != running else None


def stored_bf16_record(meta: Dict[str, Any], cache_dir: Optional[Path], key: Callable[[], str]
                       ) -> Tuple[Optional[Dict[str, Any]], str]:
    """(the bf16 record of a model pair, where it was found): the metadata's (``quantize --target openvino`` writes it
    into the very files it describes), else the cache folder's under ``key()`` (``quantize.py --check-bf16``; the key
    is computed only then: it hashes both files), else (None, ""). A record of the running OpenVINO goes before a
    stale one (:func:`stale_bf16_record`), so a re-measured cache record overrides the metadata's old one."""
    found = []
    rec = (meta.get("quantization") or {}).get("bf16")
    if rec:
        found.append((rec, "model metadata"))
    if cache_dir is not None and (not found or stale_bf16_record(found[0][0])):
        rec = load_bf16_record(cache_dir, key())
        if rec:
            found.append((rec, str(Path(cache_dir) / BF16_RECORD)))
    current = [f for f in found if not stale_bf16_record(f[0])]
    return (current or found or [(None, "")])[0]


def save_bf16_record(cache_dir: Path, key: str, record: Dict[str, Any]) -> Path:
    """Add (or replace) the record of ``key`` in ``cache_dir``'s record file, atomically; returns the file."""
    store = Path(cache_dir) / BF16_RECORD
    store.parent.mkdir(parents=True, exist_ok=True)
    try:
        records = json.loads(store.read_text()) if store.is_file() else {}
    except (OSError, ValueError):
        records = {}
    records[key] = dict(record)
    tmp = store.with_name(f"{store.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(records, indent=1))
    tmp.replace(store)
    return store


class OpenVinoBackend(Backend):
    """OpenVINO backend over ``template.onnx`` / ``search.onnx`` (CPU plugin).

    Args:
        template (Source), search (Source), meta (dict): see :class:`Backend`.
        threads (int): ``INFERENCE_NUM_THREADS``. Defaults to the number of physical cores.
        precision (str): float-layer precision hint: "auto" (bf16 where a passing bf16 fidelity record exists for
            these files, else f32), "f32", or "bf16" (only with a passing record, else BackendError). Defaults to
            "auto" — which is f32 for every model nobody has measured.
        cache_dir (str | Path | bool): compiled-model cache folder (also where bf16 records are looked up);
            False turns caching off; None or True: :func:`default_cache_dir`. Defaults to None.
        bf16_gate (bool): refuse bf16 without a passing record. Defaults to True; only the fidelity measurement
            itself (:func:`siamtrt.calibration.sensitivity.bf16_fidelity`) turns it off.
        f32_convs (int), template_bf16 (bool): with ``bf16_gate`` off (the measurement's candidate), the search
            convolutions :func:`keep_f32` keeps f32 and whether the template branch runs bf16 too (default f32);
            otherwise the passing record's ``f32_convs`` and ``template_bf16`` decide.
    """

    name = "openvino"
    short = "ov"
    option_names = ("threads", "precision", "cache_dir", "bf16_gate", "f32_convs", "template_bf16")

    def __init__(self, template, search, meta: Dict[str, Any], **options: Any):
        super().__init__(template, search, meta, **options)
        self.threads: int = 0
        self.precision: str = "f32"        # the search branch's hint after activation (the template's is f32)
        self.f32_convs: int = 0            # under bf16: search convolutions kept f32 (keep_f32)
        self.template_bf16: bool = False   # under bf16: the template branch runs bf16 too
        self.bf16_check: Optional[Dict[str, Any]] = None   # the record behind a bf16 / auto decision
        self.cache_dir: Optional[Path] = None
        self.compile_seconds: float = 0.0  # total time spent compiling (cache hits make it small)
        self.compiles: int = 0             # models compiled (or loaded from the cache) by this backend
        self._core = None
        self._models: Dict[str, Any] = {}  # branch → ov.Model as read (dynamic shapes)
        self._compiled: Dict[Tuple, Any] = {}   # (branch, input shapes) → (compiled model, infer request), LRU order
        self._out_names: Dict[str, List[str]] = {}
        self._sha: Dict[str, str] = {}     # branch → sha256 of its model (computed when the bf16 record needs it)
        self._paths: Dict[str, Path] = {}
        #: search sizes compiled static (the metadata's); any other runs on the dynamic-size model
        self._static_sizes = {int(v) for v in meta.get("instance_sizes") or [meta.get("instance_size") or 0]}

    @classmethod
    def unavailable_reason(cls, model_dir: Optional[Path] = None) -> Optional[str]:
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "openvino is not installed"
        return None

    # ----------------------------------------------------------------------------------------------- activation
    def _config(self, precision: str) -> Dict[str, Any]:
        config = {"INFERENCE_NUM_THREADS": self.threads, "INFERENCE_PRECISION_HINT": precision,
                  "PERFORMANCE_HINT": "LATENCY"}
        if self.cache_dir is not None:
            config["CACHE_DIR"] = str(self.cache_dir)
        return config

    def _activate(self) -> None:
        ov = _import_ov()
        if self.meta.get("xcorr") == "plugin":
            raise BackendError("this model directory uses the siamtrt::DepthwiseXCorr TensorRT plugin node, "
                               "which OpenVINO cannot run", evidence="metadata xcorr = 'plugin'",
                               fix="export a plugin-free directory with siamtrt export ... --xcorr conv")
        opts = self.options
        want = str(opts.get("precision") or "auto")
        if want not in PRECISIONS:
            raise BackendError(f"unknown OpenVINO precision hint {want!r}", evidence=f"valid: {', '.join(PRECISIONS)}",
                               fix="use precision='auto' (default), 'f32' or 'bf16'")
        self.threads = cpu_threads(opts.get("threads"))
        cache = opts.get("cache_dir")
        if cache is not None and not isinstance(cache, (str, os.PathLike, bool)):
            raise BackendError(f"OpenVINO cache_dir must be a folder path, True / None (the default) or False (no "
                               f"cache), got {cache!r}",
                               fix=f"pass cache_dir='/path/to/cache', cache_dir=False, or leave it out "
                                   f"({default_cache_dir()})")
        self.cache_dir = None if cache is False else default_cache_dir() if cache in (None, True, "") else Path(cache)
        self._core = shared_core()
        if self.cache_dir is not None:
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:  # a read-only home: run uncached rather than fail
                LOG.warning("OpenVINO: cache folder %s is not writable (%s); compiling without a cache",
                            self.cache_dir, e)
                self.cache_dir = None
        if self.cache_dir is not None:
            removed = prune_cache(self.cache_dir)
            if removed:
                LOG.info("OpenVINO: removed %d least recently used compiled models from %s (kept under %d MB)",
                         len(removed), self.cache_dir, CACHE_MAX_BYTES >> 20)
        for branch in BRANCHES:
            self._models[branch] = self._read(branch)
            self._out_names[branch] = [o.get_any_name() for o in self._models[branch].outputs]
        missing = [n for n in SEARCH_OUTPUTS if n not in self._out_names["search"]]
        missing += [n for n in self.template_output_names if n not in self._out_names["template"]]
        if missing:
            raise ModelDirError(f"outputs {missing} are missing from the ONNX models",
                                evidence=f"template outputs {self._out_names['template']}, "
                                         f"search outputs {self._out_names['search']}",
                                fix="re-export the model directory with siamtrt export")
        self.precision = self._choose_precision(want)
        if self.precision == "bf16" and self.f32_convs:
            self._models["search"] = keep_f32(self._core, self._models["search"], self.f32_convs)
        LOG.info("OpenVINO: %s threads=%d precision=%s%s cache=%s", ov.__version__, self.threads, self.precision,
                 f" ({bf16_plan_text(dict(template_bf16=self.template_bf16, f32_convs=self.f32_convs))})"
                 if self.precision == "bf16" else "",
                 self.cache_dir)

    def _read(self, branch: str):
        src = resolve_source(self.sources[branch])
        if isinstance(src, Path) and not src.is_file():
            raise ModelDirError(f"{self.instance_name(branch)}: {src} does not exist",
                                fix="export the model with siamtrt export")
        try:
            if isinstance(src, bytes):
                model = self._core.read_model(src, b"")
                self._sha[branch] = hashlib.sha256(src).hexdigest()
            else:
                model = self._core.read_model(str(src))
                self._paths[branch] = src
        except Exception as e:  # openvino raises RuntimeError with the frontend's message
            raise ModelDirError(f"{self.instance_name(branch)}: OpenVINO cannot read "
                                f"{src if isinstance(src, Path) else 'the model bytes'}",
                                evidence=str(e).strip().splitlines()[-1][:400],
                                fix="re-export the model directory with siamtrt export") from None
        return model

    def _deactivate(self) -> None:
        self._compiled.clear()
        self._models.clear()
        self._core = None

    def _input_metadata(self, branch: str) -> InputMetadata:
        out = {}
        for i in self._models[branch].inputs:
            et = i.get_element_type().get_type_name()
            dtype = _OV_TYPES.get(et)
            if dtype is None:
                raise ModelDirError(f"{self.instance_name(branch)}: input '{i.get_any_name()}' has unsupported type "
                                    f"{et}", fix="re-export with float32 inputs")
            shape = tuple(d.get_length() if d.is_static else None for d in i.get_partial_shape())
            out[i.get_any_name()] = (np.dtype(dtype), shape)
        return out

    # ------------------------------------------------------------------------------------------------ compiling
    def _compile(self, branch: str, shapes: Dict[str, Tuple[int, ...]]):
        """(compiled model, infer request) of ``branch`` reshaped to ``shapes`` (static, or −1 for a dynamic axis),
        kept per signature (at most :data:`MAX_SIGNATURES`, the least recently used dropped first, so memory stays
        bounded however often the number of targets changes)."""
        key = (branch, tuple(sorted(shapes.items())))
        hit = self._compiled.pop(key, None)
        if hit is None:
            model = self._models[branch].clone()
            hint = self.precision if branch == "search" or self.template_bf16 else "f32"
            t0 = time.perf_counter()
            try:
                model.reshape({name: list(shape) for name, shape in shapes.items()})
                compiled = self._core.compile_model(model, "CPU", self._config(hint))
            except Exception as e:  # noqa: BLE001 - OpenVINO reports shape and plugin problems as RuntimeError
                marked = branch == "search" and self.precision == "bf16" and self.f32_convs
                raise BackendError(f"{self.instance_name(branch)}: OpenVINO cannot compile the model for inputs "
                                   f"{dict(shapes)}" + (f" with {self.f32_convs} leading convolutions kept f32 "
                                                        "under bf16" if marked else ""),
                                   evidence=str(e).strip().splitlines()[-1][:400],
                                   fix="use precision 'f32', or re-measure bf16: " + BF16_CHECK_FIX if marked else
                                   "feed the sizes in the model metadata, or use --backend onnxruntime") from None
            self.compile_seconds += time.perf_counter() - t0
            self.compiles += 1
            LOG.debug("OpenVINO: compiled %s for %s (%s) in %.2fs", branch, shapes, hint,
                      time.perf_counter() - t0)
            hit = (compiled, compiled.create_infer_request())
            while len(self._compiled) >= MAX_SIGNATURES:
                self._compiled.pop(next(iter(self._compiled)))
        self._compiled[key] = hit   # (re)inserted last: the most recently used
        return hit

    def _infer(self, branch: str, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """One request per chunk of the batch (:func:`batch_chunks`); outputs concatenated when there are several."""
        sizes = batch_chunks(len(next(iter(feed.values()))), max(math.prod(v.shape[2:]) for v in feed.values()))
        if len(sizes) <= 1:
            out = self._infer_static(branch, feed)
            if branch == "template":   # the tracker keeps them: copies, not the request's tensors
                out = {k: np.array(v) for k, v in out.items()}
            return out
        parts, start = [], 0
        for size in sizes:   # copies: two chunks of one size share a request and its output tensors
            chunk = self._infer_static(branch, {k: v[start:start + size] for k, v in feed.items()})
            parts.append({k: np.array(v) for k, v in chunk.items()})
            start += size
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _infer_static(self, branch: str, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        shapes = {k: v.shape for k, v in feed.items()}
        x = shapes.get(SEARCH_INPUT) if branch == "search" else None
        if x is not None and not (x[2] == x[3] and x[2] in self._static_sizes):
            shapes[SEARCH_INPUT] = x[:2] + (-1, -1)   # a long-term growth size: the one dynamic-size model
        _, request = self._compile(branch, shapes)
        res = request.infer(feed, share_inputs=True, share_outputs=True)
        return {name: res[i] for i, name in enumerate(self._out_names[branch])}

    # ---------------------------------------------------------------------------------------------- precision
    def _choose_precision(self, want: str) -> str:
        """f32, or bf16 where a fidelity record passed (see the module docstring); sets the bf16 plan
        (:attr:`template_bf16`, :attr:`f32_convs`) with it."""
        self.f32_convs, self.template_bf16 = 0, False
        if want == "f32":
            return "f32"
        if not cpu_has_bf16(self._core):
            if want == "bf16":
                raise BackendError("precision 'bf16' asked for, but this CPU has no bf16 units (AVX512-BF16 / AMX)",
                                   evidence=f"OpenVINO CPU capabilities: "
                                            f"{self._core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')}",
                                   fix="use precision 'auto' (default) or 'f32'")
            self.bf16_check = {"passed": False, "reason": "no bf16 units on this CPU"}
            return "f32"
        if want == "bf16" and not self.options.get("bf16_gate", True):
            self.f32_convs = int(self.options.get("f32_convs") or 0)
            self.template_bf16 = bool(self.options.get("template_bf16", False))
            return "bf16"   # the fidelity measurement itself
        rec = self._bf16_record()
        self.bf16_check = rec
        if rec is None:
            if want == "bf16":
                raise BackendError("precision 'bf16' needs a bf16 fidelity record for this model, and there is none",
                                   evidence="bf16 broke mobilev2's scores on real crops (cls cosine 0.83) while "
                                            "synthetic probes read 0.9996: only a check on real crops can clear it",
                                   fix=BF16_CHECK_FIX + "; or use precision 'auto' (the default) or 'f32'")
            LOG.info("OpenVINO: precision auto → f32 (no bf16 fidelity record for this model)")
            return "f32"
        stale = stale_bf16_record(rec)
        if stale and want == "bf16":
            raise BackendError("precision 'bf16' needs a bf16 fidelity record of this OpenVINO, and this model's is "
                               "another version's", evidence=f"{rec.get('where')}: {stale}",
                               fix=BF16_CHECK_FIX + "; or use precision 'auto' (the default) or 'f32'")
        if stale:
            LOG.warning("OpenVINO: precision auto → f32: the bf16 fidelity record (%s) was %s; re-measure: %s",
                        rec.get("where"), stale, BF16_CHECK_FIX)
            return "f32"
        if rec.get("passed"):
            self.template_bf16, self.f32_convs = bf16_plan(rec)
            LOG.info("OpenVINO: bf16 keeps fidelity (%s: worst template cls %.4f, loc %.4f vs f32 on %s crops, %d "
                     "search convolutions kept f32)", rec.get("where"), rec.get("cls", float("nan")),
                     rec.get("loc", float("nan")), rec.get("crops"), self.f32_convs)
            return "bf16"
        if want == "bf16":
            raise BackendError("precision 'bf16' breaks this model's outputs",
                               evidence=f"bf16 fidelity record ({rec.get('where')}): worst template cls cosine "
                                        f"{rec.get('cls', float('nan')):.4f}, loc {rec.get('loc', float('nan')):.4f} "
                                        f"vs f32 on {rec.get('crops')} crops (needs ≥ {rec.get('min_cosine')} both)",
                               fix="use precision 'auto' (the default: f32 here, since the record fails) or 'f32'")
        LOG.info("OpenVINO: precision auto → f32 (bf16 fails its fidelity record: cls %.4f, loc %.4f)",
                 rec.get("cls", float("nan")), rec.get("loc", float("nan")))
        return "f32"

    def _bf16_record(self) -> Optional[Dict[str, Any]]:
        """The bf16 record of these model files (:func:`stored_bf16_record`), with where it was found."""
        rec, where = stored_bf16_record(self.meta, self.cache_dir,
                                        lambda: model_key(self.sha256("template"), self.sha256("search")))
        return dict(rec, where=where) if rec else None

    def sha256(self, branch: str) -> str:
        """sha256 of one branch's model (file or bytes), computed once."""
        if not self._sha.get(branch):
            from ..metadata import file_sha256

            self._sha[branch] = file_sha256(self._paths[branch])
        return self._sha[branch]


__all__ = ["BATCH_CHUNKS", "BF16_RECORD", "CACHE_MAX_BYTES", "CONVOLUTIONS", "MAX_SIGNATURES", "OpenVinoBackend",
           "PRECISIONS", "batch_chunks", "bf16_plan", "bf16_plan_text", "convolutions", "cpu_has_bf16",
           "default_cache_dir", "keep_f32",
           "load_bf16_record", "model_key", "prune_cache", "save_bf16_record", "shared_core", "stale_bf16_record",
           "stored_bf16_record"]
