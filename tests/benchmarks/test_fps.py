"""FPS benchmark: reduced runs produce valid, self-consistent JSON; helpers; the CLI contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from siamtrt.benchmarks import results
from siamtrt.benchmarks.fps import FRAME_STAGES, run_fps, stats_ms, target_boxes
from siamtrt.errors import InputError, ModelDirError
from siamtrt.runtime.backends import choose_backend

REPO = Path(__file__).resolve().parents[2]


def test_stats_ms():
    s = stats_ms([0.001] * 98 + [0.011, 0.021])
    assert s["mean"] == pytest.approx(1.3) and s["p50"] == pytest.approx(1.0) and s["max"] == pytest.approx(21.0)
    assert s["p90"] == pytest.approx(1.0) and 1.0 < s["p99"] < 21.0


def test_target_boxes_inside_frame():
    b = target_boxes((316, 140, 112, 115), 5, (480, 360))
    assert b.shape == (5, 4) and tuple(b[0]) == (316, 140, 112, 115)
    assert np.all(b[:, 0] >= 0) and np.all(b[:, 0] + b[:, 2] <= 480) and np.all(b[:, 1] + b[:, 3] <= 360)
    assert len({tuple(r) for r in b}) == 5


def _check_report(d, n_frames, targets):
    assert d["targets"] == targets and d["machine"]["cpu"] and d["machine"]["versions"]["onnxruntime"]
    for v in d["variants"]:
        assert v["frames"] == n_frames
        assert v["fps_with_decode"] <= v["fps"]  # decode can only add time
        lat = v["latency_ms"]
        for k in FRAME_STAGES + ("track", "e2e"):
            assert lat[k]["p50"] <= lat[k]["p90"] <= lat[k]["p99"] <= lat[k]["max"] + 1e-9
        # every stage was timed on every frame: its smallest per-frame time is not the zero the record starts from
        assert min(lat[k]["min"] for k in ("decode", "crop", "search", "post")) > 0
        # stages add up exactly (other is the remainder) and the remainder is small
        assert sum(lat[k]["mean"] for k in FRAME_STAGES) == pytest.approx(lat["e2e"]["mean"], rel=1e-9)
        assert lat["track"]["mean"] + lat["decode"]["mean"] == pytest.approx(lat["e2e"]["mean"], rel=1e-9)
        assert v["stage_sum_check"]["unattributed_pct"] < 10
        assert 1000.0 / lat["track"]["mean"] == pytest.approx(v["fps"], rel=1e-9)
        assert 1000.0 / lat["e2e"]["mean"] == pytest.approx(v["fps_with_decode"], rel=1e-9)
        assert v["init_ms"]["template"]["mean"] > 0
    ref = [v for v in d["variants"] if v["backend"] == "torch"]
    assert len(ref) == 1 and ref[0]["speedup_vs_reference"] == pytest.approx(1.0)
    for v in d["variants"]:
        assert v["reference"] == "torch-fp32"
        # the ratio divides median per-frame track times; the FPS ratio is kept beside it
        assert v["speedup_vs_reference"] == pytest.approx(ref[0]["latency_ms"]["track"]["p50"]
                                                          / v["latency_ms"]["track"]["p50"])
        assert v["speedup_vs_reference_fps"] == pytest.approx(v["fps"] / ref[0]["fps"])
        assert v["reference_frames"] == ref[0]["frames"]


def test_reduced_run_ort_and_torch(tmp_path, alex_dir, alex_ckpt, bag_video):
    rep = run_fps(models=[alex_dir], checkpoint=alex_ckpt, backends=["onnxruntime", "torch"], video=bag_video,
                  frames=6, warmup=1, template_reps=2, threads=2, json_out=tmp_path / "f.json",
                  plot_out=tmp_path / "f.png", progress=False, headroom=False)
    d = json.loads((tmp_path / "f.json").read_text())
    assert [v["label"] for v in d["variants"]] == ["torch-fp32", "onnxruntime-fp32"]
    _check_report(d, 6, 1)
    assert d["variants"][0]["weights"].startswith("checkpoint ")  # the exported weights, not a stand-in
    assert (tmp_path / "f.png").stat().st_size > 5_000
    text = rep.summary()
    assert "torch-fp32 (ref)" in text and "vs torch" in text


def test_reduced_multi_target(tmp_path, alex_dir, alex_ckpt, bag_video):
    """3 targets: ORT batches them; the reference runs 3 pysot-style trackers in turn."""
    rep = run_fps(models=[alex_dir], checkpoint=alex_ckpt, backends=["onnxruntime", "torch"], video=bag_video,
                  targets=3, frames=3, warmup=1, template_reps=1, threads=2, json_out=tmp_path / "m.json",
                  progress=False, headroom=False)
    d = json.loads((tmp_path / "m.json").read_text())
    _check_report(d, 3, 3)
    by = {v["backend"]: v for v in d["variants"]}
    assert by["onnxruntime"]["batching"] == "one batch of 3"
    assert by["torch"]["batching"].startswith("3 trackers in turn")
    assert len(rep.results[0].init["template"]) == 1


@pytest.mark.parametrize("schedule", ["sequential", "interleaved"])
def test_reference_times_fewer_frames(alex_dir, alex_ckpt, bag_video, schedule):
    """The torch reference times only ``reference_frames`` (and at most REFERENCE_TEMPLATE_REPS template re-inits);
    the other variants the full ``frames``; the ratio divides medians, and the table says both frame counts."""
    from siamtrt.benchmarks.fps import REFERENCE_TEMPLATE_REPS

    rep = run_fps(models=[alex_dir], checkpoint=alex_ckpt, backends=["onnxruntime"], video=bag_video, frames=5,
                  warmup=1, template_reps=3, threads=2, reference_frames=2, schedule=schedule, progress=False,
                  headroom=False)
    ref, ort = rep.results
    assert ref.variant.is_reference and (ref.frames, ort.frames) == (2, 5)
    assert len(ref.init["template"]) == min(3, REFERENCE_TEMPLATE_REPS) and len(ort.init["template"]) == 3
    d = rep.to_dict()["variants"][1]
    assert d["reference_frames"] == 2
    assert d["speedup_vs_reference"] == pytest.approx(np.median(ref.per_frame["track"])
                                                      / np.median(ort.per_frame["track"]))
    assert "2 (torch-fp32) / 5 (onnxruntime-fp32) timed frames" in rep.summary()


def test_plot_and_json_say_the_weights(tmp_path, alex_dir, bag_video, monkeypatch):
    """The plot's bars and title and the JSON name the weights kind (here a checkpoint export)."""
    import siamtrt.benchmarks.plots as plots

    seen = {}
    real = plots.plot_fps

    def spy(rows, stages, out, title=""):
        seen.update(labels=[r["label"] for r in rows], title=title)
        return real(rows, stages, out, title=title)

    monkeypatch.setattr(plots, "plot_fps", spy)
    rep = run_fps(models=[alex_dir], backends=["onnxruntime"], video=bag_video, frames=2, warmup=0, template_reps=0,
                  reference=False, results_dir=tmp_path / "res", progress=False, headroom=False)
    assert rep.json_path.parent == rep.plot_path.parent and rep.json_path.parent.parent == tmp_path / "res"
    assert rep.plot_path.stat().st_size > 5_000
    assert seen["labels"] == ["onnxruntime-fp32\ncheckpoint, 2 frames"]
    assert "weights: checkpoint (sha256" in seen["title"]
    assert "SEEDED RANDOM" not in seen["title"]
    d = json.loads(rep.json_path.read_text())
    assert d["weights_kinds"] == ["checkpoint"] and d["variants"][0]["weights_kind"] == "checkpoint"


