"""runtime/track.py end to end (subprocess, as a user runs it) and its error exits."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "runtime" / "track.py"


def run(*args, timeout=300):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_track_bag_tiny_model(tiny_dir, bag_video, tmp_path):
    """Whole bag.avi: 196 finite boxes with centres in the frame, frame 0 = given box, drawn video written."""
    out, vid = tmp_path / "boxes.txt", tmp_path / "out.mp4"
    r = run("--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", bag_video, "--bbox", "316,140,112,115",
            "--out", out, "--save-video", vid, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "FPS:" in r.stdout and "tracked 196 frames" in r.stdout
    vals = np.array([[float(v) for v in line.split(",")] for line in out.read_text().splitlines()])
    assert vals.shape == (196, 5)
    assert vals[0].tolist() == [316, 140, 112, 115, 1]
    assert np.isfinite(vals).all()
    cx, cy = vals[:, 0] + vals[:, 2] / 2, vals[:, 1] + vals[:, 3] / 2
    tol = 0.01  # the file holds 2 decimals
    assert ((cx >= -tol) & (cx <= 480 + tol) & (cy >= -tol) & (cy <= 360 + tol)).all()
    assert ((vals[1:, 4] >= 0) & (vals[1:, 4] <= 1)).all()
    cap = cv2.VideoCapture(str(vid))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 196
    cap.release()


def test_two_targets_and_image_folder(tiny_dir, bag_sequence, tmp_path):
    out = tmp_path / "boxes.txt"
    r = run("--model", tiny_dir("SiamRPNotb"), "--video", bag_sequence, "--bbox", "316,140,112,115",
            "--bbox", "100,60,80,50", "--out", out, "--max-frames", "8", "--no-progress")
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 8 and all(len(line.split(",")) == 10 for line in lines)
    assert lines[0] == "316.00,140.00,112.00,115.00,1.0000,100.00,60.00,80.00,50.00,1.0000"


@pytest.mark.parametrize("case,expect", [
    ("bbox_outside", "lies outside the 480x360 frame"),
    ("bbox_zero", "zero or negative size"),
    ("bbox_format", "four numbers"),
    ("no_model", "does not exist"),
    ("model_missing_file", "lacks ['search.onnx']"),
    ("no_video", "does not exist"),
    ("bad_video", "cannot be opened"),
])
def test_errors_exit_2_without_traceback(case, expect, tiny_dir, bag_video, tmp_path):
    import shutil

    model, video, bbox = tiny_dir("siamrpn_alex_dwxcorr"), bag_video, "316,140,112,115"
    if case == "bbox_outside":
        bbox = "600,10,50,50"
    elif case == "bbox_zero":
        bbox = "10,10,0,50"
    elif case == "bbox_format":
        bbox = "10,10,50"
    elif case == "no_model":
        model = tmp_path / "missing"
    elif case == "model_missing_file":
        model = tmp_path / "m"
        shutil.copytree(tiny_dir("siamrpn_alex_dwxcorr"), model)
        (model / "search.onnx").unlink()
    elif case == "no_video":
        video = tmp_path / "none.avi"
    elif case == "bad_video":
        video = tmp_path / "bad.avi"
        video.write_bytes(b"RIFF" + b"\0" * 500)
    r = run("--model", model, "--video", video, "--bbox", bbox, "--no-progress")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert expect in r.stderr
    assert "Traceback" not in r.stderr
