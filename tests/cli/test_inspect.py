"""siamtrt inspect: model directories (incl. dynamic long-term exports), engines (integrity, compatibility), MACs."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from cli_helpers import siamtrt
from siamtrt.config import CONFIGS, with_longterm
from siamtrt.metadata import file_sha256
from siamtrt.runtime.inspection import count_macs


def _conv_model(dynamic_weight: bool):
    """x [N,3,H,W] (symbolic) conv 4x3x3x3 → y; with ``dynamic_weight`` the weight is a graph input (as the xcorr)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inputs, inits = [x], []
    if dynamic_weight:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3, 3, 3]))
    else:
        inits.append(numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w"))
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="c")], "g", inputs, [y], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("dynamic_weight", [False, True])
def test_count_macs_binds_symbolic_dims(dynamic_weight):
    m = _conv_model(dynamic_weight)
    bind = {"x": [1, 3, 10, 12]} | ({"w": [4, 3, 3, 3]} if dynamic_weight else {})
    r = count_macs(m, bind)
    assert r["unknown"] == [] and r["macs"] == 4 * 8 * 10 * 3 * 3 * 3
    assert count_macs(m, {"x": [1, 3, 20, 12]} | ({"w": [4, 3, 3, 3]} if dynamic_weight else {}))["macs"] == \
        4 * 18 * 10 * 27


def test_inspect_model_dir_text_and_json(tiny_model):
    d = tiny_model()
    r = siamtrt("inspect", d)
    assert r.returncode == 0, r.stderr
    for text in ("architecture: siamrpn_alex_dwxcorr", "exemplar 127, search 287", "score map 21x21x5",
                 "precision fp32", "weights: random-realistic", "input  search", "output cls", "engines: none"):
        assert text in r.stdout, text
    rep = json.loads(siamtrt("inspect", d, "--json").stdout)
    assert rep["branches"]["search"]["sha256"] == file_sha256(d / "search.onnx")
    assert rep["branches"]["search"]["gmac"]["287x287"] > 0 and rep["branches"]["template"]["gmac"]["127x127"] > 0
    assert [i["name"] for i in rep["branches"]["search"]["inputs"]] == ["search", "cls_kernel", "loc_kernel"]


def test_inspect_says_what_openvino_bf16_record_applies(tiny_model, tmp_path, monkeypatch):
    """The bf16 record precision="auto" would read, as inspect shows it: none; a passing one (its plan, figures and
    file); one another OpenVINO version measured, which is not used here."""
    pytest.importorskip("openvino", reason="openvino is not installed")
    from siamtrt.runtime.openvino import model_key, save_bf16_record

    monkeypatch.setenv("SIAMTRT_CACHE", str(tmp_path / "cache"))
    d = tiny_model()
    assert "OpenVINO bf16: no record (precision auto runs f32" in siamtrt("inspect", d).stdout
    key = model_key(file_sha256(d / "template.onnx"), file_sha256(d / "search.onnx"))
    rec = {"passed": True, "cls": 0.9912, "loc": 0.9987, "crops": 32, "reference": "same files, f32 hint",
           "template_bf16": False, "f32_convs": 2, "steps": [], "openvino": __import__("openvino").__version__}
    save_bf16_record(tmp_path / "cache" / "openvino", key, rec)
    out = siamtrt("inspect", d).stdout
    assert ("OpenVINO bf16: kept (template f32, search convolutions kept f32: 2; worst template cls 0.9912, loc "
            "0.9987 vs f32 on 32 crops;") in out and "auto uses bf16; record in " + str(tmp_path / "cache") in out
    save_bf16_record(tmp_path / "cache" / "openvino", key, dict(rec, openvino="1999.1.0-old"))
    rep = json.loads(siamtrt("inspect", d, "--json").stdout)["openvino_bf16"]
    assert rep["passed"] and rep["stale"].startswith("measured with OpenVINO 1999.1.0-old")
    assert "not used here: measured with OpenVINO 1999.1.0-old" in siamtrt("inspect", d).stdout


