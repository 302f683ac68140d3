"""OpenCV export target: the three files cv2.TrackerDaSiamRPN loads, their parity, OpenCV's tracker on them against
the runtime given OpenCV's constants (whole bag.avi), and the refusals.

Weights are the suite's realistic random SiamRPNvot (tests/conftest.py ``checkpoint``), not a trained checkpoint: the
tracker follows nothing in particular, so two trackers whose numbers differ by float rounding fork once a rounding
difference moves a crop by a pixel; the figures below say where.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import onnx
import pytest

from siamtrt.cli.to_opencv import main
from siamtrt.errors import ExportError, InputError
from siamtrt.export.opencv import (OPENCV_FILES, TENSORS, OpenCVDnnFiles, OrtOpenCVFiles, check_against_model_dir,
                                   check_against_torch, check_in_opencv, export_opencv, opencv_layer_name,
                                   opencv_paths)
from siamtrt.export.opencv_compare import compare_with_opencv, opencv_rect, opencv_window
from siamtrt.metadata import read_onnx_metadata, set_onnx_metadata
from siamtrt.modeldir import ONNX_FILES, ModelDir

BAG_BOX = "316,140,112,115"
TOL = 1e-4


@pytest.fixture(scope="module")
def single_thread_cv2():
    """OpenCV's dnn on one thread (the machine is shared); restored afterwards."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(before)


@pytest.fixture(scope="module")
def opencv_run(model_dir, checkpoint, bag_video, tmp_path_factory, single_thread_cv2):
    """The command as a user runs it: export from a model directory + its checkpoint, then compare on all of bag.avi."""
    root = tmp_path_factory.mktemp("opencv")
    out, js, png = root / "vot-opencv", root / "cmp.json", root / "cmp.png"
    d, ckpt = model_dir("SiamRPNvot"), checkpoint("SiamRPNvot")
    code = main(["--model", str(d), "--checkpoint", str(ckpt), "--out", str(out), "--compare", str(bag_video),
                 "--bbox", BAG_BOX, "--json", str(js), "--plot", str(png), "--no-progress"])
    assert code == 0
    return SimpleNamespace(out=out, cmp=json.loads(js.read_text()), png=png, model_dir=d, checkpoint=ckpt,
                           paths={k: out / v for k, v in OPENCV_FILES.items()})


# ------------------------------------------------------------------------------------------------ the files
def test_files_have_the_layout_opencv_addresses(opencv_run):
    assert sorted(p.name for p in opencv_run.out.iterdir()) == sorted(OPENCV_FILES.values())
    main_model = onnx.load(str(opencv_run.paths["model"]))
    g = main_model.graph
    assert main_model.opset_import[0].version == 11 and main_model.ir_version == 6
    assert all(n.name == "" for n in g.node)  # OpenCV then names layers after their first output
    produced = {n.output[0]: n for n in g.node}
    inits = {i.name: list(i.dims) for i in g.initializer}
    assert produced[TENSORS["features"]].op_type == "Conv"
    assert inits[produced[TENSORS["loc_xcorr"]].input[1]] == [20, 256, 4, 4]
    assert inits[produced[TENSORS["cls"]].input[1]] == [10, 256, 4, 4]
    assert [o.name for o in g.output] == [TENSORS["loc"], TENSORS["cls"]]  # OpenCV reads delta first, then score
    assert [d.dim_value for d in g.input[0].type.tensor_type.shape.dim] == [1, 3, 271, 271]
    for key, channels in (("kernel_cls1", 2560), ("kernel_r1", 5120)):
        k = onnx.load(str(opencv_run.paths[key]))
        assert [d.dim_value for d in k.graph.input[0].type.tensor_type.shape.dim] == [1, 256, 6, 6]
        assert [d.dim_value for d in k.graph.output[0].type.tensor_type.shape.dim] == [1, channels, 4, 4]
        assert k.opset_import[0].version == 11
    assert opencv_layer_name("65", "4.10.0") == "65" and opencv_layer_name("65", "5.1.0") == "onnx_node_output_0!65"


def test_files_reproduce_the_model(opencv_run, torch_model):
    """Independent of the export's own checks: fresh inputs, the model directory and the torch model."""
    md = ModelDir.open(opencv_run.model_dir)
    for errs in (check_against_model_dir(opencv_run.paths, md, seed=7),
                 check_against_torch(torch_model("SiamRPNvot"), opencv_run.paths, seed=7)):
        assert set(errs) == {"kernel_cls1", "kernel_r1", "delta", "score"}
        assert max(e["rel"] for e in errs.values()) <= TOL, errs
    other = check_against_torch(torch_model("SiamRPNvot", 1), opencv_run.paths, seed=7)  # another seed's weights
    assert min(e["rel"] for e in other.values()) > 0.05, other


