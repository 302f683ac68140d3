"""The generated model repository: config.pbtxt of every backend parsed by Triton's own ModelConfig schema, with the
shapes, dtypes, batching and sequence controls read from the model directory."""

from __future__ import annotations

import json
import shutil

import pytest

from siamtrt.errors import ModelDirError
from siamtrt.serving.repository import ServingError, graph_specs, write_repository

pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (serving/test extras) carries Triton's "
                                                "ModelConfig protobuf schema")
from siamtrt.serving.repository import parse_config  # noqa: E402



def _with_fake_engines(model_dir, tmp_path, max_batch):
    d = tmp_path / "engines"
    d.mkdir()
    for b in ("template", "search"):
        (d / f"{b}.engine").write_bytes(b"not-a-real-plan")
        (d / f"{b}.engine.json").write_text(json.dumps({"profile": {"batch": {"min": 1, "opt": 1, "max": max_batch}}}))
    return d


@pytest.mark.parametrize("backend", ["python", "onnxruntime", "tensorrt"])
def test_configs_parse_and_match_the_graphs(serving_model, tmp_path, backend):
    from tritonclient.grpc import model_config_pb2 as mc

    engine_dir = _with_fake_engines(serving_model, tmp_path, 4) if backend == "tensorrt" else None
    rep = write_repository(serving_model, tmp_path / "repo", backend=backend, engine_dir=engine_dir, max_batch=8)
    cfgs = {name: parse_config(path) for name, path in rep.models.items()}
    assert set(cfgs) == {"siamtrt_template", "siamtrt_search", "siamtrt_tracker"}
    want_mb = 4 if backend == "tensorrt" else 8  # the engine profile caps the batch
    for branch, onnx_name in (("template", "template.onnx"), ("search", "search.onnx")):
        cfg = cfgs[f"siamtrt_{branch}"]
        ins, outs = graph_specs(serving_model / onnx_name)
        assert cfg.max_batch_size == want_mb
        got = {i.name: (list(i.dims), i.data_type) for i in cfg.input}
        assert got == {s.name: ([-1 if d is None else d for d in s.shape[1:]], mc.TYPE_FP32) for s in ins}
        assert {o.name: list(o.dims) for o in cfg.output} == {s.name: list(s.shape[1:]) for s in outs}
        if backend == "python":
            assert cfg.backend == "python" and (rep.out / f"siamtrt_{branch}" / "1" / "model.py").is_file()
        else:
            assert cfg.platform == {"onnxruntime": "onnxruntime_onnx", "tensorrt": "tensorrt_plan"}[backend]
        assert (branch == "search") == cfg.HasField("dynamic_batching")
    vfile = {"python": "model.onnx", "onnxruntime": "model.onnx", "tensorrt": "model.plan"}[backend]
    assert (rep.out / "siamtrt_search" / "1" / vfile).is_file()
    trk = cfgs["siamtrt_tracker"]
    assert trk.backend == "python" and trk.max_batch_size == 8
    kinds = {c.name: c.control[0].kind for c in trk.sequence_batching.control_input}
    assert kinds == {"START": mc.ModelSequenceBatching.Control.CONTROL_SEQUENCE_START,
                     "END": mc.ModelSequenceBatching.Control.CONTROL_SEQUENCE_END,
                     "CORRID": mc.ModelSequenceBatching.Control.CONTROL_SEQUENCE_CORRID}
    assert trk.sequence_batching.HasField("oldest")
    assert {o.name: o.data_type for o in trk.output} == {"bbox": mc.TYPE_FP64, "score": mc.TYPE_FP64}
    meta = json.loads((rep.out / "siamtrt_tracker" / "1" / "siamtrt_model.json").read_text())
    assert meta["search_meta"]["template_outputs"] == ["cls_kernel", "loc_kernel"]


def test_parse_config_rejects_a_broken_config(serving_model, tmp_path):
    rep = write_repository(serving_model, tmp_path / "repo")
    path = rep.models["siamtrt_search"]
    path.write_text(path.read_text().replace("max_batch_size", "max_batch_sizes"))
    with pytest.raises(ServingError, match="not a valid Triton ModelConfig"):
        parse_config(path)


def test_fixed_batch_export_is_not_batched(tmp_path):
    from rt_tiny_models import make_tiny_model_dir

    md = make_tiny_model_dir(tmp_path / "b1", "siamrpn_alex_dwxcorr", batch="1")
    rep = write_repository(md, tmp_path / "repo")
    cfg = parse_config(rep.models["siamtrt_search"])
    assert cfg.max_batch_size == 0 and not cfg.HasField("dynamic_batching")
    assert list(cfg.input[0].dims)[0] == 1
    assert any("--batch 1" in n for n in rep.notes)


def test_refusals(serving_model, tmp_path):
    with pytest.raises(ModelDirError, match="template.engine"):
        write_repository(serving_model, tmp_path / "r1", backend="tensorrt")
    with pytest.raises(ServingError, match="unknown Triton backend"):
        write_repository(serving_model, tmp_path / "r2", backend="onnx")
    write_repository(serving_model, tmp_path / "r3")
    with pytest.raises(ServingError, match="not empty"):
        write_repository(serving_model, tmp_path / "r3")
    write_repository(serving_model, tmp_path / "r3", overwrite=True)
    broken = tmp_path / "broken"
    shutil.copytree(serving_model, broken)
    (broken / "search.onnx").unlink()
    with pytest.raises(ModelDirError):
        write_repository(broken, tmp_path / "r4")


def test_cli_writes_the_repository(serving_model, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "cli_repo"
    r = subprocess.run([sys.executable, str(repo / "export" / "to_triton.py"), "--model", str(serving_model),
                        "--out", str(out), "--max-batch", "4"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "siamtrt_tracker" in r.stdout
    assert parse_config(out / "siamtrt_search" / "config.pbtxt").max_batch_size == 4
    r = subprocess.run([sys.executable, str(repo / "export" / "to_triton.py"), "--model", str(tmp_path / "nope"),
                        "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr
