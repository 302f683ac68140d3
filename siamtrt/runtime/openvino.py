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
* **Precision hint f32 by default.** On AMX / AVX512-BF16 CPUs OpenVINO's default runs float layers in bf16, which
  broke mobilev2 (cls cosine 0.77 vs f32) while alex stayed ≥ 0.999. ``precision="bf16"`` is accepted only when the
  model passes a fidelity check against f32 on this machine (:func:`bf16_fidelity`), ``precision="auto"`` takes
  bf16 where it passes and f32 otherwise. The check's result is recorded in the cache folder, keyed by the model
  files' sha256, the OpenVINO version and the CPU, so it runs once per model and machine.
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
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import BackendError, ModelDirError
from ..metadata import SEARCH_INPUT, SEARCH_OUTPUTS, TEMPLATE_INPUT
from .backend import BRANCHES, Backend, InputMetadata, resolve_source
from .cpu import physical_cores

LOG = logging.getLogger(__name__)

#: precision hints a user may ask for; "f32" is the default (see the module docstring)
PRECISIONS = ("f32", "bf16", "auto")
#: fidelity bf16 must keep against f32 (worst probe's min of cls / loc cosine) — the project's INT8 fidelity target
BF16_MIN_COSINE = 0.98
#: probe crops of the bf16 check (synthetic: textured scenes with the template's content shifted inside the search)
BF16_PROBES = 4
#: file in the cache folder recording bf16 fidelity checks (one entry per model, OpenVINO version and CPU)
BF16_RECORD = "bf16-checks.json"
_OV_TYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "i8": np.int8, "u8": np.uint8,
             "i32": np.int32, "i64": np.int64}


def _import_ov():
    try:
        import openvino
    except ImportError as e:
        raise BackendError("openvino is not installed", evidence=repr(e)[:300],
                           fix="pip install openvino (x86-64 or aarch64 wheels), or use --backend onnxruntime") from None
    return openvino


def default_cache_dir() -> Path:
    """The user cache folder for compiled models and bf16 records (see the module docstring)."""
    if os.environ.get("SIAMTRT_CACHE"):
        return Path(os.environ["SIAMTRT_CACHE"]) / "openvino"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "siamtrt" / "openvino"


def cpu_has_bf16(core) -> bool:
    """Whether the CPU plugin computes bf16 natively here (AVX512-BF16 / AMX); elsewhere the hint means nothing."""
    try:
        return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - an old plugin without the property: assume no bf16
        return False