def test_cli_writes_results_by_default(tmp_path, alex_dir, bag_video):
    """Without --json/--plot the CLI writes both into ./results/fps/<date-time>/ and prints the paths; --json
    overrides one of them; --no-save writes nothing."""
    script = str(REPO / "benchmarks" / "fps.py")
    base = [script, "--model", str(alex_dir), "--video", str(bag_video), "--frames", "2", "--warmup", "0",
            "--template-reps", "1", "--no-reference", "--no-probe", "--quiet"]
    r = _cli(*base, cwd_=tmp_path)
    assert r.returncode == 0, r.stderr
    paths = dict(line.split(": ", 1) for line in r.stdout.splitlines() if line.startswith(("JSON: ", "plot: ")))
    js, png = Path(paths["JSON"]), Path(paths["plot"])
    assert js.parent.parent == Path("results") / "fps" and (js.name, png.name) == ("fps.json", "fps.png")
    assert (tmp_path / js).is_file() and (tmp_path / png).is_file() and js.parent == png.parent
    r = _cli(*base, "--json", str(tmp_path / "mine.json"), "--results", str(tmp_path / "other"), cwd_=tmp_path)
    assert r.returncode == 0 and (tmp_path / "mine.json").is_file() and f"JSON: {tmp_path / 'mine.json'}" in r.stdout
    assert list((tmp_path / "other").glob("*/fps.png")) and not list((tmp_path / "other").glob("*/fps.json"))
    r = _cli(*base, "--no-save", "--results", str(tmp_path / "none"), cwd_=tmp_path)
    assert r.returncode == 0 and not (tmp_path / "none").exists() and "JSON:" not in r.stdout


