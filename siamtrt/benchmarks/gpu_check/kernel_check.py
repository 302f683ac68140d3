"""Section ``kernel``: the DepthwiseXCorr CUDA kernel against numpy on every architecture's correlation shapes.

Steps: build the kernel with the project's nvcc driver (``siamtrt.plugin.build.compile_kernel``) for the GPU's
architecture only (sm_90 on Hopper); load it (``CompiledKernel``); run every case of :mod:`.cases` in float32 and
float16 on poisoned output buffers (NaN bytes, plus a guard tail that must stay untouched) and compare with
``dwxcorr_reference`` (float64) in a thread pool while the GPU goes on; then the NVRTC fallback (what the Python
plugin does when no fatbin was built) on two cases. With ``--device cpu`` (dry run) the nvcc build still runs and
the cases go through a CPU stand-in (torch's grouped conv, the export's own correlation), labelled as such.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .cases import XcorrCase, compare_xcorr, random_inputs
from .common import PASS, TIMEOUT, SectionRecorder, check, skipped

DTYPES = (np.float32, np.float16)
GUARD_BYTES = 256       # poisoned tail after each output: a write past the end shows there
POISON = 0xFF           # all-ones bytes are NaN in float32 and float16: an output never written stays NaN
TIMED_LAUNCHES = 20


def build_fatbin(rec: SectionRecorder, sm: int) -> Optional[Path]:
    """The ``nvcc_build`` check: compile dwxcorr_kernel.cu for ``sm`` (+ its PTX); None when skipped or failed."""
    from ...plugin import build as pbuild
    from ...plugin.kernel import FATBIN_NAME

    nvcc = pbuild.find_nvcc()
    if nvcc is None:
        rec.add(skipped("nvcc_build", "nvcc not found (PATH, $CUDA_HOME, /usr/local/cuda): the kernel is "
                                      "compiled with NVRTC instead"))
        return None
    version = ".".join(map(str, pbuild.nvcc_version(nvcc)))
    if sm not in pbuild.supported_archs(nvcc):
        rec.add(skipped("nvcc_build", f"nvcc {version} cannot build sm_{sm}", nvcc=str(nvcc)))
        return None
    out = Path(tempfile.mkdtemp(prefix="siamtrt-gpucheck-")) / FATBIN_NAME

    def compile_it() -> Dict[str, Any]:
        t0 = time.perf_counter()
        size = pbuild.compile_kernel(out, archs=[sm], nvcc=nvcc).stat().st_size
        return check("nvcc_build", size > 1000, sm=f"sm_{sm}", nvcc=str(nvcc), nvcc_version=version,
                     seconds=round(time.perf_counter() - t0, 2), fatbin_bytes=size)

    record = rec.run("nvcc_build", compile_it)
    return out if record["status"] == PASS else None


class GpuXcorr:
    """Runs one case on the GPU through ``CompiledKernel.launch`` with siamtrt.gpu.cuda buffers and stream."""

    def __init__(self, kernel: Any, stream: Any):
        self.kernel = kernel
        self.stream = stream

    def __call__(self, x: np.ndarray, k: np.ndarray, case: XcorrCase) -> Tuple[np.ndarray, Dict[str, Any]]:
        from ...gpu import cuda as gcuda

        rt, s = gcuda.cudart(), self.stream
        y = np.empty(case.out_shape, x.dtype)
        raw = np.empty(y.nbytes + GUARD_BYTES, np.uint8)
        with gcuda.DeviceBuffer(x.nbytes) as dx, gcuda.DeviceBuffer(k.nbytes) as dk, \
                gcuda.DeviceBuffer(raw.nbytes) as dy:
            s.htod(dx, x)
            s.htod(dk, k)
            gcuda.cuda_call(rt.cudaMemsetAsync(dy.ptr, POISON, raw.nbytes, s.handle), "cudaMemsetAsync")
            launch = lambda: self.kernel.launch(x.dtype, dx.ptr, dk.ptr, dy.ptr, *case.shape_key, s.ptr)  # noqa: E731
            launch()
            s.dtoh(raw, dy.ptr)
            s.synchronize()
            try:  # a figure, not a check: a timing problem must not hide the numerics
                stats = {"kernel_us": round(1000 * time_launches(rt, s, launch, TIMED_LAUNCHES), 2)}
            except Exception as e:
                stats = {"kernel_us": None, "timing_error": f"{type(e).__name__}: {e}"[:300]}
        y[...] = raw[:y.nbytes].view(x.dtype).reshape(y.shape)
        stats["guard_intact"] = bool((raw[y.nbytes:] == POISON).all())
        return y, stats


def time_launches(rt: Any, stream: Any, launch: Callable[[], None], n: int) -> float:
    """Mean milliseconds of ``launch`` over ``n`` back-to-back runs, bounded by two CUDA events."""
    from ...gpu.cuda import cuda_call

    launch()  # warm
    start, end = (cuda_call(rt.cudaEventCreate(), "cudaEventCreate") for _ in range(2))
    try:
        cuda_call(rt.cudaEventRecord(start, stream.handle), "cudaEventRecord")
        for _ in range(n):
            launch()
        cuda_call(rt.cudaEventRecord(end, stream.handle), "cudaEventRecord")
        cuda_call(rt.cudaEventSynchronize(end), "cudaEventSynchronize")
        return float(cuda_call(rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime")) / n
    finally:
        rt.cudaEventDestroy(start)
        rt.cudaEventDestroy(end)


def cpu_standin(x: np.ndarray, k: np.ndarray, case: XcorrCase) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Dry run: the export's own correlation (torch grouped conv, float32 on CPU, output rounded to x's dtype)."""
    import torch

    from ...export.models.xcorr import xcorr_depthwise

    with torch.inference_mode():
        y = xcorr_depthwise(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(k.astype(np.float32)))
    return y.numpy().astype(x.dtype), {"guard_intact": True}


def run_cases(rec: SectionRecorder, cases: List[XcorrCase], run: Callable, label: str, seed: int,
              dtypes=DTYPES, workers: Optional[int] = None) -> None:
    """Run every (case, dtype) on ``run`` in order; numpy references are computed in a thread pool meanwhile.

    A case whose reference is not back when the time box ends is recorded as ``timeout``.
    """
    workers = workers or max(1, min(8, (os.cpu_count() or 2) - 1))
    jobs: deque = deque()
    pool = ThreadPoolExecutor(max_workers=workers)

    def record(until_pending: bool) -> None:  # in case order; with until_pending, stop at the first unfinished
        while jobs and not (until_pending and isinstance(jobs[0][2], Future) and not jobs[0][2].done()):
            name, case, job, stats = jobs.popleft()
            rec.add(_case_record(name, case, job, stats, rec.deadline.left()))

    try:
        for i, case in enumerate(cases):
            for dtype in dtypes:
                name = f"{label} {np.dtype(dtype).name} {case.describe()}"
                if rec.deadline.expired():
                    jobs.append((name, case, None, {}))
                    continue
                try:
                    x, k = random_inputs(case, dtype, seed + i)
                    y, stats = run(x, k, case)
                except Exception as e:  # recorded below as this case's error
                    jobs.append((name, case, e, {}))
                    continue
                jobs.append((name, case, pool.submit(compare_xcorr, y, x, k), stats))
                record(until_pending=True)
        record(until_pending=False)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _case_record(name: str, case: XcorrCase, job, stats: Dict[str, Any], time_left: float) -> Dict[str, Any]:
    from .common import error_record

    base = {"shape": {"x": [case.N, case.C, case.H, case.W], "k": [case.N, case.C, case.h, case.w]},
            "planes": case.planes, "used_by": case.used_by, **stats}
    if job is None:
        return {"name": name, "status": TIMEOUT, "reason": "the section's time box was spent first", **base}
    if isinstance(job, BaseException):
        return {**error_record(name, job), **base}
    try:
        cmp = job.result(timeout=max(time_left, 0.01))
    except FutureTimeout:
        return {"name": name, "status": TIMEOUT, "reason": "numpy reference not finished within the time box", **base}
    ok = bool(cmp.pop("ok")) and stats.get("guard_intact", True)
    return check(name, ok, **base, **cmp)


