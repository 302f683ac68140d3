"""Never a half-written output (issue 20): calib.npz, fp16 / int8 directories and report.json / report.png are
complete or absent when a run is interrupted, and every cheap check comes before any model runs.

A tiny hand-made alex directory (tests/runtime/rt_tiny_models.py) keeps most of this fast (the INT8 case uses the
realistic alex export and its calibration set, shared with the other calibration tests); interruptions are
injected as KeyboardInterrupt (what Ctrl-C and, through siamtrt.outputs.signals_as_interrupt, SIGTERM raise) at the
last step before the output would be complete.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from calib_helpers import ALEX, BAG_INIT_BOX  # noqa: E402
from rt_tiny_models import make_tiny_model_dir  # noqa: E402
from siamtrt.calibration.collect import SourceSpec, collect  # noqa: E402
from siamtrt.calibration.data import CalibrationSet, load_calibration  # noqa: E402
from siamtrt.errors import InputError  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny_alex"), "siamrpn_alex_dwxcorr")


def _files(folder: Path):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_some_then_interrupt(path, *args, **kwargs):
    """A writer that starts writing (a few bytes under the path it was given) and is then interrupted."""
    Path(path).write_bytes(b"PK\x03\x04partial")
    raise KeyboardInterrupt


# ------------------------------------------------------------------------------------------------------ calib.npz
def test_interrupted_save_leaves_no_partial_calibration_file(tmp_path, monkeypatch):
    import siamtrt.calibration.data as data_mod

    cset = CalibrationSet(template=np.zeros((1, 3, 127, 127), np.uint8), search=np.zeros((2, 3, 287, 287), np.uint8),
                          pair=np.zeros(2, np.int64), meta={"format": data_mod.FORMAT})
    done = cset.save(tmp_path / "old.npz")
    before = done.read_bytes()
    monkeypatch.setattr(data_mod.np, "savez_compressed", _write_some_then_interrupt)
    for name in ("new.npz", "old.npz"):
        with pytest.raises(KeyboardInterrupt):
            cset.save(tmp_path / name)
    assert not (tmp_path / "new.npz").exists() and done.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.npz"]  # no temporary file left either
    monkeypatch.undo()
    assert load_calibration(done).num_search == 2


def test_collect_checks_its_inputs_and_output_before_running(tmp_path, bag_video):
    """An unwritable --out, a missing video or a source without boxes is refused before the model directory is even
    opened (the model path here does not exist: a later check would report that instead)."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    nope = tmp_path / "no-model"
    with pytest.raises(InputError, match="--out .* is a file, not a folder"):
        collect(nope, [SourceSpec(bag_video, bbox=BAG_INIT_BOX)], blocker / "calib.npz", progress=False)
    with pytest.raises(InputError, match="does not exist"):
        collect(nope, [SourceSpec(tmp_path / "missing.avi", bbox=BAG_INIT_BOX)], tmp_path / "c.npz", progress=False)
    with pytest.raises(InputError, match="has no box"):
        collect(nope, [SourceSpec(bag_video)], tmp_path / "c.npz", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def _image_folder(tmp_path: Path, bag_sequence: Path) -> Path:
    """A 3-frame image folder of the user's own (the shared data is read-only)."""
    img = tmp_path / "seq" / "img"
    img.mkdir(parents=True)
    for f in sorted((bag_sequence / "img").iterdir())[:3]:
        (img / f.name).write_bytes(f.read_bytes())
    return img


def test_collect_refuses_out_inside_a_source_folder(tiny, tmp_path, bag_sequence):
    """--out inside an image folder the job reads was written there (and seen by the next run's frame listing); only
    the model directory itself was refused."""
    img = _image_folder(tmp_path, bag_sequence)
    with pytest.raises(InputError, match="which the job reads"):
        collect(tiny, [SourceSpec(img, bbox=BAG_INIT_BOX)], img / "calib.npz", progress=False)
    assert sorted(p.suffix for p in img.iterdir()) == [".jpg"] * 3


def test_collect_refuses_bad_boxes_and_short_sources_before_loading_the_model(tiny, tmp_path, bag_video,
                                                                             monkeypatch):
    """A zero-size or fully-outside --bbox and a 1-frame source were refused only after the tracker had loaded
    (its "runtime: backend" line printed first): now before."""
    import cv2

    from siamtrt.runtime.tracker import Tracker

    def no_loading(*a, **k):
        raise AssertionError("the model was loaded before the request was refused")

    monkeypatch.setattr(Tracker, "from_model_dir", no_loading)
    one = tmp_path / "one.avi"
    cap = cv2.VideoCapture(str(bag_video))
    ok, frame = cap.read()
    w = cv2.VideoWriter(str(one), cv2.VideoWriter_fourcc(*"MJPG"), 10, (frame.shape[1], frame.shape[0]))
    w.write(frame)
    w.release()
    for source, match in ((SourceSpec(bag_video, bbox=(10, 10, 0, 0)), "box"),
                          (SourceSpec(bag_video, bbox=(5000, 5000, 40, 40)), "box"),
                          (SourceSpec(one, bbox=BAG_INIT_BOX), "1 frames|at least 2 frames")):
        with pytest.raises(InputError, match=match):
            collect(tiny, [source], tmp_path / "calib.npz", progress=False)
    assert not (tmp_path / "calib.npz").exists()


def test_collect_refuses_an_out_of_another_model(tiny, tmp_path, bag_video, monkeypatch):
    """A calibration file collected for another model (other weights or architecture) was replaced silently, and
    --out inside another model's directory was written there: both refused before the tracker loads; the same
    model's file (or an older file that records no checkpoint nor template) is still replaced."""
    from siamtrt.calibration.data import FORMAT
    from siamtrt.runtime.tracker import Tracker

    def loading(*a, **k):
        raise AssertionError("loading the tracker")

    monkeypatch.setattr(Tracker, "from_model_dir", loading)
    src = [SourceSpec(bag_video, bbox=BAG_INIT_BOX)]
    crops = dict(template=np.zeros((1, 3, 127, 127), np.uint8), search=np.zeros((1, 3, 287, 287), np.uint8),
                 pair=np.zeros(1, np.int64))
    base = {"format": FORMAT, "arch": "siamrpn_alex_dwxcorr", "model_dir": "models/elsewhere"}
    for i, (meta, refused) in enumerate((({"checkpoint_sha256": "random-seed-1"}, "checkpoint random-seed-1"),
                                         ({"checkpoint_sha256": "random-seed-0", "arch": "siamrpn_r50_l234_dwxcorr"},
                                          "architecture siamrpn_r50_l234_dwxcorr"),
                                         ({"template_sha256": "ab" * 32}, "no checkpoint (an older file)"),
                                         ({"checkpoint_sha256": "random-seed-0"}, None), ({}, None))):
        old = CalibrationSet(meta=dict(base, **meta), **crops).save(tmp_path / f"c{i}.npz")
        with pytest.raises(InputError if refused else AssertionError) as e:
            collect(tiny, src, old, progress=False)
        if refused:
            assert "collected for another model" in str(e.value) and refused in str(e.value)
            assert "models/elsewhere" in str(e.value) and str(tiny) in str(e.value)
        assert load_calibration(old).meta == dict(base, **meta)
    other = make_tiny_model_dir(tmp_path / "other", "siamrpn_alex_dwxcorr", seed=1)
    with pytest.raises(InputError, match="lies in the model directory .* of other weights") as e:
        collect(tiny, src, other / "calib.npz", progress=False)
    assert "seed 1" in str(e.value) and "seed 0" in str(e.value)
    with pytest.raises(AssertionError):  # a model directory of the same weights (an fp16 copy, say) is no other model
        collect(tiny, src, make_tiny_model_dir(tmp_path / "same", "siamrpn_alex_dwxcorr") / "calib.npz",
                progress=False)
    assert sorted(p.name for p in other.iterdir()) == ["search.onnx", "template.onnx"]
    monkeypatch.chdir(other)  # --out calib.npz in that directory: the fix named that same path ("e.g. calib.npz")
    with pytest.raises(InputError, match="of other weights") as e:
        collect(tiny, src, "calib.npz", progress=False)
    assert f"e.g. {tmp_path / 'calib.npz'}" in str(e.value), str(e.value)
    assert f"lies in the model directory {other} of" in str(e.value)  # not "directory ."


# ------------------------------------------------------------------------------------------------- derived dirs
def test_interrupted_fp16_conversion_leaves_no_directory(tiny, tmp_path, monkeypatch):
    import siamtrt.calibration.fp16 as fp16_mod

    real = fp16_mod.save_branch

    def interrupt_search(model, out_dir, branch, meta):
        if branch == "search":
            raise KeyboardInterrupt
        return real(model, out_dir, branch, meta)

    monkeypatch.setattr(fp16_mod, "save_branch", interrupt_search)
    with pytest.raises(KeyboardInterrupt):
        fp16_mod.convert_fp16(tiny, tmp_path / "fp16")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    summary = fp16_mod.convert_fp16(tiny, tmp_path / "fp16")
    assert sorted(p.name for p in (tmp_path / "fp16").iterdir()) == ["search.onnx", "template.onnx"]
    assert [b.path for b in summary.branches] == [tmp_path / "fp16" / "template.onnx",
                                                  tmp_path / "fp16" / "search.onnx"]


def test_interrupted_int8_quantization_leaves_the_directory_as_it_was(model_dir, calib_set, int8_dir, tmp_path,
                                                                        monkeypatch):
    """quantize_int8 (calibration/qdq.py) writes through derive.staged_model_dir: an interruption after the template
    branch and the TensorRT caches were written leaves no new directory, and an existing one unchanged."""
    import shutil

    import siamtrt.calibration.qdq as qdq

    old = tmp_path / "int8"
    shutil.copytree(int8_dir(ALEX), old)
    before = _files(old)
    real = qdq.save_branch

    def interrupt_search(model, out_dir, branch, meta):
        if branch == "search":
            assert (out_dir / "search.calib.cache").is_file()  # the caches are in the staged folder by now
            raise KeyboardInterrupt
        return real(model, out_dir, branch, meta)

    monkeypatch.setattr(qdq, "save_branch", interrupt_search)
    for out in (tmp_path / "new", old):
        with pytest.raises(KeyboardInterrupt):
            qdq.quantize_int8(model_dir(ALEX), calib_set(ALEX)[0], out, target="tensorrt", min_cosine=0,
                              trt_cache=True, trt_version="8.6.1", progress=False)
    assert _files(old) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8"]  # no new directory, no staging folder


def test_derived_directory_refusals_come_first(tiny, tmp_path):
    from siamtrt.calibration.fp16 import convert_fp16

    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="holds other files and no model"):
        convert_fp16(tiny, other)
    with pytest.raises(InputError, match="is the source directory"):
        convert_fp16(tiny, tiny)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_derived_copy_replaces_a_model_of_other_weights_only_with_force(tiny, tmp_path):
    """quantize --out over a model directory of other weights replaced it silently (export refused that): refused
    before any work, naming both weights; --force replaces it, and the same weights (a re-quantize) still do."""
    from siamtrt.calibration.fp16 import convert_fp16
    from siamtrt.metadata import read_onnx_metadata

    other = make_tiny_model_dir(tmp_path / "other", "siamrpn_alex_dwxcorr", seed=1)
    before = _files(other)
    with pytest.raises(InputError, match="holds a model exported from other weights") as e:
        convert_fp16(tiny, other)
    assert "seed 1" in str(e.value) and "seed 0" in str(e.value) and "--force" in str(e.value)
    assert _files(other) == before
    convert_fp16(tiny, other, force=True)
    convert_fp16(tiny, other)  # now the same weights: a re-quantize
    assert read_onnx_metadata(other / "search.onnx")["checkpoint_sha256"] == "random-seed-0"


