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


def _with_fake_engines(model_dir, tmp_path, max_batch, package="tensorrt", version="10.3.0", search_batch=None):
    """Stand-in engines (not real plans: serving them needs a GPU) with sidecars as build_engine writes them: the
    engine's size and sha256, its source ONNX, TensorRT package/version, batch profile and the sidecar digest."""
    from siamtrt.metadata import file_sha256
    from siamtrt.runtime.engines import DIGEST_KEY, SIDECAR_SCHEMA, sidecar_digest

    d = tmp_path / "engines"
    d.mkdir(parents=True)
    for b in ("template", "search"):
        engine = d / f"{b}.engine"
        engine.write_bytes(f"not-a-real-plan {b}".encode())
        batch = ({"fixed": search_batch} if b == "search" and search_batch else
                 {"min": 1, "opt": 1, "max": max_batch})
        side = {"schema": SIDECAR_SCHEMA, "engine": {"file": engine.name, "sha256": file_sha256(engine),
                                                     "bytes": engine.stat().st_size},
                "tensorrt": {"package": package, "version": version}, "profile": {"batch": batch},
                "source_onnx": {"file": f"{b}.onnx", "path": str(model_dir / f"{b}.onnx"),
                                "sha256": file_sha256(model_dir / f"{b}.onnx")},
                "rebuild_command": f"siamtrt build --model {model_dir}"}
        side[DIGEST_KEY] = sidecar_digest(side)
        (d / f"{b}.engine.json").write_text(json.dumps(side))
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
    with pytest.raises(ServingError, match="invalid repository options"):
        write_repository(serving_model, tmp_path / "r2", max_batch=0)
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()
    write_repository(serving_model, tmp_path / "r3")
    with pytest.raises(ServingError, match="not empty"):
        write_repository(serving_model, tmp_path / "r3")
    write_repository(serving_model, tmp_path / "r3", overwrite=True)
    broken = tmp_path / "broken"
    shutil.copytree(serving_model, broken)
    (broken / "search.onnx").unlink()
    with pytest.raises(ModelDirError):
        write_repository(broken, tmp_path / "r4")


def test_plugin_mode_directory_needs_the_tensorrt_backend(tmp_path):
    """The capability table (triton_<backend> in siamtrt.modeldir.TARGETS): ONNX Runtime cannot run the
    DepthwiseXCorr node, so the python / onnxruntime backends refuse a plugin-mode directory."""
    from rt_tiny_models import make_tiny_model_dir

    md = make_tiny_model_dir(tmp_path / "plugin", "siamrpn_alex_dwxcorr", xcorr="plugin")
    for backend in ("python", "onnxruntime"):
        with pytest.raises(ModelDirError, match="xcorr plugin") as e:
            write_repository(md, tmp_path / backend, backend=backend)
        assert "--backend tensorrt" in str(e.value)
        assert not (tmp_path / backend).exists()


@pytest.mark.parametrize("damage, message", [
    ("rtx", "tensorrt_rtx 1.7.0 engine, which Triton's TensorRT backend"),
    ("edited_version", "was edited after the build"),
    ("corrupt", "was modified after it was built"),
    ("other_onnx", "was not built from"),
    ("server_version", "the server runs TensorRT 10.8.0"),
])
def test_engines_triton_cannot_load_are_refused_without_a_gpu(serving_model, tmp_path, damage, message):
    """Issue 20 item 4: RTX engines, a sidecar edited to another TensorRT version, a corrupted engine, engines of
    another export and a server of another TensorRT version are refused before anything is written."""
    from siamtrt.errors import EngineError

    engines = _with_fake_engines(serving_model, tmp_path, 4, package="tensorrt_rtx" if damage == "rtx" else "tensorrt",
                                 version="1.7.0" if damage == "rtx" else "10.3.0")
    side_path = engines / "search.engine.json"
    if damage == "edited_version":
        side = json.loads(side_path.read_text())
        side["tensorrt"]["version"] = "10.8.0"
        side_path.write_text(json.dumps(side))
    elif damage == "corrupt":
        data = bytearray((engines / "search.engine").read_bytes())
        data[3] ^= 0xFF  # same size, different bytes: only the sha256 shows it
        (engines / "search.engine").write_bytes(bytes(data))
    elif damage == "other_onnx":
        other = tmp_path / "other"
        shutil.copytree(serving_model, other)
        from rt_tiny_models import make_tiny_model_dir

        make_tiny_model_dir(other, "siamrpn_alex_dwxcorr", seed=1)
        engines = _with_fake_engines(other, tmp_path / "o", 4)
    version = "10.8.0" if damage == "server_version" else None
    with pytest.raises(EngineError, match=message):
        write_repository(serving_model, tmp_path / "repo", backend="tensorrt", engine_dir=engines,
                         tensorrt_version=version)
    assert not (tmp_path / "repo").exists()


def test_engine_version_is_checked_or_named(serving_model, tmp_path):
    engines = _with_fake_engines(serving_model, tmp_path, 4)
    rep = write_repository(serving_model, tmp_path / "a", backend="tensorrt", engine_dir=engines,
                           tensorrt_version="10.3.0")
    assert not any("TensorRT 10.3.0 in the server" in n for n in rep.notes)
    rep = write_repository(serving_model, tmp_path / "b", backend="tensorrt", engine_dir=engines)
    assert any("need TensorRT 10.3.0 in the server" in n for n in rep.notes)


def test_a_fixed_batch_search_engine(serving_model, tmp_path):
    """A conv-mode search engine has a fixed batch: batch 1 is served unbatched (its shape carries the 1, and the
    summary says so instead of the asked --max-batch); a fixed batch above 1 cannot be fed by Triton's batcher."""
    from siamtrt.errors import EngineError

    engines = _with_fake_engines(serving_model, tmp_path, 8, search_batch=1)
    rep = write_repository(serving_model, tmp_path / "repo", backend="tensorrt", engine_dir=engines, max_batch=8)
    cfg = parse_config(rep.models["siamtrt_search"])
    assert cfg.max_batch_size == 0 and list(cfg.input[0].dims)[0] == 1 and not cfg.HasField("dynamic_batching")
    assert parse_config(rep.models["siamtrt_template"]).max_batch_size == 8
    assert "template max batch 8, search fixed batch 1" in rep.summary()
    meta = json.loads((rep.out / "siamtrt_tracker" / "1" / "siamtrt_model.json").read_text())
    assert meta["io"]["search"]["inputs"]["search"][1][0] == 1  # the tracker sends one target per call
    engines4 = _with_fake_engines(serving_model, tmp_path / "four", 8, search_batch=4)
    with pytest.raises(EngineError, match="does not pad"):
        write_repository(serving_model, tmp_path / "repo4", backend="tensorrt", engine_dir=engines4)


def test_interrupted_write_leaves_no_repository(serving_model, tmp_path, monkeypatch):
    """Ctrl-C while writing: no repository under --out, and an existing one (--overwrite) stays as it was."""
    import siamtrt.serving.repository as repo_mod

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(repo_mod, "_write_tracker", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_repository(serving_model, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    monkeypatch.undo()
    old = write_repository(serving_model, tmp_path / "old", max_batch=4)
    before = {p: p.read_bytes() for p in old.out.rglob("*") if p.is_file()}
    monkeypatch.setattr(repo_mod, "_write_tracker", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_repository(serving_model, tmp_path / "old", max_batch=8, overwrite=True)
    assert {p: p.read_bytes() for p in old.out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


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