# ------------------------------------------------------------------------------------------------ probe crops
def probe_crops(exemplar: int, instance: int, n: int = BF16_PROBES, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Deterministic synthetic (template [n,3,E,E], search [n,3,S,S]) crops, BGR 0..255 float32.

    Each scene is smooth multi-scale texture with a few hard-edged blobs (image-like statistics: strong low
    frequencies, edges, the 0..255 range a crop has); the template is the centre of the scene and the search crop
    sees the same scene shifted by a few pixels, so the correlation has a real peak, as on video.
    """
    import cv2

    rng = np.random.default_rng(seed)
    side = instance + 64
    temps, searches = [], []
    for _ in range(n):
        img = np.zeros((side, side, 3), np.float32)
        for cells, amp in ((4, 90.0), (16, 45.0), (64, 20.0)):
            img += cv2.resize(rng.normal(0, amp, (cells, cells, 3)).astype(np.float32), (side, side),
                              interpolation=cv2.INTER_CUBIC)
        for _ in range(6):
            c = tuple(int(v) for v in rng.integers(0, side, 2))
            cv2.circle(img, c, int(rng.integers(6, 30)), tuple(float(v) for v in rng.uniform(-120, 120, 3)), -1)
        img = np.clip(img + 128.0, 0, 255)
        dy, dx = (int(v) for v in rng.integers(-12, 13, 2))
        c0 = (side - instance) // 2
        search = img[c0 + dy:c0 + dy + instance, c0 + dx:c0 + dx + instance]
        e0 = (side - exemplar) // 2
        temps.append(img[e0:e0 + exemplar, e0:e0 + exemplar].transpose(2, 0, 1))
        searches.append(search.transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(temps)), np.ascontiguousarray(np.stack(searches))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / den) if den > 0 else float(np.array_equal(a, b))


class OpenVinoBackend(Backend):
    """OpenVINO backend over ``template.onnx`` / ``search.onnx`` (CPU plugin).

    Args:
        template (Source), search (Source), meta (dict): see :class:`Backend`.
        threads (int): ``INFERENCE_NUM_THREADS``. Defaults to the number of physical cores.
        precision (str): float-layer precision hint: "f32", "bf16" (only if the fidelity check passes, else
            BackendError) or "auto" (bf16 where it passes, else f32). Defaults to "f32".
        cache_dir (str | Path | bool): compiled-model cache folder; False turns caching (and the bf16 record) off.
            Defaults to :func:`default_cache_dir`.
    """

    name = "openvino"
    short = "ov"
    file_names = ("template.onnx", "search.onnx")
    option_names = ("threads", "precision", "cache_dir")

    def __init__(self, template, search, meta: Dict[str, Any], **options: Any):
        super().__init__(template, search, meta, **options)
        self.threads: int = 0
        self.precision: str = "f32"        # the hint in use after activation
        self.bf16_check: Optional[Dict[str, Any]] = None   # the fidelity record behind a bf16 / auto decision
        self.cache_dir: Optional[Path] = None
        self.compile_seconds: float = 0.0  # total time spent compiling (cache hits make it small)
        self._core = None
        self._models: Dict[str, Any] = {}  # branch → ov.Model as read (dynamic shapes)
        self._compiled: Dict[Tuple, Any] = {}   # (branch, signature) → (compiled model, infer request)
        self._out_names: Dict[str, List[str]] = {}
        self._sha: Dict[str, str] = {}     # branch → sha256 of its model (computed when the bf16 record needs it)
        self._paths: Dict[str, Path] = {}

    @classmethod
    def unavailable_reason(cls, model_dir: Optional[Path] = None) -> Optional[str]:
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "openvino is not installed"
        return None

    # ----------------------------------------------------------------------------------------------- activation
    def _config(self, precision: str) -> Dict[str, Any]:
        return {"INFERENCE_NUM_THREADS": self.threads, "INFERENCE_PRECISION_HINT": precision,
                "PERFORMANCE_HINT": "LATENCY"}

    def _activate(self) -> None:
        ov = _import_ov()
        if self.meta.get("xcorr") == "plugin":
            raise BackendError("this model directory uses the siamtrt::DepthwiseXCorr TensorRT plugin node, "
                               "which OpenVINO cannot run", evidence="metadata xcorr = 'plugin'",
                               fix="export a plugin-free directory with python export/to_onnx.py ... --xcorr conv")
        opts = self.options
        want = str(opts.get("precision") or "f32")
        if want not in PRECISIONS:
            raise BackendError(f"unknown OpenVINO precision hint {want!r}", evidence=f"valid: {', '.join(PRECISIONS)}",
                               fix="use precision='f32' (default), 'bf16' or 'auto'")
        self.threads = int(opts.get("threads") or physical_cores())
        cache = opts.get("cache_dir", None)
        self.cache_dir = None if cache is False else Path(cache) if cache else default_cache_dir()
        self._core = ov.Core()
        if self.cache_dir is not None:
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                self._core.set_property({"CACHE_DIR": str(self.cache_dir)})
            except OSError as e:  # a read-only home: run uncached rather than fail
                LOG.warning("OpenVINO: cache folder %s is not writable (%s); compiling without a cache",
                            self.cache_dir, e)
                self.cache_dir = None
        for branch in BRANCHES:
            self._models[branch] = self._read(branch)
            self._out_names[branch] = [o.get_any_name() for o in self._models[branch].outputs]
        missing = [n for n in SEARCH_OUTPUTS if n not in self._out_names["search"]]
        missing += [n for n in self.template_output_names if n not in self._out_names["template"]]
        if missing:
            raise ModelDirError(f"outputs {missing} are missing from the ONNX models",
                                evidence=f"template outputs {self._out_names['template']}, "
                                         f"search outputs {self._out_names['search']}",
                                fix="re-export the model directory with python export/to_onnx.py")
        self.precision = self._choose_precision(want)
        LOG.info("OpenVINO: %s threads=%d precision=%s cache=%s", ov.__version__, self.threads, self.precision,
                 self.cache_dir)

    def _read(self, branch: str):
        src = resolve_source(self.sources[branch])
        if isinstance(src, Path) and not src.is_file():
            raise ModelDirError(f"{self.instance_name(branch)}: {src} does not exist",
                                fix="export the model with python export/to_onnx.py")
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
                                fix="re-export the model directory with python export/to_onnx.py") from None
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
    def _compile(self, branch: str, shapes: Dict[str, Tuple[int, ...]], precision: Optional[str] = None):
        """(compiled model, infer request) of ``branch`` reshaped to static ``shapes`` (cached per signature)."""
        precision = precision or self.precision
        key = (branch, precision, tuple(sorted(shapes.items())))
        hit = self._compiled.get(key)
        if hit is not None:
            return hit
        model = self._models[branch].clone()
        t0 = time.perf_counter()
        try:
            model.reshape({name: list(shape) for name, shape in shapes.items()})
            compiled = self._core.compile_model(model, "CPU", self._config(precision))
        except Exception as e:  # noqa: BLE001 - OpenVINO reports shape and plugin problems as RuntimeError
            raise BackendError(f"{self.instance_name(branch)}: OpenVINO cannot compile the model for inputs "
                               f"{dict(shapes)}", evidence=str(e).strip().splitlines()[-1][:400],
                               fix="feed the sizes in the model metadata, or use --backend onnxruntime") from None
        self.compile_seconds += time.perf_counter() - t0
        LOG.debug("OpenVINO: compiled %s for %s (%s) in %.2fs", branch, shapes, precision, time.perf_counter() - t0)
        hit = (compiled, compiled.create_infer_request())
        self._compiled[key] = hit
        return hit

    def _infer(self, branch: str, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        _, request = self._compile(branch, {k: v.shape for k, v in feed.items()})
        res = request.infer(feed, share_inputs=True, share_outputs=True)
        out = {name: res[i] for i, name in enumerate(self._out_names[branch])}
        if branch == "template":   # the tracker keeps them: copies, not the request's tensors
            out = {k: np.array(v) for k, v in out.items()}
        return out

    # ---------------------------------------------------------------------------------------------- precision
    def _choose_precision(self, want: str) -> str:
        """f32, or bf16 after the fidelity check passed (see the module docstring)."""
        if want == "f32":
            return "f32"
        if not cpu_has_bf16(self._core):
            if want == "bf16":
                raise BackendError("precision 'bf16' asked for, but this CPU has no bf16 units (AVX512-BF16 / AMX)",
                                   evidence=f"OpenVINO CPU capabilities: "
                                            f"{self._core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')}",
                                   fix="use precision 'f32' (default) or 'auto'")
            self.bf16_check = {"passed": False, "reason": "no bf16 units on this CPU"}
            return "f32"
        rec = self._bf16_record()
        self.bf16_check = rec
        if rec["passed"]:
            LOG.info("OpenVINO: bf16 keeps fidelity here (worst cls %.4f, loc %.4f vs f32 on %d probe crops)",
                     rec["cls"], rec["loc"], rec["probes"])
            return "bf16"
        if want == "bf16":
            raise BackendError("precision 'bf16' breaks this model's outputs on this machine",
                               evidence=f"fidelity check vs f32 on {rec['probes']} probe crops: worst cls cosine "
                                        f"{rec['cls']:.4f}, loc cosine {rec['loc']:.4f} (needs ≥ "
                                        f"{rec['min_cosine']:.2f} both)",
                               fix="use precision 'f32' (the default), or 'auto' to take bf16 only where it passes")
        LOG.info("OpenVINO: precision auto → f32 (bf16 fails the fidelity check: cls %.4f, loc %.4f)", rec["cls"],
                 rec["loc"])
        return "f32"

    def _bf16_record(self) -> Dict[str, Any]:
        """The bf16 fidelity record of these model files on this machine: read from the cache folder, else measured
        (:func:`bf16_fidelity`) and written there."""
        import openvino

        for branch, path in self._paths.items():
            if not self._sha.get(branch):
                from ..metadata import file_sha256

                self._sha[branch] = file_sha256(path)
        key = "|".join([self._sha["template"], self._sha["search"], openvino.__version__, _cpu_name()])
        key = hashlib.sha256(key.encode()).hexdigest()[:32]
        store = self.cache_dir / BF16_RECORD if self.cache_dir is not None else None
        records: Dict[str, Any] = {}
        if store is not None and store.is_file():
            try:
                records = json.loads(store.read_text())
            except (OSError, ValueError):
                records = {}
        if key in records:
            return dict(records[key], cached=True)
        rec = bf16_fidelity(self)
        rec.update(openvino=openvino.__version__, cpu=_cpu_name(), created=time.strftime("%Y-%m-%dT%H:%M:%S"))
        if store is not None:
            records[key] = rec
            try:
                tmp = store.with_name(store.name + f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(records, indent=1))
                tmp.replace(store)
            except OSError as e:
                LOG.warning("OpenVINO: cannot record the bf16 check in %s (%s)", store, e)
        return dict(rec, cached=False)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def bf16_fidelity(backend: OpenVinoBackend, probes: int = BF16_PROBES,
                  min_cosine: float = BF16_MIN_COSINE) -> Dict[str, Any]:
    """cls / loc cosine of the bf16-hinted model pair against the f32 pair on synthetic probe crops.

    Each probe runs the whole pair (template → kernels → search) in each precision; the figure is the worst probe's
    cosine, as a tracker lives with its one template. Returns ``{"passed", "cls", "loc", "probes", "min_cosine",
    "per_probe"}``.
    """
    meta = backend.meta
    z, x = probe_crops(int(meta["exemplar_size"]), int(meta["instance_size"]), probes)
    names = backend.template_output_names
    outs = {}
    for prec in ("f32", "bf16"):
        cls, loc = [], []
        for i in range(probes):
            _, rt = backend._compile("template", {TEMPLATE_INPUT: (1,) + z.shape[1:]}, prec)
            kern = {k: np.array(v) for k, v in zip(backend._out_names["template"],
                                                   rt.infer({TEMPLATE_INPUT: z[i:i + 1]}).values())}
            feed = {SEARCH_INPUT: x[i:i + 1], **{n: kern[n] for n in names}}
            _, rs = backend._compile("search", {k: v.shape for k, v in feed.items()}, prec)
            res = rs.infer(feed)
            out = {name: np.array(res[j]) for j, name in enumerate(backend._out_names["search"])}
            cls.append(out["cls"])
            loc.append(out["loc"])
        outs[prec] = (cls, loc)
    per = [{"cls": _cosine(outs["f32"][0][i], outs["bf16"][0][i]), "loc": _cosine(outs["f32"][1][i], outs["bf16"][1][i])}
           for i in range(probes)]
    # the compiled bf16 models are not needed when bf16 is refused; the f32 ones are reused by _infer
    c = min(p["cls"] for p in per)
    lo = min(p["loc"] for p in per)
    return {"passed": bool(min(c, lo) >= min_cosine), "cls": c, "loc": lo, "probes": probes,
            "min_cosine": float(min_cosine), "per_probe": per}


__all__ = ["BF16_MIN_COSINE", "OpenVinoBackend", "PRECISIONS", "bf16_fidelity", "cpu_has_bf16", "default_cache_dir",
           "probe_crops"]
