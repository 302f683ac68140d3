"""Engine building (siamtrt/export/engine.py, export/build_engine.py) on the CPU with tensorrt_rtx.

tensorrt_rtx builds engines without a GPU, so CI parses and builds the realistic alex and mobilev2 exports in conv
mode at FP32, FP16 (converted here: the builder is strongly typed) and INT8 (a Q/DQ model made below with
onnxruntime's quantize_static), checks the sidecars, and checks every refusal (plugin mode on a builder without plugin
layers — in a subprocess, because that parser aborts the process on a plugin node —, INT8 without Q/DQ, precision
lowering, fixed-batch exports). Running the engines needs a GPU: tests/runtime/test_trt.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from siamtrt.errors import EngineError
from siamtrt.export.engine import build_engine, cache_calibrator, fp16_copy, plan_precision
from siamtrt.export.trt_compat import BuilderCaps, detect
from siamtrt.metadata import file_sha256, read_onnx_metadata, set_onnx_metadata

REPO = Path(__file__).resolve().parents[2]
trt_rtx = pytest.importorskip("tensorrt_rtx", reason="tensorrt_rtx (the CPU-capable builder) is not installed")

from siamtrt.gpu.tensorrt import TrtModule, import_tensorrt
from siamtrt.runtime.engines import read_sidecar  # noqa: E402

RTX = TrtModule(trt_rtx, "tensorrt_rtx", trt_rtx.__version__)
MODELS = ["siamrpn_alex_dwxcorr", "siamrpn_mobilev2_l234_dwxcorr"]


def _caps(**kw) -> BuilderCaps:
    base = dict(package="tensorrt", version="10.3.0", weak_typing=True, int8_flag=True, int8_calibrator=True,
                strongly_typed=True,
                explicit_batch_flag=True, plugin_v3_layers=True, plugin_v2_layers=True, python_plugin_v3=True,
                engine_inspector=True, progress_monitor=True, timing_cache=True, memory_pools=True)
    base.update(kw)
    return BuilderCaps(**base)


# ------------------------------------------------------------------------------------------ QDQ helper
def make_qdq_dir(src: Path, dst: Path, samples: int = 3) -> Path:
    """A symmetric INT8 Q/DQ copy of a model directory (onnxruntime quantize_static on random crops), with metadata
    precision "int8" — the form calibration/quantize.py --target tensorrt writes. Correlation convs are excluded."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, feeds):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    dst.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tsess = ort.InferenceSession(str(src / "template.onnx"), providers=["CPUExecutionProvider"])
    meta = read_onnx_metadata(src / "search.onnx")
    e, s = meta["exemplar_size"], meta["instance_size"]
    zs = [rng.uniform(0, 255, (1, 3, e, e)).astype(np.float32) for _ in range(samples)]
    feeds = {"template": [{"template": z} for z in zs],
             "search": [dict(zip([o.name for o in tsess.get_outputs()], tsess.run(None, {"template": z})),
                             search=rng.uniform(0, 255, (1, 3, s, s)).astype(np.float32)) for z in zs]}
    for branch in ("template", "search"):
        path = src / f"{branch}.onnx"
        model = onnx.load(str(path), load_external_data=False)
        inits = {i.name for i in model.graph.initializer}
        runtime_weight = [n.name for n in model.graph.node if n.op_type == "Conv" and n.input[1] not in inits]
        out = dst / f"{branch}.onnx"
        quantize_static(str(path), str(out), Reader(feeds[branch]), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                        nodes_to_exclude=runtime_weight,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
        q = onnx.load(str(out))
        m = read_onnx_metadata(path)
        m.update(precision="int8", quantization={"tool": "onnxruntime.quantize_static (test)", "samples": samples})
        set_onnx_metadata(q, m)
        onnx.save(q, str(out))
    return dst


@pytest.fixture(scope="module")
def qdq_dir(model_dir, tmp_path_factory):
    cache = {}

    def make(name):
        if name not in cache:
            cache[name] = make_qdq_dir(model_dir(name), tmp_path_factory.mktemp("qdq") / name)
        return cache[name]

    return make


# ------------------------------------------------------------------------------------------ capabilities
def test_tensorrt_rtx_capabilities_are_detected():
    caps = detect(RTX)
    assert caps.package == "tensorrt_rtx"
    assert caps.strongly_typed and not caps.weak_typing and not caps.int8_flag
    assert not caps.plugin_layers  # tensorrt_rtx 1.x networks have no add_plugin_v3 / add_plugin_v2
    assert caps.python_plugin_v3
    assert "strongly typed only" in caps.describe() and "no plugin layers" in caps.describe()


def test_import_tensorrt_helper_and_unknown_package(monkeypatch):
    import_tensorrt.cache_clear()
    try:
        monkeypatch.setenv("SIAMTRT_TENSORRT", "tensorrt_rtx")
        assert import_tensorrt().package == "tensorrt_rtx"
        import_tensorrt.cache_clear()
        monkeypatch.setenv("SIAMTRT_TENSORRT", "tensorrt_lean")
        with pytest.raises(EngineError, match="unknown TensorRT package"):
            import_tensorrt()
    finally:
        import_tensorrt.cache_clear()


# ------------------------------------------------------------------------------------------ precision plans
@pytest.mark.parametrize("caps_kw, onnx_prec, want, expect", [
    # weakly typed builders (TensorRT 8.x / 10.x): flags on an FP32 network
    (dict(strongly_typed=False), "fp32", "fp16", ("fp16", False, ("FP16",), False)),
    (dict(), "fp32", "fp16", ("fp16", False, ("FP16",), False)),
    (dict(strongly_typed=False), "int8", "int8", ("int8", False, ("INT8",), False)),
    # strongly typed only (TensorRT 11, tensorrt_rtx): precision from the ONNX, FP16 converted here
    (dict(weak_typing=False, int8_flag=False), "fp32", "fp16", ("fp16", True, (), True)),
    (dict(weak_typing=False, int8_flag=False), "int8", "int8", ("int8", True, (), False)),
    (dict(weak_typing=False, int8_flag=False), "fp16", "fp16", ("fp16", True, (), False)),
    (dict(), "int8", "int8", ("int8", True, (), False)),
    (dict(), "fp32", "fp32", ("fp32", True, (), False)),
])
def test_precision_plan(tmp_path, caps_kw, onnx_prec, want, expect):
    p = plan_precision(want, onnx_prec, _caps(**caps_kw), tmp_path, "search")
    assert (p.precision, p.strongly_typed, p.flags, p.convert_fp16) == expect


def test_int8_without_qdq_says_how_to_quantize(tmp_path):
    with pytest.raises(EngineError) as e:
        plan_precision("int8", "fp32", _caps(), tmp_path / "mv2", "search")
    msg = str(e.value)
    assert "siamtrt quantize --model" in msg and "--precision int8 --target tensorrt" in msg
    assert "--out" in msg and "mv2-int8" in msg


def test_implicit_int8_plan_needs_calibrators(tmp_path):
    p = plan_precision("int8", "fp32", _caps(), tmp_path / "mv2", "search", calib=True)
    assert (p.precision, p.strongly_typed, p.flags, p.calibration_cache) == ("int8", False, ("INT8", "FP16"), True)
    assert "calibration cache" in p.describe()
    with pytest.raises(EngineError, match="no implicit INT8") as e:  # TensorRT 11 / tensorrt_rtx
        plan_precision("int8", "fp32", _caps(int8_calibrator=False, int8_flag=False, weak_typing=False),
                       tmp_path / "mv2", "search", calib=True)
    assert "--target tensorrt" in str(e.value)


def test_cache_calibrator_serves_the_cache_and_no_data(tmp_path):
    """The calibrator TensorRT 8.x-10.x calls: the cache bytes on read, no batches, no overwrite."""
    class Base:  # stands in for tensorrt.IInt8EntropyCalibrator2 (full TensorRT is not installable here)
        def __init__(self):
            self.base_init = True

    cache = tmp_path / "search.calib.cache"
    cache.write_bytes(b"TRT-100300-EntropyCalibration2\nsearch: 3c010204\n")
    cal = cache_calibrator(SimpleNamespace(IInt8EntropyCalibrator2=Base), cache)
    assert isinstance(cal, Base) and cal.base_init
    assert cal.read_calibration_cache() == cache.read_bytes()
    assert cal.get_batch(["search"]) is None and cal.get_batch_size() == 1
    cal.write_calibration_cache(b"other")
    assert cache.read_bytes().startswith(b"TRT-100300")


def test_calib_on_tensorrt_rtx_is_refused_before_any_work(model_dir, tmp_path):
    src = model_dir("siamrpn_alex_dwxcorr")
    (tmp_path / "calib.npz").write_bytes(b"never read: the refusal comes first")
    with pytest.raises(EngineError, match="no implicit INT8"):
        build_engine(src, precision="int8", calib=tmp_path / "calib.npz", out_dir=tmp_path, progress=False,
                     trt=RTX)
    with pytest.raises(EngineError, match="--calib is for --int8"):
        build_engine(src, precision="fp16", calib=tmp_path / "calib.npz", out_dir=tmp_path, progress=False,
                     trt=RTX)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.npz"]  # no engine, no cache, no staging folder


@pytest.mark.parametrize("want, have", [("fp32", "fp16"), ("fp32", "int8"), ("fp16", "int8")])
def test_precision_is_never_lowered_silently(tmp_path, want, have):
    with pytest.raises(EngineError, match=f"cannot build a {want} engine"):
        plan_precision(want, have, _caps(), tmp_path, "template")


# ------------------------------------------------------------------------------------------ real builds
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_conv_mode(model_dir, tmp_path, name, precision):
    src = model_dir(name)
    report = build_engine(src, precision=precision, out_dir=tmp_path, progress=False, trt=RTX)
    assert [e.branch for e in report.engines] == ["template", "search"]
    for e in report.engines:
        assert e.engine == tmp_path / f"{e.branch}.engine" and e.engine.stat().st_size > 100_000
        side = read_sidecar(e.engine)
        assert side["tensorrt"] == {"package": "tensorrt_rtx", "version": trt_rtx.__version__}
        assert side["precision"] == precision == side["metadata"]["precision"]
        assert side["xcorr"] == "conv" and side["typing"] == "strong"
        assert side["gpu"]["built_without_gpu"] and side["gpu"]["name"] == "built without GPU"
        assert side["engine"]["sha256"] == file_sha256(e.engine)
        onnx_file = src / f"{e.branch}.onnx"
        assert side["source_onnx"] == {"file": onnx_file.name, "path": str(onnx_file.resolve()),
                                       "sha256": file_sha256(onnx_file)}
        assert side["build_options"]["converted_fp16"] == (precision == "fp16")
        assert side["metadata"]["arch"] == name and side["metadata"]["branch"] == e.branch
        assert side["rebuild_command"].startswith("siamtrt build --model ")
        assert f"--{precision}" in side["rebuild_command"] and str(tmp_path) in side["rebuild_command"]
        types = e.layers["network_output_types"]
        if precision == "fp16":  # strongly typed network from the converted ONNX: the convolutions run in HALF
            assert types.get("HALF", 0) > types.get("FLOAT", 0)
        else:
            assert "HALF" not in types
    assert read_sidecar(tmp_path / "search.engine")["profile"]["batch"] == {"fixed": 1}
    assert "search.engine" in report.summary() and "tensorrt_rtx" in report.summary()
    assert f"model: {src} [{name}, " in report.summary() and "weights checkpoint (sha256 " in report.summary()


@pytest.mark.parametrize("name", MODELS)
def test_build_int8_qdq(qdq_dir, tmp_path, name):
    report = build_engine(qdq_dir(name), precision="int8", out_dir=tmp_path, progress=False, trt=RTX)
    for e in report.engines:
        assert e.plan.precision == "int8" and e.plan.strongly_typed and not e.plan.flags
        assert e.layers["network_output_types"].get("INT8", 0) > 0
        assert read_sidecar(e.engine)["metadata"]["quantization"]["samples"] == 3
    # default precision = the directory's: the same build without --int8
    again = build_engine(qdq_dir(name), out_dir=tmp_path / "default", progress=False, trt=RTX, branches=["template"])
    assert again.engines[0].plan.precision == "int8"


@pytest.mark.slow
def test_build_r50_fp16(model_dir, tmp_path):
    report = build_engine(model_dir("siamrpn_r50_l234_dwxcorr"), precision="fp16", out_dir=tmp_path,
                          progress=False, trt=RTX)
    assert len(report.engines) == 2 and all(e.engine.stat().st_size > 1_000_000 for e in report.engines)


def test_multi_target_profiles(model_dir, tmp_path):
    """Template: a 1..N profile. Conv-mode search: a fixed batch of N (the correlation's N*C must be static)."""
    report = build_engine(model_dir("siamrpn_alex_dwxcorr"), max_batch=3, opt_batch=2, out_dir=tmp_path,
                          progress=False, trt=RTX)
    t = read_sidecar(tmp_path / "template.engine")["profile"]
    assert t["batch"] == {"min": 1, "opt": 2, "max": 3}
    assert t["shapes"]["template"] == {"min": [1, 3, 127, 127], "opt": [2, 3, 127, 127], "max": [3, 3, 127, 127]}
    s = read_sidecar(tmp_path / "search.engine")
    assert s["profile"]["batch"] == {"fixed": 3} and s["io"]["search"]["shape"][0] == 3
    assert "--max-batch 3 --opt-batch 2" in s["rebuild_command"]
    assert any("fixed batch of 3" in n for n in report.notes)


def test_fp16_conversion_keeps_the_numbers(model_dir):
    """The FP16 copy build_engine parses (the guarded converter, incl. the dynamic-batch correlation's Cast) still
    computes the model."""
    import onnx
    import onnxruntime as ort

    src = model_dir("siamrpn_alex_dwxcorr")
    meta = read_onnx_metadata(src / "search.onnx")
    m16, kept = fp16_copy(onnx.load(str(src / "search.onnx")), "search", src, meta)
    assert kept  # stem and correlations at least
    rng = np.random.default_rng(0)
    t = ort.InferenceSession(str(src / "template.onnx"), providers=["CPUExecutionProvider"])
    kernels = dict(zip([o.name for o in t.get_outputs()],
                       t.run(None, {"template": rng.uniform(0, 255, (2, 3, 127, 127)).astype(np.float32)})))
    feed = dict(kernels, search=rng.uniform(0, 255, (2, 3, 287, 287)).astype(np.float32))
    ref = ort.InferenceSession(str(src / "search.onnx"), providers=["CPUExecutionProvider"]).run(None, feed)
    half = ort.InferenceSession(m16.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
    for a, b in zip(ref, half):
        assert b.dtype == np.float32  # I/O stays float32
        assert np.abs(a - b).max() <= 0.02 * np.abs(a).max() + 1e-3


GUARD_NODE = "siamtrt_guard_big"


def _with_overflowing_node(src: Path, dst: Path) -> Path:
    """A copy of ``src`` whose search branch scales one mid-network activation by 1e5 and back: the FP32 output is
    unchanged, the intermediate exceeds FP16's 65504 range (an FP16 node there would give inf)."""
    import onnx
    from onnx import helper, numpy_helper

    shutil.copytree(src, dst)
    m = onnx.load(str(dst / "search.onnx"))
    relu = [n for n in m.graph.node if n.op_type == "Relu"][3]
    t = relu.output[0]
    m.graph.initializer.extend([numpy_helper.from_array(np.array(1e5, np.float32), "guard_up"),
                                numpy_helper.from_array(np.array(1e-5, np.float32), "guard_down")])
    for n in m.graph.node:
        for i, name in enumerate(n.input):
            if name == t:
                n.input[i] = "guard_back"
    at = list(m.graph.node).index(relu) + 1
    m.graph.node.insert(at, helper.make_node("Mul", [t, "guard_up"], ["guard_big"], name=GUARD_NODE))
    m.graph.node.insert(at + 1, helper.make_node("Mul", ["guard_big", "guard_down"], ["guard_back"],
                                                 name="siamtrt_guard_back"))
    onnx.save(m, str(dst / "search.onnx"))
    return dst


def test_fp16_guard_keeps_an_overflowing_node_fp32_on_both_paths(model_dir, tmp_path):
    """One converter, one guard: a node whose FP32 output exceeds the FP16 range stays FP32 in
    ``quantize.py --precision fp16`` (no crops: the seeded-noise probe) and in ``build_engine --fp16`` on
    tensorrt_rtx (the strongly typed network from the guarded FP16 copy). Without the guard it would be FP16."""
    import onnx

    from siamtrt.calibration.fp16 import convert_fp16, half_model

    src = _with_overflowing_node(model_dir("siamrpn_alex_dwxcorr"), tmp_path / "big")
    # feature off: the converter without range feeds turns the node FP16
    unguarded, kept = half_model(onnx.load(str(src / "search.onnx")), "search")
    assert GUARD_NODE not in kept
    # path 1: quantize.py --precision fp16
    summary = convert_fp16(src, tmp_path / "fp16")
    search = next(b for b in summary.branches if b.branch == "search")
    assert GUARD_NODE in search.excluded
    m16 = onnx.load(str(tmp_path / "fp16" / "search.onnx"))
    node = next(n for n in m16.graph.node if n.name == GUARD_NODE)
    inits = {i.name: i.data_type for i in m16.graph.initializer}
    assert inits[node.input[1]] == onnx.TensorProto.FLOAT  # its constant stayed float32: the node computes FP32
    # path 2: build_engine --fp16 on tensorrt_rtx
    report = build_engine(src, precision="fp16", out_dir=tmp_path / "engine", progress=False, trt=RTX,
                          branches=["search"])
    dtypes = report.engines[0].layers["network_layer_dtypes"]
    assert dtypes[GUARD_NODE] == "FLOAT", {k: v for k, v in dtypes.items() if "guard" in k}
    assert sum(v == "HALF" for v in dtypes.values()) > sum(v == "FLOAT" for v in dtypes.values())


def test_without_tensorrt_the_hint_is_the_rtx_extra(monkeypatch):
    import siamtrt.export.engine as eng

    def missing(prefer=None):
        raise EngineError("TensorRT is not installed", evidence="tensorrt_rtx: No module named 'tensorrt_rtx'")

    monkeypatch.setattr(eng, "import_tensorrt", missing)
    with pytest.raises(EngineError) as e:
        eng._import_builder()
    assert 'pip install -e ".[rtx]"' in str(e.value) and "pip install tensorrt-rtx" not in str(e.value)


def test_timing_cache_note_on_tensorrt_rtx(model_dir, tmp_path):
    report = build_engine(model_dir("siamrpn_alex_dwxcorr"), timing_cache=tmp_path / "tc.bin", out_dir=tmp_path,
                          progress=False, trt=RTX, branches=["template"])
    assert any("timing caches as no-ops" in n for n in report.notes)
    assert not (tmp_path / "tc.bin").exists()


# ------------------------------------------------------------------------------------------ refusals
def test_int8_on_fp32_dir_raises_with_quantize_command(model_dir, tmp_path):
    src = model_dir("siamrpn_alex_dwxcorr")
    with pytest.raises(EngineError, match="needs a quantized") as e:
        build_engine(src, precision="int8", out_dir=tmp_path, progress=False, trt=RTX)
    assert f"siamtrt quantize --model {src} --calib calib.npz --precision int8 --target tensorrt" \
        in str(e.value)
    assert not list(tmp_path.glob("*.engine"))


def _with_quantization(src: Path, dst: Path, **quantization) -> Path:
    """A copy of ``src`` whose both branches' metadata ``quantization`` entry is updated with ``quantization``."""
    import onnx

    shutil.copytree(src, dst)
    for name in ("template.onnx", "search.onnx"):
        model = onnx.load(str(dst / name))
        meta = read_onnx_metadata(dst / name)
        set_onnx_metadata(model, {**meta, "quantization": {**(meta.get("quantization") or {}), **quantization}})
        onnx.save(model, str(dst / name))
    return dst


@pytest.mark.parametrize("target", ["onnxruntime", "openvino"])
def test_int8_quantized_for_another_engine_is_refused_before_parsing(model_dir, qdq_dir, tmp_path, target):
    """A directory quantized for --target onnxruntime / openvino failed in TensorRT's ONNX parser with a cut-off
    message and the fix "check that the export is current"; its metadata says what it is: refused first, with the
    command that quantizes its FP32 source for TensorRT."""
    src = model_dir("siamrpn_alex_dwxcorr")
    d = _with_quantization(qdq_dir("siamrpn_alex_dwxcorr"), tmp_path / "q", target=target, source_dir=str(src),
                           calib_file="crops.npz")
    import siamtrt.export.engine as eng

    for precision in ("int8", None):  # --int8, or the directory's own precision
        with pytest.raises(EngineError, match=f"was quantized for --target {target}, not for TensorRT") as e:
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(eng, "_parse", lambda *a, **k: pytest.fail("parsed"))
                build_engine(d, precision=precision, out_dir=tmp_path / "e", progress=False, trt=RTX)
        assert f"siamtrt quantize --model {src} --calib crops.npz --precision int8 --target tensorrt" \
            in e.value.fix and f"--model {src.parent / (src.name + '-int8')} --int8" in e.value.fix
    assert not (tmp_path / "e").exists()
    ok = _with_quantization(qdq_dir("siamrpn_alex_dwxcorr"), tmp_path / "t", target="tensorrt")
    eng.check_qdq_target(eng.ModelDir.open(ok))  # what quantize --target tensorrt writes is taken


def test_int8_from_fp16_dir_quantizes_its_fp32_source(model_dir, tmp_path):
    """--int8 on an fp16 directory suggested quantizing that directory, which quantize refuses; the fix names the
    FP32 source and the crops its metadata records."""
    pytest.importorskip("onnxconverter_common")
    from siamtrt.calibration.fp16 import convert_fp16

    src = model_dir("siamrpn_alex_dwxcorr")
    fp16 = tmp_path / "alex-fp16"
    convert_fp16(src, fp16)
    with pytest.raises(EngineError, match="needs a quantized") as e:
        build_engine(fp16, precision="int8", out_dir=tmp_path / "e", progress=False, trt=RTX)
    assert f"siamtrt quantize --model {src} --calib " in e.value.fix
    assert f"--model {fp16} " not in e.value.fix and "add --calib" not in e.value.fix


def test_out_holding_another_model_directory_is_refused(model_dir, tmp_path):
    """--out naming another model directory wrote --model's engines beside its ONNX (and replaced its engines)."""
    from siamtrt.errors import InputError

    other = tmp_path / "vot"
    shutil.copytree(model_dir("siamrpn_alex_dwxcorr"), other)
    (other / "search.engine").write_bytes(b"its own engine")
    before = sorted((p.name, p.read_bytes()) for p in other.iterdir())
    with pytest.raises(InputError, match=f"--out {other} holds another model directory") as e:
        build_engine(model_dir("siamrpn_alex_dwxcorr"), out_dir=other, progress=False, trt=RTX)
    assert "--out" in e.value.fix and e.value.evidence
    assert sorted((p.name, p.read_bytes()) for p in other.iterdir()) == before


def test_fixed_batch_export_rejects_max_batch(model_dir, tmp_path):
    with pytest.raises(EngineError, match="fixed batch of 1"):
        build_engine(model_dir("siamrpn_alex_dwxcorr", batch="1"), max_batch=2, out_dir=tmp_path, progress=False,
                     trt=RTX)


def test_bad_options_are_rejected(model_dir, tmp_path):
    src = model_dir("siamrpn_alex_dwxcorr")
    for kw, msg in ((dict(precision="int4"), "unknown precision"), (dict(xcorr="fft"), "unknown xcorr"),
                    (dict(max_batch=2, opt_batch=3), "invalid batch profile"),
                    (dict(precision="fp32", dla_core=0), "DLA runs only FP16"),
                    (dict(precision="fp16", dla_core=0), "DLA cores")):
        with pytest.raises(EngineError, match=msg):
            build_engine(src, out_dir=tmp_path, progress=False, trt=RTX, **kw)


def test_plugin_mode_refused_before_parsing(model_dir, tmp_path):
    """tensorrt_rtx's parser aborts the process on a plugin node; build_engine must refuse first. Run as the CLI in
    a subprocess: an abort would show as a signal, a clean refusal as exit code 2 with the message."""
    src = model_dir("siamrpn_alex_dwxcorr")
    res = subprocess.run([sys.executable, str(REPO / "export/build_engine.py"), "--model", str(src), "--xcorr",
                          "plugin", "--out", str(tmp_path), "--no-progress"],
                         capture_output=True, text=True, timeout=300, env=_env_rtx())
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert "cannot build --xcorr plugin" in res.stderr and "no plugin layers" in res.stderr
    assert "--xcorr conv" in res.stderr and "Traceback" not in res.stderr
    assert not list(tmp_path.glob("*.engine"))


def test_plugin_mode_dir_with_conv_flag_is_refused(model_dir, tmp_path):
    import shutil

    from siamtrt.errors import ModelDirError
    from siamtrt.export.xcorr_plugin_onnx import convert_search_to_plugin

    d = tmp_path / "plugin_dir"
    shutil.copytree(model_dir("siamrpn_alex_dwxcorr"), d)
    convert_search_to_plugin(d / "search.onnx", d / "search.onnx")
    import onnx

    template = onnx.load(str(d / "template.onnx"))  # the directory's form, as export/to_onnx.py --xcorr plugin writes
    set_onnx_metadata(template, dict(read_onnx_metadata(d / "template.onnx"), xcorr="plugin"))
    onnx.save(template, str(d / "template.onnx"))
    # the capability table (siamtrt.modeldir.TARGETS["tensorrt_rtx"]): no plugin-mode directory, whatever --xcorr
    for xcorr in ("conv", None):
        with pytest.raises(ModelDirError, match=r"cannot go to TensorRT-RTX \(no plugin layers\): xcorr plugin"):
            build_engine(d, xcorr=xcorr, progress=False, trt=RTX)
    # full TensorRT takes the directory, but not --xcorr conv on it (refused before any TensorRT object is made)
    full = TrtModule(SimpleNamespace(), "tensorrt", "10.3.0")
    with pytest.raises(EngineError, match="plugin mode; --xcorr conv needs"):
        build_engine(d, xcorr="conv", progress=False, trt=full)


def test_build_options_are_defined_once(tmp_path):
    """One dataclass gives the command's flags, the sidecar's build_options and the rebuild command; the rebuild
    command parses back to the same options."""
    import dataclasses

    from siamtrt.cli.build import parse_args
    from siamtrt.export.build_options import BuildOptions

    cache = tmp_path / "tc.bin"
    opts = BuildOptions(precision="fp16", xcorr="conv", max_batch=3, opt_batch=2, workspace_gib=1.5,
                        timing_cache=cache, hardware_compatibility="ampere_plus", out_dir=tmp_path / "out")
    cmd = opts.rebuild_command(tmp_path / "m")
    argv = cmd.split()[2:]  # after "siamtrt build"
    args = parse_args(argv)
    again = BuildOptions.from_args(args)
    assert again == dataclasses.replace(opts, timing_cache=cache.resolve(), out_dir=(tmp_path / "out").resolve())
    assert args.model == (tmp_path / "m").resolve()
    assert cmd.startswith(f"siamtrt build --model {(tmp_path / 'm').resolve()} --fp16 --xcorr conv "
                          "--max-batch 3 --opt-batch 2 --workspace 1.5")
    # defaults stay out of the command, except precision, correlation and batch (always spelled)
    assert BuildOptions(precision="fp32", xcorr="conv").rebuild_command(tmp_path) == \
        f"siamtrt build --model {tmp_path.resolve()} --fp32 --xcorr conv --max-batch 1"
    rec = opts.record()
    assert set(rec) == {f.name for f in dataclasses.fields(BuildOptions)} and \
        rec["timing_cache"] == str(cache.resolve())


def test_options_and_inputs_are_checked_before_tensorrt(model_dir, tmp_path, monkeypatch):
    """Bad values, a missing --calib / --plugin-lib and an unwritable --out are refused before TensorRT is imported."""
    import siamtrt.export.engine as eng
    from siamtrt.errors import InputError

    def no_tensorrt():
        raise AssertionError("TensorRT imported before the options were checked")

    monkeypatch.setattr(eng, "_import_builder", no_tensorrt)
    src = model_dir("siamrpn_alex_dwxcorr")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for kw, err, msg in ((dict(precision="int4"), EngineError, "unknown precision"),
                         (dict(workspace_gib=0), EngineError, "invalid workspace"),
                         (dict(precision="int8", calib=tmp_path / "nope.npz"), InputError, "--calib .* does not exist"),
                         (dict(xcorr="plugin", plugin_lib=tmp_path / "no.so"), InputError, "--plugin-lib"),
                         (dict(out_dir=blocker / "sub"), InputError, "is a file, not a folder")):
        with pytest.raises(err, match=msg):
            build_engine(src, progress=False, **kw)


def test_interrupted_build_leaves_the_output_directory_as_it_was(model_dir, tmp_path, monkeypatch):
    """Ctrl-C after template.engine is built: no engine, sidecar or staging folder appears in --out, and the engines
    of an earlier build there are untouched (issue 20: never a half-written output)."""
    import siamtrt.export.engine as eng

    src = model_dir("siamrpn_alex_dwxcorr")
    out = tmp_path / "out"
    build_engine(src, out_dir=out, progress=False, trt=RTX, branches=["template"])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = eng._serialize

    def interrupt_search(job, branch, *args):
        if branch == "search":
            raise KeyboardInterrupt
        return real(job, branch, *args)

    monkeypatch.setattr(eng, "_serialize", interrupt_search)
    with pytest.raises(KeyboardInterrupt):
        build_engine(src, out_dir=out, max_batch=2, progress=False, trt=RTX)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(KeyboardInterrupt):
        build_engine(src, out_dir=tmp_path / "new", progress=False, trt=RTX)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no new dir, no staging folder


def test_edited_sidecar_is_refused_without_a_gpu(model_dir, tmp_path):
    """The sidecar carries its own digest: one edited to another TensorRT version (so that a loader would accept the
    engine) is refused by the GPU-free integrity check, as is an engine whose bytes changed."""
    from siamtrt.runtime.engines import verify_integrity

    build_engine(model_dir("siamrpn_alex_dwxcorr"), out_dir=tmp_path, progress=False, trt=RTX, branches=["template"])
    engine = tmp_path / "template.engine"
    assert verify_integrity(engine)["tensorrt"]["package"] == "tensorrt_rtx"
    side_path = tmp_path / "template.engine.json"
    good = side_path.read_text()
    side_path.write_text(good.replace(f'"version": "{trt_rtx.__version__}"', '"version": "10.3.0"'))
    assert side_path.read_text() != good
    with pytest.raises(EngineError, match="edited after the build"):
        verify_integrity(engine)
    side_path.write_text(good)
    data = bytearray(engine.read_bytes())
    data[len(data) // 2] ^= 0xFF
    engine.write_bytes(bytes(data))
    with pytest.raises(EngineError, match="hash mismatch"):
        verify_integrity(engine)


def _env_rtx():
    import os

    env = dict(os.environ)
    env["SIAMTRT_TENSORRT"] = "tensorrt_rtx"
    return env


def test_cli_help_without_tensorrt_or_torch():
    code = ("import sys, runpy; sys.modules['tensorrt'] = None; sys.modules['tensorrt_rtx'] = None; "
            "sys.modules['torch'] = None; sys.argv = ['build_engine.py', '--help']; "
            f"runpy.run_path({str(REPO / 'export/build_engine.py')!r}, run_name='__main__')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-1500:]
    for flag in ("--fp16", "--int8", "--fp32", "--xcorr", "--max-batch", "--workspace", "--timing-cache", "--dla",
                 "--out"):
        assert flag in res.stdout


def test_cli_builds_and_prints_summary(model_dir, tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "export/build_engine.py"), "--model",
                          str(model_dir("siamrpn_alex_dwxcorr")), "--fp16", "--out", str(tmp_path), "--no-progress"],
                         capture_output=True, text=True, timeout=300, env=_env_rtx())
    assert res.returncode == 0, res.stderr[-2000:]
    assert "per-layer precision" in res.stdout
    # built without a GPU: the engine runs on the target; here the ONNX directory runs on ONNX Runtime
    assert f"next (on the target GPU): siamtrt track --model {tmp_path} --backend tensorrt --video VIDEO" in res.stdout
    assert f"here, without a GPU: siamtrt track --model {model_dir('siamrpn_alex_dwxcorr')} --backend onnxruntime" \
        in res.stdout
    side = json.loads((tmp_path / "search.engine.json").read_text())
    assert side["precision"] == "fp16"


def test_cli_missing_model_dir_exits_2(tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "export/build_engine.py"), "--model", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=120, env=_env_rtx())
    assert res.returncode == 2 and "does not exist" in res.stderr and "Traceback" not in res.stderr
