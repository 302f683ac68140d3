"""A simulated CUDA runtime for the CPU tests of siamtrt's CUDA layer (siamtrt.gpu.cuda and what runs on it).

Device memory is host memory, so copies, memsets and "kernels" really move bytes; work enqueued while a stream
capture is open runs only when its graph is launched, as on a GPU. Shared by the runtime's TensorRT backend tests
and the GPU check's tests; real cuda-python calls are covered on a GPU only.
"""

import ctypes

import numpy as np


class SimCudart:
    """A CUDA runtime whose device memory is host memory; captured work runs only when the graph is launched.

    Faults for the negative tests: ``run_at_capture`` (work runs while capturing), ``leak`` (cudaFree keeps the
    memory counted), ``corrupt_d2h`` (device→host copies flip a byte). Counters for the assertions: ``copies``
    (memcpy calls per kind: 1 host→device, 2 device→host, 3 device→device) and ``launched`` (graph launches).
    Kernels and fake engines enqueue their work with :meth:`enqueue` (captured while a capture is open).
    """

    TOTAL = 8 << 30

    class cudaMemcpyKind:  # noqa: N801 (mirrors cuda-python)
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice = 1, 2, 3

    class cudaStreamCaptureMode:  # noqa: N801
        cudaStreamCaptureModeThreadLocal = 1

    class cudaDeviceAttr:  # noqa: N801
        cudaDevAttrComputeCapabilityMajor, cudaDevAttrComputeCapabilityMinor = 75, 76

    def __init__(self, run_at_capture=False, leak=False, corrupt_d2h=False):
        self.blocks, self.device_bytes, self.capturing = {}, {}, None
        self.run_at_capture, self.leak, self.corrupt_d2h = run_at_capture, leak, corrupt_d2h
        self.copies = {1: 0, 2: 0, 3: 0}
        self.launched = 0

    def _alloc(self, n, device):
        buf = np.zeros(max(int(n), 1) + 64, np.uint8)  # slack: a simulated overrun must not corrupt the heap
        self.blocks[buf.ctypes.data] = buf
        if device:
            self.device_bytes[buf.ctypes.data] = max(int(n), 1)
        return 0, buf.ctypes.data

    def cudaMalloc(self, n):
        return self._alloc(n, True)

    def cudaMallocHost(self, n):
        return self._alloc(n, False)

    def cudaFree(self, ptr):
        if int(ptr) and not self.leak:
            self.device_bytes.pop(int(ptr), None)
        return (0,)

    def cudaFreeHost(self, ptr):
        return (0,)

    def cudaMemGetInfo(self):
        return 0, self.TOTAL - sum(self.device_bytes.values()), self.TOTAL

    def cudaGetDeviceCount(self):
        return 0, 1

    def cudaDeviceGetAttribute(self, attr, dev):
        return 0, {75: 9, 76: 0}[attr]

    def enqueue(self, fn):
        if self.capturing is not None:
            self.capturing.append(fn)
            if not self.run_at_capture:
                return (0,)
        fn()
        return (0,)

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        self.copies[kind] += 1

        def copy():
            ctypes.memmove(int(dst), int(src), int(n))
            if self.corrupt_d2h and kind == 2 and n:
                ctypes.memset(int(dst), 0x5A, 1)
        return self.enqueue(copy)

    def cudaMemsetAsync(self, ptr, value, n, stream):
        return self.enqueue(lambda: ctypes.memset(int(ptr), value, int(n)))

    def cudaStreamCreate(self):
        return 0, 42

    def cudaStreamSynchronize(self, s):
        return (0,)

    def cudaStreamDestroy(self, s):
        return (0,)

    def cudaStreamBeginCapture(self, s, mode):
        self.capturing = []
        return (0,)

    def cudaStreamEndCapture(self, s):
        graph, self.capturing = self.capturing, None
        return 0, graph

    def cudaGraphInstantiate(self, graph, flags):
        return 0, list(graph)

    def cudaGraphLaunch(self, exec_, s):
        self.launched += 1
        for fn in exec_:
            fn()
        return (0,)

    def cudaGraphExecDestroy(self, e):
        return (0,)

    def cudaGraphDestroy(self, g):
        return (0,)

    def cudaGetErrorName(self, err):
        return 0, b"cudaErrorSimulated"

    def cudaEventCreate(self):
        return 0, object()

    def cudaEventRecord(self, event, stream):
        return (0,)

    def cudaEventSynchronize(self, event):
        return (0,)

    def cudaEventElapsedTime(self, start, end):
        return 0, 2.0

    def cudaEventDestroy(self, event):
        return (0,)
