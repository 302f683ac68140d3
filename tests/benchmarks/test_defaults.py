"""The no-argument paths: export into the cache on a fresh machine, derive FP16, and run (slow: exports models)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _saved_paths(stdout: str):
    """The JSON and PNG paths the report's last lines print."""
    found = dict(line.split(": ", 1) for line in stdout.splitlines() if line.startswith(("JSON: ", "plot: ")))
    return Path(found["JSON"]), Path(found["plot"])


def _relabelled_fp16_copy(src, out) -> None:
    """Stands in for the FP16 conversion (seconds of onnxconverter work): the FP32 files relabelled fp16."""
    import onnx

    from siamtrt.metadata import read_onnx_metadata, set_onnx_metadata

    for f in ("template.onnx", "search.onnx"):
        m = onnx.load(str(Path(src) / f))
        meta = read_onnx_metadata(Path(src) / f)
        meta["precision"] = "fp16"
        set_onnx_metadata(m, meta)
        onnx.save(m, str(Path(out) / f))


@pytest.mark.slow
def test_fps_no_arguments_fresh_cache(tmp_path, bag_video):
    """`python benchmarks/fps.py` in a fresh folder (empty ./models): exports the default model (random weights),
    measures OpenVINO's bf16 fidelity for it once (where OpenVINO runs and the CPU has bf16 units), runs it on the
    embedded default backend (auto: OpenVINO where installed, else ONNX Runtime; bf16 float layers where the check
    passed) and the torch reference (frames reduced from the default 60 to keep CI short), and writes fps.json and
    fps.png into ./results/fps/<date-time>/, printing both paths. A second run reuses the export, the bf16 record
    and the reference's cached weights."""
    from siamtrt.runtime.backends import backend_class
    from siamtrt.runtime.openvino import cpu_has_bf16

    auto = "onnxruntime" if backend_class("openvino").unavailable_reason() else "openvino"
    checks_bf16 = auto == "openvino" and cpu_has_bf16()
    script = str(REPO / "benchmarks" / "fps.py")
    cmd = [sys.executable, script, "--frames", "4", "--warmup", "1", "--template-reps", "1", "--quiet"]
    env = {**os.environ, "SIAMTRT_DATA": str(bag_video.parent)}  # the default video, wherever this checkout sits
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "SEEDED RANDOM WEIGHTS" in r.stdout and "exporting" in r.stderr
    js, png = _saved_paths(r.stdout)
    assert js.parent.parent == Path("results") / "fps" and js.name == "fps.json" and png.parent == js.parent
    d = json.loads((tmp_path / js).read_text())
    assert (tmp_path / png).stat().st_size > 5_000
    note = [n for n in d["notes"] if n.startswith("OpenVINO bf16 check")]
    assert len(note) == int(checks_bf16) and "measured now" in "".join(note)
    bf16 = checks_bf16 and "bf16 kept" in note[0]
    assert [v["label"] for v in d["variants"]] == ["torch-fp32", f"{auto}-fp32" + ("[bf16]" if bf16 else "")]
    # the headroom column is filled for the default backend: bf16 float layers against the probe's bf16 peak
    probe = d["engine_probe"][auto]
    assert d["variants"][1]["share_of_engine_peak"] > 0
    assert d["variants"][1]["engine_peak_gmacs"] == probe["bf16_peak_gmacs" if bf16 else "fp32_peak_gmacs"]
    assert all(v["arch"] == "siamrpn_mobilev2_l234_dwxcorr" and v["weights_kind"] == "random-realistic"
               for v in d["variants"])
    assert d["weights_kinds"] == ["random-realistic"] and d["variants"][0]["weights"] == "random-seed-0"
    cached = tmp_path / "models" / "siamrpn_mobilev2_l234_dwxcorr-random"
    ref_weights = cached / "torch-reference.pt"
    assert (cached / "search.onnx").is_file() and (cached / "bench-cache.json").is_file() and ref_weights.is_file()
    stamps = {f: f.stat().st_mtime_ns for f in (cached / "search.onnx", ref_weights)}
    r2 = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "exporting" not in r2.stderr and {f: f.stat().st_mtime_ns for f in stamps} == stamps  # reused
    d2 = json.loads((tmp_path / _saved_paths(r2.stdout)[0]).read_text())
    assert not any(n.startswith("OpenVINO bf16 check") for n in d2["notes"])   # the record is reused
    assert [v["label"] for v in d2["variants"]] == [v["label"] for v in d["variants"]]


