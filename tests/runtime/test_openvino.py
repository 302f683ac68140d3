"""OpenVINO backend: registry and auto choice, parity with ONNX Runtime FP32 (tiny and realistic models, N targets,
long-term 831 search size, an INT8 Q/DQ directory), the bf16 fidelity gate, the compiled-model cache."""

from __future__ import annotations

import dataclasses
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
from siamtrt.runtime.openvino import BF16_RECORD, OpenVinoBackend, cpu_has_bf16  # noqa: E402
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
        assert {dict(k[1])["search"][2] for k in o._compiled if k[0] == "search"} == {287, 831}
    with Tracker.from_model_dir(d, backend="openvino", mode="longterm", threads=1, cache_dir=tmp_path / "c") as t:
        t.init(bag_frames[0], BOX)
        t._next_search(np.ones(1, bool), bag_frames[0].shape[1::-1])  # lost: the next frame searches at 831
        assert int(t.track(bag_frames[1]).instance_size[0]) == 831


def test_longterm_growth_compiles_one_dynamic_search_model(tiny_dir, bag_frames, tmp_path):
    """lost_growth_step > 0 searches at a new size every lost frame (287, 295, … towards 831): those sizes run on one
    search model compiled with dynamic spatial axes, so a long lost episode compiles three models in all (template,
    287, the dynamic one) instead of one per ladder size (kept LRU, every episode recompiled them all: alex, 3
    episodes, 20 → 34 → 45 s of compiling, RSS 1482 → 1923 MB), with ONNX Runtime's sizes and boxes. The dynamic
    model's outputs equal a static model's at a ladder size."""
    from siamtrt.runtime.openvino import MAX_SIGNATURES

    cfg = with_longterm(CONFIGS["siamrpn_alex_dwxcorr"], 831)
    d = tiny_dir("siamrpn_alex_dwxcorr", cfg=cfg)
    lost = dict(confidence_low=0.999999, confidence_high=1.0, lost_growth_step=8)   # lost on every frame
    frames = (bag_frames * 2)[1:MAX_SIGNATURES + 12]
    got = {}
    for name, opts in (("openvino", {"cache_dir": False}), ("onnxruntime", {"providers": "cpu"})):
        with Tracker.from_model_dir(d, backend=name, mode="longterm", threads=1, **opts) as t:
            t.info = dataclasses.replace(t.info, track=dataclasses.replace(t.info.track, **lost))
            t.init(bag_frames[0], (300, 200, 30, 30))
            res = [t.track(f) for f in frames]
            got[name] = np.array([r.boxes[0] for r in res]), [int(r.instance_size[0]) for r in res]
            if name == "openvino":
                b = t.backend
                assert b.compiles == 3 and len(b._compiled) == 3
                assert {dict(k[1])["search"][2] for k in b._compiled if k[0] == "search"} == {287, -1}
                spent = b.compiles
                t.track(frames[0])   # the episode's sizes again: nothing new compiled
                assert b.compiles == spent
    sizes = got["openvino"][1]
    assert sizes == got["onnxruntime"][1] and len(set(sizes)) > MAX_SIGNATURES and sizes[1:4] == [295, 303, 311]
    np.testing.assert_allclose(got["openvino"][0], got["onnxruntime"][0], atol=1e-3)
    md = ModelDir.open(d)
    z, x = _inputs(md, 1, size=391, seed=7)
    with OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=False) as b:
        k = b.run_template(z)
        dyn = [np.array(a) for a in b.run_search(x, k)]
        assert [dict(key[1])["search"][2] for key in b._compiled if key[0] == "search"] == [-1]
        b._static_sizes.add(391)   # the same size compiled static
        for a, s in zip(dyn, b.run_search(x, k)):
            _assert_close(a, s, 1e-6)