def test_no_reference_and_bad_arguments(tmp_path, alex_dir, bag_video):
    rep = run_fps(models=[alex_dir], backends=["onnxruntime"], video=bag_video, frames=2, warmup=0, template_reps=0,
                  reference=False, schedule="interleaved", progress=False, headroom=False)
    assert [r.variant.label for r in rep.results] == ["onnxruntime-fp32"]
    d = rep.to_dict()
    assert d["variants"][0]["speedup_vs_reference"] is None and d["schedule"] == "interleaved"
    assert d["variants"][0]["init_ms"]["template"]["mean"] is None  # no template reps: null, not NaN
    json.dumps(results.json_safe(d), allow_nan=False)
    with pytest.raises(InputError, match="targets"):
        run_fps(models=[alex_dir], video=bag_video, targets=0)
    with pytest.raises(InputError, match="does not exist"):
        run_fps(models=[alex_dir], video=tmp_path / "none.avi")
    with pytest.raises(ModelDirError, match="fp32 directory"):
        run_fps(models=[alex_dir], video=bag_video, precisions=["int8"])


def _cli(*args, cwd_=REPO, **kw):
    return subprocess.run([sys.executable, *args], cwd=cwd_, capture_output=True, text=True, timeout=600, **kw)


def test_cli_reduced_run_and_errors(tmp_path, alex_dir, bag_video):
    out = tmp_path / "cli.json"
    r = _cli("benchmarks/fps.py", "--model", str(alex_dir), "--video", str(bag_video), "--frames", "3", "--warmup",
             "1", "--no-reference", "--json", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    auto = choose_backend("auto", alex_dir)[0]   # the default backend is the runtime's own choice here
    assert f"{auto}-fp32" in r.stdout and d["variants"][0]["frames"] == 3 and d["variants"][0]["backend"] == auto
    assert "of peak" in r.stdout and d["engine_probe"][auto]["int8_peak_gmacs"] > 0
    r = _cli("benchmarks/fps.py", "--model", str(tmp_path / "missing"), "--quiet")
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    r = _cli("benchmarks/fps.py", "--model", str(alex_dir), "--backend", "onnxruntme", "--quiet")
    assert r.returncode == 2 and "did you mean 'onnxruntime'" in r.stderr


@pytest.mark.parametrize("script", ["benchmarks/fps.py", "benchmarks/accuracy.py", "benchmarks/make_synthetic.py"])
def test_help_without_torch(script):
    code = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = [%r, '--help']; "
            "runpy.run_path(%r, run_name='__main__')" % (script, script))
    r = _cli("-c", code)
    assert r.returncode == 0 and "usage:" in r.stdout, r.stderr


