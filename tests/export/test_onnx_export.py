"""Every architecture: random realistic weights → public-layout checkpoint → load → export → parity with PyTorch."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from siamtrt.config import CONFIGS
from siamtrt.errors import ModelDirError
from siamtrt.metadata import read_onnx_metadata

FAST = ["siamrpn_alex_dwxcorr", "siamrpn_mobilev2_l234_dwxcorr", "SiamRPNvot", "SiamRPNotb"]
SLOW = ["siamrpn_r50_l234_dwxcorr", "SiamRPNBIG"]
ARCHS = FAST + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW]


@pytest.mark.parametrize("name", ARCHS)
def test_export_parity_and_metadata(name, model_dir, torch_model):
    d = model_dir(name)
    cfg = CONFIGS[name]
    tmeta, smeta = read_onnx_metadata(d / "template.onnx"), read_onnx_metadata(d / "search.onnx")
    assert tmeta["branch"] == "template" and smeta["branch"] == "search"
    assert smeta["arch"] == name and smeta["score_size"] == cfg.score_size
    assert smeta["track"]["penalty_k"] == cfg.track.penalty_k and smeta["anchor"]["stride"] == 8
    assert smeta["weights"] == "checkpoint" and len(smeta["checkpoint_sha256"]) == 64
    tm, sm = onnx.load(str(d / "template.onnx")), onnx.load(str(d / "search.onnx"))
    onnx.checker.check_model(tm)
    onnx.checker.check_model(sm)
    outs = [o.name for o in tm.graph.output]
    assert outs == smeta["template_outputs"]
    assert [i.name for i in sm.graph.input] == ["search", *outs]
    assert [o.name for o in sm.graph.output] == ["cls", "loc"]
    # the correlation is a standard grouped Conv whose weight is a graph tensor, not an initializer
    inits = {i.name for i in sm.graph.initializer}
    dyn_convs = [n for n in sm.graph.node if n.op_type == "Conv" and n.input[1] not in inits]
    assert len(dyn_convs) == len(outs)
    # independent parity on fresh inputs (batch 3), against the torch model the checkpoint was made from
    _independent_parity(d, torch_model(name), cfg, batch=3, dynamic=True)


def _independent_parity(d, model, cfg, batch: int, dynamic: bool) -> None:
    """ONNX Runtime on fresh seeded inputs vs the PyTorch model (not the exporter's own parity run)."""
    outs = read_onnx_metadata(d / "search.onnx")["template_outputs"]
    t = cfg.track
    g = torch.Generator().manual_seed(7)
    z = torch.rand(batch, 3, t.exemplar_size, t.exemplar_size, generator=g) * 255
    x = torch.rand(batch, 3, t.instance_size, t.instance_size, generator=g) * 255
    with torch.no_grad():
        model.dynamic_batch = dynamic
        kernels = model.template(z)
        cls, loc = model.track(x, *kernels)
    model.dynamic_batch = True
    ts = ort.InferenceSession(str(d / "template.onnx"), providers=["CPUExecutionProvider"])
    ss = ort.InferenceSession(str(d / "search.onnx"), providers=["CPUExecutionProvider"])
    k_ort = ts.run(None, {"template": z.numpy()})
    c_ort, l_ort = ss.run(None, {"search": x.numpy(), **dict(zip(outs, k_ort))})
    for ref, got in [(cls, c_ort), (loc, l_ort)] + list(zip(kernels, k_ort)):
        ref = ref.numpy()
        assert np.abs(ref - got).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("name", ARCHS)
def test_batch1_opset17_parity(name, checkpoint, torch_model, tmp_path):
    """The other export forms, for every architecture: pysot's static batch-1 graph (batch folded into channels,
    group = N·C) converted to opset 17 (TensorRT 8.5 / JetPack 5), checked independently against PyTorch."""
    from siamtrt.export.onnx import export_model

    res = export_model(name, tmp_path / "b1-o17", checkpoint=checkpoint(name), batch="1", opset=17)
    sm = onnx.load(str(res.search_path))
    assert sm.opset_import[0].version == 17 and sm.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert read_onnx_metadata(res.search_path)["batch"] == "1"
    _independent_parity(res.out_dir, torch_model(name), CONFIGS[name], batch=1, dynamic=False)


def test_static_batch_export(model_dir):
    d = model_dir("siamrpn_alex_dwxcorr", batch="1")
    sm = onnx.load(str(d / "search.onnx"))
    assert sm.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert read_onnx_metadata(d / "search.onnx")["batch"] == "1"


def test_corrupt_onnx_is_reported(tmp_path):
    p = tmp_path / "search.onnx"
    p.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ModelDirError, match="not a readable ONNX file"):
        read_onnx_metadata(p)


def test_opset17_export_for_jetpack5(checkpoint, tmp_path):
    """TensorRT 8.5 (JetPack 5) parses opset ≤ 17: the converted graph must still pass the parity check."""
    from siamtrt.export.onnx import export_model

    res = export_model("siamrpn_alex_dwxcorr", tmp_path / "o17", checkpoint=checkpoint("siamrpn_alex_dwxcorr"),
                       opset=17)
    assert onnx.load(str(res.search_path)).opset_import[0].version == 17
    assert all(v["rel"] <= 1e-4 for v in res.parity.values())