def test_opencv_dnn_runs_the_files_as_its_tracker_does(opencv_run, single_thread_cv2):
    rng = np.random.default_rng(3)
    z = (rng.random((1, 3, 127, 127)) * 255).astype(np.float32)
    x = (rng.random((1, 3, 271, 271)) * 255).astype(np.float32)
    dnn, ort_files = OpenCVDnnFiles(opencv_run.paths), OrtOpenCVFiles(opencv_run.paths)
    kd, ko = dnn.template(z), ort_files.template(z)
    got, ref = dnn.search(x, kd), ort_files.search(x, ko)
    for a, b in [(kd[k], ko[k]) for k in ko] + list(zip(got, ref)):
        assert np.abs(a - b).max() <= TOL * np.abs(b).max()
    # the placeholders are zeros: without setParam OpenCV's score is all zero, so the kernels above were really set
    fresh = cv2.dnn.readNet(str(opencv_run.paths["model"]))
    fresh.setInput(x)
    _, score = fresh.forward(fresh.getUnconnectedOutLayersNames())
    assert np.abs(score).max() == 0.0 and np.abs(got[1]).max() > 1.0


def test_opencv_check_catches_a_layer_the_tracker_cannot_find(opencv_run, tmp_path, single_thread_cv2):
    """Renaming tensor 65 makes OpenCV's setParam fail, as it would inside TrackerDaSiamRPN::init: the export's own
    OpenCV check reports it (so a layout OpenCV cannot drive is never written)."""
    bad = tmp_path / "bad"
    shutil.copytree(opencv_run.out, bad)
    m = onnx.load(str(bad / OPENCV_FILES["model"]))
    for n in m.graph.node:
        n.input[:] = ["x65" if i == "65" else i for i in n.input]
        n.output[:] = ["x65" if o == "65" else o for o in n.output]
    onnx.save(m, str(bad / OPENCV_FILES["model"]))
    with pytest.raises(ExportError, match="cannot run the files the way TrackerDaSiamRPN does"):
        check_in_opencv(opencv_paths(bad))
    assert max(e["rel"] for e in check_in_opencv(opencv_run.paths).values()) <= TOL


# ------------------------------------------------------------------------------------- OpenCV's tracker on bag
def test_opencv_tracker_matches_runtime_with_opencv_conventions(opencv_run):
    runs = opencv_run.cmp["runs"]
    assert opencv_run.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # OpenCV's post-processing transcribed (runtime on OpenCV's own dnn outputs): measured 195/195 identical boxes
    dnn = runs["runtime, OpenCV dnn outputs"]["figures"]
    assert dnn["tracked_frames"] == 195
    assert dnn["identical_frames"] >= 190 and dnn["max_centre_error"] <= 1.0 and dnn["mean_iou"] >= 0.99, dnn
    assert dnn["max_score_difference"] <= 1e-5
    # end to end (ONNX Runtime on the model directory): the same boxes until float rounding forks the untrained
    # trajectory; measured: 68 identical frames, first more than 1 px apart at frame 70
    e2e = next(v["figures"] for k, v in runs.items() if k.startswith("runtime, ONNX Runtime on"))
    assert e2e["first_frame_over_1px"] is None or e2e["first_frame_over_1px"] >= 40, e2e
    assert e2e["identical_frames"] >= 40 and e2e["tracked_frames"] == 195


def test_each_opencv_convention_changes_the_boxes(opencv_run, bag_video, single_thread_cv2):
    """Put one convention back to DaSiamRPN's and OpenCV's boxes are no longer reproduced (measured: frames 2, 2, 8)."""
    c = compare_with_opencv(opencv_run.out, bag_video, [316, 140, 112, 115], with_ablations=True, max_frames=21,
                            progress=False)
    assert c.figures("runtime, OpenCV dnn outputs")["identical_frames"] == 20
    ablated = [name for name in c.runs if name != "runtime, OpenCV dnn outputs"]
    assert len(ablated) == 3
    for name in ablated:
        assert c.figures(name)["identical_frames"] < 20, name


def test_opencv_rect_and_window():
    assert opencv_rect((100.9, 50.2), (21.0, 11.9)) == (90, 45, 21, 11)
    assert opencv_rect((-10.6, 5.0), (20.4, 10.0)) == (-20, 0, 20, 10)  # truncation toward zero, as C++ int()
    win = opencv_window(19, 5)
    assert np.abs(win[:361].reshape(19, 19) - cv2.createHanningWindow((19, 19), cv2.CV_32F)).max() < 1e-6
    assert np.array_equal(win[361:722], win[:361])
    with pytest.raises(InputError, match="integer box"):
        compare_with_opencv("unused", "unused.avi", [316.5, 140, 112, 115])


# ---------------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("config, evidence", [("SiamRPNBIG", "512 kernel channels"),
                                              ("siamrpn_alex_dwxcorr", "family pysot")])
