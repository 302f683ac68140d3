"""OpenVINO backend: registry and auto choice, parity with ONNX Runtime FP32 (tiny and realistic models, N targets,
long-term 831 search size, an INT8 Q/DQ directory), the bf16 fidelity gate, the compiled-model cache."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

ov = pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")

from siamtrt.config import CONFIGS, with_longterm  # noqa: E402
from siamtrt.errors import BackendError, SiamtrtError  # noqa: E402
from siamtrt.modeldir import ModelDir  # noqa: E402
from siamtrt.runtime import Tracker  # noqa: E402
from siamtrt.runtime.backends import accepted_options, backend_class, choose_backend  # noqa: E402
from siamtrt.runtime.openvino import (BF16_RECORD, OpenVinoBackend, cpu_has_bf16, probe_crops)  # noqa: E402
from siamtrt.runtime.ort import OrtBackend  # noqa: E402

BOX = (316, 140, 112, 115)


def _pair(d, cache, **opts):
    md = ModelDir.open(d)
    o = OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=cache, **opts)
    r = OrtBackend.from_model_dir(d, md.meta, threads=1, providers="cpu")
    return md, o, r


def _inputs(md, n, size=None, seed=0):
    rng = np.random.default_rng(seed)
    s = size or md.instance_size
    z = rng.uniform(0, 255, (n, 3, md.exemplar_size, md.exemplar_size)).astype(np.float32)
    x = rng.uniform(0, 255, (n, 3, s, s)).astype(np.float32)
    return z, x


def _assert_close(a, b, rel):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    err = float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12))
    assert err < rel, f"relative max error {err:.2e} ≥ {rel:.0e}"


# ------------------------------------------------------------------------------------------------- registry
def test_registry_alias_options():
    assert backend_class("openvino") is OpenVinoBackend and backend_class("ov") is OpenVinoBackend
    assert accepted_options("openvino", {"threads": 2, "providers": "cpu", "cache_dir": False}) == \
        {"threads": 2, "cache_dir": False}
    with pytest.raises(BackendError, match="does not accept the options"):
        OpenVinoBackend("a", "b", {"template_outputs": []}, providers="cpu")


def test_auto_picks_openvino_on_the_cpu(tiny_dir, monkeypatch):
    """No engines: OpenVINO where it imports, else ONNX Runtime (the reason says which)."""
    d = tiny_dir("siamrpn_alex_dwxcorr")
    name, reason = choose_backend("auto", d)
    assert name == "openvino" and "OpenVINO installed" in reason
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    assert choose_backend("auto", d) == ("onnxruntime", "no TensorRT engines in the model directory")
    with Tracker.from_model_dir(d) as t:
        assert t.backend.name == "onnxruntime"


# --------------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("config,levels", [("siamrpn_alex_dwxcorr", 1), ("siamrpn_r50_l234_dwxcorr", 3)])
def test_parity_with_onnxruntime_tiny(config, levels, tiny_dir, tmp_path):
    """Same outputs as ORT FP32 (f32 hint) for 1 and 3 targets; template outputs are fresh arrays, search outputs
    the request's buffers (valid until the next call)."""
    md, o, r = _pair(tiny_dir(config, levels=levels), tmp_path / "c")
    with o, r:
        assert o.precision == "f32" and o.threads == 1
        for n in (1, 3):
            z, x = _inputs(md, n, seed=n)
            ko, kr = o.run_template(z), r.run_template(z)
            for k in kr:
                _assert_close(ko[k], kr[k], 1e-5)
            k_copy = {k: v.copy() for k, v in ko.items()}
            co, lo = (np.array(a) for a in o.run_search(x, ko))
            cr, lr = r.run_search(x, kr)
            _assert_close(co, cr, 1e-5)
            _assert_close(lo, lr, 1e-5)
            o.run_template(z[::-1].copy())
            assert all(np.array_equal(ko[k], k_copy[k]) for k in ko)  # the kernels handed out stay the tracker's


def test_parity_realistic_alex(model_dir, tmp_path):
    """A realistic random-weight alex export (grouped-Conv correlation, dynamic batch): OpenVINO vs ORT FP32."""
    md, o, r = _pair(model_dir("siamrpn_alex_dwxcorr"), tmp_path / "c")
    z, x = _inputs(md, 2)
    with o, r:
        ko, kr = o.run_template(z), r.run_template(z)
        co, lo = o.run_search(x, ko)
        cr, lr = r.run_search(x, kr)
        _assert_close(co, cr, 1e-4)
        _assert_close(lo, lr, 1e-4)


def test_tracker_n_targets_equals_onnxruntime(tiny_dir, bag_frames, tmp_path):
    """Three targets tracked as one batch on OpenVINO give the boxes ORT gives."""
    d = tiny_dir("siamrpn_alex_dwxcorr")
    boxes = np.array([BOX, (100, 60, 80, 90), (400, 200, 60, 60)], np.float64)
    got = {}
    for name, opts in (("openvino", {"cache_dir": tmp_path / "c"}), ("onnxruntime", {"providers": "cpu"})):
        with Tracker.from_model_dir(d, backend=name, threads=1, **opts) as t:
            t.init(bag_frames[0], boxes)
            got[name] = np.stack([t.track(f).boxes for f in bag_frames[1:8]])
    np.testing.assert_allclose(got["openvino"], got["onnxruntime"], atol=1e-3)