def test_every_backend_side_by_side_with_headroom(alex_dir, bag_video):
    """--backend all: every backend that can run the directory here, interleaved; TensorRT left out with its reason;
    each variant's search GMAC/s and its share of the engine's probed peak (FP32 peak for an fp32 directory)."""
    from siamtrt.calibration.graph import conv_macs, named_model

    rep = run_fps(models=[alex_dir], backends=["all"], video=bag_video, frames=3, warmup=1, template_reps=0,
                  threads=2, reference=False, progress=False)
    labels = [r.variant.label for r in rep.results]
    assert labels == ["onnxruntime-fp32", "openvino-fp32"] and rep.schedule == "interleaved"
    assert any(s["label"].startswith("tensorrt") and s["reason"] for s in rep.skipped)
    gmac = sum(conv_macs(named_model(alex_dir / "search.onnx")).values()) / 1e9
    assert 6.0 < gmac < 7.0  # alex 287: ~6.4 GMAC of convolutions
    d = rep.to_dict()
    assert set(d["engine_probe"]) == {"onnxruntime", "openvino"}
    for r, v in zip(rep.results, d["variants"]):
        probe = rep.probes[r.variant.backend]
        assert r.search_gmac == pytest.approx(gmac)
        assert r.search_gmacs == pytest.approx(gmac / np.min(r.per_frame["search"]))
        assert r.engine_peak_gmacs == probe.fp32_gmacs != probe.int8_gmacs
        assert v["share_of_engine_peak"] == pytest.approx(r.search_gmacs / probe.fp32_gmacs)
    assert "of peak" in rep.summary() and "GMAC/s" in rep.summary()


def test_interleaved_runs_the_reference_alone_first(alex_dir, alex_ckpt, bag_video, monkeypatch):
    """The default schedule: the torch reference tracks all its frames on its own, then the backend variants
    alternate frame by frame."""
    import siamtrt.benchmarks.fps as fps

    order = []
    real = fps._Runner.step

    def spy(self):
        order.append(self.variant.label)
        return real(self)

    monkeypatch.setattr(fps._Runner, "step", spy)
    rep = run_fps(models=[alex_dir], checkpoint=alex_ckpt, backends=["onnxruntime", "openvino", "torch"],
                  video=bag_video, frames=3, warmup=0, template_reps=0, threads=2, reference_frames=1,
                  progress=False, headroom=False)
    assert rep.schedule == "interleaved"
    assert order == ["torch-fp32"] + ["onnxruntime-fp32", "openvino-fp32"] * 3


def test_precision_hint_reaches_the_backends_that_take_it(alex_dir, bag_video, tmp_path, monkeypatch):
    """--precision-hint auto: OpenVINO runs bf16 where a passing bf16 record exists (here one written for the
    directory's files: the plumbing, not the fidelity, is under test) and the variant says so; ONNX Runtime, which
    declares no such option, runs as before; a bf16 variant's share is of the probe's bf16 peak, not its f32 one."""
    pytest.importorskip("openvino", reason="openvino is not installed")

    from siamtrt.metadata import file_sha256
    from siamtrt.runtime.openvino import cpu_has_bf16, model_key, save_bf16_record

    if not cpu_has_bf16():
        pytest.skip("this CPU has no bf16 units: the hint runs f32")
    monkeypatch.setenv("SIAMTRT_CACHE", str(tmp_path))
    save_bf16_record(tmp_path / "openvino", model_key(file_sha256(alex_dir / "template.onnx"),
                                                      file_sha256(alex_dir / "search.onnx")),
                     {"passed": True, "cls": 0.999, "loc": 0.999, "crops": 4, "min_cosine": 0.98})
    rep = run_fps(models=[alex_dir], backends=["onnxruntime", "openvino"], video=bag_video, frames=2, warmup=0,
                  template_reps=0, threads=2, reference=False, progress=False,
                  backend_options={"precision": "auto"})
    assert [r.variant.label for r in rep.results] == ["onnxruntime-fp32", "openvino-fp32[bf16]"]
    ort, ov = rep.results
    probe = rep.probes["openvino"]
    assert ort.peak_share is not None and ov.search_gmacs is not None
    assert ov.engine_peak_gmacs == probe.bf16_gmacs and probe.bf16_gmacs != probe.fp32_gmacs
    assert "bf16 " in rep.summary()


