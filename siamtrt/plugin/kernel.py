"""The depthwise-correlation kernel from Python: numpy reference, launch geometry, module loading, launch.

Why: the Python IPluginV3 (python_plugin.py) and the GPU numerics test launch the same CUDA source the C++ plugins
link (dwxcorr_kernel.cu), either from the fatbin that ``build.py`` compiles with nvcc or, when none was built, from
NVRTC at first use. numpy and the standard library only at import time; cuda-python is imported when a kernel is
loaded. This module must not import torch or TensorRT.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..errors import BackendError, ExportError

log = logging.getLogger(__name__)

PLUGIN_DIR = Path(__file__).resolve().parent
KERNEL_SOURCE = PLUGIN_DIR / "dwxcorr_kernel.cu"
FATBIN_NAME = "dwxcorr.fatbin"
LIBRARY_NAME = "libsiamtrt_dwxcorr.so"  # the C++ plugin (CMakeLists.txt target siamtrt_dwxcorr)
KERNEL_NAMES = {np.dtype(np.float32): "siamtrt_dwxcorr_f32", np.dtype(np.float16): "siamtrt_dwxcorr_f16"}
BLOCK = 128          # SIAMTRT_DWXCORR_BLOCK in dwxcorr_kernel.h
MAX_GRID_X = 64      # grid-stride cap of the launcher in dwxcorr_kernel.cu
MAX_GRID_Y = 65535   # CUDA limit on gridDim.y


def build_dir() -> Path:
    """Where build.py writes the fatbin and the C++ library: ``$SIAMTRT_PLUGIN_DIR`` or ``<this folder>/build``."""
    env = os.environ.get("SIAMTRT_PLUGIN_DIR")
    return Path(env) if env else PLUGIN_DIR / "build"


def dwxcorr_reference(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """numpy definition of the op: y[n,c,i,j] = Σ_{u,v} x[n,c,i+u,j+v]·k[n,c,u,v] (float32 accumulation order aside).

    Args:
        x (np.ndarray): search feature [N, C, H, W].
        k (np.ndarray): kernel [N, C, h, w].

    Returns:
        np.ndarray: [N, C, H-h+1, W-w+1] in float32 (float64 accumulation).
    """
    if x.ndim != 4 or k.ndim != 4 or x.shape[:2] != k.shape[:2] or k.shape[2] > x.shape[2] or k.shape[3] > x.shape[3]:
        raise ValueError(f"dwxcorr_reference: incompatible shapes x{x.shape} k{k.shape}")
    win = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), k.shape[2:], axis=(2, 3))
    return np.einsum("ncijuv,ncuv->ncij", win, k.astype(np.float64)).astype(np.float32)


def launch_geometry(N: int, C: int, H: int, W: int, h: int, w: int) -> Tuple[Tuple[int, int, int], int, int]:
    """(grid, block, dynamic shared bytes) exactly as ``siamtrt_dwxcorr_launch_*`` in dwxcorr_kernel.cu computes
    them."""
    out = (H - h + 1) * (W - w + 1)
    gx = min(max((out + BLOCK - 1) // BLOCK, 1), MAX_GRID_X)
    planes = N * C
    gy = min(planes, MAX_GRID_Y)
    gz = (planes + gy - 1) // gy
    return (gx, gy, gz), BLOCK, h * w * 4


def _cuda_include_dirs() -> list:
    dirs = []
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and (Path(root) / "include" / "cuda_fp16.h").is_file():
            dirs.append(str(Path(root) / "include"))
    return dirs


def compile_ptx_nvrtc(compute_capability: Tuple[int, int]) -> bytes:
    """Compile dwxcorr_kernel.cu to PTX for one GPU with NVRTC (cuda-python), the fallback when no fatbin exists.

    Raises:
        ExportError: NVRTC missing or the compile failed (log attached).
    """
    try:
        from cuda.bindings import nvrtc
    except ImportError:
        try:
            from cuda import nvrtc  # older cuda-python
        except ImportError:
            raise ExportError("cannot compile the DepthwiseXCorr kernel: cuda-python (NVRTC) is not installed",
                              fix="pip install cuda-python, or prebuild the fatbin: "
                                  "python -m siamtrt.plugin.build") from None
    src = KERNEL_SOURCE.read_bytes()
    try:
        err, prog = nvrtc.nvrtcCreateProgram(src, b"dwxcorr_kernel.cu", 0, [], [])
    except Exception as e:  # libnvrtc not found by cuda-pathfinder
        raise ExportError("cannot compile the DepthwiseXCorr kernel: NVRTC library not found", evidence=str(e)[:300],
                          fix="pip install nvidia-cuda-nvrtc-cu12 (or the CUDA toolkit), or prebuild the fatbin: "
                              "python -m siamtrt.plugin.build") from None
    major, minor = compute_capability
    opts = [f"--gpu-architecture=compute_{major}{minor}".encode(), b"--std=c++14",
            f"--include-path={PLUGIN_DIR}".encode()] + [f"--include-path={d}".encode() for d in _cuda_include_dirs()]
    (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
    if int(err) != 0:
        _, size = nvrtc.nvrtcGetProgramLogSize(prog)
        buf = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, buf)
        raise ExportError("NVRTC failed to compile dwxcorr_kernel.cu", evidence=buf.decode(errors="replace")[-1500:],
                          fix="report this with the log; meanwhile prebuild with python -m siamtrt.plugin.build")
    _, size = nvrtc.nvrtcGetPTXSize(prog)
    ptx = b" " * size
    nvrtc.nvrtcGetPTX(prog, ptx)
    nvrtc.nvrtcDestroyProgram(prog)
    return ptx


class CompiledKernel:
    """The loaded CUDA module with both entry points; ``launch`` runs one correlation on a stream.

    Needs a current CUDA context (TensorRT's, inside a plugin's enqueue; or the runtime API's primary context, made
    current by any cudart call such as cudaFree(0)).
    """

    def __init__(self, image: bytes, origin: str):
        from ..gpu.cuda import cuda_call, cuda_driver

        drv = cuda_driver()
        self.origin = origin
        self.module = cuda_call(drv.cuModuleLoadData(image), f"cuModuleLoadData({origin})")
        self.functions = {dt: cuda_call(drv.cuModuleGetFunction(self.module, name.encode()),
                                        f"cuModuleGetFunction({name})") for dt, name in KERNEL_NAMES.items()}

    @classmethod
    def load(cls, compute_capability: Optional[Tuple[int, int]] = None,
             fatbin: Optional[Path] = None) -> "CompiledKernel":
        """Load the prebuilt fatbin (``build.py``), else compile PTX with NVRTC for ``compute_capability``."""
        fatbin = Path(fatbin) if fatbin is not None else build_dir() / FATBIN_NAME
        if fatbin.is_file():
            return cls(fatbin.read_bytes(), f"fatbin {fatbin}")
        if compute_capability is None:
            from ..gpu.cuda import require_cuda
            compute_capability = require_cuda("compiling the DepthwiseXCorr kernel").compute_capability
        log.info("plugin: no prebuilt %s; compiling dwxcorr_kernel.cu with NVRTC for sm_%d%d", fatbin,
                 *compute_capability)
        return cls(compile_ptx_nvrtc(compute_capability) + b"\0", "NVRTC PTX")

    def launch(self, dtype, x_ptr: int, k_ptr: int, y_ptr: int, N: int, C: int, H: int, W: int, h: int, w: int,
               stream: int) -> None:
        """Enqueue y = dwxcorr(x, k) on ``stream`` (device pointers as ints).

        Raises:
            BackendError: unsupported dtype, bad sizes or a launch failure.
        """
        from ..gpu.cuda import cuda_call, cuda_driver

        dtype = np.dtype(dtype)
        if dtype not in self.functions:
            raise BackendError(f"DepthwiseXCorr supports float32 and float16, not {dtype}")
        if min(N, C) < 0 or h <= 0 or w <= 0 or H < h or W < w:
            raise BackendError(f"DepthwiseXCorr: bad sizes x[{N},{C},{H},{W}] k[{N},{C},{h},{w}]")
        if N * C == 0:
            return
        drv = cuda_driver()
        grid, block, shared = launch_geometry(N, C, H, W, h, w)
        args = ((int(x_ptr), int(k_ptr), int(y_ptr), N, C, H, W, h, w),
                (ctypes.c_void_p,) * 3 + (ctypes.c_int,) * 6)
        cuda_call(drv.cuLaunchKernel(self.functions[dtype], *grid, block, 1, 1, shared, drv.CUstream(int(stream)),
                                     args, 0), "cuLaunchKernel(DepthwiseXCorr)")

    def unload(self) -> None:
        from ..gpu.cuda import cuda_driver

        if self.module is not None:
            cuda_driver().cuModuleUnload(self.module)
            self.module = None
