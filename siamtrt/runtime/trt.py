"""TensorRT backend: engines built by ``export/build_engine.py``, driven with cuda-python (no torch, no pycuda).

The engine contract (sidecars, loading) is :mod:`siamtrt.runtime.engines`; the library import
:mod:`siamtrt.gpu.tensorrt`.

The backend (:class:`TrtBackend`, Polygraphy TrtRunner's shape): ``activate`` allocates every device buffer and pinned
host buffer once and sets the tensor addresses; per frame: async H2D of the crop → ``execute_async_v3`` on one
non-default stream (optionally replayed as a CUDA graph) → async D2H of cls/loc → one synchronize. Template outputs stay
on the device and are bound directly as the search engine's kernel inputs (cached by array identity and version, as
the backend contract allows): no kernel crosses the bus on a steady frame, and a kernel array the tracker changed in
place (its KernelSet version bumped: distractor mode) is re-uploaded into the same device buffer, nothing else.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import BackendError, EngineError, ModelDirError
from ..gpu.cuda import CudaGraph, DeviceBuffer, PinnedBuffer, Stream, probe_cuda, require_cuda
from ..gpu.tensorrt import TrtLogger, TrtModule, import_tensorrt
from ..modeldir import ENGINE_FILES, build_command
from .backend import Backend, InputMetadata, resolve_source
from .engines import load_engine, verify_engine

LOG = logging.getLogger(__name__)


class _EngineIO:
    """One engine's context, I/O description and persistent buffers."""

    def __init__(self, trt: Any, engine: Any, name: str):
        self.name = name
        self.engine = engine
        self.context = engine.create_execution_context()
        if self.context is None:
            raise BackendError(f"{name}: TensorRT could not create an execution context (out of GPU memory?)")
        self.inputs: List[str] = []
        self.outputs: List[str] = []
        self.dtypes: Dict[str, np.dtype] = {}
        self.shapes: Dict[str, Tuple[int, ...]] = {}
        self.max_shapes: Dict[str, Tuple[int, ...]] = {}
        for i in range(engine.num_io_tensors):
            t = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(t) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(t)
            self.dtypes[t] = np.dtype(trt.nptype(engine.get_tensor_dtype(t)))
            self.shapes[t] = tuple(engine.get_tensor_shape(t))
            if is_input:
                if any(d < 0 for d in self.shapes[t]):
                    self.max_shapes[t] = tuple(engine.get_tensor_profile_shape(t, 0)[2])
                else:
                    self.max_shapes[t] = self.shapes[t]
        for t in self.inputs:
            self.context.set_input_shape(t, self.max_shapes[t])
        for t in self.outputs:
            self.max_shapes[t] = tuple(self.context.get_tensor_shape(t))
        self.current_shapes: Dict[str, Tuple[int, ...]] = {}
        self.addresses: Dict[str, int] = {}
        self.device: Dict[str, DeviceBuffer] = {}
        self.host: Dict[str, PinnedBuffer] = {}

    @property
    def static_batch(self) -> Optional[int]:
        """The batch of an engine built for one fixed batch (conv-mode correlation), else None."""
        b = self.shapes[self.inputs[0]][0]
        return b if b > 0 else None

    @property
    def max_batch(self) -> int:
        return self.max_shapes[self.inputs[0]][0]

    def item_bytes(self, tensor: str, shape: Optional[Sequence[int]] = None) -> int:
        shape = self.max_shapes[tensor] if shape is None else shape
        return int(np.prod(shape[1:], dtype=np.int64)) * self.dtypes[tensor].itemsize

    def allocate(self, host_for: Sequence[str]) -> None:
        for t in self.inputs + self.outputs:
            self.device[t] = DeviceBuffer(self.item_bytes(t) * self.max_shapes[t][0])
            self.bind(t, self.device[t].ptr)
        for t in host_for:
            self.host[t] = PinnedBuffer(self.max_shapes[t], self.dtypes[t])

    def bind(self, tensor: str, ptr: int) -> bool:
        """Set a tensor address; True if it changed (a captured CUDA graph is then stale)."""
        if self.addresses.get(tensor) == ptr:
            return False
        if not self.context.set_tensor_address(tensor, int(ptr)):
            raise BackendError(f"{self.name}: TensorRT refused the address of tensor '{tensor}'")
        self.addresses[tensor] = ptr
        return True

    def set_shape(self, tensor: str, shape: Tuple[int, ...]) -> bool:
        if self.current_shapes.get(tensor) == shape:
            return False
        if not self.context.set_input_shape(tensor, shape):
            raise BackendError(f"{self.name}: input '{tensor}' shape {shape} is outside the engine's profile",
                               evidence=f"max shape {self.max_shapes[tensor]}",
                               fix="rebuild with a larger --max-batch: siamtrt build --max-batch N")
        self.current_shapes[tensor] = shape
        return True

    def free(self) -> None:
        for buf in list(self.device.values()) + list(self.host.values()):
            buf.free()
        self.device.clear()
        self.host.clear()
        self.context = None
        self.engine = None


