"""Section ``cuda_layer``: the runtime's CUDA layer (:mod:`siamtrt.gpu.cuda`) against host copies.

What the TensorRT backend relies on, each checked by bytes coming back equal: DeviceBuffer / PinnedBuffer
allocation and release (device memory returns to the pool), Stream H2D / D2D / D2H round trips from pinned and
pageable memory, many copies in flight on one stream with one synchronize, CUDA-graph capture (work captured is not
run until launched) and replay with new input values in the same pinned buffers, a failed capture leaving the
stream usable (the backend's fallback), and a graph of a real kernel launch (the DepthwiseXCorr kernel) against numpy.

Every check reaches CUDA only through ``siamtrt.gpu.cuda`` (looked up at call time), so the tests can run the same
checks against a simulated runtime on a machine without a GPU.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ...gpu import cuda as gcuda
from .common import SectionRecorder, check

MiB = 1 << 20
ROUND_TRIP_SIZES = (1, 4099, MiB, 64 * MiB)
RELEASE_BYTES = 512 * MiB
RELEASE_SLACK = 64 * MiB  # allocator granularity and other processes' drift


def check_probe_agrees() -> Dict[str, Any]:
    """The ctypes probe (used before any TensorRT object exists) sees what the CUDA runtime sees."""
    rt = gcuda.cudart()
    probe = gcuda.probe_cuda()
    count = gcuda.cuda_call(rt.cudaGetDeviceCount(), "cudaGetDeviceCount")
    attr = rt.cudaDeviceAttr
    major = gcuda.cuda_call(rt.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMajor, 0), "major")
    minor = gcuda.cuda_call(rt.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMinor, 0), "minor")
    want = probe.devices[0].compute_capability if probe.devices else None
    return check("probe_agrees_with_cudart", int(count) == len(probe.devices) and want == (int(major), int(minor)),
                 probe_devices=len(probe.devices), cudart_devices=int(count), probe_cc=want,
                 cudart_cc=[int(major), int(minor)])


def check_round_trips(rng: np.random.Generator) -> Dict[str, Any]:
    """host → DeviceBuffer → DeviceBuffer → PinnedBuffer and pinned → device → pageable, for several sizes."""
    bad = []
    for n in ROUND_TRIP_SIZES:
        src = rng.integers(0, 256, n, dtype=np.uint8)
        with gcuda.Stream() as s, gcuda.DeviceBuffer(n) as a, gcuda.DeviceBuffer(n) as b, \
                gcuda.PinnedBuffer((n,), np.uint8) as pin:
            pin.array[...] = 0
            s.htod(a, src)                 # pageable → device
            s.dtod(b.ptr, a.ptr, n)        # device → device
            s.dtoh(pin.array, b.ptr)       # device → pinned
            s.synchronize()
            if not np.array_equal(pin.array, src):
                bad.append(f"{n} B pageable→device→device→pinned")
            pin.array[...] = src[::-1]
            back = np.zeros(n, np.uint8)
            s.htod(b, pin.array)           # pinned → device
            s.dtoh(back, b.ptr)            # device → pageable
            s.synchronize()
            if not np.array_equal(back, src[::-1]):
                bad.append(f"{n} B pinned→device→pageable")
    return check("stream_round_trips", not bad, sizes=list(ROUND_TRIP_SIZES), mismatches=bad)


def check_release() -> Dict[str, Any]:
    """DeviceBuffer takes device memory and free() gives it back; free() twice is harmless; ptr becomes 0."""
    rt = gcuda.cudart()
    free0, total = gcuda.cuda_call(rt.cudaMemGetInfo(), "cudaMemGetInfo")
    buf = gcuda.DeviceBuffer(RELEASE_BYTES)
    free1, _ = gcuda.cuda_call(rt.cudaMemGetInfo(), "cudaMemGetInfo")
    buf.free()
    buf.free()
    free2, _ = gcuda.cuda_call(rt.cudaMemGetInfo(), "cudaMemGetInfo")
    taken, returned = int(free0) - int(free1), int(free2) - int(free1)
    ok = taken >= RELEASE_BYTES and returned >= RELEASE_BYTES - RELEASE_SLACK and buf.ptr == 0
    return check("device_memory_released", ok, bytes=RELEASE_BYTES, taken=taken, returned=returned,
                 total=int(total))


def check_pinned_views() -> Dict[str, Any]:
    """PinnedBuffer: shape, dtype, views sharing its memory (smaller batches reuse it), release."""
    pin = gcuda.PinnedBuffer((4, 3, 5, 7), np.float16)
    view = pin.view((2, 3, 5, 7))
    view[...] = 1.5
    ok = (pin.array.shape == (4, 3, 5, 7) and pin.array.dtype == np.float16 and pin.nbytes == 4 * 3 * 5 * 7 * 2
          and np.shares_memory(view, pin.array) and bool((pin.array[:2] == 1.5).all()))
    pin.free()
    pin.free()
    return check("pinned_buffer_views", ok and pin.ptr == 0 and pin.array is None)


def check_stream_order(rng: np.random.Generator, rounds: int = 64) -> Dict[str, Any]:
    """``rounds`` H2D → D2D → D2H chains queued on one stream, one synchronize: every result lands in order."""
    n = 256 * 1024
    srcs = [gcuda.PinnedBuffer((n,), np.uint8) for _ in range(rounds)]
    dsts = [gcuda.PinnedBuffer((n,), np.uint8) for _ in range(rounds)]
    try:
        with gcuda.Stream() as s, gcuda.DeviceBuffer(n) as a, gcuda.DeviceBuffer(n) as b:
            for src, dst in zip(srcs, dsts):
                src.array[...] = rng.integers(0, 256, n, dtype=np.uint8)
                dst.array[...] = 0
                s.htod(a, src.array)
                s.dtod(b.ptr, a.ptr, n)
                s.dtoh(dst.array, b.ptr)
            s.synchronize()
            wrong = [i for i, (src, dst) in enumerate(zip(srcs, dsts)) if not np.array_equal(src.array, dst.array)]
    finally:
        for buf in srcs + dsts:
            buf.free()
    return check("stream_ordering", not wrong, rounds=rounds, bytes=n, wrong_rounds=wrong[:10])


def check_graph_memcpy(rng: np.random.Generator, replays: int = 5) -> Dict[str, Any]:
    """CudaGraph of H2D → D2D → D2H: nothing runs at capture; each replay copies the pinned input's new values."""
    n = 1 * MiB
    with gcuda.Stream() as s, gcuda.DeviceBuffer(n) as a, gcuda.DeviceBuffer(n) as b, \
            gcuda.PinnedBuffer((n,), np.uint8) as pin_in, gcuda.PinnedBuffer((n,), np.uint8) as pin_out:
        pin_in.array[...] = 7
        pin_out.array[...] = 0
        graph = gcuda.CudaGraph(s)

        def enqueue() -> bool:
            s.htod(a, pin_in.array)
            s.dtod(b.ptr, a.ptr, n)
            s.dtoh(pin_out.array, b.ptr)
            return True

        captured = graph.capture(enqueue)
        s.synchronize()
        ran_at_capture = bool((pin_out.array != 0).any())
        wrong = []
        try:
            for r in range(replays if captured else 0):
                pin_in.array[...] = rng.integers(0, 256, n, dtype=np.uint8)
                graph.launch()
                s.synchronize()
                if not np.array_equal(pin_out.array, pin_in.array):
                    wrong.append(r)
        finally:
            graph.free()
    return check("graph_memcpy_replay", captured and not ran_at_capture and not wrong, captured=captured,
                 ran_at_capture=ran_at_capture, replays=replays, wrong_replays=wrong)


def check_failed_capture_is_clean(rng: np.random.Generator) -> Dict[str, Any]:
    """An enqueue that reports failure: capture() returns False, keeps no graph, and the stream still copies."""
    n = 4096
    with gcuda.Stream() as s, gcuda.DeviceBuffer(n) as a:
        graph = gcuda.CudaGraph(s)
        captured = graph.capture(lambda: False)
        src = rng.integers(0, 256, n, dtype=np.uint8)
        back = np.zeros(n, np.uint8)
        s.htod(a, src)
        s.dtoh(back, a.ptr)
        s.synchronize()
    return check("failed_capture_falls_back", captured is False and graph.exec is None and graph.graph is None
                 and np.array_equal(src, back), captured=captured)


def check_graph_kernel(kernel: Any, rng: np.random.Generator, replays: int = 3) -> Dict[str, Any]:
    """CudaGraph of H2D x, k → DepthwiseXCorr launch → D2H y, replayed with new inputs, against numpy."""
    from .cases import XcorrCase, compare_xcorr

    case = XcorrCase(1, 256, 29, 29, 5, 5)  # pysot SiamRPN++ level (see cases.correlation_cases)
    results: List[Dict[str, Any]] = []
    with gcuda.Stream() as s, gcuda.PinnedBuffer(case.shape_key[:4], np.float32) as x, \
            gcuda.PinnedBuffer((1, 256, 5, 5), np.float32) as k, gcuda.PinnedBuffer(case.out_shape, np.float32) as y, \
            gcuda.DeviceBuffer(x.nbytes) as dx, gcuda.DeviceBuffer(k.nbytes) as dk, gcuda.DeviceBuffer(y.nbytes) as dy:
        graph = gcuda.CudaGraph(s)

        def enqueue() -> bool:
            s.htod(dx, x.array)
            s.htod(dk, k.array)
            kernel.launch(np.float32, dx.ptr, dk.ptr, dy.ptr, *case.shape_key, s.ptr)
            s.dtoh(y.array, dy.ptr)
            return True

        captured = graph.capture(enqueue)
        try:
            for _ in range(replays if captured else 0):
                x.array[...] = rng.standard_normal(x.shape, dtype=np.float32)
                k.array[...] = rng.standard_normal(k.shape, dtype=np.float32)
                y.array[...] = np.nan
                graph.launch()
                s.synchronize()
                results.append(compare_xcorr(y.array.copy(), x.array, k.array))
        finally:
            graph.free()
    ok = captured and len(results) == replays and all(r["ok"] for r in results)
    return check("graph_kernel_replay", ok, captured=captured, replays=len(results),
                 max_err_over_tol=max((r.get("max_err_over_tol", float("inf")) for r in results), default=None))