def _int8_tiny(src, out):
    """An INT8 copy of a tiny directory: the search branch Q/DQ-quantized by onnxruntime.quantization on random
    crops (the tiny template has nothing to quantize: its only convolutions are its outputs), precision int8."""
    from siamtrt.calibration.qdq import BranchQuantizer
    from siamtrt.metadata import read_onnx_metadata, set_onnx_metadata

    md = ModelDir.open(src)
    out.mkdir()
    z, x = _inputs(md, 4, seed=7)
    with OrtBackend.from_model_dir(src, md.meta, threads=1) as be:
        k = be.run_template(z)
    feeds = [dict(search=x[i:i + 1], **{n: v[i:i + 1] for n, v in k.items()}) for i in range(4)]
    with BranchQuantizer(src / "search.onnx", feeds, branch="search", total=4) as bq:
        q = bq.quantize(bq.stem + bq.corr + bq.tail)
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


needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no bf16 units (AVX512-BF16/AMX): "
                                                                    "the bf16 hint would run in f32 here")


def _smooth(rng, n, side):
    """Image-like crops (smooth fields, 0..255): the tiny models average-pool their input, so pixel noise would
    leave them nothing to compute."""
    import cv2

    return np.stack([cv2.resize(rng.uniform(0, 255, (6, 6, 3)).astype(np.float32), (side, side),
                                interpolation=cv2.INTER_CUBIC).clip(0, 255).transpose(2, 0, 1)
                     for _ in range(n)]).astype(np.float32)


def _crops(md, n=6, templates=2, seed=5):
    """(templates, search crops, pair) for the bf16 measurement."""
    rng = np.random.default_rng(seed)
    return _smooth(rng, templates, md.exemplar_size), _smooth(rng, n, md.instance_size), np.arange(n) % templates


def _record(d, cache, **kw):
    """Measure bf16 for a directory (calibration.sensitivity.bf16_fidelity) and record it in ``cache``."""
    from siamtrt.calibration.sensitivity import bf16_fidelity
    from siamtrt.metadata import file_sha256
    from siamtrt.runtime.openvino import model_key, save_bf16_record

    md = ModelDir.open(d)
    rec = bf16_fidelity(md.onnx("template"), md.onnx("search"), _crops(md), md.template_outputs, md.meta,
                        threads=1, **kw)
    save_bf16_record(cache, model_key(file_sha256(md.onnx("template")), file_sha256(md.onnx("search"))), rec)
    return md, rec


def test_bf16_refused_without_a_record(tiny_dir, tmp_path):
    """No fidelity record for these files: "bf16" is refused with the command that measures it, "auto" is f32."""
    d = tiny_dir("siamrpn_alex_dwxcorr")
    md = ModelDir.open(d)
    if cpu_has_bf16():
        with pytest.raises(BackendError, match="needs a bf16 fidelity record") as e:
            OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=tmp_path / "c",
                                           precision="bf16").activate()
        assert "--check-bf16" in str(e.value)
    with OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=tmp_path / "c", precision="auto") as b:
        assert b.precision == "f32"


@needs_bf16
def test_bf16_refused_where_fidelity_fails(tiny_dir, tmp_path):
    """The fragile model fails the bf16 measurement: "bf16" is refused with the figures, "auto" stays f32."""
    d = _bf16_fragile(tiny_dir("siamrpn_alex_dwxcorr"), tmp_path / "fragile")
    cache = tmp_path / "c"
    md, rec = _record(d, cache)
    assert rec["passed"] is False and rec["cls"] < 0.98 and rec["crops"] == 6 and rec["templates"] == 2
    assert list(json.loads((cache / BF16_RECORD).read_text()).values())[0]["cls"] == rec["cls"]
    with pytest.raises(BackendError, match="bf16.*breaks") as e:
        OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=cache, precision="bf16").activate()
    assert "cls cosine" in str(e.value) and "fix:" in str(e.value)
    with OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=cache, precision="auto") as b:
        assert b.precision == "f32" and b.bf16_check["passed"] is False


@needs_bf16
def test_bf16_taken_where_fidelity_holds(tiny_dir, tmp_path):
    """The unmodified tiny model keeps fidelity with the whole pair in bf16 (the check's first candidate): with its
    record, "auto" runs both branches with the bf16 hint, whose outputs differ from f32's (bf16 really ran, in the
    template branch too) within the recorded fidelity."""
    d = tiny_dir("siamrpn_alex_dwxcorr")
    md, rec = _record(d, tmp_path / "c")
    assert rec["passed"] and rec["cls"] >= 0.98 and rec["loc"] >= 0.98
    assert rec["template_bf16"] and rec["f32_convs"] == 0 and len(rec["steps"]) == 1
    z, x = _inputs(md, 1)
    outs, kernels = {}, {}
    for prec in ("auto", "f32"):
        with OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=tmp_path / "c", precision=prec) as b:
            assert b.precision == {"auto": "bf16", "f32": "f32"}[prec] and b.template_bf16 == (prec == "auto")
            kernels[prec] = {k: np.array(v) for k, v in b.run_template(z).items()}
            outs[prec] = np.array(b.run_search(x, kernels[prec])[0], np.float64).ravel()
    cos = outs["auto"] @ outs["f32"] / (np.linalg.norm(outs["auto"]) * np.linalg.norm(outs["f32"]))
    assert 0.98 <= cos and not np.array_equal(outs["auto"], outs["f32"])
    assert not all(np.array_equal(kernels["auto"][k], kernels["f32"][k]) for k in kernels["f32"])


@needs_bf16
def test_bf16_record_in_the_metadata(tiny_dir, tmp_path):
    """quantize --target openvino writes the record into the directory's metadata: it needs no cache folder."""
    from siamtrt.metadata import read_onnx_metadata, set_onnx_metadata

    d = tmp_path / "withrecord"
    shutil.copytree(tiny_dir("siamrpn_alex_dwxcorr"), d)
    for passed, want in ((True, "bf16"), (False, "f32")):
        for branch in ("template", "search"):
            m = onnx.load(str(d / f"{branch}.onnx"))
            meta = dict(read_onnx_metadata(d / f"{branch}.onnx"),
                        quantization={"bf16": {"passed": passed, "cls": 0.99 if passed else 0.8, "loc": 0.99}})
            set_onnx_metadata(m, meta)
            onnx.save(m, str(d / f"{branch}.onnx"))
        md = ModelDir.open(d)
        with OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=False, precision="auto") as b:
            assert b.precision == want and b.bf16_check["where"] == "model metadata"


@needs_bf16
def test_bf16_record_of_another_openvino_is_measured_again(tiny_dir, tmp_path, caplog):
    """A passing record another OpenVINO version measured (a directory quantized elsewhere) does not speak for this
    one: "auto" runs f32 and says why, "bf16" is refused with the command; a record of the running version in the
    cache folder (re-measured) goes before the stale one in the metadata."""
    import openvino

    from siamtrt.metadata import file_sha256, read_onnx_metadata, set_onnx_metadata
    from siamtrt.runtime.openvino import model_key, save_bf16_record

    d = tmp_path / "elsewhere"
    shutil.copytree(tiny_dir("siamrpn_alex_dwxcorr"), d)
    for branch in ("template", "search"):
        m = onnx.load(str(d / f"{branch}.onnx"))
        set_onnx_metadata(m, dict(read_onnx_metadata(d / f"{branch}.onnx"), quantization={"bf16": {
            "passed": True, "cls": 0.99, "loc": 0.99, "openvino": "1999.1.0-old"}}))
        onnx.save(m, str(d / f"{branch}.onnx"))
    md, cache = ModelDir.open(d), tmp_path / "c"
    with caplog.at_level("WARNING", logger="siamtrt"):
        with OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=cache, precision="auto") as b:
            assert b.precision == "f32"
    assert "1999.1.0-old" in caplog.text and "--check-bf16" in caplog.text
    with pytest.raises(BackendError, match="another version's") as e:
        OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=cache, precision="bf16").activate()
    assert "1999.1.0-old" in str(e.value) and "--check-bf16" in str(e.value)
    save_bf16_record(cache, model_key(file_sha256(d / "template.onnx"), file_sha256(d / "search.onnx")),
                     {"passed": True, "cls": 0.995, "loc": 0.99, "openvino": openvino.__version__})
    with OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=cache, precision="auto") as b:
        assert b.precision == "bf16" and b.bf16_check["where"] == str(cache / BF16_RECORD)


