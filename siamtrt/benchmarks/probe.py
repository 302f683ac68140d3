"""How close to the limit: this machine's FP32 and INT8 GEMM throughput, measured through each inference engine.

A network cannot run faster than the matrix-multiply rate of the engine that executes it. This probe builds two
one-node ONNX models — ``C = A·B`` in float32, and the same product in INT8 Q/DQ form (uint8 activations, int8
per-tensor weights: the layout ``calibration/quantize.py`` gives the convolutions) — runs each through a backend's
own library (ONNX Runtime session, OpenVINO compiled model, with the thread count the benchmark uses) and reports
the best of a few repetitions in GMAC/s (1 MAC = one multiply-add). ``benchmarks/fps.py`` compares it with each
variant's fastest frame: on a shared machine the best observed call is the one closest to the unloaded figure, and a
median would depend on when other jobs ran (on the shared 2-core VM this was written on, the INT8 probe read 614 /
323 GMAC/s (ONNX Runtime / OpenVINO) as a best of 5 in one run and 76 / 77 as a median of 7 in a run 15 minutes
later). ``benchmarks/fps.py`` divides each variant's
search-branch MACs per second by its engine's figure (INT8 for an int8 directory, bf16 for a float one run in bf16,
FP32 otherwise), so a user sees
the headroom on their CPU: 80 % means the network already runs near the engine's matrix rate, 20 % that layout,
memory traffic, float layers or glue cost the rest. Where an engine computes bf16 natively (OpenVINO on an AMX /
AVX512-BF16 CPU) the float models are also timed with the bf16 precision hint: the peak of a float directory that
runs its layers in bf16 (``[bf16]`` in fps.py), which an f32 figure would overstate the headroom against.

Shapes: a ``M = N = K = 1024`` MatMul (1.07 GMAC per call) and two chains of :data:`CONV_DEPTH` 3×3 convolutions,
256 → 256 on 32×32 and 512 → 512 on 16×16 (0.60 GMAC per layer), compute-bound with cache-resident panels on a
desktop or server CPU, small enough to time in well under a second per engine; a precision's peak is its best shape.
Weights are constants (as in the networks); activations are fresh inputs. The convolutions are chained because a
network's are: between two INT8 layers the activations stay int8, while a lone layer pays the float input's
quantization and the output's conversion on every call. On this project's AMX machine a lone INT8 3×3 convolution
read 1.26–1.41 TMAC/s in OpenVINO and a chain of four 2.1 TMAC/s; r50's INT8 search ran at 1.89 TMAC/s, 132 % of the
lone-layer figure (FP32 moves by under 10 %).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from ..errors import BackendError

GEMM_SIZE = 1024
#: the 3x3 convolution probe: channels in = out, spatial side (an implicit GEMM of M = side², N = C, K = 9·C)
CONV_CHANNELS, CONV_SIDE = 256, 32
#: convolutions per conv probe, one after the other (see the module docstring)
CONV_DEPTH = 4
#: activation scale of the INT8 probes (uint8, zero point 128: values in about ±4, the unit-variance activations the
#: probe's weights keep)
ACT_SCALE = 8.0 / 255
#: calls per shape and precision: the best of many short calls is the one the least disturbed by other jobs
DEFAULT_REPS = 20
SHAPES = ("gemm", "conv3x3", "conv3x3-wide")


def _onnx(nodes, inits, a_shape, c_shape, name: str) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("A", TensorProto.FLOAT, a_shape)],
                          [helper.make_tensor_value_info("C", TensorProto.FLOAT, c_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="siamtrt-probe")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def _qdq_weights(w: np.ndarray, axis: Optional[int], suffix: str = ""):
    """int8 symmetric weights (per channel along ``axis``, or per tensor) and their scales, as initializers
    ``Wq``, ``sw``, ``zw`` + ``suffix``."""
    from onnx import numpy_helper

    if axis is None:
        s = np.float32(np.abs(w).max() / 127.0)
        wq = np.clip(np.round(w / s), -127, 127).astype(np.int8)
        z = np.int8(0)
    else:
        s = (np.abs(w).reshape(w.shape[0], -1).max(1) / 127.0).astype(np.float32)
        wq = np.clip(np.round(w / s.reshape((-1,) + (1,) * (w.ndim - 1))), -127, 127).astype(np.int8)
        z = np.zeros(w.shape[0], np.int8)
    return [numpy_helper.from_array(wq, f"Wq{suffix}"), numpy_helper.from_array(s, f"sw{suffix}"),
            numpy_helper.from_array(z, f"zw{suffix}")]


def _quantized_input() -> list:
    """Q/DQ nodes taking the float input A to its int8 form ``Ad`` (activation scale ``sa``, zero point ``za``)."""
    from onnx import helper

    return [helper.make_node("QuantizeLinear", ["A", "sa", "za"], ["Aq"]),
            helper.make_node("DequantizeLinear", ["Aq", "sa", "za"], ["Ad"])]


def _conv_chain(w: Sequence[np.ndarray], int8: bool, act: list) -> Tuple[list, list]:
    """(nodes, initializers) of convolutions with weights ``w`` applied one after the other to input A, output C;
    ``int8``: Q/DQ form (input quantized once, each output requantized: what a quantized network's layers do)."""
    from onnx import helper, numpy_helper

    pads = [w[0].shape[-1] // 2] * 4
    x, nodes, inits = "A", [], list(act)
    if int8:
        nodes, x = _quantized_input(), "Ad"
    for i, wi in enumerate(w):
        last = i == len(w) - 1
        if int8:
            inits += _qdq_weights(wi, 0, suffix=str(i))
            nodes += [helper.make_node("DequantizeLinear", [f"Wq{i}", f"sw{i}", f"zw{i}"], [f"Wd{i}"], axis=0),
                      helper.make_node("Conv", [x, f"Wd{i}"], [f"Cf{i}"], pads=pads),
                      helper.make_node("QuantizeLinear", [f"Cf{i}", "sa", "za"], [f"Cq{i}"]),
                      helper.make_node("DequantizeLinear", [f"Cq{i}", "sa", "za"], ["C" if last else f"X{i}"])]
        else:
            inits.append(numpy_helper.from_array(wi, f"W{i}"))
            nodes.append(helper.make_node("Conv", [x, f"W{i}"], ["C" if last else f"X{i}"], pads=pads))
        x = f"X{i}"
    return nodes, inits


def probe_models(size: int = GEMM_SIZE, channels: int = CONV_CHANNELS, side: int = CONV_SIDE,
                 depth: int = CONV_DEPTH) -> Dict[Tuple[str, str], Tuple[bytes, Tuple[int, ...], float]]:
    """{(shape, precision): (serialised model, input shape, MACs per call)} for shapes "gemm" (``C = A·B``,
    A [size,size] input, B constant), "conv3x3" (``depth`` convolutions channels → channels, side × side, pad 1) and
    "conv3x3-wide" (twice the channels at half the side: the wide, small late layers), each in float32 and in INT8
    Q/DQ form (uint8 asymmetric activations, int8 weights — per tensor for the MatMul, per channel for the
    convolutions, as quantize.py writes them)."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    act = [numpy_helper.from_array(np.float32(ACT_SCALE), "sa"), numpy_helper.from_array(np.uint8(128), "za")]
    out = {}
    b = rng.normal(0, 1, (size, size)).astype(np.float32)
    gemm_in, gemm_macs = (size, size), float(size) ** 3
    out[("gemm", "fp32")] = (_onnx([helper.make_node("MatMul", ["A", "B"], ["C"])], [numpy_helper.from_array(b, "B")],
                                   list(gemm_in), list(gemm_in), "gemm_fp32"), gemm_in, gemm_macs)
    gemm_int8 = _quantized_input() + [helper.make_node("DequantizeLinear", ["Wq", "sw", "zw"], ["Wd"]),
                                      helper.make_node("MatMul", ["Ad", "Wd"], ["C"])]
    out[("gemm", "int8")] = (_onnx(gemm_int8, _qdq_weights(b, None) + act, list(gemm_in), list(gemm_in), "gemm_int8"),
                             gemm_in, gemm_macs)
    for shape, (c, side_) in (("conv3x3", (channels, side)), ("conv3x3-wide", (2 * channels, side // 2))):
        # unit-variance outputs for unit-variance inputs, so every layer of the chain uses the activation range
        w = [rng.normal(0, (9 * c) ** -0.5, (c, c, 3, 3)).astype(np.float32) for _ in range(depth)]
        conv_in, conv_macs = (1, c, side_, side_), float(depth * c * c * 9 * side_ * side_)
        for precision in ("fp32", "int8"):
            nodes, inits = _conv_chain(w, precision == "int8", act)
            out[(shape, precision)] = (_onnx(nodes, inits, list(conv_in), list(conv_in), f"{shape}_{precision}"),
                                       conv_in, conv_macs)
    return out


def _ort_runner(model: bytes, threads: int, hint: str = "f32") -> Callable[[np.ndarray], Any]:
    """ONNX Runtime's CPU provider computes float layers in f32 only: it is never asked for another hint."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return lambda a: sess.run(None, {"A": a})


def _ov_runner(model: bytes, threads: int, hint: str = "f32") -> Callable[[np.ndarray], Any]:
    from ..runtime.openvino import shared_core

    core = shared_core()
    compiled = core.compile_model(core.read_model(model, b""), "CPU",
                                  {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": hint,
                                   "PERFORMANCE_HINT": "LATENCY"})
    req = compiled.create_infer_request()
    return lambda a: req.infer({"A": a}, share_inputs=True, share_outputs=True)


def _ov_has_bf16() -> bool:
    from ..runtime.openvino import cpu_has_bf16

    return cpu_has_bf16()


#: engine → runner factory (model, threads, float precision hint). An engine without an entry is not probed (its
#: share is reported as unknown).
RUNNERS: Dict[str, Callable[[bytes, int, str], Callable[[np.ndarray], Any]]] = {
    "onnxruntime": _ort_runner,
    "openvino": _ov_runner,
}
#: engine → whether it computes bf16 here: its float models are timed again with the bf16 hint where it does
BF16_ENGINES: Dict[str, Callable[[], bool]] = {"openvino": _ov_has_bf16}


@dataclass
class GemmProbe:
    """One engine's matrix throughput on this machine: GMAC/s per probe shape and precision, and the peaks."""

    engine: str
    threads: int
    gmacs: Dict[str, Dict[str, float]]   # shape → precision (fp32, int8, bf16 where timed) → GMAC/s (best call)
    seconds: float

    @property
    def fp32_gmacs(self) -> float:
        return max(v["fp32"] for v in self.gmacs.values())

    @property
    def int8_gmacs(self) -> float:
        return max(v["int8"] for v in self.gmacs.values())

    @property
    def bf16_gmacs(self) -> Optional[float]:
        """The bf16 peak, None where the engine does not compute bf16 here."""
        return max((v["bf16"] for v in self.gmacs.values() if "bf16" in v), default=None)

    def peak(self, precision: str) -> Optional[float]:
        """The figure a variant of ``precision`` is measured against: int8 → the INT8 peak, bf16 → the bf16 peak (None
        where not timed), else FP32."""
        return {"int8": self.int8_gmacs, "bf16": self.bf16_gmacs}.get(precision, self.fp32_gmacs)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.update(fp32_peak_gmacs=self.fp32_gmacs, int8_peak_gmacs=self.int8_gmacs, bf16_peak_gmacs=self.bf16_gmacs)
        return d


def probe_engine(engine: str, threads: int, reps: int = DEFAULT_REPS, size: int = GEMM_SIZE) -> GemmProbe:
    """Measure FP32 and INT8 GMAC/s of the probe shapes through ``engine`` with ``threads`` threads (and bf16 where
    the engine computes it here: :data:`BF16_ENGINES`); the peak of a precision is its best shape (the limit a
    network of that precision can approach on this engine).

    Raises:
        BackendError: no probe for this engine, or its library is missing.
    """
    if engine not in RUNNERS:
        raise BackendError(f"no GEMM probe for the '{engine}' engine", evidence=f"probed: {', '.join(RUNNERS)}")
    t0 = time.perf_counter()
    rng = np.random.default_rng(1)
    gmacs: Dict[str, Dict[str, float]] = {}
    try:
        bf16 = BF16_ENGINES.get(engine, lambda: False)()
    except ImportError:
        bf16 = False  # reported below, by the first runner
    models = probe_models(size)
    jobs = [(shape, precision, "f32") for shape, precision in models]
    jobs += [(shape, "bf16", "bf16") for shape, precision in models if bf16 and precision == "fp32"]
    for shape, precision, hint in jobs:
        model, in_shape, macs = models[(shape, "fp32" if hint == "bf16" else precision)]
        try:
            run = RUNNERS[engine](model, threads, hint)
        except ImportError as e:
            raise BackendError(f"the '{engine}' library is not installed", evidence=repr(e)[:200]) from None
        a = rng.uniform(0, 1, in_shape).astype(np.float32)
        run(a)  # warm-up (first-call allocations, kernel selection)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            run(a)
            times.append(time.perf_counter() - t)
        gmacs.setdefault(shape, {})[precision] = macs / min(times) / 1e9
    return GemmProbe(engine=engine, threads=threads, gmacs=gmacs, seconds=time.perf_counter() - t0)


def probe_engines(engines, threads: int, reps: int = DEFAULT_REPS
                  ) -> Tuple[Dict[str, GemmProbe], Dict[str, str]]:
    """({engine: probe}, {engine: why not probed}) for every engine in ``engines`` (duplicates once)."""
    done: Dict[str, GemmProbe] = {}
    missing: Dict[str, str] = {}
    for e in dict.fromkeys(engines):
        try:
            done[e] = probe_engine(e, threads, reps)
        except BackendError as err:
            missing[e] = err.what
    return done, missing


def share(gmacs: Optional[float], probe: Optional[GemmProbe], precision: str) -> Optional[float]:
    """``gmacs`` as a fraction of the probe's figure for ``precision`` (None when either is unknown)."""
    if gmacs is None or probe is None:
        return None
    peak = probe.peak(precision)
    return float(gmacs / peak) if peak else None


__all__ = ["BF16_ENGINES", "CONV_DEPTH", "GEMM_SIZE", "GemmProbe", "RUNNERS", "SHAPES", "probe_engine",
           "probe_engines", "probe_models", "share"]