def kernel_section(rec: SectionRecorder, cases: List[XcorrCase], device: str, sm: Optional[int], seed: int) -> None:
    """The whole section (see the module docstring)."""
    rec.info(cases=len(cases), dtypes=[np.dtype(d).name for d in DTYPES], max_planes=max(c.planes for c in cases),
             cases_beyond_65535_planes=sum(c.planes > 65535 for c in cases),
             tolerance="see siamtrt.benchmarks.gpu_check.cases.compare_xcorr")
    if device == "cpu":
        rec.info(implementation="dry run: a CPU stand-in (torch grouped conv, siamtrt.export.models.xcorr) in place "
                                "of the CUDA kernel")
        build_fatbin(rec, sm or 90)
        run_cases(rec, cases, cpu_standin, "cpu-standin(torch conv)", seed)
        return
    from ...gpu import cuda as gcuda
    from ...plugin.kernel import CompiledKernel

    fatbin = build_fatbin(rec, sm)
    gcuda.cuda_call(gcuda.cudart().cudaFree(0), "cudaFree(0)")  # the primary context the driver API loads into
    cc = (sm // 10, sm % 10)
    with gcuda.Stream() as stream:
        if fatbin is not None:
            kernel = _load(rec, "load_fatbin", lambda: CompiledKernel.load(cc, fatbin=fatbin))
        else:
            kernel = _load(rec, "load_nvrtc", lambda: CompiledKernel.load(cc, fatbin=Path("/nonexistent")))
        if kernel is not None:
            run_cases(rec, cases, GpuXcorr(kernel, stream), f"sm_{sm} {'fatbin' if fatbin else 'nvrtc'}", seed)
            kernel.unload()
        if fatbin is not None:  # the Python plugin's fallback when no fatbin was built
            nvrtc = _load(rec, "load_nvrtc", lambda: CompiledKernel.load(cc, fatbin=Path("/nonexistent")))
            if nvrtc is not None:
                picks = [cases[0], max(cases, key=lambda c: (c.planes, -c.macs))]
                run_cases(rec, picks, GpuXcorr(nvrtc, stream), f"sm_{sm} nvrtc", seed + 1000)
                nvrtc.unload()


def load_any(sm: int):
    """The kernel from an nvcc fatbin for ``sm`` when nvcc can build one, else through NVRTC (no check recorded)."""
    from ...plugin import build as pbuild
    from ...plugin.kernel import FATBIN_NAME, CompiledKernel

    cc = (sm // 10, sm % 10)
    nvcc = pbuild.find_nvcc()
    if nvcc is not None and sm in pbuild.supported_archs(nvcc):
        out = Path(tempfile.mkdtemp(prefix="siamtrt-gpucheck-")) / FATBIN_NAME
        return CompiledKernel.load(cc, fatbin=pbuild.compile_kernel(out, archs=[sm], nvcc=nvcc))
    return CompiledKernel.load(cc, fatbin=Path("/nonexistent"))


def _load(rec: SectionRecorder, name: str, load: Callable):
    """Load a kernel module as a check; the module, or None when loading failed."""
    holder = {}

    def attempt() -> Dict[str, Any]:
        t0 = time.perf_counter()
        holder["kernel"] = load()
        return check(name, True, origin=holder["kernel"].origin, seconds=round(time.perf_counter() - t0, 2))

    record = rec.run(name, attempt)
    return holder.get("kernel") if record["status"] == PASS else None
