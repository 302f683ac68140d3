"""The documented commands: --help without torch, errors as exit code 2 without traceback, the full CLI chain."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from calib_helpers import ALEX, BAG_INIT_BOX

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ["calibration/collect.py", "calibration/quantize.py", "calibration/report.py"]
BOX = ",".join(str(v) for v in BAG_INIT_BOX)


def run(*args, block_torch=False):
    code = ("import sys, runpy; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')") if block_torch else None
    cmd = [sys.executable] + (["-c", code] if code else []) + [str(a) for a in args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_without_torch(script):
    r = run(script, "--help", block_torch=True)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout and "python calibration/" in r.stdout


def test_quantize_with_corrupt_calibration_exits_2(model_dir, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    r = run("calibration/quantize.py", "--model", model_dir(ALEX), "--calib", bad, "--precision", "int8",
            "--out", tmp_path / "out")
    assert r.returncode == 2
    assert "corrupt" in r.stderr and "siamtrt collect" in r.stderr and "Traceback" not in r.stderr


def test_fp16_rejects_int8_options(model_dir, tmp_path):
    r = run("calibration/quantize.py", "--model", model_dir(ALEX), "--precision", "fp16", "--method", "entropy",
            "--out", tmp_path / "out")
    assert r.returncode == 2 and "--method" in r.stderr and "Traceback" not in r.stderr


def test_collect_bad_box_exits_2(model_dir, bag_video, tmp_path):
    r = run("calibration/collect.py", "--model", model_dir(ALEX), "--video", bag_video, "--bbox", "1,2,3",
            "--out", tmp_path / "c.npz")
    assert r.returncode == 2 and "x,y,w,h" in r.stderr and "Traceback" not in r.stderr


def test_cli_chain(model_dir, bag_video, tmp_path):
    """collect → quantize (int8, tensorrt Q/DQ target + legacy cache) → report, as docs/calibration.md shows."""
    calib = tmp_path / "calib.npz"
    r = run("calibration/collect.py", "--model", model_dir(ALEX), "--video", bag_video, "--bbox", BOX,
            "--out", calib, "--max-samples", 6, "--templates", 2, "--max-frames", 16, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "6 search crops" in r.stdout and calib.is_file()
    # the next lines name the directories the job knows (the model it read, the source it quantized)
    assert f"next: siamtrt quantize --model {model_dir(ALEX)} --calib {calib} --precision int8 --out " \
           f"{model_dir(ALEX)}-int8" in r.stdout, r.stdout
    out = tmp_path / "int8"
    r = run("calibration/quantize.py", "--model", model_dir(ALEX), "--calib", calib, "--precision", "int8",
            "--target", "tensorrt", "--trt-cache", "--trt-version", "8.6.1", "--out", out)
    assert r.returncode == 0, r.stderr
    assert f"next: siamtrt report --ref {model_dir(ALEX)} --cand {out} --video VIDEO" in r.stdout, r.stdout
    assert (out / "search.onnx").is_file() and (out / "search.calib.cache").read_text().startswith("TRT-8601-")
    from siamtrt.metadata import file_sha256, read_onnx_metadata

    rec = read_onnx_metadata(out / "search.onnx")["quantization"]["trt_calibration_cache"]
    assert rec["file"] == "search.calib.cache" and rec["header"] == "TRT-8601-EntropyCalibration2"
    assert rec["for_onnx_sha256"] == file_sha256(model_dir(ALEX) / "search.onnx")  # the fp32 ONNX it belongs to
    r = run("calibration/report.py", "--ref", model_dir(ALEX), "--cand", out, "--video", bag_video, "--bbox", BOX,
            "--samples", 4, "--max-frames", 8, "--speed-rounds", 1, "--threads", 2, "--out", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    assert "cls cos" in r.stdout
    # one plain progress line per phase in a log (stderr is not a terminal here): job, phase, step of steps
    assert "report: tracking FP32 " in r.stderr and "(1/2)" in r.stderr, r.stderr[-1500:]
    assert "report: tracking INT8 int8 (2/2)" in r.stderr and "report: one-step agreement" in r.stderr
    assert "\r" not in r.stderr and "\x1b[" not in r.stderr  # no tqdm redraws in a log
    d = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert d["candidates"][0]["quantization"]["target"] == "tensorrt"


def test_report_on_stand_in_weights_warns_once(bag_video, tmp_path):
    """On seeded random weights the report said the untrained-weights warning twice: logged by its tracking runs,
    then again in the report text. Once; the text's weights line still names them untrained."""
    import shutil

    sys.path.insert(0, str(REPO / "tests" / "runtime"))
    from rt_tiny_models import make_tiny_model_dir

    ref = make_tiny_model_dir(tmp_path / "tiny")
    cand = shutil.copytree(ref, tmp_path / "copy")
    r = run("calibration/report.py", "--ref", ref, "--cand", cand, "--video", bag_video, "--bbox", BOX,
            "--samples", 2, "--max-frames", 6, "--speed-rounds", 1, "--threads", 2, "--out", tmp_path / "rep",
            "--no-progress")
    assert r.returncode == 0, r.stderr
    assert (r.stdout + r.stderr).count("SEEDED RANDOM WEIGHTS") == 1, r.stdout + r.stderr
    assert "weights: random-realistic (seed 0; untrained random heads)" in r.stdout, r.stdout