def test_failed_export_leaves_no_out_dir(tmp_path):
    """A failing export leaves no --out folder (and closes its progress bar first); a non-empty folder that is not a
    model directory is refused before any work and left alone."""
    from tqdm import tqdm

    from siamtrt.errors import CheckpointError, InputError
    from siamtrt.export.onnx import export_model

    bad = tmp_path / "stray.pth"
    torch.save({"foo.weight": torch.zeros(3)}, bad)
    out = tmp_path / "new"
    with pytest.raises(CheckpointError):
        export_model("siamrpn_alex_dwxcorr", out, checkpoint=bad, progress=True)
    assert not out.exists()
    assert not [b for b in tqdm._instances if not b.disable]  # the bar was closed before the error surfaced
    with pytest.raises(CheckpointError, match="does not exist"):
        export_model("siamrpn_alex_dwxcorr", out, checkpoint=tmp_path / "missing.pth")
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="holds other files and no model"):
        export_model("siamrpn_alex_dwxcorr", existing, checkpoint=bad)
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "stray.pth"]  # no staging folder left


def test_plugin_mode_export_is_one_readable_directory(checkpoint, tmp_path):
    """--xcorr plugin: the search graph holds DepthwiseXCorr nodes and both branches say xcorr "plugin", so the
    directory passes ModelDir's cross-check (before, the template said "conv" and the directory was unreadable)."""
    from siamtrt.errors import ExportError
    from siamtrt.export.onnx import export_model
    from siamtrt.modeldir import ModelDir

    res = export_model("siamrpn_alex_dwxcorr", tmp_path / "p", checkpoint=checkpoint("siamrpn_alex_dwxcorr"),
                       xcorr="plugin", simplify=False)
    md = ModelDir.open(res.out_dir)
    assert md.xcorr == md.template_meta["xcorr"] == "plugin"
    assert any(n.domain == "siamtrt" for n in onnx.load(str(res.search_path)).graph.node)
    with pytest.raises(ExportError, match="not depthwise"):  # refused before anything is built
        export_model("SiamRPNvot", tmp_path / "d", xcorr="plugin")
    assert not (tmp_path / "d").exists()


def test_interrupted_export_leaves_the_directory_as_it_was(checkpoint, model_dir, tmp_path, monkeypatch):
    """Ctrl-C after both ONNX files are written (during the parity run): a new --out does not appear, and an
    existing model directory keeps its files byte for byte (issue 20: never a half-written output)."""
    import shutil

    import siamtrt.export.onnx as onnx_export

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, "check_parity", interrupt)
    with pytest.raises(KeyboardInterrupt):
        onnx_export.export_model("siamrpn_alex_dwxcorr", tmp_path / "new",
                                 checkpoint=checkpoint("siamrpn_alex_dwxcorr"))
    assert not (tmp_path / "new").exists()
    old = tmp_path / "old"
    shutil.copytree(model_dir("siamrpn_alex_dwxcorr"), old)
    (old / "search.engine").write_bytes(b"engine of this export")
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    with pytest.raises(KeyboardInterrupt):
        onnx_export.export_model("siamrpn_alex_dwxcorr", old, checkpoint=checkpoint("siamrpn_alex_dwxcorr"), seed=3)
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_reexport_replaces_a_model_directory_and_drops_its_stale_engines(tmp_path):
    """Exporting into an existing model directory replaces its ONNX files (once complete) and drops the engines and
    caches built from the old ones (other weights only with --force); the command prints the weights line and the
    untrained warning."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "m"
    cmd = [sys.executable, str(repo / "export" / "to_onnx.py"), "--config", "siamrpn_alex_dwxcorr", "--out", str(out),
           "--no-simplify"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "weights: random-realistic (seed 0; untrained random heads)" in r.stdout
    assert "WARNING: random-realistic (seed 0" in r.stdout and "SEEDED RANDOM WEIGHTS" in r.stdout
    (out / "search.engine").write_bytes(b"stale")
    (out / "search.engine.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    # other weights (seed 1) replace it only with --force; the same weights would replace it silently
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = subprocess.run(cmd + ["--seed", "1"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "exported from other weights" in r.stderr, r.stderr[-2000:]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    r = subprocess.run(cmd + ["--seed", "1", "--force"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"removed search.engine, search.engine.json from {out}" in r.stderr, r.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "search.onnx", "template.onnx"]
    assert read_onnx_metadata(out / "search.onnx")["checkpoint_sha256"] == "random-seed-1"


def test_third_party_chatter_is_silenced_unless_verbose():
    import logging

    from siamtrt.export.onnx import third_party_logs

    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    chatter = logging.getLogger("torch.onnx._internal.exporter._registration")
    folding = logging.getLogger("onnxscript.optimizer._constant_folding")
    for lg in (chatter, folding):
        lg.addHandler(Keep())
    try:
        with third_party_logs(verbose=False):
            chatter.warning("torchvision is not installed. Skipping torchvision::nms")
            folding.warning("Constant folding node Shape")
        assert seen == []
        with third_party_logs(verbose=True):
            chatter.warning("torchvision is not installed. Skipping torchvision::nms")
        assert seen == ["torchvision is not installed. Skipping torchvision::nms"]
    finally:
        for lg in (chatter, folding):
            lg.handlers = [h for h in lg.handlers if not isinstance(h, Keep)]