@needs_bf16
def test_bf16_keeps_the_first_convolutions_f32_where_that_holds(tiny_dir, tmp_path, monkeypatch):
    """The fragile pair of convolutions sits first in the search branch: bf16 fails for the whole pair, and with
    the template f32 and none or one of them f32, and passes with both (the check's search, allowed here to reach
    half of the six convolutions); the backend then runs that prefix f32 (outputs near f32's), while the same bf16
    hint without the prefix breaks them. The template branch then compiles f32 (its kernels equal f32's exactly)."""
    import siamtrt.calibration.sensitivity as sens

    monkeypatch.setattr(sens, "BF16_MAX_F32_SHARE", 0.5)
    d = _bf16_fragile(tiny_dir("siamrpn_alex_dwxcorr"), tmp_path / "fragile")
    md, rec = _record(d, tmp_path / "c")
    assert [(s["template_bf16"], s["f32_convs"]) for s in rec["steps"]] == [(True, 0), (False, 0), (False, 1),
                                                                              (False, 2)]
    assert [s["cls"] < 0.98 for s in rec["steps"]] == [True, True, True, False]
    assert rec["passed"] and rec["f32_convs"] == 2 and not rec["template_bf16"] and rec["cls"] >= 0.98
    z, x, _ = _crops(md, n=1, templates=1, seed=3)   # image-like: pooled noise would carry no signal to lose
    z, x = np.ascontiguousarray(z), np.ascontiguousarray(x)
    outs, kernels = {}, {}
    for name, opts in (("f32", {"precision": "f32"}), ("auto", {"precision": "auto"}),
                       ("bare", {"precision": "bf16", "bf16_gate": False, "f32_convs": 0})):
        with OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=tmp_path / "c", **opts) as b:
            assert b.f32_convs == {"f32": 0, "auto": 2, "bare": 0}[name] and not b.template_bf16
            kernels[name] = {k: np.array(v) for k, v in b.run_template(z).items()}
            outs[name] = np.array(b.run_search(x, kernels[name])[0], np.float64).ravel()
    cos = {n: outs[n] @ outs["f32"] / (np.linalg.norm(outs[n]) * np.linalg.norm(outs["f32"])) for n in outs}
    assert cos["auto"] >= 0.98 > cos["bare"]
    for name in ("auto", "bare"):
        assert all(np.array_equal(kernels[name][k], kernels["f32"][k]) for k in kernels["f32"])


@needs_bf16
def test_keep_f32_marks_what_it_says(tiny_dir):
    """keep_f32: the first N convolutions (and what they depend on) run f32 under the bf16 hint, the rest bf16; a
    count beyond the model's convolutions is refused."""
    from collections import Counter

    from siamtrt.runtime.openvino import convolutions, keep_f32, shared_core

    core = shared_core()
    model = core.read_model(str(ModelDir.open(tiny_dir("siamrpn_alex_dwxcorr")).onnx("search")))
    n = len(convolutions(model))

    def conv_precisions(m):
        m = m.clone()
        m.reshape({i.get_any_name(): [1 if dim.is_dynamic else dim.get_length() for dim in i.get_partial_shape()]
                   for i in m.inputs})
        c = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": 1})
        return Counter(op.get_rt_info()["runtimePrecision"].astype(str) for op in c.get_runtime_model().get_ops()
                       if op.get_rt_info()["layerType"].astype(str) == "Convolution")

    assert conv_precisions(model).get("f32", 0) == 0
    assert conv_precisions(keep_f32(core, model, 1))["f32"] == 1
    assert conv_precisions(keep_f32(core, model, n)) == Counter({"f32": n})
    with pytest.raises(BackendError, match=f"the model has {n}"):
        keep_f32(core, model, n + 1)