def test_table_labels_name_the_directory_when_two_directories_share_a_label():
    """Two int8 copies for one engine (one run with the bf16 hint) are told apart by their directory names; a
    directory alone keeps its plain label."""
    from siamtrt.benchmarks.fps import FpsReport, VariantResult
    from siamtrt.benchmarks.variants import Variant

    meta = {"precision": "int8", "quantization": {"target": "openvino"}}

    def result(d, hint=None):
        return VariantResult(Variant("openvino", Path(d), meta, float_hint=hint), 1, {}, {}, 0.0, 0.0, 2, "batch")

    a, b, c = result("models/mv2-int8-ov"), result("/tmp/mv2-all", "bf16"), result("models/alex-fp32")
    c.variant.meta = {"precision": "fp32"}
    rep = FpsReport([a, b, c], Path("v.avi"), (480, 360), 1, 3, 2, {})
    assert [rep.display_label(r) for r in (a, b, c)] == [
        "openvino-int8(openvino) mv2-int8-ov", "openvino-int8(openvino)[bf16] mv2-all", "openvino-fp32"]
    assert FpsReport([a], Path("v.avi"), (480, 360), 1, 3, 2, {}).display_label(a) == "openvino-int8(openvino)"


def test_a_share_above_the_probed_peak_is_flagged(alex_dir, bag_video, monkeypatch):
    """A search faster than the probe's peak means the probe was disturbed: the share is kept, with a note saying
    it means nothing (the r50 run of 2026-12-06 read 164 % on a probe caught by another job)."""
    import siamtrt.benchmarks.probe as probe

    def slowed(engines, threads, reps=probe.DEFAULT_REPS):   # a probe caught by another job: 1 GMAC/s
        return {e: probe.GemmProbe(e, threads, {"gemm": {"fp32": 1.0, "int8": 1.0}}, 0.0) for e in engines}, {}

    monkeypatch.setattr(probe, "probe_engines", slowed)
    rep = run_fps(models=[alex_dir], backends=["onnxruntime"], video=bag_video, frames=2, warmup=0,
                  template_reps=0, threads=2, reference=False, progress=False)
    (r,) = rep.results
    assert r.peak_share > 1.0 and any("means nothing" in n for n in r.notes)
    assert "means nothing" in rep.summary()


def test_two_runs_in_the_same_second_keep_both_reports(tmp_path, alex_dir, bag_video, monkeypatch):
    """Two runs that finish in the same second (parallel jobs on one --results) wrote into one <date-time> folder,
    the second replacing the first's fps.json and fps.png without a word; each now gets its own folder."""
    monkeypatch.setattr("time.strftime", lambda *a: "20260101-000000")
    kw = dict(models=[alex_dir], backends=["onnxruntime"], video=bag_video, frames=1, warmup=0, template_reps=1,
              reference=False, progress=False, headroom=False, results_dir=tmp_path / "r")
    first, second = run_fps(**kw), run_fps(**kw)
    assert first.json_path.parent != second.json_path.parent and first.plot_path.parent == first.json_path.parent
    assert [p.name for p in sorted((tmp_path / "r").iterdir())] == ["20260101-000000", "20260101-000000_2"]
    assert all(p.is_file() for p in (first.json_path, first.plot_path, second.json_path, second.plot_path))


def test_an_interrupted_run_says_nothing_was_saved(tmp_path, alex_dir, bag_video, monkeypatch, capsys):
    """Ctrl-C / SIGTERM during the measurement: exit 130, no report, and the message says nothing was saved and why
    (it said only "no output was left half-written", as if the finished measurements were somewhere)."""
    from siamtrt.benchmarks import fps
    from siamtrt.cli.main import run_job

    def stopped(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(fps, "measure", stopped)
    rc = run_job("bench", ["--model", str(alex_dir), "--video", str(bag_video), "--frames", "1", "--no-probe",
                           "--quiet", "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 130 and "nothing saved" in err and "Traceback" not in err and not (tmp_path / "r").exists()