# ------------------------------------------------------------------------------------------------------- report
def _report_data():
    speed = {"search_ms": 2.0, "search_ratio": 1.0, "e2e_ms": 3.0, "e2e_ratio": 1.0, "search_ratio_1t": 1.0}
    cand = {"name": "int8", "precision": "int8", "quantization": {"target": "onnxruntime"}, "speed": speed,
            "accuracy": {"cls_cosine_per_crop": [0.99, 0.995]},
            "tracking": {"iou_per_frame": [1.0, 0.9], "iou_mean": 0.9, "one_step_iou_per_frame": [1.0, 0.95],
                         "one_step_iou_mean": 0.95}}
    return {"ref": {"name": "fp32", "precision": "fp32", "speed": speed}, "candidates": [cand], "threads": 2}


def test_interrupted_report_writes_neither_file(tmp_path, monkeypatch):
    """Ctrl-C while the PNG is being written: no report.png and no report.json appear, and an earlier report in the
    folder is kept as it was (the JSON, written last, means a finished run)."""
    import matplotlib.figure

    from siamtrt.calibration.report import write_report

    done = write_report(_report_data(), tmp_path / "old")
    assert done.png_path.stat().st_size > 1000 and json.loads(done.json_path.read_text())["threads"] == 2
    before = _files(tmp_path / "old")
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, path, *args, **kwargs: _write_some_then_interrupt(path))
    for folder in (tmp_path / "old", tmp_path / "new"):
        with pytest.raises(KeyboardInterrupt):
            write_report(_report_data(), folder)
    assert _files(tmp_path / "old") == before and list((tmp_path / "new").iterdir()) == []