def test_export_cache_is_keyed_by_what_it_was_made_from(tmp_path, alex_dir, monkeypatch):
    """The cached export is reused only for the same config, seed and export code: another seed or config exports
    into its own directory, and a directory whose stamp differs (or has none) is exported again."""
    import shutil

    import siamtrt.benchmarks.variants as variants
    import siamtrt.export.onnx as onnx_export

    calls = []

    def fake_export(config, out, checkpoint=None, seed=0, **kw):
        calls.append((config, Path(out).name, seed))
        shutil.copytree(alex_dir, out, dirs_exist_ok=True)

    monkeypatch.setattr(onnx_export, "export_model", fake_export)
    alex, mob = "siamrpn_alex_dwxcorr", "siamrpn_mobilev2_l234_dwxcorr"
    first = variants.ensure_exported(alex, cache_root=tmp_path, progress=False)
    assert variants.ensure_exported(alex, cache_root=tmp_path, progress=False) == first
    assert calls == [(alex, "siamrpn_alex_dwxcorr-random", 0)]  # the second call reused it
    seed1 = variants.ensure_exported(alex, cache_root=tmp_path, seed=1, progress=False)
    assert seed1 != first and calls[-1] == (alex, "siamrpn_alex_dwxcorr-random-seed1", 1)
    variants.ensure_exported(mob, cache_root=tmp_path, progress=False)
    assert calls[-1][0] == mob and len(calls) == 3
    k0 = variants.cache_key(alex)
    assert k0["key"] != variants.cache_key(alex, seed=1)["key"] != variants.cache_key(mob)["key"]
    # changed export code: the stamp no longer matches, so the directory is exported again
    monkeypatch.setattr(variants, "_export_code_hash", lambda: "edited")
    assert variants.cache_key(alex)["key"] != k0["key"]
    variants.ensure_exported(alex, cache_root=tmp_path, progress=False)
    assert len(calls) == 4 and calls[-1][1] == "siamrpn_alex_dwxcorr-random"
    (first / variants.CACHE_STAMP).unlink()  # an export without a stamp (written before the stamps)
    variants.ensure_exported(alex, cache_root=tmp_path, progress=False)
    assert len(calls) == 5 and variants.read_cache_stamp(first)["key"] == variants.cache_key(alex)["key"]


@pytest.mark.slow
def test_config_with_fp16_variant(tmp_path, bag_video):
    from siamtrt.benchmarks.fps import run_fps

    rep = run_fps(config="siamrpn_alex_dwxcorr", precisions=["fp32", "fp16"], backends=["onnxruntime", "openvino"],
                  video=bag_video, frames=2, warmup=1, template_reps=1, reference=False, cache_root=tmp_path,
                  progress=False, headroom=False, backend_options={"precision": "f32"})  # no bf16 check here
    assert [r.variant.label for r in rep.results] == ["onnxruntime-fp32", "openvino-fp32", "onnxruntime-fp16",
                                                      "openvino-fp16"]
    assert (tmp_path / "siamrpn_alex_dwxcorr-random-fp16" / "search.onnx").is_file()
    # the export left the torch reference's weights beside it: exactly the seeded weights it would rebuild
    import torch

    from siamtrt.export.random_init import realistic_random_model

    saved = torch.load(tmp_path / "siamrpn_alex_dwxcorr-random" / "torch-reference.pt", weights_only=True)
    rebuilt = realistic_random_model("siamrpn_alex_dwxcorr", seed=0).state_dict()
    assert saved["state_dict"].keys() == rebuilt.keys()
    assert all(torch.equal(saved["state_dict"][k], v) for k, v in rebuilt.items())
    # the second call reuses both cached directories (no export)
    rep2 = run_fps(config="siamrpn_alex_dwxcorr", precisions=["fp16"], video=bag_video, frames=2, warmup=0,
                   template_reps=0, reference=False, cache_root=tmp_path, progress=False)
    assert rep2.results[0].variant.model_dir == tmp_path / "siamrpn_alex_dwxcorr-random-fp16"


def test_precision_variants_are_derived_once_and_cached(tmp_path, alex_dir, bag_video, monkeypatch):
    """--config + --precision plumbing: the fp16 directory is derived beside the cached fp32 export, once, and its
    recorded precision names the variant (the converter itself is the calibration package's; stubbed here)."""
    import shutil

    import siamtrt.calibration.fp16 as fp16
    from siamtrt.benchmarks.fps import run_fps
    from siamtrt.errors import ModelDirError

    from siamtrt.benchmarks.variants import cache_key, write_cache_stamp

    cached = tmp_path / "siamrpn_alex_dwxcorr-random"
    shutil.copytree(alex_dir, cached)  # stands in for the export a fresh machine would do
    write_cache_stamp(cached, cache_key("siamrpn_alex_dwxcorr"))
    calls = []

    def fake_convert(src, out, *a, **k):
        calls.append(Path(out).name)
        Path(out).mkdir(parents=True)
        _relabelled_fp16_copy(src, out)

    monkeypatch.setattr(fp16, "convert_fp16", fake_convert)
    kw = dict(config="siamrpn_alex_dwxcorr", video=bag_video, frames=2, warmup=0, template_reps=0, reference=False,
              cache_root=tmp_path, progress=False, backends=["onnxruntime"], headroom=False)
    rep = run_fps(precisions=["fp32", "fp16"], **kw)
    assert [r.variant.label for r in rep.results] == ["onnxruntime-fp32", "onnxruntime-fp16"]
    rep = run_fps(precisions=["fp16"], **kw)
    assert calls == ["siamrpn_alex_dwxcorr-random-fp16"]  # derived once, then reused
    with pytest.raises(ModelDirError, match="INT8 needs calibration"):
        run_fps(precisions=["int8"], **kw)