def test_inspect_reads_a_bf16_record_without_openvino(tiny_model, tmp_path, monkeypatch):
    """A directory quantized for OpenVINO (its bf16 record in the metadata) inspected where OpenVINO is not installed
    (a Jetson): the record is shown as it is, and one without figures says why."""
    import shutil

    import onnx

    from siamtrt.metadata import read_onnx_metadata, set_onnx_metadata
    from siamtrt.runtime.inspection import format_report, model_dir_report

    d = tmp_path / "ovint8"
    shutil.copytree(tiny_model(), d)
    rec = {"passed": False, "reason": "OpenVINO compiled no bf16 candidate", "steps": [], "openvino": "1999.1.0-old"}
    for branch in ("template", "search"):
        m = onnx.load(str(d / f"{branch}.onnx"))
        set_onnx_metadata(m, dict(read_onnx_metadata(d / f"{branch}.onnx"), quantization={"bf16": rec}))
        onnx.save(m, str(d / f"{branch}.onnx"))
    monkeypatch.setitem(sys.modules, "openvino", None)   # import openvino → ImportError
    rep = model_dir_report(d, engines=False)
    assert rep["openvino_bf16"]["where"] == "model metadata" and rep["openvino_bf16"]["stale"] is None
    assert ("OpenVINO bf16: refused (template f32, search convolutions kept f32: 0; not measured: OpenVINO compiled "
            "no bf16 candidate; OpenVINO 1999.1.0-old) — auto runs f32; record in model metadata") in format_report(rep)


def test_inspect_longterm_export_has_gmac_at_every_size(tiny_model):
    """A dynamic-spatial long-term export: numbers at 287 and 831, not symbolic expressions or 0.00."""
    d = tiny_model("siamrpn_alex_dwxcorr", cfg=with_longterm(CONFIGS["siamrpn_alex_dwxcorr"], 831))
    rep = json.loads(siamtrt("inspect", d, "--json").stdout)
    g = rep["branches"]["search"]["gmac"]
    assert rep["sizes"]["instance_sizes"] == [287, 831]
    assert g["287x287"] > 0 and g["831x831"] > 5 * g["287x287"]  # ~ (831/287)^2 = 8.4x the pixels
    text = siamtrt("inspect", d).stdout
    assert "GMAC at 831x831" in text and "lost-state 831" in text and "unknown" not in text


def _fake_engine(tmp_path, package, version):
    eng = tmp_path / "search.engine"
    eng.write_bytes(b"engine bytes" * 100)
    side = {"schema": 1, "engine": {"file": eng.name, "sha256": file_sha256(eng), "bytes": eng.stat().st_size},
            "tensorrt": {"package": package, "version": version}, "gpu": {"built_without_gpu": True},
            "precision": "fp16", "xcorr": "conv", "io": {"search": {"shape": [1, 3, 287, 287]}},
            "profile": {"shapes": {"search": {"min": [1, 3, 287, 287], "opt": [1, 3, 287, 287],
                                              "max": [1, 3, 831, 831]}}},
            "rebuild_command": "siamtrt build --model m --fp16"}
    (tmp_path / "search.engine.json").write_text(json.dumps(side))
    return eng