def test_report_checks_its_output_before_running(tmp_path, bag_video, bag_sequence, monkeypatch):
    import siamtrt.calibration.report as report_mod

    def must_not_run(*args, **kwargs):
        raise AssertionError("crops collected before the output was checked")

    monkeypatch.setattr(report_mod, "collect", must_not_run)
    ref = make_tiny_model_dir(tmp_path / "ref", "siamrpn_alex_dwxcorr")
    cand = make_tiny_model_dir(tmp_path / "cand", "siamrpn_alex_dwxcorr", seed=1)  # --cand = --ref is refused
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        report_mod.accuracy_report(ref, [cand], bag_video, BAG_INIT_BOX, out=blocker / "rep", progress=False)
    with pytest.raises(InputError, match="does not exist"):
        report_mod.accuracy_report(ref, [cand], tmp_path / "missing.avi", BAG_INIT_BOX, out=tmp_path / "r")
    with pytest.raises(InputError, match="must be ≥ 1"):
        report_mod.accuracy_report(ref, [cand], bag_video, BAG_INIT_BOX, out=tmp_path / "r", samples=0)
    with pytest.raises(InputError, match="which the job reads"):  # a folder inside a candidate (was written)
        report_mod.accuracy_report(ref, [cand], bag_video, BAG_INIT_BOX, out=cand / "rep", progress=False)
    img = _image_folder(tmp_path, bag_sequence)
    with pytest.raises(InputError, match="which the job reads"):  # inside the image folder read as the video
        report_mod.accuracy_report(ref, [cand], img, BAG_INIT_BOX, out=img / "rep", progress=False)
    assert not (cand / "rep").exists() and not (img / "rep").exists()