def test_quantize_over_a_model_dir_says_which_engines_it_removed(model_dir, tmp_path):
    """quantize --out over a model directory with engines drops them (built from the ONNX files it replaces) and
    says so in one line by default (no -v), naming the files; the next line names the real source and output."""
    out = tmp_path / "fp16"
    cmd = ("calibration/quantize.py", "--model", model_dir(ALEX), "--precision", "fp16", "--out", out)
    r = run(*cmd)
    assert r.returncode == 0, r.stderr
    assert f"next: siamtrt report --ref {model_dir(ALEX)} --cand {out} --video VIDEO" in r.stdout, r.stdout
    # the job's own INFO lines are shown as every other job's are (quantize never set up logging: -v did nothing),
    # and the range guard's progress counts the crops it announced (it said "4/2 crops done" on batched feeds)
    assert "FP16: search:" in r.stderr and "nodes kept in float32" in r.stderr, r.stderr
    done = re.findall(r"ranges: (\d+)/(\d+) crops done", r.stderr)
    assert len(done) == 2 and all(a == b for a, b in done), r.stderr
    (out / "search.engine").write_bytes(b"built from the old ONNX")
    (out / "search.engine.json").write_text("{}")
    r = run(*cmd)
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if "search.engine" in line]
    assert len(said) == 1 and f"removed search.engine, search.engine.json from {out}" in said[0], r.stderr
    assert "replaced" in said[0]
    assert sorted(p.name for p in out.iterdir()) == ["search.onnx", "template.onnx"]


def test_quantize_and_collect_refuse_an_out_of_other_weights(model_dir, calib_set, bag_video, tmp_path):
    """quantize --out over another model's directory, and collect --out into one, exit 2 naming both weights; the
    other model's directory is left as it was."""
    sys.path.insert(0, str(REPO / "tests" / "runtime"))
    from rt_tiny_models import make_tiny_model_dir

    other = make_tiny_model_dir(tmp_path / "other", ALEX, seed=1)
    before = {p.name: p.read_bytes() for p in other.iterdir()}
    for cmd in (("calibration/quantize.py", "--model", model_dir(ALEX), "--calib", calib_set(ALEX)[0],
                 "--precision", "int8", "--out", other),
                ("calibration/quantize.py", "--model", model_dir(ALEX), "--precision", "fp16", "--out", other),
                ("calibration/collect.py", "--model", model_dir(ALEX), "--video", bag_video, "--bbox", BOX,
                 "--out", other / "calib.npz")):
        r = run(*cmd)
        assert r.returncode == 2 and "other weights" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert "seed 1" in r.stderr and "checkpoint (sha256" in r.stderr, r.stderr
    assert {p.name: p.read_bytes() for p in other.iterdir()} == before


def test_calibration_library_needs_no_torch():
    """calibration/ depends on onnx + onnxruntime (+ onnxconverter-common), not on the export side's torch."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "import siamtrt.calibration.qdq, siamtrt.calibration.fp16, siamtrt.calibration.report\n"
            "import siamtrt.calibration.cache, siamtrt.calibration.data, siamtrt.calibration.speed\n"
            "import onnxruntime.quantization, onnxconverter_common.float16\n"
            "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_quantize_needs_precision_and_out_unless_check_bf16(tmp_path):
    r = run("calibration/quantize.py", "--model", tmp_path, "--calib", tmp_path / "c.npz")
    assert r.returncode == 2 and "--precision and --out required" in r.stderr and "--check-bf16" in r.stderr
    r = run("calibration/quantize.py", "--help")
    assert "--target {onnxruntime,openvino,tensorrt}" in r.stdout and "--force" in r.stdout