class TrtBackend(Backend):
    """TensorRT backend over ``template.engine`` / ``search.engine`` (+ their sidecars).

    Args:
        template (Source), search (Source), meta (dict): see :class:`~siamtrt.runtime.backend.Backend`. Engine bytes or
            callables are accepted; their sidecar checks are then skipped (paths are checked).
        cuda_graph (bool): replay the search step as a CUDA graph (captured after one warm run per shape/binding;
            falls back to plain enqueue if capture fails). Defaults to False.
        kernel_cache (int): template-output sets kept on the device for direct binding. Defaults to 16.
    """

    name = "tensorrt"
    short = "trt"
    file_names = (ENGINE_FILES["template"], ENGINE_FILES["search"])
    option_names = ("cuda_graph", "kernel_cache")

    def __init__(self, template, search, meta: Dict[str, Any], **options: Any):
        super().__init__(template, search, meta, **options)
        self.trt: Optional[TrtModule] = None
        self.runtimes: List[Any] = []
        self.io: Dict[str, _EngineIO] = {}
        self.sidecars: Dict[str, Dict[str, Any]] = {}
        self.stream: Optional[Stream] = None
        self.use_graph = bool(options.get("cuda_graph", False))
        self.graphs: Dict[Tuple, CudaGraph] = {}
        self._graph_seen: set = set()
        # id(array) → [array, device copy, version uploaded]
        self._kernel_cache: "OrderedDict[int, List[Any]]" = OrderedDict()
        self._uploaded: Dict[str, Tuple[Tuple, Any]] = {}
        self.kernel_uploads = 0  # host→device kernel copies so far (tests and diagnostics)

    # ------------------------------------------------------------------------------------------- availability
    @classmethod
    def missing_files_fix(cls, model_dir: Path) -> str:
        return f"build the engines: {build_command(model_dir)}"

    @classmethod
    def unavailable_reason(cls, model_dir: Optional[Path] = None) -> Optional[str]:
        try:
            trt = import_tensorrt()
        except EngineError as e:
            return e.what
        probe = probe_cuda()
        if not probe.available:
            return f"no CUDA device ({probe.reason})"
        try:
            from ..gpu.cuda import cudart
            cudart()
        except BackendError as e:
            return e.what
        if model_dir is not None:
            for name in ENGINE_FILES.values():
                try:
                    verify_engine(Path(model_dir) / name, trt=trt, device=probe.devices[0])
                except EngineError as e:
                    return e.what
        return None

    # ------------------------------------------------------------------------------------------------ hooks
    def _activate(self) -> None:
        self.trt = import_tensorrt()
        device = require_cuda(f"the TensorRT backend ({self.trt.describe()})")
        try:
            self.stream = Stream()
            for branch in ("template", "search"):
                self.io[branch] = self._load(branch)
            t, s = self.io["template"], self.io["search"]
            t.allocate(host_for=t.inputs + t.outputs)
            s.allocate(host_for=["search"] + s.outputs)
            self._check_outputs()
        except Exception:
            self._deactivate()
            raise
        LOG.info("TensorRT: %s on %s (%s); search batch %s, CUDA graph %s", self.trt.describe(), device.name,
                 device.sm, self.io["search"].static_batch or f"1..{self.io['search'].max_batch}",
                 "on" if self.use_graph else "off")

    def _load(self, branch: str) -> _EngineIO:
        src = resolve_source(self.sources[branch])
        if isinstance(src, Path):
            engine, runtime, side = load_engine(src, trt=self.trt)
            self.sidecars[branch] = side
        else:
            LOG.warning("TensorRT: %s engine given as bytes: sidecar checks skipped", branch)
            logger = TrtLogger.shared(self.trt.module)
            logger.errors.clear()
            runtime = self.trt.module.Runtime(logger)
            engine = runtime.deserialize_cuda_engine(src)
            if engine is None:
                raise EngineError(f"{self.instance_name(branch)}: TensorRT could not deserialize the engine bytes",
                                  evidence="; ".join(logger.errors)[-600:])
        self.runtimes.append(runtime)
        return _EngineIO(self.trt.module, engine, self.instance_name(branch))

    def _check_outputs(self) -> None:
        t, s = self.io["template"], self.io["search"]
        missing = [n for n in self.template_output_names if n not in t.outputs]
        missing += [n for n in ("cls", "loc") if n not in s.outputs]
        if missing:
            raise ModelDirError(f"engine outputs {missing} are missing",
                                evidence=f"template outputs {t.outputs}, search outputs {s.outputs}",
                                fix="rebuild the engines from the model directory: siamtrt build")

    def _deactivate(self) -> None:
        for g in self.graphs.values():
            g.free()
        self.graphs.clear()
        self._graph_seen.clear()
        for _, buf, _ in self._kernel_cache.values():
            buf.free()
        self._kernel_cache.clear()
        self._uploaded.clear()
        for io in self.io.values():
            io.free()
        self.io.clear()
        if self.stream is not None:
            self.stream.free()
            self.stream = None
        self.runtimes.clear()

    def _input_metadata(self, branch: str) -> InputMetadata:
        io = self.io[branch]
        out = {}
        for t in io.inputs:
            shape = [d if d > 0 else None for d in io.shapes[t]]
            # batch: 1 for single-batch engines (the base class splits targets); otherwise any batch (profile, or
            # padding/chunking of a fixed-batch engine, done here).
            shape[0] = 1 if io.max_batch == 1 else None
            out[t] = (io.dtypes[t], tuple(shape))
        return out

    # ------------------------------------------------------------------------------------------------- running
    def _infer(self, branch: str, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        if branch == "template":
            return self._run_template(feed["template"])
        return self._run_search(feed)

    def _chunks(self, io: _EngineIO, n: int) -> List[Tuple[int, int]]:
        step = io.max_batch
        return [(s, min(s + step, n)) for s in range(0, n, step)]

    def _run_template(self, z: np.ndarray) -> Dict[str, np.ndarray]:
        io, stream = self.io["template"], self.stream
        n = z.shape[0]
        names = io.outputs
        result = {k: np.empty((n,) + io.max_shapes[k][1:], io.dtypes[k]) for k in names}
        keep = {k: DeviceBuffer(io.item_bytes(k) * n) for k in names if k in self.template_output_names}
        for s, e in self._chunks(io, n):
            m = e - s
            eb = io.static_batch or m
            shape = (eb,) + tuple(z.shape[1:])
            io.set_shape("template", shape)
            host = io.host["template"].view(shape)
            host[:m] = z[s:e]
            if eb > m:
                host[m:] = 0
            stream.htod(io.device["template"], host)
            self._execute(io, graph=False)
            for k in names:
                out_shape = (eb,) + io.max_shapes[k][1:]
                stream.dtoh(io.host[k].view(out_shape), io.device[k].ptr)
                if k in keep:
                    stream.dtod(keep[k].ptr + s * io.item_bytes(k), io.device[k].ptr, m * io.item_bytes(k))
            stream.synchronize()
            for k in names:
                result[k][s:e] = io.host[k].view((eb,) + io.max_shapes[k][1:])[:m]
        for k, buf in keep.items():
            self._remember_kernel(result[k], buf)
        return result

    def _remember_kernel(self, arr: np.ndarray, buf: DeviceBuffer, version: int = 0) -> None:
        limit = int(self.options.get("kernel_cache", 16))
        self._kernel_cache[id(arr)] = [arr, buf, version]
        while len(self._kernel_cache) > max(limit, len(self.template_output_names)):
            _, (_, old, _) = self._kernel_cache.popitem(last=False)
            old.free()

    def _kernel_ptr(self, name: str, arr: np.ndarray) -> Optional[int]:
        """Device address of ``arr``'s copy, re-uploaded first when its version moved on; None if not cached."""
        hit = self._kernel_cache.get(id(arr))
        if hit is None or hit[0] is not arr:
            return None
        self._kernel_cache.move_to_end(id(arr))
        version = self.kernel_version(name)
        if hit[2] != version:  # changed in place by the caller (KernelSet.touch): same buffer, new contents
            self._upload_kernel(hit[1], arr)
            hit[2] = version
        return hit[1].ptr

    def _upload_kernel(self, buf: DeviceBuffer, arr: np.ndarray) -> None:
        # No synchronize: a copy from pageable memory returns once the source is staged (the caller may then change
        # it), and the stream orders it before the enqueue that reads it.
        self.stream.htod(buf, np.ascontiguousarray(arr))
        self.kernel_uploads += 1

    def _run_search(self, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        io, stream = self.io["search"], self.stream
        x = feed["search"]
        n = x.shape[0]
        chunks = self._chunks(io, n)
        outs = {k: [] for k in io.outputs}
        for s, e in chunks:
            m = e - s
            eb = io.static_batch or m
            changed = io.set_shape("search", (eb,) + tuple(x.shape[1:]))
            for name in self.template_output_names:
                arr = feed[name]
                changed |= io.set_shape(name, (eb,) + tuple(arr.shape[1:]))
                changed |= self._bind_kernel(io, name, arr, s, e, eb)
            host = io.host["search"].view((eb,) + tuple(x.shape[1:]))
            host[:m] = x[s:e]
            if eb > m:
                host[m:] = 0
            stream.htod(io.device["search"], host)
            self._execute(io, graph=self.use_graph, changed=changed)
            views = {}
            for k in io.outputs:
                shape = tuple(io.context.get_tensor_shape(k))
                views[k] = io.host[k].view(shape)
                stream.dtoh(views[k], io.device[k].ptr)
            stream.synchronize()
            for k in io.outputs:  # the pinned buffers are reused by the next chunk: copy unless this is the only one
                outs[k].append(views[k][:m] if len(chunks) == 1 else views[k][:m].copy())
        if len(chunks) == 1:
            return {k: v[0] for k, v in outs.items()}
        return {k: np.concatenate(v) for k, v in outs.items()}

    def _bind_kernel(self, io: _EngineIO, name: str, arr: np.ndarray, s: int, e: int, eb: int) -> bool:
        """Bind kernel rows [s:e] of ``arr`` as search input ``name``; True if the address changed.

        ``arr`` is found on the device by identity (a template output, or an array uploaded once when first seen);
        rows are bound in place by offset, or copied device-to-device into the engine's own buffer when a
        fixed-batch engine needs padding.
        """
        item = io.item_bytes(name, (eb,) + tuple(arr.shape[1:]))
        ptr = self._kernel_ptr(name, arr)
        if ptr is None:  # a new array (e.g. the tracker stacked targets): one upload, then it is device-resident
            buf = DeviceBuffer(arr.nbytes)
            self._upload_kernel(buf, arr)
            self._remember_kernel(arr, buf, self.kernel_version(name))
            ptr = buf.ptr
        m = e - s
        if eb == m:
            return io.bind(name, ptr + s * item)
        own = io.device[name]
        key = (id(arr), self.kernel_version(name), s, e, eb)
        held = self._uploaded.get(name)
        if held is None or held[0] != key or held[1] is not arr:
            from ..gpu.cuda import cuda_call, cudart

            self.stream.dtod(own.ptr, ptr + s * item, m * item)
            cuda_call(cudart().cudaMemsetAsync(own.ptr + m * item, 0, (eb - m) * item, self.stream.handle),
                      "cudaMemsetAsync")
            self._uploaded[name] = (key, arr)
        return io.bind(name, own.ptr)

    def _execute(self, io: _EngineIO, graph: bool, changed: bool = False) -> None:
        """One enqueue, or a CUDA-graph replay (captured on the second run of a shape/binding signature)."""
        if graph:
            key = (tuple(sorted(io.current_shapes.items())), tuple(sorted(io.addresses.items())))
            g = self.graphs.get(key)
            if g is not None:
                g.launch()
                return
            if key in self._graph_seen:
                g = CudaGraph(self.stream)
                if g.capture(lambda: io.context.execute_async_v3(self.stream.ptr)):
                    if len(self.graphs) >= 8:
                        _, old = self.graphs.popitem()
                        old.free()
                    self.graphs[key] = g
                    g.launch()
                    return
                self.use_graph = False  # capture not possible with this engine: stop trying
            if len(self._graph_seen) > 64:  # bindings seen once and never again (targets regrouped): forget them
                self._graph_seen.clear()
            self._graph_seen.add(key)
        if not io.context.execute_async_v3(self.stream.ptr):
            raise BackendError(f"{io.name}: execute_async_v3 failed",
                               fix="run with SIAMTRT log level DEBUG to see TensorRT's error; rebuild the engine")


__all__ = ["TrtBackend"]
