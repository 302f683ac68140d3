"""ONNX Runtime backend: the default, CPU-first, and the one every exported directory runs on.

Choices, and why:
* providers — CPU by default; with onnxruntime-gpu installed ``"auto"`` uses CUDA (then CPU for any node CUDA lacks);
  ``providers="tensorrt"`` adds ORT's TensorRT execution provider in front (it builds engines at session creation,
  which takes minutes, so it is opt-in). An explicit list of provider names is passed through.
* threads — intra-op threads = physical cores (hyper-threads slow these convolution-bound graphs down), one
  inter-op thread (the graphs are chains), sequential execution, graph optimisation level ALL.
* buffers — the search branch runs through an IOBinding whose output arrays are allocated once per input shape and
  reused every frame (no per-frame allocation of cls/loc); on CUDA the template kernels are copied to the device
  once per kernel array (cached by identity: the tracker never mutates them) instead of once per frame.
  Template outputs are fresh arrays (the tracker keeps them).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import BackendError, ModelDirError
from ..metadata import SEARCH_OUTPUTS
from .backend import OR_AUTO, Backend, InputMetadata, resolve_source
from .cpu import cpu_threads

LOG = logging.getLogger(__name__)

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int32)": np.int32,
              "tensor(int64)": np.int64}
PROVIDER_CHOICES = ("auto", "cpu", "cuda", "tensorrt")


def _import_ort():
    try:
        import onnxruntime
    except ImportError as e:
        raise BackendError("onnxruntime is not installed", evidence=repr(e),
                           fix=f"pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA), {OR_AUTO}") from None
    return onnxruntime


def resolve_providers(providers: Union[str, Sequence[str], None], available: Sequence[str]) -> List[str]:
    """Provider names for a request (``auto``/``cpu``/``cuda``/``tensorrt`` or an explicit list).

    Raises:
        BackendError: a requested provider is not in this onnxruntime build.
    """
    providers = "auto" if providers is None else providers
    if isinstance(providers, str):
        if providers not in PROVIDER_CHOICES:
            raise BackendError(f"unknown ONNX Runtime provider choice '{providers}'",
                               evidence=f"valid: {PROVIDER_CHOICES} or a list of provider names",
                               fix="e.g. providers='cpu'")
        if providers == "auto":
            want = ["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []
        else:
            want = {"cpu": [], "cuda": ["CUDAExecutionProvider"],
                    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider"]}[providers]
        want = want + ["CPUExecutionProvider"]
    else:
        want = list(providers)
    missing = [p for p in want if p not in available]
    if missing:
        raise BackendError(f"ONNX Runtime providers {missing} are not available in this installation",
                           evidence=f"available: {list(available)}",
                           fix="pip install onnxruntime-gpu (CUDA / TensorRT providers) or use providers='cpu'")
    return want


class OrtBackend(Backend):
    """ONNX Runtime backend over ``template.onnx`` / ``search.onnx``.

    Args:
        template (Source), search (Source), meta (dict): see :class:`Backend`.
        threads (int): intra-op threads. Defaults to the number of physical cores.
        providers (str | list): "auto", "cpu", "cuda", "tensorrt" or provider names. Defaults to "auto".
        io_binding (bool): reuse search output buffers through IOBinding. Defaults to True.
        spin (bool): let idle intra-op threads spin-wait (lower latency when nothing else runs on the cores,
            but they steal the cores from cropping between frames). Defaults to False.
    """

    name = "onnxruntime"
    short = "ort"
    option_names = ("threads", "providers", "io_binding", "spin")

    def __init__(self, template, search, meta: Dict[str, Any], **options: Any):
        super().__init__(template, search, meta, **options)
        self.sessions: Dict[str, Any] = {}
        self.providers: List[str] = []
        self.threads: int = 0
        self._out_names: Dict[str, List[str]] = {}
        self._binding = None
        self._out_bufs: Dict[Tuple, List[np.ndarray]] = {}
        self._device_kernels: Dict[int, Tuple[np.ndarray, Any, int]] = {}  # id → (array, OrtValue, version)
        self._on_cuda = False

    @classmethod
    def unavailable_reason(cls, model_dir: Optional[Path] = None) -> Optional[str]:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime is not installed"
        return None

    def _activate(self) -> None:
        ort = _import_ort()
        if self.meta.get("xcorr") == "plugin":
            raise BackendError("this model directory uses the siamtrt::DepthwiseXCorr TensorRT plugin node, "
                               "which ONNX Runtime cannot run",
                               evidence="metadata xcorr = 'plugin'",
                               fix="run it with --backend tensorrt, or export a plugin-free directory with "
                                   "siamtrt export ... --xcorr conv")
        opts = self.options
        self.threads = cpu_threads(opts.get("threads"))
        self.providers = resolve_providers(opts.get("providers"), ort.get_available_providers())
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if not opts.get("spin", False):
            # Worker threads spin-wait after each run by default; between frames that steals the cores the crop and
            # post-processing need (measured: crop 2 ms alone, ~20 ms next to spinning workers on 2 cores).
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        for branch in ("template", "search"):
            src = resolve_source(self.sources[branch])
            if isinstance(src, Path) and not src.is_file():
                raise ModelDirError(f"{self.instance_name(branch)}: {src} does not exist",
                                    fix="export the model with siamtrt export")
            try:
                sess = ort.InferenceSession(src if isinstance(src, bytes) else str(src), sess_options=so,
                                            providers=self.providers)
            except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/NoSuchFile types
                raise ModelDirError(f"{self.instance_name(branch)}: ONNX Runtime cannot load "
                                    f"{src if isinstance(src, Path) else 'the model bytes'}",
                                    evidence=str(e).splitlines()[0][:400],
                                    fix="re-export the model directory with siamtrt export") from None
            self.sessions[branch] = sess
            self._out_names[branch] = [o.name for o in sess.get_outputs()]
        missing = [n for n in SEARCH_OUTPUTS if n not in self._out_names["search"]]
        missing += [n for n in self.template_output_names if n not in self._out_names["template"]]
        if missing:
            raise ModelDirError(f"outputs {missing} are missing from the ONNX models",
                                evidence=f"template outputs {self._out_names['template']}, "
                                         f"search outputs {self._out_names['search']}",
                                fix="re-export the model directory with siamtrt export")
        self._on_cuda = self.sessions["search"].get_providers()[0] in ("CUDAExecutionProvider",
                                                                       "TensorrtExecutionProvider")
        if self.options.get("io_binding", True):
            self._binding = self.sessions["search"].io_binding()
        LOG.debug("ORT: %s threads=%d providers=%s", ort.__version__, self.threads, self.providers)

    def _deactivate(self) -> None:
        self.sessions.clear()
        self._binding = None
        self._out_bufs.clear()
        self._device_kernels.clear()

    def _input_metadata(self, branch: str) -> InputMetadata:
        out = {}
        for i in self.sessions[branch].get_inputs():
            dtype = _ORT_TYPES.get(i.type)
            if dtype is None:
                raise ModelDirError(f"{self.instance_name(branch)}: input '{i.name}' has unsupported type {i.type}",
                                    fix="re-export with float32 or float16 inputs")
            out[i.name] = (np.dtype(dtype), tuple(d if isinstance(d, int) and d > 0 else None for d in i.shape))
        return out

    def _infer(self, branch: str, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        if branch == "template" or self._binding is None:
            return dict(zip(self._out_names[branch], self.sessions[branch].run(None, feed)))
        return self._infer_bound(feed)

    def _infer_bound(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Search branch through IOBinding with reused output buffers (and device-resident kernels on CUDA)."""
        io = self._binding
        sess = self.sessions["search"]
        for key, arr in feed.items():
            if self._on_cuda and key != "search":
                io.bind_ortvalue_input(key, self._device_kernel(key, arr))
            else:
                io.bind_cpu_input(key, arr)
        sig = tuple((k, v.shape) for k, v in feed.items())
        bufs = self._out_bufs.get(sig)
        names = self._out_names["search"]
        if bufs is None:
            # First call with these shapes: let ORT allocate, then keep arrays of the shapes it produced.
            for n in names:
                io.bind_output(n, "cpu")
            sess.run_with_iobinding(io)
            first = io.copy_outputs_to_cpu()
            bufs = [np.ascontiguousarray(a) for a in first]
            self._out_bufs[sig] = bufs
            return dict(zip(names, bufs))
        for n, buf in zip(names, bufs):
            io.bind_output(n, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
        sess.run_with_iobinding(io)
        return dict(zip(names, bufs))

    def _device_kernel(self, name: str, arr: np.ndarray):
        """CUDA copy of a kernel array, made once per array object and version (kept alive with the array)."""
        version = self.kernel_version(name)
        hit = self._device_kernels.get(id(arr))
        if hit is not None and hit[0] is arr and hit[2] == version:
            return hit[1]
        ort = _import_ort()
        if len(self._device_kernels) > 64:  # old kernel sets (targets re-initialised) — drop them
            self._device_kernels.clear()
        value = ort.OrtValue.ortvalue_from_numpy(arr, "cuda", 0)
        self._device_kernels[id(arr)] = (arr, value, version)
        return value
