"""CUDA plumbing for the TensorRT backend: a device probe, one error checker, buffers, a stream, a CUDA graph.

Why this module exists: the TensorRT runtime needs device buffers, pinned host buffers and a non-default stream, and
this project deploys on Jetsons where torch and pycuda are not wanted. cuda-python (``cuda-bindings``, NVIDIA's own
choice in the TensorRT samples) provides them; it is imported lazily, so importing this module costs nothing.

The device probe uses only ``ctypes`` on the driver library (``libcuda``): it must be safe on machines without an
NVIDIA driver, because constructing a TensorRT ``Runtime`` there and deserializing an engine segfaults
(docs/tensorrt.md). Nothing here imports torch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from ..errors import BackendError

log = logging.getLogger(__name__)

INSTALL_HINT = ("pip install 'cuda-python>=12' (on JetPack 5 / CUDA 11.4: pip install 'cuda-python==11.8.*'; "
                "on CUDA 12 drivers pin 'cuda-python~=12.9')")


# ---------------------------------------------------------------------------------------------------------------
# Device probe (ctypes only)
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CudaDevice:
    """One visible CUDA device."""

    index: int
    name: str
    compute_capability: Tuple[int, int]

    @property
    def sm(self) -> str:
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name,
                "compute_capability": f"{self.compute_capability[0]}.{self.compute_capability[1]}"}


@dataclass(frozen=True)
class CudaProbe:
    """Result of :func:`probe_cuda`: the devices, or why there are none."""

    devices: Tuple[CudaDevice, ...] = ()
    reason: str = ""
    driver_version: Optional[int] = None
    extra: dict = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return bool(self.devices)

    def describe(self) -> str:
        if not self.devices:
            return f"no CUDA device ({self.reason})"
        d = self.devices[0]
        return f"{d.name} ({d.sm}), driver {self.driver_version}"


_CUDA_LIB_NAMES = ("libcuda.so.1", "libcuda.so", "nvcuda.dll", "libcuda.dylib")
_CU_ATTR_CC_MAJOR, _CU_ATTR_CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR


@functools.lru_cache(maxsize=1)
def probe_cuda() -> CudaProbe:
    """Find the CUDA devices through the driver library, without cuda-python and without TensorRT.

    Safe everywhere: a missing driver, a driver too old for the device, or zero devices all give a probe with
    ``available == False`` and a reason, never an exception or a crash. Cached for the process.
    """
    lib = None
    tried = []
    names = list(_CUDA_LIB_NAMES)
    found = ctypes.util.find_library("cuda")
    if found:
        names.insert(0, found)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError as e:
            tried.append(f"{name}: {str(e)[:80]}")
    if lib is None:
        return CudaProbe(reason="NVIDIA driver library libcuda not found: no GPU driver on this machine")
    rc = lib.cuInit(0)
    if rc != 0:
        return CudaProbe(reason=f"cuInit failed with CUresult {rc} (100 = no device, 35 = driver too old, "
                                f"999 = unknown; check nvidia-smi)")
    version = ctypes.c_int(0)
    lib.cuDriverGetVersion(ctypes.byref(version))
    count = ctypes.c_int(0)
    rc = lib.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0 or count.value == 0:
        return CudaProbe(reason=f"cuDeviceGetCount returned {count.value} devices (CUresult {rc})",
                         driver_version=version.value)
    devices = []
    for i in range(count.value):
        dev = ctypes.c_int(0)
        if lib.cuDeviceGet(ctypes.byref(dev), i) != 0:
            continue
        buf = ctypes.create_string_buffer(256)
        lib.cuDeviceGetName(buf, 256, dev)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        lib.cuDeviceGetAttribute(ctypes.byref(major), _CU_ATTR_CC_MAJOR, dev)
        lib.cuDeviceGetAttribute(ctypes.byref(minor), _CU_ATTR_CC_MINOR, dev)
        devices.append(CudaDevice(i, buf.value.decode(errors="replace"), (major.value, minor.value)))
    return CudaProbe(devices=tuple(devices), driver_version=version.value,
                     reason="" if devices else "cuDeviceGet failed for every device")


def require_cuda(what: str = "this operation") -> CudaDevice:
    """Return device 0 or raise BackendError saying why there is none (call before any TensorRT Runtime)."""
    probe = probe_cuda()
    if not probe.available:
        raise BackendError(f"{what} needs a CUDA device, and there is none: {probe.reason}",
                           evidence="TensorRT engines run only on an NVIDIA GPU (a Runtime without one segfaults "
                                    "on deserialize, so siamtrt checks first)",
                           fix="run on a machine with an NVIDIA GPU and driver, or use --backend onnxruntime")
    return probe.devices[0]


# ---------------------------------------------------------------------------------------------------------------
# cuda-python access and the one error checker
# ---------------------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def cudart():
    """The CUDA runtime bindings of cuda-python (``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6)."""
    try:
        from cuda.bindings import runtime as rt  # cuda-python >= 12.6
        return rt
    except ImportError:
        pass
    try:
        from cuda import cudart as rt  # older cuda-python (JetPack 5 era)
        return rt
    except ImportError:
        raise BackendError("the TensorRT backend needs cuda-python, which is not installed",
                           evidence=f"import cuda.bindings.runtime failed (python {sys.version.split()[0]})",
                           fix=INSTALL_HINT) from None


@functools.lru_cache(maxsize=1)
def cuda_driver():
    """The CUDA driver bindings of cuda-python (module loading and kernel launch for the Python plugin)."""
    try:
        from cuda.bindings import driver as drv
        return drv
    except ImportError:
        pass
    try:
        from cuda import cuda as drv
        return drv
    except ImportError:
        raise BackendError("the CUDA driver bindings of cuda-python are not installed", fix=INSTALL_HINT) from None


def _error_name(err: Any) -> str:
    """Readable name of a cudaError_t / CUresult / nvrtcResult value."""
    mod = type(err).__module__ or ""
    try:
        if "nvrtc" in mod or type(err).__name__ == "nvrtcResult":
            from cuda.bindings import nvrtc  # noqa: WPS433 (lazy)
            return nvrtc.nvrtcGetErrorString(err)[1].decode()
        if type(err).__name__ == "CUresult":
            drv = cuda_driver()
            _, name = drv.cuGetErrorName(err)
            return name.decode() if isinstance(name, bytes) else str(name)
        rt = cudart()
        _, name = rt.cudaGetErrorName(err)
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # the name is a nicety; never mask the original error
        return getattr(err, "name", str(err))


def cuda_call(result: Any, what: str = "CUDA call") -> Any:
    """Check a cuda-python return tuple ``(err, *values)``; return the values (None, one value, or a tuple).

    Raises:
        BackendError: naming the call and the error (e.g. cudaErrorMemoryAllocation).
    """
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if int(err) != 0:
        raise BackendError(f"{what} failed with {_error_name(err)} ({int(err)})",
                           fix="check nvidia-smi (driver, memory in use); see docs/tensorrt.md")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


# ---------------------------------------------------------------------------------------------------------------
# Buffers and stream
# ---------------------------------------------------------------------------------------------------------------

class DeviceBuffer:
    """A device allocation of ``nbytes`` (cudaMalloc); ``free()`` is idempotent; usable as a context manager."""

    def __init__(self, nbytes: int):
        self.nbytes = int(nbytes)
        self.ptr = int(cuda_call(cudart().cudaMalloc(max(self.nbytes, 1)), f"cudaMalloc({self.nbytes})"))

    def free(self) -> None:
        if self.ptr:
            cuda_call(cudart().cudaFree(self.ptr), "cudaFree")
            self.ptr = 0

    def __enter__(self) -> "DeviceBuffer":
        return self

    def __exit__(self, *exc) -> None:
        self.free()

    def __del__(self):  # best effort at interpreter exit; explicit free() is the contract
        try:
            self.free()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"DeviceBuffer(0x{self.ptr:x}, {self.nbytes} B)"


class PinnedBuffer:
    """Page-locked host memory (cudaMallocHost) viewed as a numpy array of ``shape``/``dtype``.

    Pinned memory makes ``cudaMemcpyAsync`` truly asynchronous; allocate once and reuse every frame.
    """

    def __init__(self, shape: Sequence[int], dtype: Any = np.float32):
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.ptr = int(cuda_call(cudart().cudaMallocHost(max(self.nbytes, 1)), f"cudaMallocHost({self.nbytes})"))
        raw = (ctypes.c_byte * max(self.nbytes, 1)).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=np.uint8, count=self.nbytes).view(self.dtype).reshape(self.shape)

    def view(self, shape: Sequence[int]) -> np.ndarray:
        """The first prod(shape) elements as an array of ``shape`` (smaller batches reuse the buffer)."""
        n = int(np.prod(shape, dtype=np.int64))
        return self.array.reshape(-1)[:n].reshape(tuple(shape))

    def free(self) -> None:
        if self.ptr:
            self.array = None
            cuda_call(cudart().cudaFreeHost(self.ptr), "cudaFreeHost")
            self.ptr = 0

    def __enter__(self) -> "PinnedBuffer":
        return self

    def __exit__(self, *exc) -> None:
        self.free()

    def __del__(self):
        try:
            self.free()
        except Exception:
            pass


class Stream:
    """One non-default CUDA stream (TensorRT warns that the default stream adds synchronizations)."""

    def __init__(self):
        self.handle = cuda_call(cudart().cudaStreamCreate(), "cudaStreamCreate")

    @property
    def ptr(self) -> int:
        return int(self.handle)

    def synchronize(self) -> None:
        cuda_call(cudart().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def htod(self, dst: DeviceBuffer, src: np.ndarray, dst_offset: int = 0) -> None:
        """Async copy host → device (``src`` should be pinned and contiguous)."""
        rt = cudart()
        cuda_call(rt.cudaMemcpyAsync(dst.ptr + dst_offset, src.ctypes.data, src.nbytes,
                                     rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.handle), "cudaMemcpyAsync H2D")

    def dtoh(self, dst: np.ndarray, src_ptr: int, nbytes: Optional[int] = None) -> None:
        rt = cudart()
        n = dst.nbytes if nbytes is None else nbytes
        cuda_call(rt.cudaMemcpyAsync(dst.ctypes.data, int(src_ptr), n,
                                     rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.handle), "cudaMemcpyAsync D2H")

    def dtod(self, dst_ptr: int, src_ptr: int, nbytes: int) -> None:
        rt = cudart()
        cuda_call(rt.cudaMemcpyAsync(int(dst_ptr), int(src_ptr), int(nbytes),
                                     rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice, self.handle), "cudaMemcpyAsync D2D")

    def free(self) -> None:
        if self.handle is not None:
            cuda_call(cudart().cudaStreamDestroy(self.handle), "cudaStreamDestroy")
            self.handle = None

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.free()


class CudaGraph:
    """A captured sequence of stream work (e.g. one ``execute_async_v3``), replayed with one launch.

    The graph bakes in tensor addresses and shapes: capture again whenever either changes.
    """

    def __init__(self, stream: Stream):
        self.stream = stream
        self.graph = None
        self.exec = None

    def capture(self, enqueue) -> bool:
        """Run ``enqueue()`` under stream capture; return False (and leave nothing behind) if capture fails."""
        rt = cudart()
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        try:
            cuda_call(rt.cudaStreamBeginCapture(self.stream.handle, mode), "cudaStreamBeginCapture")
        except BackendError as e:
            log.warning("TensorRT: CUDA graph capture unavailable (%s); running without graphs", e.what)
            return False
        ok = False
        try:
            ok = bool(enqueue())
        finally:
            err, graph = rt.cudaStreamEndCapture(self.stream.handle)
        if not ok or int(err) != 0:
            if graph is not None and int(err) == 0:
                rt.cudaGraphDestroy(graph)
            log.warning("TensorRT: enqueue could not be captured into a CUDA graph (%s); running without graphs",
                        "enqueue returned False" if not ok else _error_name(err))
            return False
        self.graph = graph
        try:
            self.exec = cuda_call(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        except BackendError as e:
            log.warning("TensorRT: %s; running without graphs", e.what)
            self.free()
            return False
        return True

    def launch(self) -> None:
        cuda_call(cudart().cudaGraphLaunch(self.exec, self.stream.handle), "cudaGraphLaunch")

    def free(self) -> None:
        rt = cudart()
        if self.exec is not None:
            rt.cudaGraphExecDestroy(self.exec)
            self.exec = None
        if self.graph is not None:
            rt.cudaGraphDestroy(self.graph)
            self.graph = None