@needs_bf16
def test_default_benchmark_measures_bf16_once(tiny_dir, bag_video, tmp_path, monkeypatch):
    """bf16_record_for (the default benchmark's check): measured on crops of the video and recorded the first
    time (a failing record of the older check, without steps, counts as none), read back the second; a passing
    record of another OpenVINO version is measured again."""
    from siamtrt.calibration.sensitivity import bf16_record_for
    from siamtrt.metadata import file_sha256
    from siamtrt.runtime.openvino import model_key, save_bf16_record

    monkeypatch.setenv("SIAMTRT_CACHE", str(tmp_path / "cache"))
    d = tiny_dir("siamrpn_alex_dwxcorr")
    md = ModelDir.open(d)
    save_bf16_record(tmp_path / "cache" / "openvino", model_key(file_sha256(md.onnx("template")),
                                                                file_sha256(md.onnx("search"))),
                     {"passed": False, "cls": 0.9, "loc": 0.99, "crops": 32})
    rec, measured = bf16_record_for(d, bag_video, BOX, threads=1, progress=False)
    assert measured and rec["passed"] and rec["crops"] > 0 and (tmp_path / "cache" / "openvino" / BF16_RECORD).is_file()
    again, measured = bf16_record_for(d, bag_video, BOX, threads=1, progress=False)
    assert not measured and again == dict(json.loads(json.dumps(rec)), model_dir=str(d))
    with OpenVinoBackend.from_model_dir(d, ModelDir.open(d).meta, threads=1, precision="auto") as b:
        assert b.precision == "bf16"
    save_bf16_record(tmp_path / "cache" / "openvino", model_key(file_sha256(md.onnx("template")),
                                                                file_sha256(md.onnx("search"))),
                     dict(rec, openvino="1999.1.0-old"))
    fresh, measured = bf16_record_for(d, bag_video, BOX, threads=1, progress=False)
    assert measured and fresh["openvino"] != "1999.1.0-old"


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


@needs_bf16
def test_check_bf16_command(tiny_dir, bag_video, tmp_path, monkeypatch, capsys):
    """quantize.py --check-bf16 measures on calibration crops and records in the cache folder the backend reads."""
    from siamtrt.calibration.collect import SourceSpec, collect
    from siamtrt.cli.quantize import main

    d = tiny_dir("siamrpn_alex_dwxcorr")
    calib = tmp_path / "calib.npz"
    collect(d, [SourceSpec(bag_video, bbox=BOX)], calib, max_samples=6, templates_per_source=2, max_frames=8,
            progress=False)
    monkeypatch.setenv("SIAMTRT_CACHE", str(tmp_path / "cache"))
    assert main(["--model", str(d), "--calib", str(calib), "--check-bf16"]) == 0
    out = capsys.readouterr().out
    assert "bf16 hint vs f32" in out and "kept" in out and str(tmp_path / "cache") in out
    with OpenVinoBackend.from_model_dir(d, ModelDir.open(d).meta, threads=1, precision="bf16") as b:
        assert b.precision == "bf16" and b.bf16_check["crops"] == 6
    assert main(["--model", str(d), "--check-bf16"]) == 2          # real crops are required
    assert main(["--model", str(d), "--calib", str(calib), "--check-bf16", "--out", str(tmp_path / "x")]) == 2
    assert "--out" in capsys.readouterr().err


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


