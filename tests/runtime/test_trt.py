"""TensorRT backend (siamtrt/runtime/trt.py) and CUDA helpers (siamtrt/runtime/cuda.py).

On this CPU machine: the runtime module imports without TensorRT, cuda-python or torch; the CUDA probe reports "no
CUDA device" instead of crashing; the sidecar check refuses tampered, truncated, foreign-TensorRT, foreign-GPU and
stale-ONNX engines with the rebuild command — all before any TensorRT runtime object exists; the backend refuses to
activate without a device and "auto" falls back to ONNX Runtime. With a GPU (the device tool lends one sometimes):
engine outputs match ONNX Runtime, multi-target batches, CUDA-graph replay, kernels bound on the device.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from siamtrt.errors import BackendError, EngineError
from siamtrt.gpu.cuda import CudaDevice, probe_cuda
from siamtrt.modeldir import sidecar_path
from siamtrt.runtime.engines import check_sidecar, read_sidecar, verify_engine

REPO = Path(__file__).resolve().parents[2]
PROBE = probe_cuda()
needs_gpu = pytest.mark.skipif(not PROBE.available, reason=f"no CUDA device ({PROBE.reason})")
no_gpu_only = pytest.mark.skipif(PROBE.available, reason="a CUDA device is present (this checks the no-GPU path)")


@pytest.fixture(scope="module")
def trt_mod():
    from siamtrt.gpu.tensorrt import import_tensorrt

    try:
        return import_tensorrt()
    except EngineError as e:
        pytest.skip(f"no TensorRT installed ({e.what})")


@pytest.fixture(scope="module")
def engine_dir(model_dir, trt_mod, tmp_path_factory):
    """A private copy of the alex export with FP32 engines built next to the ONNX files (max batch 2)."""
    from siamtrt.export.engine import build_engine

    d = tmp_path_factory.mktemp("trt") / "alex"
    shutil.copytree(model_dir("siamrpn_alex_dwxcorr"), d)
    build_engine(d, precision="fp32", max_batch=2, progress=False, trt=trt_mod)
    return d


def _copy(engine_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "copy"
    shutil.copytree(engine_dir, d)
    return d


# ------------------------------------------------------------------------------------------ imports, probe
def test_runtime_imports_without_tensorrt_cuda_python_or_torch():
    code = ("import sys; [sys.modules.__setitem__(m, None) for m in ('tensorrt', 'tensorrt_rtx', 'cuda', "
            "'cuda.bindings', 'torch', 'pycuda')]; "
            f"sys.path.insert(0, {str(REPO)!r}); "
            "import siamtrt.runtime.trt as t, siamtrt.gpu.cuda as c; "
            "from siamtrt.runtime.backends import backend_class; "
            "p = c.probe_cuda(); print('probe', p.available, bool(p.reason) or p.available); "
            "from siamtrt.errors import EngineError\n"
            "try:\n    t.import_tensorrt()\nexcept EngineError as e:\n    print('noTRT', 'pip install' in str(e))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-1500:]
    assert "probe" in res.stdout and "noTRT True" in res.stdout


def test_cuda_probe_never_raises():
    p = probe_cuda()
    assert p.available == bool(p.devices)
    if not p.available:
        assert p.reason and "no CUDA device" in p.describe()
    else:
        assert p.devices[0].compute_capability[0] >= 3


@no_gpu_only
def test_require_cuda_message():
    from siamtrt.gpu.cuda import require_cuda

    with pytest.raises(BackendError, match="needs a CUDA device") as e:
        require_cuda("loading search.engine")
    assert "--backend onnxruntime" in str(e.value)


# ------------------------------------------------------------------------------------------ sidecar checks
def test_verify_accepts_a_fresh_engine(engine_dir, trt_mod):
    for name in ("template.engine", "search.engine"):
        side = verify_engine(engine_dir / name, trt=trt_mod)
        assert side["engine"]["file"] == name
        assert side["metadata"]["template_outputs"] == ["cls_kernel", "loc_kernel"]


def test_tampered_engine_is_refused(engine_dir, trt_mod, tmp_path):
    d = _copy(engine_dir, tmp_path)
    eng = d / "search.engine"
    data = bytearray(eng.read_bytes())
    data[len(data) // 2] ^= 0xFF
    eng.write_bytes(bytes(data))
    with pytest.raises(EngineError, match="modified after it was built \\(hash mismatch\\)") as e:
        verify_engine(eng, trt=trt_mod)
    assert "siamtrt build --model" in str(e.value) and "--fp32" in str(e.value)


def test_truncated_engine_is_refused(engine_dir, trt_mod, tmp_path):
    d = _copy(engine_dir, tmp_path)
    eng = d / "template.engine"
    eng.write_bytes(eng.read_bytes()[:1000])
    with pytest.raises(EngineError, match="size changed"):
        verify_engine(eng, trt=trt_mod)


def test_engine_from_other_tensorrt_is_refused(engine_dir, tmp_path):
    from siamtrt.gpu.tensorrt import TrtModule

    side = read_sidecar(engine_dir / "search.engine")
    other_version = TrtModule(None, side["tensorrt"]["package"], "10.3.0.30")
    with pytest.raises(EngineError, match="this process has 10.3.0.30") as e:
        verify_engine(engine_dir / "search.engine", trt=other_version)
    assert "rebuild the engines on this machine" in str(e.value)
    other_package = TrtModule(None, "tensorrt", side["tensorrt"]["version"])
    with pytest.raises(EngineError, match="this process runs tensorrt "):
        verify_engine(engine_dir / "search.engine", trt=other_package)


def test_edited_onnx_is_refused(engine_dir, trt_mod, tmp_path):
    import onnx

    d = _copy(engine_dir, tmp_path)
    m = onnx.load(str(d / "search.onnx"))
    m.doc_string = "edited after the engine was built"
    onnx.save(m, str(d / "search.onnx"))
    with pytest.raises(EngineError, match="changed since search.engine was built") as e:
        verify_engine(d / "search.engine", trt=trt_mod)
    assert "siamtrt build" in str(e.value)
    verify_engine(d / "template.engine", trt=trt_mod)  # the untouched branch still loads


def test_other_gpu_is_refused(engine_dir):
    eng = engine_dir / "search.engine"
    side = read_sidecar(eng)
    assert side["gpu"].get("built_without_gpu") or side["gpu"]["compute_capability"]
    built = dict(side, gpu={"built_without_gpu": False, "name": "NVIDIA Jetson AGX Orin", "compute_capability": "8.7"})
    orin = CudaDevice(0, "NVIDIA Jetson AGX Orin", (8, 7))
    assert check_sidecar(eng, built, device=orin) == []
    with pytest.raises(EngineError, match=r"built for NVIDIA Jetson AGX Orin \(sm_87\), this GPU is .*sm_86"):
        check_sidecar(eng, built, device=CudaDevice(0, "NVIDIA GeForce RTX 3090", (8, 6)))
    warns = check_sidecar(eng, built, device=CudaDevice(0, "NVIDIA Jetson Orin NX", (8, 7)))
    assert warns and "same compute capability" in warns[0]
    # hardware-compatible engines (ampere_plus) load on any sm_80+ GPU
    compat = dict(built, build_options=dict(side["build_options"], hardware_compatibility="ampere_plus"))
    warns = check_sidecar(eng, compat, device=CudaDevice(0, "NVIDIA H100", (9, 0)))
    assert warns and "hardware-compatible" in warns[0]
    with pytest.raises(EngineError, match="built for"):  # ampere_plus does not reach Turing
        check_sidecar(eng, compat, device=CudaDevice(0, "Tesla T4", (7, 5)))
    # tensorrt_rtx engines built without a GPU are compiled for the GPU at load time
    rtx = dict(side, gpu={"built_without_gpu": True, "name": "built without GPU", "compute_capability": None})
    assert check_sidecar(eng, rtx, device=CudaDevice(0, "NVIDIA H100", (9, 0))) == []


def test_missing_or_foreign_sidecar(engine_dir, trt_mod, tmp_path):
    d = _copy(engine_dir, tmp_path)
    sidecar_path(d / "template.engine").unlink()
    with pytest.raises(EngineError, match="has no sidecar"):
        verify_engine(d / "template.engine", trt=trt_mod)
    p = sidecar_path(d / "search.engine")
    side = json.loads(p.read_text())
    side["schema"] = 99
    p.write_text(json.dumps(side))
    with pytest.raises(EngineError, match="schema 99"):
        verify_engine(d / "search.engine", trt=trt_mod)


# ------------------------------------------------------------------------------------------ backend, no GPU
@no_gpu_only
def test_backend_reports_no_cuda_device(engine_dir):
    from siamtrt.runtime.backends import backend_class, choose_backend
    from siamtrt.modeldir import ModelDir

    cls = backend_class("tensorrt")
    assert "no CUDA device" in cls.unavailable_reason(engine_dir)
    import importlib.util

    name, reason = choose_backend("auto", engine_dir)
    cpu_default = "openvino" if importlib.util.find_spec("openvino") else "onnxruntime"
    assert name == cpu_default and "no CUDA device" in reason
    smeta = ModelDir.open(engine_dir).meta
    be = cls.from_model_dir(engine_dir, smeta)
    with pytest.raises(BackendError, match="needs a CUDA device"):
        be.activate()
    assert not be.is_active


def test_backend_missing_engines_says_how_to_build(model_dir):
    from siamtrt.errors import ModelDirError
    from siamtrt.runtime.backends import backend_class
    from siamtrt.modeldir import ModelDir

    d = model_dir("siamrpn_alex_dwxcorr")
    smeta = ModelDir.open(d).meta
    with pytest.raises(ModelDirError, match="siamtrt build --model"):
        backend_class("tensorrt").from_model_dir(d, smeta)


def test_backend_rejects_unknown_options(engine_dir):
    from siamtrt.runtime.trt import TrtBackend

    with pytest.raises(BackendError, match="does not accept"):
        TrtBackend(engine_dir / "template.engine", engine_dir / "search.engine", {}, threads=2)


# ------------------------------------------------------------------------------------------ GPU execution
def _ort_reference(d: Path, z: np.ndarray, x: np.ndarray):
    from siamtrt.runtime.backends import backend_class
    from siamtrt.modeldir import ModelDir

    smeta = ModelDir.open(d).meta
    with backend_class("onnxruntime").from_model_dir(d, smeta, providers="cpu") as ort_be:
        k = ort_be.run_template(z)
        cls, loc = ort_be.run_search(x, k)
        return k, np.array(cls), np.array(loc)


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_engines_match_onnxruntime_on_gpu(engine_dir, cuda_graph):
    from siamtrt.runtime.backends import backend_class
    from siamtrt.modeldir import ModelDir

    rng = np.random.default_rng(0)
    smeta = ModelDir.open(engine_dir).meta
    for n in (1, 2, 3):  # 3 > max batch 2: chunked; 1 < fixed search batch 2: padded
        z = rng.uniform(0, 255, (n, 3, 127, 127)).astype(np.float32)
        x = rng.uniform(0, 255, (n, 3, 287, 287)).astype(np.float32)
        k_ref, cls_ref, loc_ref = _ort_reference(engine_dir, z, x)
        with backend_class("tensorrt").from_model_dir(engine_dir, smeta, cuda_graph=cuda_graph) as be:
            k = be.run_template(z)
            for name in k_ref:
                np.testing.assert_allclose(k[name], k_ref[name], rtol=1e-2, atol=1e-2 * np.abs(k_ref[name]).max())
            for _ in range(3):  # repeated frames: graph captured on the 2nd, replayed on the 3rd
                cls, loc = be.run_search(x, k)
                np.testing.assert_allclose(cls, cls_ref, rtol=1e-2, atol=1e-2 * np.abs(cls_ref).max())
                np.testing.assert_allclose(loc, loc_ref, rtol=1e-2, atol=1e-2 * np.abs(loc_ref).max())
            if n <= 2:
                assert all(be._kernel_ptr(name, k[name]) for name in k)  # kernels live on the device


@needs_gpu
@pytest.mark.gpu
def test_tracker_runs_on_tensorrt(engine_dir, bag_video):
    import cv2

    from siamtrt.runtime.tracker import Tracker

    cap = cv2.VideoCapture(str(bag_video))
    frames = [cap.read()[1] for _ in range(10)]
    boxes = {}
    for backend in ("onnxruntime", "tensorrt"):
        with Tracker.from_model_dir(engine_dir, backend=backend) as trk:
            trk.init(frames[0], np.array([316, 140, 112, 115], float))
            boxes[backend] = np.array([trk.track(f).bbox for f in frames[1:]])
    np.testing.assert_allclose(boxes["tensorrt"], boxes["onnxruntime"], atol=2.0)


# ------------------------------------------------------------------------------------------ simulated device
# The backend's buffer logic (allocation, pinned staging, chunking beyond the profile, padding of fixed-batch
# engines, device-resident kernels bound by identity, CUDA-graph capture/replay bookkeeping) runs on this CPU machine
# against a simulated CUDA runtime whose "device" memory is host memory, and fake engines that run the branch's ONNX
# with ONNX Runtime on whatever the bound addresses hold. Real cuda-python / TensorRT calls are covered on a GPU only.
import ctypes  # noqa: E402

from sim_cuda import SimCudart  # noqa: E402


class _FakeTrt:
    class TensorIOMode:  # noqa: N801
        INPUT, OUTPUT = "in", "out"

    @staticmethod
    def nptype(t):
        return t


class _FakeContext:
    def __init__(self, engine):
        self.engine, self.shapes, self.addr = engine, {}, {}
        self.runs = 0

    def set_input_shape(self, name, shape):
        lo, _, hi = self.engine.profile[name]
        if not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        if name in self.engine.inputs:
            return self.shapes[name]
        return self.engine.output_shape(name, self.shapes)

    def set_tensor_address(self, name, ptr):
        self.addr[name] = int(ptr)
        return True

    def _view(self, name, shape):
        n = int(np.prod(shape))
        return np.ctypeslib.as_array((ctypes.c_float * n).from_address(self.addr[name])).reshape(shape)

    def _run(self):
        feed = {k: self._view(k, self.shapes[k]).copy() for k in self.engine.inputs}
        outs = self.engine.sess.run(self.engine.outputs, feed)
        for k, v in zip(self.engine.outputs, outs):
            self._view(k, v.shape)[...] = v
        self.runs += 1

    def execute_async_v3(self, stream):
        cud = self.engine.cudart
        if cud.capturing is not None:
            shapes, addr = dict(self.shapes), dict(self.addr)

            def replay():
                self.shapes, self.addr = dict(shapes), dict(addr)
                self._run()
            cud.enqueue(replay)
        else:
            self._run()
        return True


class _FakeEngine:
    """Runs the branch ONNX with ORT; static batch / profile as the sidecar records them."""

    def __init__(self, onnx_path, side, cudart):
        import onnxruntime as ort

        self.cudart = cudart
        self.sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.sess.get_inputs()]
        self.outputs = [o.name for o in self.sess.get_outputs()]
        shapes = side["profile"]["shapes"]
        fixed = side["profile"]["batch"].get("fixed")
        self.profile = {k: (tuple(v["min"]), tuple(v["opt"]), tuple(v["max"])) for k, v in shapes.items()}
        # declared shapes: -1 on every axis the profile leaves open (batch unless fixed; long-term spatial size)
        self.decl = {k: tuple(-1 if (i == 0 and not fixed) or lo != hi else hi for i, (lo, hi) in
                              enumerate(zip(v[0], v[2]))) for k, v in self.profile.items()}
        self._out_shapes = {}
        feed = {k: np.zeros((1,) + tuple(self.profile[k][0][1:]), np.float32) for k in self.inputs}
        self.out_item = {k: v.shape[1:] for k, v in zip(self.outputs, self.sess.run(self.outputs, feed))}
        self.num_io_tensors = len(self.inputs) + len(self.outputs)

    def get_tensor_name(self, i):
        return (self.inputs + self.outputs)[i]

    def get_tensor_mode(self, name):
        return _FakeTrt.TensorIOMode.INPUT if name in self.inputs else _FakeTrt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return np.float32

    def get_tensor_shape(self, name):
        if name in self.inputs:
            return self.decl[name]
        return (self.decl[self.inputs[0]][0],) + tuple(self.out_item[name])

    def get_tensor_profile_shape(self, name, idx):
        return self.profile[name]

    def output_shape(self, name, in_shapes):
        """Output shape for the current input shapes (spatial sizes vary with the long-term search size)."""
        key = tuple(sorted(in_shapes.items()))
        if key not in self._out_shapes:
            feed = {k: np.zeros(v, np.float32) for k, v in in_shapes.items()}
            self._out_shapes[key] = {k: v.shape for k, v in zip(self.outputs, self.sess.run(self.outputs, feed))}
        return self._out_shapes[key][name]

    def create_execution_context(self):
        return _FakeContext(self)


@pytest.fixture
def simulated(monkeypatch):
    import siamtrt.gpu.cuda as rc
    import siamtrt.runtime.trt as rt

    cud = SimCudart()
    monkeypatch.setattr(rc, "cudart", lambda: cud)
    fake_mod = rt.TrtModule(_FakeTrt, "tensorrt", "0-simulated")
    monkeypatch.setattr(rt, "import_tensorrt", lambda prefer=None: fake_mod)
    monkeypatch.setattr(rt, "require_cuda", lambda what="": CudaDevice(0, "simulated", (8, 7)))

    def fake_load(path, trt=None, check_onnx=True):
        side = read_sidecar(path)
        return _FakeEngine(Path(path).with_suffix(".onnx"), side, cud), object(), side

    monkeypatch.setattr(rt, "load_engine", fake_load)
    return cud


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_backend_logic_on_a_simulated_device(engine_dir, simulated, cuda_graph):
    from siamtrt.modeldir import ModelDir
    from siamtrt.runtime.trt import TrtBackend

    cud = simulated
    smeta = ModelDir.open(engine_dir).meta
    rng = np.random.default_rng(0)
    be = TrtBackend.from_model_dir(engine_dir, smeta, cuda_graph=cuda_graph)
    with be:
        meta = be.input_metadata("search")
        assert meta["search"][1][0] is None  # any batch: fixed-batch-2 engine padded / chunked internally
        for n in (1, 2, 3):
            z = rng.uniform(0, 255, (n, 3, 127, 127)).astype(np.float32)
            x = rng.uniform(0, 255, (n, 3, 287, 287)).astype(np.float32)
            k_ref, cls_ref, loc_ref = _ort_reference(engine_dir, z, x)
            k = be.run_template(z)
            assert set(k) == {"cls_kernel", "loc_kernel"}
            for name in k:
                np.testing.assert_allclose(k[name], k_ref[name], rtol=1e-4, atol=1e-3)
            h2d_before = cud.copies[1]
            for frame in range(3):
                cls, loc = be.run_search(x, k)
                np.testing.assert_allclose(cls, cls_ref, rtol=1e-4, atol=1e-3)
                np.testing.assert_allclose(loc, loc_ref, rtol=1e-4, atol=1e-3)
            # per frame only the search crop crosses the bus (one H2D per chunk); kernels stay on the device
            chunks = -(-n // 2)
            assert cud.copies[1] - h2d_before == 3 * chunks
            if n == 2:
                assert be.io["search"].addresses["cls_kernel"] == be._kernel_ptr("cls_kernel", k["cls_kernel"])
            # a stacked copy the tracker made (new array objects): each uploaded once, then device-resident
            k2 = {name: v.copy() for name, v in k.items()}
            before = cud.copies[1]
            for frame in range(2):
                cls, loc = be.run_search(x, k2)
                np.testing.assert_allclose(cls, cls_ref, rtol=1e-4, atol=1e-3)
            assert cud.copies[1] - before == 2 * chunks + len(k2)
    if cuda_graph:
        assert cud.launched > 0  # replays happened (captured after one warm run per binding)
    assert not be.is_active and not be.io


def test_tracker_on_a_simulated_device_matches_onnxruntime(engine_dir, simulated, bag_video):
    """The Tracker drives the TensorRT backend (two targets, fixed-batch-2 search engine) like ONNX Runtime."""
    import cv2

    from siamtrt.runtime.tracker import Tracker

    cap = cv2.VideoCapture(str(bag_video))
    frames = [cap.read()[1] for _ in range(6)]
    boxes = np.array([[316, 140, 112, 115], [150, 100, 60, 60]], float)
    out = {}
    for backend in ("onnxruntime", "tensorrt"):
        with Tracker.from_model_dir(engine_dir, backend=backend) as trk:
            trk.init(frames[0], boxes)
            out[backend] = np.array([trk.track(f).boxes for f in frames[1:]])
    assert out["tensorrt"].shape == (5, 2, 4)
    np.testing.assert_allclose(out["tensorrt"], out["onnxruntime"], atol=1e-2)


# ------------------------------------------------------------------------------ long-term mode (issue 10)
@pytest.fixture(scope="module")
def lt_engine_dir(trt_mod, tmp_path_factory):
    """A tiny long-term directory (search 287 and 831) with FP32 engines: one profile covers both sizes."""
    from rt_tiny_models import make_tiny_model_dir

    from siamtrt.config import CONFIGS, with_longterm
    from siamtrt.export.engine import build_engine

    d = make_tiny_model_dir(tmp_path_factory.mktemp("trt_lt"), "siamrpn_alex_dwxcorr",
                            cfg=with_longterm(CONFIGS["siamrpn_alex_dwxcorr"], 831))
    build_engine(d, precision="fp32", max_batch=2, progress=False, trt=trt_mod)
    return d


def test_longterm_engine_profile_covers_the_lost_size(lt_engine_dir):
    side = read_sidecar(lt_engine_dir / "search.engine")
    search = side["profile"]["shapes"]["search"]
    assert search["min"][2:] == [287, 287] and search["opt"][2:] == [287, 287] and search["max"][2:] == [831, 831]
    assert side["metadata"]["instance_sizes"] == [287, 831]


def test_longterm_tracker_on_a_simulated_device_matches_onnxruntime(lt_engine_dir, simulated, bag_frames):
    """Long-term mode through the TensorRT backend: the same boxes and the same switches to 831 and back."""
    import dataclasses

    from siamtrt.runtime.tracker import Tracker

    frames = list(bag_frames[:16])
    for i in range(5, 9):
        frames[i] = np.full_like(frames[i], 90)
    boxes = np.array([[316, 140, 112, 115], [150, 100, 60, 60]], float)
    probe = Tracker.from_model_dir(lt_engine_dir, backend="onnxruntime")
    probe.init(frames[0], boxes)
    scores = np.concatenate([probe.track(f).scores for f in frames[1:]])
    info = dataclasses.replace(probe.info, track=dataclasses.replace(
        probe.info.track, confidence_low=float(np.quantile(scores, 0.35)),
        confidence_high=float(np.quantile(scores, 0.6))))
    out, sizes = {}, {}
    for backend in ("onnxruntime", "tensorrt"):
        be = Tracker.from_model_dir(lt_engine_dir, backend=backend).backend
        with Tracker(be, info, mode="longterm") as trk:
            trk.init(frames[0], boxes)
            res = [trk.track(f) for f in frames[1:]]
            out[backend] = np.array([r.boxes for r in res])
            sizes[backend] = np.array([r.instance_size for r in res])
    np.testing.assert_array_equal(sizes["tensorrt"], sizes["onnxruntime"])
    assert (sizes["onnxruntime"] == 831).any() and (sizes["onnxruntime"] == 287).sum() > 2
    np.testing.assert_allclose(out["tensorrt"], out["onnxruntime"], atol=1e-3)


# ---------------------------------------------------------------------------- kernels changed in place (issue 22)
def test_distractor_mode_uploads_kernels_only_when_they_changed(engine_dir, simulated, bag_video):
    """Distractor mode rewrites its merged classification kernels in place (KernelSet version bumped) only after a
    frame that found distractors: the backend then re-uploads that one array into the same device buffer; on a
    steady frame no kernel crosses the bus. Boxes equal ONNX Runtime's."""
    import dataclasses

    import cv2

    from siamtrt.runtime.tracker import Tracker

    cap = cv2.VideoCapture(str(bag_video))
    frames = [cap.read()[1] for _ in range(12)]
    boxes = np.array([[316, 140, 112, 115], [150, 100, 60, 60]], float)
    pattern = [1, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1]  # frames allowed to find distractors
    out, uploads, counts = {}, [], []
    for backend in ("onnxruntime", "tensorrt"):
        trk = Tracker.from_model_dir(engine_dir, backend=backend, mode="distractor")
        on = dataclasses.replace(trk.info, track=dataclasses.replace(trk.info.track, distractor_threshold=0.0))
        off = dataclasses.replace(on, track=dataclasses.replace(on.track, distractor_max=0))
        with trk:
            trk.init(frames[0], boxes)
            res = []
            for f, find in zip(frames[1:], pattern):
                trk.info = on if find else off
                before = getattr(trk.backend, "kernel_uploads", 0)
                res.append(trk.track(f))
                if backend == "tensorrt":
                    uploads.append(trk.backend.kernel_uploads - before)
                    counts.append(int(res[-1].distractors.sum()))
            out[backend] = np.array([r.boxes for r in res])
    assert counts == [6 if p else 0 for p in pattern]  # 3 per target when allowed (threshold 0), none otherwise
    assert uploads == [0] + [1 if c else 0 for c in counts[:-1]], (uploads, counts)  # only cls_kernel, once
    np.testing.assert_allclose(out["tensorrt"], out["onnxruntime"], atol=1e-2)