def test_longterm_831_dynamic_size(tiny_dir, bag_frames, tmp_path):
    """A long-term export (dynamic spatial axes): OpenVINO compiles one static model per search size and matches
    ORT at 287 and 831; the long-term tracker forced into the lost state runs the global search on it."""
    cfg = with_longterm(CONFIGS["siamrpn_alex_dwxcorr"], 831)
    d = tiny_dir("siamrpn_alex_dwxcorr", cfg=cfg)
    md, o, r = _pair(d, tmp_path / "c")
    with o, r:
        assert o.input_metadata("search")["search"][1][2] is None  # dynamic spatial axis
        for size in (287, 831):
            z, x = _inputs(md, 2, size=size)
            co, lo = o.run_search(x, o.run_template(z))
            cr, lr = r.run_search(x, r.run_template(z))
            assert co.shape[-1] == (21 if size == 287 else 89)
            _assert_close(co, cr, 1e-5)
            _assert_close(lo, lr, 1e-5)
        assert {dict(k[2])["search"][2] for k in o._compiled if k[0] == "search"} == {287, 831}
    with Tracker.from_model_dir(d, backend="openvino", mode="longterm", threads=1, cache_dir=tmp_path / "c") as t:
        t.init(bag_frames[0], BOX)
        t._next_search(np.ones(1, bool), bag_frames[0].shape[1::-1])  # lost: the next frame searches at 831
        assert int(t.track(bag_frames[1]).instance_size[0]) == 831


def _int8_tiny(src, out):
    """An INT8 copy of a tiny directory: the search branch Q/DQ-quantized by onnxruntime.quantization on random
    crops (the tiny template has nothing to quantize: its only convolutions are its outputs), precision int8."""
    from siamtrt.calibration.qdq import quantize_branch
    from siamtrt.metadata import read_onnx_metadata, set_onnx_metadata

    md = ModelDir.open(src)
    out.mkdir()
    z, x = _inputs(md, 4, seed=7)
    with OrtBackend.from_model_dir(src, md.meta, threads=1) as be:
        k = be.run_template(z)
    feeds = [dict(search=x[i:i + 1], **{n: v[i:i + 1] for n, v in k.items()}) for i in range(4)]
    q, _ = quantize_branch(src / "search.onnx", out / "search.onnx", feeds, branch="search", float_prefix=0.0,
                           total=4)
    for branch, model in (("template", onnx.load(str(src / "template.onnx"))), ("search", q)):
        set_onnx_metadata(model, dict(read_onnx_metadata(src / f"{branch}.onnx"), precision="int8"))
        onnx.save(model, str(out / f"{branch}.onnx"))
    return out


def test_int8_directory_runs(tiny_dir, tmp_path):
    """A Q/DQ INT8 directory runs on OpenVINO unchanged and agrees with ORT executing the same Q/DQ graph."""
    d = _int8_tiny(tiny_dir("siamrpn_alex_dwxcorr", channels=16), tmp_path / "int8")
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(d / "search.onnx")).graph.node)
    md, o, r = _pair(d, tmp_path / "c")
    assert md.precision == "int8"
    z, x = _inputs(md, 2, seed=3)
    with o, r:
        co, lo = o.run_search(x, o.run_template(z))
        cr, lr = r.run_search(x, r.run_template(z))
    for a, b in ((co, cr), (lo, lr)):
        a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
        assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.99  # int8 kernels differ in rounding only


# -------------------------------------------------------------------------------------------------- bf16 gate
def _bf16_fragile(src, out, offset=4096.0):
    """A tiny directory whose search branch adds and removes a large constant between two 1x1 convolutions: exact
    in f32, while bf16's 8-bit significand (spacing 32 at 4096) wipes out the signal carried on top of it."""
    shutil.copytree(src, out)
    p = out / "search.onnx"
    m = onnx.load(str(p))
    g = m.graph
    eye = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
    g.initializer.extend([numpy_helper.from_array(eye, "frag_w"),
                          numpy_helper.from_array(np.full(3, offset, np.float32), "frag_up"),
                          numpy_helper.from_array(np.full(3, -offset, np.float32), "frag_down")])
    for n in g.node:
        n.input[:] = ["x_back" if i == "x_p" else i for i in n.input]
    at = next(i for i, n in enumerate(g.node) if "x_p" in n.output) + 1
    g.node.insert(at, helper.make_node("Conv", ["x_big", "frag_w", "frag_down"], ["x_back"], name="frag_down"))
    g.node.insert(at, helper.make_node("Conv", ["x_p", "frag_w", "frag_up"], ["x_big"], name="frag_up"))
    onnx.checker.check_model(m)
    onnx.save(m, str(p))
    return out


needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(ov.Core()), reason="this CPU has no bf16 units (AVX512-BF16/AMX): "
                                                                    "the bf16 hint would run in f32 here")


@needs_bf16
def test_bf16_refused_where_fidelity_fails(tiny_dir, tmp_path):
    """The fragile model fails the bf16 check: "bf16" is refused with the figures, "auto" falls back to f32, and the
    record written to the cache folder is reused on the next start."""
    d = _bf16_fragile(tiny_dir("siamrpn_alex_dwxcorr"), tmp_path / "fragile")
    md = ModelDir.open(d)
    cache = tmp_path / "c"
    with pytest.raises(BackendError, match="bf16.*breaks") as e:
        OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=cache, precision="bf16").activate()
    assert "cls cosine" in str(e.value) and "fix:" in str(e.value)
    records = json.loads((cache / BF16_RECORD).read_text())
    (rec,) = records.values()
    assert rec["passed"] is False and rec["cls"] < 0.98 and rec["probes"] == 4
    with OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=cache, precision="auto") as b:
        assert b.precision == "f32" and b.bf16_check["cached"] is True


@needs_bf16
def test_bf16_taken_where_fidelity_holds(tiny_dir, tmp_path):
    """The unmodified tiny model keeps fidelity in bf16: "bf16" and "auto" run with the bf16 hint."""
    d = tiny_dir("siamrpn_alex_dwxcorr")
    md = ModelDir.open(d)
    with OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=tmp_path / "c", precision="auto") as b:
        assert b.precision == "bf16" and b.bf16_check["passed"] and b.bf16_check["cls"] >= 0.98
        z, x = _inputs(md, 1)
        cls, _ = b.run_search(x, b.run_template(z))
        assert np.isfinite(cls).all()


def test_bf16_refused_without_bf16_units(tiny_dir, tmp_path, monkeypatch):
    import siamtrt.runtime.openvino as ovb

    monkeypatch.setattr(ovb, "cpu_has_bf16", lambda core: False)
    d = tiny_dir("siamrpn_alex_dwxcorr")
    md = ModelDir.open(d)
    with pytest.raises(BackendError, match="no bf16 units"):
        OpenVinoBackend.from_model_dir(d, md.meta, cache_dir=False, precision="bf16").activate()
    with OpenVinoBackend.from_model_dir(d, md.meta, cache_dir=False, precision="auto") as b:
        assert b.precision == "f32"
    with pytest.raises(BackendError, match="unknown OpenVINO precision"):
        OpenVinoBackend.from_model_dir(d, md.meta, cache_dir=False, precision="fp16").activate()


def test_probe_crops_are_deterministic_images():
    z, x = probe_crops(127, 255, n=2)
    assert z.shape == (2, 3, 127, 127) and x.shape == (2, 3, 255, 255) and z.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 255 and x.std() > 20  # image-like range and contrast
    z2, x2 = probe_crops(127, 255, n=2)
    assert np.array_equal(z, z2) and np.array_equal(x, x2)


# ------------------------------------------------------------------------------------------------------ cache
def test_compiled_model_cache(tiny_dir, tmp_path):
    """The first start writes compiled models into the cache folder; a second start loads them (no new files);
    cache_dir=False writes nothing."""
    d = tiny_dir("siamrpn_alex_dwxcorr", levels=3)
    md = ModelDir.open(d)
    cache = tmp_path / "c"
    z, x = _inputs(md, 1)

    def start(cache_dir):
        with OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=cache_dir) as b:
            b.run_search(x, b.run_template(z))
            return b.compile_seconds

    first = start(cache)
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) >= 2 and all(cache.joinpath(f).stat().st_size > 0 for f in files)  # both branches compiled
    second = start(cache)
    assert sorted(p.name for p in cache.iterdir()) == files  # loaded, not compiled again
    assert first > 0 and second > 0
    none = tmp_path / "none"
    start(False)
    assert not none.exists()


def test_default_cache_dir_is_a_user_folder(monkeypatch, tmp_path):
    from siamtrt.runtime.openvino import default_cache_dir

    monkeypatch.delenv("SIAMTRT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "siamtrt" / "openvino"
    monkeypatch.setenv("SIAMTRT_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine" / "openvino"


def test_plugin_directory_and_bad_model_refused(tiny_dir, tmp_path):
    d = tiny_dir("siamrpn_alex_dwxcorr", xcorr="plugin")
    with pytest.raises(BackendError, match="plugin"):
        OpenVinoBackend.from_model_dir(d, ModelDir.open(d).meta, cache_dir=False).activate()
    bad = tmp_path / "bad"
    shutil.copytree(tiny_dir("siamrpn_alex_dwxcorr"), bad)
    (bad / "search.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(SiamtrtError, match="cannot read"):
        OpenVinoBackend.from_model_dir(bad, ModelDir.open(tiny_dir("siamrpn_alex_dwxcorr")).meta,
                                       cache_dir=False).activate()