def test_cache_is_kept_under_its_size(tiny_dir, tmp_path, monkeypatch):
    """OpenVINO never removes a compiled blob: the least recently used go first when a backend starts and the
    folder's blobs exceed CACHE_MAX_BYTES; other files (the bf16 records) stay."""
    import os

    from siamtrt.runtime import openvino as ovm

    cache = tmp_path / "c"
    cache.mkdir()
    for age in range(5):   # 1000-byte blobs, b4 the oldest
        blob = cache / f"b{age}.blob"
        blob.write_bytes(b"x" * 1000)
        os.utime(blob, (1e9 - age * 1000, 1e9 - age * 1000))
    (cache / BF16_RECORD).write_text("{}")
    assert sorted(p.name for p in ovm.prune_cache(cache, max_bytes=2500)) == ["b2.blob", "b3.blob", "b4.blob"]
    assert sorted(p.name for p in cache.iterdir()) == ["b0.blob", "b1.blob", BF16_RECORD]
    assert ovm.prune_cache(cache, max_bytes=2500) == []

    monkeypatch.setattr(ovm, "CACHE_MAX_BYTES", 1500)   # a backend starting prunes with the module's bound
    d = tiny_dir("siamrpn_alex_dwxcorr")
    OpenVinoBackend.from_model_dir(d, ModelDir.open(d).meta, threads=1, cache_dir=cache).activate()
    assert sorted(p.name for p in cache.iterdir()) == ["b0.blob", BF16_RECORD]