def test_inspect_engine_integrity_and_compatibility(tmp_path):
    from siamtrt.gpu.tensorrt import import_tensorrt

    trt = pytest.importorskip("tensorrt_rtx", reason="needs a TensorRT package to compare against") and \
        import_tensorrt()
    eng = _fake_engine(tmp_path, trt.package, trt.version)
    r = siamtrt("inspect", eng, "--check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "integrity: ok" in r.stdout and f"compatible with {trt.package} {trt.version}" in r.stdout
    assert "max [1,3,831,831]" in r.stdout
    data = bytearray(eng.read_bytes())
    data[5] ^= 0xFF
    eng.write_bytes(bytes(data))  # same size, one byte changed
    r = siamtrt("inspect", eng, "--check")
    assert r.returncode == 1 and "MODIFIED since it was built" in r.stdout
    other = _fake_engine(tmp_path, trt.package, "0.0.1")
    r = siamtrt("inspect", other, "--check", "--json")
    rep = json.loads(r.stdout)
    assert r.returncode == 1 and rep["loads_here"] is False and "0.0.1" in rep["compatibility"]


def _engine_pair(folder, package, version, onnx_dir=None):
    """Stand-in template/search engines with sidecars as build_engine writes them (digest included); ``onnx_dir``:
    a model directory they sit in (else an engine-only folder)."""
    from siamtrt.runtime.engines import DIGEST_KEY, SIDECAR_SCHEMA, sidecar_digest

    folder.mkdir(exist_ok=True)
    for b in ("template", "search"):
        eng = folder / f"{b}.engine"
        eng.write_bytes(f"stand-in plan {b}".encode() * 50)
        side = {"schema": SIDECAR_SCHEMA, "engine": {"file": eng.name, "sha256": file_sha256(eng),
                                                     "bytes": eng.stat().st_size},
                "tensorrt": {"package": package, "version": version}, "gpu": {"built_without_gpu": True},
                "precision": "int8", "xcorr": "conv",
                "rebuild_command": "siamtrt build --model /src/alex --int8 --out /src/eng"}
        if onnx_dir is not None:
            side["source_onnx"] = {"file": f"{b}.onnx", "path": str(onnx_dir / f"{b}.onnx"),
                                   "sha256": file_sha256(onnx_dir / f"{b}.onnx")}
        side[DIGEST_KEY] = sidecar_digest(side)
        (folder / f"{b}.engine.json").write_text(json.dumps(side))
    return folder


@pytest.mark.parametrize("damage", ["no search engine", "no search engine nor sidecar", "edited sidecar",
                                    "unreadable sidecar", "no sidecar"])
@pytest.mark.parametrize("where", ["model directory", "engine directory"])
def test_inspect_check_fails_on_every_engine_problem_with_the_full_report(tiny_model, tmp_path, damage, where):
    """--check passed with one engine missing (only the template was looked at), and an edited or unreadable sidecar
    ended the report with exit 2: each is now a failed check (exit 1) in a report that lists both branches, and a
    sidecar problem in an engine-only folder gets the rebuild command the intact sibling sidecar records."""
    import shutil

    from siamtrt.gpu.tensorrt import import_tensorrt

    pytest.importorskip("tensorrt_rtx", reason="needs a TensorRT package to compare against")
    trt = import_tensorrt()
    d = tmp_path / "d"
    if where == "model directory":
        shutil.copytree(tiny_model(), d)
    _engine_pair(d, trt.package, trt.version, onnx_dir=d if where == "model directory" else None)
    r = siamtrt("inspect", d, "--check")
    assert r.returncode == 0, r.stdout + r.stderr
    side = d / "search.engine.json"
    if damage == "no search engine":
        (d / "search.engine").unlink()
        expect = "search.engine is missing, its sidecar search.engine.json is left (an orphan)"
    elif damage == "no search engine nor sidecar":
        (d / "search.engine").unlink()
        side.unlink()
        expect = "search.engine is missing (and its sidecar search.engine.json)"
    elif damage == "edited sidecar":
        side.write_text(side.read_text().replace(trt.version, "0.0.1"))
        expect = "search.engine.json was edited after the build"
    elif damage == "unreadable sidecar":
        side.write_text('{"schema": \x01')
        expect = "search.engine.json is not readable JSON"
    else:
        side.unlink()
        expect = "search.engine has no sidecar search.engine.json"
    r = siamtrt("inspect", d, "--check")
    assert r.returncode == 1, r.stdout + r.stderr
    assert expect in r.stdout and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "template: " in r.stdout and "integrity: ok" in r.stdout  # the intact branch is still reported
    assert "siamtrt build --model /src/alex --int8 --out /src/eng" in r.stdout  # the recorded one
    rep = json.loads(siamtrt("inspect", d, "--json").stdout)
    assert rep["engines"]["search"]["intact"] is False and rep["engines"]["template"]["intact"] is True


def test_a_closed_stdout_ends_quietly(tiny_model):
    """``siamtrt inspect DIR --json | head -c 1500`` ended in a BrokenPipeError traceback: the reader closing stdout
    now ends the command quietly with 141 (128 + SIGPIPE), as Python's documentation advises."""
    import subprocess

    from cli_helpers import REPO, cli_env

    p = subprocess.Popen([sys.executable, "-m", "siamtrt", "inspect", str(tiny_model()), "--json"], cwd=REPO,
                         env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # the reader is gone before the report is printed
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err


def test_inspect_needs_no_torch(tiny_model):
    """inspect reads protobufs and JSON only: it runs where the runtime runs (torch blocked here)."""
    import subprocess
    import sys

    from cli_helpers import REPO, cli_env

    code = ("import sys; sys.modules['torch'] = None; from siamtrt.cli.main import main; "
            f"sys.exit(main(['inspect', {str(tiny_model())!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), cwd=REPO,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "GMAC at 287x287" in r.stdout
