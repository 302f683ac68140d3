"""Backend contract: registry, lazy loading, auto selection, feed checks, buffer reuse, ONNX Runtime options."""

import sys

import numpy as np
import pytest

from siamtrt.errors import BackendError, InputError, ModelDirError
from siamtrt.runtime.backend import Backend
from siamtrt.runtime.backends import BACKENDS, backend_class, choose_backend
from siamtrt.runtime.cpu import cpu_threads, physical_cores
from siamtrt.modeldir import ModelDir
from siamtrt.runtime.ort import OrtBackend, resolve_providers


def _backend(d, **opts) -> OrtBackend:
    return OrtBackend.from_model_dir(d, ModelDir.open(d).meta, **opts)


def test_registry_and_unknown_name():
    assert set(BACKENDS) >= {"onnxruntime", "tensorrt"}
    assert backend_class("onnxruntime") is OrtBackend
    assert backend_class("ort") is OrtBackend
    with pytest.raises(BackendError, match="unknown backend 'onnxrutime'") as e:
        backend_class("onnxrutime")
    assert "did you mean 'onnxruntime'" in str(e.value)


def test_tensorrt_entry_is_lazy_and_fails_clearly(monkeypatch):
    """Selecting "tensorrt" imports siamtrt.runtime.trt only then; if it cannot be imported, a BackendError."""
    monkeypatch.setitem(sys.modules, "siamtrt.runtime.trt", None)  # makes the import raise ImportError
    with pytest.raises(BackendError, match="TensorRT backend is not available"):
        backend_class("tensorrt")


def test_auto_picks_onnxruntime_without_engines(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # the CPU choice without OpenVINO (with it: test_openvino.py)
    d = tiny_dir("siamrpn_alex_dwxcorr")
    assert choose_backend("auto", d) == ("onnxruntime", "no TensorRT engines in the model directory")
    # engines present but TensorRT missing → still onnxruntime, with the reason
    import shutil

    e = tmp_path / "withengines"
    shutil.copytree(d, e)
    (e / "template.engine").write_bytes(b"x")
    (e / "search.engine").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "siamtrt.runtime.trt", None)
    name, reason = choose_backend("auto", e)
    assert name == "onnxruntime" and "TensorRT backend unavailable" in reason


def test_auto_picks_tensorrt_when_available(tiny_dir, tmp_path, monkeypatch):
    import shutil
    import types

    class FakeTrt(Backend):
        name = "tensorrt"

        @classmethod
        def unavailable_reason(cls, model_dir=None):
            return None

    e = tmp_path / "withengines"
    shutil.copytree(tiny_dir("siamrpn_alex_dwxcorr"), e)
    (e / "template.engine").write_bytes(b"x")
    (e / "search.engine").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "siamtrt.runtime.trt", types.SimpleNamespace(TrtBackend=FakeTrt))
    monkeypatch.setitem(sys.modules, "openvino", None)  # the CPU fallback named below is ONNX Runtime's
    assert choose_backend("auto", e)[0] == "tensorrt"
    FakeTrt.unavailable_reason = classmethod(lambda cls, model_dir=None: "no CUDA device")
    assert choose_backend("auto", e) == ("onnxruntime", "engines present but no CUDA device")


def test_lazy_activation_and_context_manager(tiny_dir):
    b = _backend(tiny_dir("siamrpn_alex_dwxcorr"), threads=1)
    assert not b.is_active and b.sessions == {}  # nothing loaded in __init__
    z = np.zeros((1, 3, 127, 127), np.float32)
    with pytest.raises(BackendError, match="not active"):
        b.run_template(z)
    with b:
        assert b.is_active and b.threads == 1
        k = b.run_template(z)
        assert sorted(k) == ["cls_kernel", "loc_kernel"] and k["cls_kernel"].shape == (1, 6, 4, 4)
        assert b.instance_name("search") == "ort-search"
    assert not b.is_active and b.sessions == {}
    b.activate()
    b.activate()  # idempotent
    b.deactivate()
    b.deactivate()