def test_reference_weights_cache_is_keyed(tmp_path, monkeypatch):
    """The torch reference's seeded weights are read from the cache only for the export key they were saved
    with; another key (a re-export) rebuilds them."""
    import torch

    import siamtrt.export.random_init as random_init
    from siamtrt.benchmarks.torch_backend import _seeded_random_model
    from siamtrt.config import get_config
    from siamtrt.export.models import build_model

    built = []

    def fake_realistic(cfg, seed=0, frames=None):  # stands in for the ~20 s BatchNorm recalibration
        built.append(seed)
        return build_model(cfg)

    monkeypatch.setattr(random_init, "realistic_random_model", fake_realistic)
    cfg = get_config("siamrpn_alex_dwxcorr")
    cache = tmp_path / "torch-reference.pt"
    first = _seeded_random_model(cfg, 0, (cache, "k1")).state_dict()
    again = _seeded_random_model(cfg, 0, (cache, "k1")).state_dict()
    assert built == [0] and all(torch.equal(first[k], again[k]) for k in first)  # read back, not rebuilt
    _seeded_random_model(cfg, 0, (cache, "k2"))
    _seeded_random_model(cfg, 1, (cache, "k2"))  # same key, other seed: rebuilt too
    assert built == [0, 0, 1]


def test_cached_exports_and_derived_copies_follow_the_onnx_files(tmp_path, alex_dir, monkeypatch):
    """The stamps are trusted only for the ONNX files they were written for: after an export over the cached folder
    (siamtrt export --seed 3 --out models/<config>-random --force) the fp16 copy derived from the old weights was
    reused (two "(ref)" rows, fp32 seed 3 beside fp16 seed 0), and so was the cached export itself. An export over a
    model directory drops the old weights' stamp and torch-reference weights."""
    import shutil

    import onnx

    import siamtrt.benchmarks.variants as variants
    import siamtrt.calibration.fp16 as fp16
    import siamtrt.export.onnx as onnx_export
    from siamtrt.calibration.derive import staged_model_dir

    def retouch(d, note):  # other weights in the same folder: other bytes, the same metadata
        for f in ("template.onnx", "search.onnx"):
            m = onnx.load(str(d / f))
            m.doc_string = note
            onnx.save(m, str(d / f))

    exports, derived = [], []

    def fake_export(config, out, checkpoint=None, seed=0, **kw):
        exports.append(seed)
        shutil.copytree(alex_dir, out, dirs_exist_ok=True)

    def fake_convert(src, out, *a, **k):
        derived.append(Path(out).name)
        Path(out).mkdir(parents=True)
        _relabelled_fp16_copy(src, out)

    monkeypatch.setattr(onnx_export, "export_model", fake_export)
    monkeypatch.setattr(fp16, "convert_fp16", fake_convert)
    fp32 = variants.ensure_exported("siamrpn_alex_dwxcorr", cache_root=tmp_path, progress=False)
    variants.ensure_precision(fp32, "fp16")
    assert variants.ensure_exported("siamrpn_alex_dwxcorr", cache_root=tmp_path, progress=False) == fp32
    variants.ensure_precision(fp32, "fp16")
    assert len(exports) == 1 and len(derived) == 1  # reused while the files are those stamped
    retouch(fp32, "seed 3")  # an export over the folder that left the stamp behind
    variants.ensure_precision(fp32, "fp16")
    assert len(derived) == 2  # the fp16 copy follows the fp32 files it is made from
    variants.ensure_exported("siamrpn_alex_dwxcorr", cache_root=tmp_path, progress=False)
    assert len(exports) == 2  # the stamp no longer describes the files: exported again
    assert (fp32 / variants.CACHE_STAMP).is_file()
    (fp32 / variants.REFERENCE_WEIGHTS).write_bytes(b"old weights")
    with staged_model_dir(fp32) as stage:  # what every export into an existing model directory goes through
        shutil.copy(alex_dir / "template.onnx", stage / "template.onnx")
    assert not (fp32 / variants.CACHE_STAMP).exists() and not (fp32 / variants.REFERENCE_WEIGHTS).exists()