def test_refuses_models_opencv_cannot_run(config, evidence, tmp_path, capsys):
    with pytest.raises(ExportError, match="cv2.TrackerDaSiamRPN cannot run") as e:
        export_opencv(tmp_path / "x", config=config)
    assert evidence in str(e.value) and "fix:" in str(e.value)
    assert main(["--config", config, "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cv2.TrackerDaSiamRPN cannot run") and evidence in err and "Traceback" not in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def _doctored_copy(src: Path, dst: Path, **changes) -> Path:
    """A copy of a model directory whose metadata says ``changes`` (the refusal reads the metadata)."""
    shutil.copytree(src, dst)
    for name in ONNX_FILES.values():
        m = onnx.load(str(dst / name))
        set_onnx_metadata(m, {**read_onnx_metadata(dst / name), **changes})
        onnx.save(m, str(dst / name))
    return dst


@pytest.mark.parametrize("changes, evidence", [({"precision": "fp16"}, "precision fp16"),
                                               ({"xcorr": "plugin"}, "xcorr plugin")])
def test_refuses_directories_opencv_cannot_take(changes, evidence, opencv_run, tmp_path, capsys):
    d = _doctored_copy(opencv_run.model_dir, tmp_path / "doctored", **changes)
    code = main(["--model", str(d), "--checkpoint", str(opencv_run.checkpoint), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and evidence in err and "fix:" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_model_dir_needs_its_own_checkpoint(opencv_run, checkpoint, tmp_path, capsys):
    assert main(["--model", str(opencv_run.model_dir), "--out", str(tmp_path / "a")]) == 2
    assert "also pass --checkpoint" in capsys.readouterr().err
    with pytest.raises(InputError, match="is not the checkpoint"):
        export_opencv(tmp_path / "b", model_dir=opencv_run.model_dir, checkpoint=checkpoint("SiamRPNvot", 1))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_existing_output_untouched_and_failed_check_leaves_nothing(opencv_run, monkeypatch, tmp_path, capsys):
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    assert main(["--config", "SiamRPNvot", "--checkpoint", str(opencv_run.checkpoint), "--out", str(used)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err and (used / "keep.txt").read_text() == "mine"
    import siamtrt.export.opencv as mod

    monkeypatch.setattr(mod, "check_against_torch", lambda *a, **k: {"score": {"max_abs": 9.0, "rel": 0.5}})
    with pytest.raises(ExportError, match="do not reproduce the model"):
        export_opencv(tmp_path / "fresh", checkpoint=opencv_run.checkpoint, check_opencv=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used"]  # no half-written folder, no temp left


def test_force_replaces_only_an_opencv_export(opencv_run, tmp_path, capsys):
    """--force deleted whatever --out held (a user's files, a model directory's ONNX files); it replaces only a
    folder this exporter wrote, and everything else is refused before any work with what / evidence / fix."""
    from siamtrt.export.opencv import is_opencv_export

    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    model = tmp_path / "vot"
    shutil.copytree(opencv_run.model_dir, model)
    mixed = tmp_path / "mixed"  # an earlier export with a file of the user's added
    shutil.copytree(opencv_run.out, mixed)
    (mixed / "notes.txt").write_text("mine")
    for out in (user, model, mixed):
        before = sorted((p.name, p.stat().st_size) for p in out.iterdir())
        assert main(["--config", "SiamRPNvot", "--out", str(out), "--force", "--no-opencv-check"]) == 2
        err = capsys.readouterr().err
        assert "holds other files and no OpenCV export siamtrt wrote: --force replaces nothing else" in err
        assert "evidence:" in err and "fix:" in err and "Traceback" not in err
        assert sorted((p.name, p.stat().st_size) for p in out.iterdir()) == before
    assert is_opencv_export(opencv_run.out) and not is_opencv_export(model)
    again = tmp_path / "again"
    shutil.copytree(opencv_run.out, again)
    assert main(["--config", "SiamRPNotb", "--out", str(again), "--force", "--no-opencv-check",
                 "--no-progress"]) == 0
    meta = {p.key: p.value for p in onnx.load(str(again / OPENCV_FILES["model"])).metadata_props}
    assert json.loads(meta["siamtrt.arch"]) == "SiamRPNotb" and is_opencv_export(again)


def test_out_dot_is_refused_before_any_work(tmp_path):
    """``--out .`` in a folder with files: an OSError traceback from os.replace after the export; now exit 2 at once."""
    (tmp_path / "mine.txt").write_text("keep")
    r = subprocess.run([sys.executable, "-m", "siamtrt", "export", "--target", "opencv", "--config", "SiamRPNvot",
                        "--out", ".", "--force", "--no-opencv-check"], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)
    assert r.returncode == 2 and "output directory . is the current folder" in r.stderr, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "fix:" in r.stderr
    assert os.listdir(tmp_path) == ["mine.txt"]


def test_random_weights_otb_export(tmp_path, capsys):
    """No checkpoint: seeded random SiamRPNotb weights, labelled untrained in the files and on stderr."""
    out = tmp_path / "otb"
    assert main(["--config", "SiamRPNotb", "--out", str(out), "--no-opencv-check"]) == 0
    cap = capsys.readouterr()
    assert "SEEDED RANDOM WEIGHTS" in cap.err and "SiamRPNotb" in cap.out
    meta = {p.key: p.value for p in onnx.load(str(out / OPENCV_FILES["model"])).metadata_props}
    assert json.loads(meta["siamtrt.weights"]) == "random-realistic"
    assert json.loads(meta["siamtrt.checkpoint_sha256"]) == "random-seed-0"


def test_help_works_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from siamtrt.cli.to_opencv import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    sys.exit(e.code)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0 and "cv2.TrackerDaSiamRPN" in r.stdout, r.stderr