def test_feed_checks(tiny_dir):
    with _backend(tiny_dir("siamrpn_alex_dwxcorr")) as b:
        k = b.run_template(np.zeros((2, 3, 127, 127), np.float32))
        x = np.zeros((2, 3, 287, 287), np.float32)
        with pytest.raises(BackendError, match="dtype float64"):
            b.run_template(np.zeros((1, 3, 127, 127)))
        with pytest.raises(BackendError, match=r"shape \(1, 3, 120, 120\)"):
            b.run_template(np.zeros((1, 3, 120, 120), np.float32))
        with pytest.raises(BackendError, match="wrong input names"):
            b.run_search(x, {"cls_kernel": k["cls_kernel"]})
        with pytest.raises(BackendError, match="disagree on the batch size"):
            b.run_search(x[:1], k)
        with pytest.raises(BackendError, match="C-contiguous"):
            b.run_template(np.zeros((1, 3, 127, 254), np.float32)[:, :, :, ::2])
        cls, loc = b.run_search(x, k)
        assert cls.shape == (2, 10, 21, 21) and loc.shape == (2, 20, 21, 21)
        assert b.last_inference_time > 0


def test_unknown_option():
    with pytest.raises(BackendError, match="does not accept the options"):
        OrtBackend("a.onnx", "b.onnx", {"template_outputs": []}, thread=2)


def test_search_outputs_reuse_buffers_and_match_plain_run(tiny_dir, rng):
    d = tiny_dir("siamrpn_alex_dwxcorr")
    x1 = rng.uniform(0, 255, (2, 3, 287, 287)).astype(np.float32)
    x2 = rng.uniform(0, 255, (2, 3, 287, 287)).astype(np.float32)
    with _backend(d) as b, _backend(d, io_binding=False) as plain:
        k = b.run_template(rng.uniform(0, 255, (2, 3, 127, 127)).astype(np.float32))
        first = b.run_search(x1, k)
        second = b.run_search(x2, k)
        third = b.run_search(x1, k)
        assert second[0] is third[0] and second[1] is third[1]  # reused buffers from the 2nd call on
        ref = plain.run_search(x1, k)
        np.testing.assert_array_equal(third[0], ref[0])
        np.testing.assert_array_equal(third[1], ref[1])
        np.testing.assert_array_equal(first[0], ref[0])
        ref2 = plain.run_search(x2, k)
        assert not np.array_equal(ref2[0], ref[0])


def test_template_outputs_are_fresh_arrays(tiny_dir):
    with _backend(tiny_dir("siamrpn_alex_dwxcorr")) as b:
        z = np.zeros((1, 3, 127, 127), np.float32)
        a, c = b.run_template(z), b.run_template(z + 50)
        assert not np.shares_memory(a["cls_kernel"], c["cls_kernel"])
        assert not np.array_equal(a["cls_kernel"], c["cls_kernel"])


def test_plugin_directory_refused(tiny_dir):
    d = tiny_dir("siamrpn_alex_dwxcorr", xcorr="plugin")
    with pytest.raises(BackendError, match="DepthwiseXCorr") as e:
        _backend(d).activate()
    assert "--xcorr conv" in str(e.value)


def test_missing_files_for_backend(tmp_path):
    with pytest.raises(ModelDirError, match="lacks"):
        OrtBackend.from_model_dir(tmp_path, {"template_outputs": []})


def test_providers():
    assert resolve_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert resolve_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(BackendError, match="not available"):
        resolve_providers("cuda", ["CPUExecutionProvider"])
    with pytest.raises(BackendError, match="unknown ONNX Runtime provider"):
        resolve_providers("gpu", ["CPUExecutionProvider"])


def test_physical_cores():
    import os

    n = physical_cores()
    assert 1 <= n <= len(os.sched_getaffinity(0))


def test_cpu_threads_defaults_to_physical_cores_and_refuses_what_no_engine_takes():
    assert cpu_threads(None) == physical_cores()
    assert cpu_threads(3) == 3 and cpu_threads(2.0) == 2
    for bad in (0, -2, 1.5, True, "4", "abc", [2]):  # strings, lists: TypeError / ValueError before
        with pytest.raises(InputError, match="threads must be a whole number of 1 or more"):
            cpu_threads(bad)


def test_backend_with_negative_threads_is_refused_before_any_session(tiny_dir):
    """ONNX Runtime took threads=-2 silently (its default), torch failed with a traceback: one refusal for all."""
    b = _backend(tiny_dir("siamrpn_alex_dwxcorr"), threads=-2)
    with pytest.raises(InputError, match="threads must be a whole number"):
        b.activate()
    assert not b.is_active