def cuda_layer_checks(kernel_loader: Optional[Callable[[], Any]] = None,
                      seed: int = 0) -> List[Callable[[], Dict[str, Any]]]:
    """The checks in order (each a no-argument callable); the kernel graph only when a kernel loader is given."""
    rng = np.random.default_rng(seed)
    checks = [check_probe_agrees, lambda: check_round_trips(rng), check_release, check_pinned_views,
              lambda: check_stream_order(rng), lambda: check_graph_memcpy(rng),
              lambda: check_failed_capture_is_clean(rng)]
    if kernel_loader is not None:
        checks.append(lambda: check_graph_kernel(kernel_loader(), rng))
    return checks


CHECK_NAMES = ("probe_agrees_with_cudart", "stream_round_trips", "device_memory_released", "pinned_buffer_views",
               "stream_ordering", "graph_memcpy_replay", "failed_capture_falls_back", "graph_kernel_replay")


def cuda_layer_section(rec: SectionRecorder, sm: int, seed: int = 0) -> None:
    """Run every check; the kernel graph uses the kernel built by nvcc for ``sm`` (NVRTC without nvcc)."""
    from .kernel_check import load_any

    gcuda.cuda_call(gcuda.cudart().cudaFree(0), "cudaFree(0)")
    loaded: Dict[str, Any] = {}

    def loader():
        loaded["k"] = load_any(sm)
        return loaded["k"]

    for name, fn in zip(CHECK_NAMES, cuda_layer_checks(loader, seed)):
        rec.run(name, fn)
    if "k" in loaded:
        rec.info(graph_kernel_module=loaded["k"].origin)
        loaded["k"].unload()
