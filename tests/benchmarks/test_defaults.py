"""The no-argument paths: export into the cache on a fresh machine, derive FP16, and run (slow: exports models)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_fps_no_arguments_fresh_cache(tmp_path):
    """`python benchmarks/fps.py` with an empty cache: exports the default model (random weights) and runs it and
    the torch reference (frames reduced from the default 60 to keep CI short)."""
    out = tmp_path / "fps.json"
    r = subprocess.run([sys.executable, "benchmarks/fps.py", "--cache", str(tmp_path / "models"), "--frames", "4",
                        "--json", str(out), "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "SEEDED RANDOM WEIGHTS" in r.stdout
    d = json.loads(out.read_text())
    assert [v["label"] for v in d["variants"]] == ["torch-fp32", "onnxruntime-fp32"]
    assert all(v["arch"] == "siamrpn_mobilev2_l234_dwxcorr" and not v["trained"] for v in d["variants"])
    assert d["variants"][0]["weights"] == "random-seed-0"
    assert (tmp_path / "models" / "siamrpn_mobilev2_l234_dwxcorr-random" / "search.onnx").is_file()


@pytest.mark.slow
def test_config_with_fp16_variant(tmp_path, bag_video):
    from siamtrt.benchmarks.fps import run_fps

    rep = run_fps(config="siamrpn_alex_dwxcorr", precisions=["fp32", "fp16"], video=bag_video, frames=2, warmup=1,
                  template_reps=1, reference=False, cache_root=tmp_path, progress=False)
    assert [r.variant.label for r in rep.results] == ["onnxruntime-fp32", "onnxruntime-fp16"]
    assert (tmp_path / "siamrpn_alex_dwxcorr-random-fp16" / "search.onnx").is_file()
    # the second call reuses both cached directories (no export)
    rep2 = run_fps(config="siamrpn_alex_dwxcorr", precisions=["fp16"], video=bag_video, frames=2, warmup=0,
                   template_reps=0, reference=False, cache_root=tmp_path, progress=False)
    assert rep2.results[0].variant.model_dir == tmp_path / "siamrpn_alex_dwxcorr-random-fp16"


def test_precision_variants_are_derived_once_and_cached(tmp_path, alex_dir, bag_video, monkeypatch):
    """--config + --precision plumbing: the fp16 directory is derived beside the cached fp32 export, once, and its
    recorded precision names the variant (the converter itself is the calibration package's; stubbed here)."""
    import shutil

    import onnx

    import siamtrt.calibration.fp16 as fp16
    from siamtrt.benchmarks.fps import run_fps
    from siamtrt.errors import ModelDirError
    from siamtrt.metadata import read_onnx_metadata, set_onnx_metadata

    cached = tmp_path / "siamrpn_alex_dwxcorr-random"
    shutil.copytree(alex_dir, cached)  # stands in for the export a fresh machine would do
    calls = []

    def fake_convert(src, out, *a, **k):
        calls.append(Path(out).name)
        Path(out).mkdir(parents=True)
        for f in ("template.onnx", "search.onnx"):
            m = onnx.load(str(Path(src) / f))
            meta = read_onnx_metadata(Path(src) / f)
            meta["precision"] = "fp16"
            set_onnx_metadata(m, meta)
            onnx.save(m, str(Path(out) / f))

    monkeypatch.setattr(fp16, "convert_fp16", fake_convert)
    kw = dict(config="siamrpn_alex_dwxcorr", video=bag_video, frames=2, warmup=0, template_reps=0, reference=False,
              cache_root=tmp_path, progress=False)
    rep = run_fps(precisions=["fp32", "fp16"], **kw)
    assert [r.variant.label for r in rep.results] == ["onnxruntime-fp32", "onnxruntime-fp16"]
    rep = run_fps(precisions=["fp16"], **kw)
    assert calls == ["siamrpn_alex_dwxcorr-random-fp16"]  # derived once, then reused
    with pytest.raises(ModelDirError, match="INT8 needs calibration"):
        run_fps(precisions=["int8"], **kw)
