"""The engines' matrix-throughput probe (benchmarks/probe.py): the INT8 probe computes the same product as the FP32
one, OpenVINO runs it with int8 kernels, and shares are what they say."""

import numpy as np
import pytest

from siamtrt.benchmarks.probe import CONV_DEPTH, GemmProbe, probe_engine, probe_models, share
from siamtrt.errors import BackendError


def _run_ort(model, a):
    import onnxruntime as ort

    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"A": a})[0]


def test_probe_models_compute_the_same_product():
    models = probe_models(size=64, channels=16, side=8)
    assert set(models) == {(s, p) for s in ("gemm", "conv3x3", "conv3x3-wide") for p in ("fp32", "int8")}
    assert models[("gemm", "fp32")][2] == 64 ** 3 and models[("conv3x3", "fp32")][2] == CONV_DEPTH * 16 * 16 * 9 * 8 * 8
    rng = np.random.default_rng(0)
    for shape in ("gemm", "conv3x3", "conv3x3-wide"):
        a = rng.uniform(0, 1, models[(shape, "fp32")][1]).astype(np.float32)
        ref, q = _run_ort(models[(shape, "fp32")][0], a), _run_ort(models[(shape, "int8")][0], a)
        cos = float(np.ravel(ref) @ np.ravel(q) / (np.linalg.norm(ref) * np.linalg.norm(q)))
        assert cos > 0.99, shape  # the int8 probe is the same matrix product, rounded


def test_openvino_runs_the_int8_probe_with_int8_kernels():
    pytest.importorskip("openvino", reason="openvino is not installed")
    from siamtrt.runtime.openvino import shared_core

    core = shared_core()
    models = probe_models(size=128, channels=32, side=16)
    for shape, layer in (("gemm", ("FullyConnected", "MatMul")), ("conv3x3", ("Convolution",))):
        compiled = core.compile_model(core.read_model(models[(shape, "int8")][0], b""), "CPU",
                                      {"INFERENCE_PRECISION_HINT": "f32"})
        prims = [op.get_rt_info()["runtimePrecision"].astype(str)
                 for op in compiled.get_runtime_model().get_ordered_ops()
                 if op.get_rt_info()["layerType"].astype(str) in layer]
        # every layer of the chain in int8 (a float layer in it would make the INT8 peak a mixed figure)
        assert len(prims) == (1 if shape == "gemm" else CONV_DEPTH), (shape, prims)
        assert all(p in ("u8", "i8") for p in prims), (shape, prims)


def test_probe_engine_and_share():
    p = probe_engine("onnxruntime", threads=1, reps=1)
    assert set(p.gmacs) == {"gemm", "conv3x3", "conv3x3-wide"} and p.fp32_gmacs == max(v["fp32"] for v in p.gmacs.values())
    assert p.peak("int8") == p.int8_gmacs and p.peak("fp16") == p.fp32_gmacs
    fake = GemmProbe("x", 1, {"gemm": {"fp32": 50.0, "int8": 200.0}}, 0.0)
    assert share(20.0, fake, "fp32") == pytest.approx(0.4) and share(20.0, fake, "int8") == pytest.approx(0.1)
    assert share(None, fake, "fp32") is None and share(20.0, None, "fp32") is None
    with pytest.raises(BackendError, match="no GEMM probe"):
        probe_engine("tensorrt", threads=1)


def test_openvino_probe_times_bf16_where_the_cpu_computes_it():
    """The float models again with the bf16 hint, on a CPU with bf16 units only; the bf16 peak is what a float
    directory run in bf16 is measured against, and an engine without bf16 has none."""
    pytest.importorskip("openvino", reason="openvino is not installed")
    from siamtrt.runtime.openvino import cpu_has_bf16

    p = probe_engine("openvino", threads=1, reps=1)
    if cpu_has_bf16():
        assert all(set(v) == {"fp32", "int8", "bf16"} for v in p.gmacs.values())
        assert p.peak("bf16") == p.bf16_gmacs == max(v["bf16"] for v in p.gmacs.values())
        assert p.to_dict()["bf16_peak_gmacs"] == p.bf16_gmacs
    else:
        assert p.bf16_gmacs is None and p.peak("bf16") is None
    fake = GemmProbe("x", 1, {"gemm": {"fp32": 50.0, "int8": 200.0}}, 0.0)
    assert fake.bf16_gmacs is None and fake.peak("bf16") is None and share(20.0, fake, "bf16") is None