def test_default_cache_dir_is_a_user_folder(monkeypatch, tmp_path):
    from siamtrt.runtime.openvino import default_cache_dir

    monkeypatch.delenv("SIAMTRT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "siamtrt" / "openvino"
    monkeypatch.setenv("SIAMTRT_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine" / "openvino"


def test_cache_dir_of_another_type_is_refused(tiny_dir, monkeypatch, tmp_path):
    """cache_dir=5 raised pathlib's TypeError; True / None mean the default folder, False no cache."""
    d = tiny_dir("siamrpn_alex_dwxcorr")
    meta = ModelDir.open(d).meta
    for bad in (5, 0, [str(tmp_path)]):
        with pytest.raises(BackendError, match="cache_dir must be a folder path"):
            OpenVinoBackend.from_model_dir(d, meta, threads=1, cache_dir=bad).activate()
    monkeypatch.setenv("SIAMTRT_CACHE", str(tmp_path / "mine"))
    with OpenVinoBackend.from_model_dir(d, meta, threads=1, cache_dir=True) as b:
        assert b.cache_dir == tmp_path / "mine" / "openvino"


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


def test_any_batch_runs_as_chunks_without_recompiling(tiny_dir):
    """Batches of 1..18 targets run as BATCH_CHUNKS chunks: each branch compiles one signature per chunk size, all
    of them stay (MAX_SIGNATURES), a second pass over mixed batch sizes compiles nothing, and a chunked batch gives
    what each target gives alone. (Compiling every batch size met kept 17 signatures in rotation in a 4-target
    long-term + distractor run and recompiled on the frame path.)"""
    from siamtrt.runtime.openvino import BATCH_CHUNKS, MAX_REQUEST_PIXELS, MAX_SIGNATURES, batch_chunks

    assert [batch_chunks(n) for n in (1, 3, 5, 11, 20)] == [[1], [3], [4, 1], [8, 3], [8, 8, 4]]
    d = tiny_dir("siamrpn_alex_dwxcorr")
    md = ModelDir.open(d)
    with OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=False) as b:
        for n in range(1, 19):
            z, x = _inputs(md, n)
            b.run_search(x, b.run_template(z))
        keys = sorted(b._compiled)
        search_chunks = [c for c in BATCH_CHUNKS if c <= MAX_REQUEST_PIXELS // md.instance_size ** 2]  # 287: 4..1
        assert len(keys) == len(BATCH_CHUNKS) + len(search_chunks) <= MAX_SIGNATURES
        spent = b.compile_seconds
        for n, picks in ((11, (0, 7, 8, 10)), (18, (0, 8, 16, 17))):   # template 8 + 3, search 4 + 4 + 3; ...
            z, x = _inputs(md, n, seed=3)
            cls, loc = (np.array(a) for a in b.run_search(x, b.run_template(z)))
            for i in picks:
                ci, li = b.run_search(x[i:i + 1], b.run_template(z[i:i + 1]))
                _assert_close(ci, cls[i:i + 1], 1e-5)
                _assert_close(li, loc[i:i + 1], 1e-5)
        for n in (7, 3, 18, 5):
            z, x = _inputs(md, n)
            b.run_search(x, b.run_template(z))
        assert b.compile_seconds == spent and sorted(b._compiled) == keys


def test_large_inputs_run_one_target_per_request(tiny_dir):
    """Above MAX_REQUEST_PIXELS a batch is split further (the 831 search of 4 lost targets ran 1.44x faster one
    target per request): the chunks, the signatures compiled, and the outputs equal to ONNX Runtime's batch."""
    from siamtrt.runtime.openvino import MAX_REQUEST_PIXELS, batch_chunks

    assert MAX_REQUEST_PIXELS == 4 * 287 * 287
    assert batch_chunks(4, 287 * 287) == [4] and batch_chunks(8, 287 * 287) == [4, 4]
    assert batch_chunks(4, 831 * 831) == [1, 1, 1, 1] and batch_chunks(3, 511 * 511) == [1, 1, 1]
    assert batch_chunks(12, 127 * 127) == [8, 4] and batch_chunks(5, 255 * 255) == [4, 1]
    cfg = with_longterm(CONFIGS["siamrpn_alex_dwxcorr"], 831)
    d = tiny_dir("siamrpn_alex_dwxcorr", cfg=cfg)
    md = ModelDir.open(d)
    z, x = _inputs(md, 3, size=831, seed=5)
    with OrtBackend.from_model_dir(d, md.meta, threads=1, providers="cpu") as ort:
        want = [np.array(a) for a in ort.run_search(x, ort.run_template(z))]
    with OpenVinoBackend.from_model_dir(d, md.meta, threads=1, cache_dir=False, precision="f32") as b:
        got = [np.array(a) for a in b.run_search(x, b.run_template(z))]
        assert {dict(k[1])["search"][0] for k in b._compiled if k[0] == "search"} == {1}
    for g, w in zip(got, want):
        _assert_close(g, w, 1e-4)


@pytest.mark.parametrize("mode", ["distractor", "longterm+distractor"])
def test_every_mode_equals_onnxruntime(mode, tiny_dir, bag_frames, tmp_path):
    """The distractor modes (extra batched template calls, re-weighted kernels) give ORT's boxes on OpenVINO."""
    cfg = with_longterm(CONFIGS["siamrpn_alex_dwxcorr"], 831)
    d = tiny_dir("siamrpn_alex_dwxcorr", cfg=cfg)
    got, found = {}, {}
    for name, opts in (("openvino", {"cache_dir": tmp_path / "c"}), ("onnxruntime", {"providers": "cpu"})):
        with Tracker.from_model_dir(d, backend=name, mode=mode, threads=1, **opts) as t:
            t.init(bag_frames[0], BOX)
            res = [t.track(f) for f in bag_frames[1:10]]
            got[name] = np.stack([r.boxes for r in res])
            found[name] = [int(r.distractors.sum()) for r in res]
    assert sum(found["openvino"]) > 0 and found["openvino"] == found["onnxruntime"]  # the distractor path ran
    np.testing.assert_allclose(got["openvino"], got["onnxruntime"], atol=1e-3)


def test_fp16_directory_runs(tiny_dir, tmp_path):
    """An FP16 directory (fp16 weights, float32 I/O) runs on OpenVINO (computed in f32) like on ORT."""
    pytest.importorskip("onnxconverter_common", reason="onnxconverter-common is not installed (the FP16 converter)")
    from siamtrt.calibration.fp16 import convert_fp16

    d = tmp_path / "fp16"
    convert_fp16(tiny_dir("siamrpn_alex_dwxcorr", channels=16), d)
    md, o, r = _pair(d, tmp_path / "c")
    assert md.precision == "fp16"
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in onnx.load(str(d / "search.onnx")).graph.initializer)
    z, x = _inputs(md, 2, seed=4)
    with o, r:
        co, lo = o.run_search(x, o.run_template(z))
        cr, lr = r.run_search(x, r.run_template(z))
    _assert_close(co, cr, 2e-3)  # both dequantize the fp16 weights; arithmetic differs in rounding only
    _assert_close(lo, lr, 2e-3)
