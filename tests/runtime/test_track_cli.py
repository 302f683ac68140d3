"""runtime/track.py end to end (subprocess, as a user runs it): formats, stdout, interruption, outputs kept safe."""

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from siamtrt.runtime.boxes import read_results, read_scores

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "runtime" / "track.py"
BOX = "316,140,112,115"


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def run(*args, timeout=300):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env())


def test_track_bag_tiny_model(tiny_dir, bag_video, tmp_path):
    """Whole bag.avi: 196 finite boxes with centres in the frame, frame 0 = given box, drawn video written; the
    default txt format is pysot/OTB x,y,w,h, exact (the csv of the same run carries the scores)."""
    out, vid, csv = tmp_path / "boxes.txt", tmp_path / "out.mp4", tmp_path / "boxes.csv"
    r = run("--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", bag_video, "--bbox", BOX,
            "--out", out, "--save-video", vid, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "FPS:" in r.stdout and "tracked 196 frames" in r.stdout
    vals = np.array([[float(v) for v in line.split(",")] for line in out.read_text().splitlines()])
    assert vals.shape == (196, 4)
    assert vals[0].tolist() == [316, 140, 112, 115]
    assert np.isfinite(vals).all()
    cx, cy = vals[:, 0] + vals[:, 2] / 2, vals[:, 1] + vals[:, 3] / 2
    assert ((cx >= 0) & (cx <= 480) & (cy >= 0) & (cy <= 360)).all()
    cap = cv2.VideoCapture(str(vid))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 196
    cap.release()
    assert not list(tmp_path.glob("*.part*"))  # a complete run leaves no partial file
    r = run("--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", bag_video, "--bbox", BOX, "--out", csv,
            "--no-progress", "--no-read-ahead")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(read_results(csv)[:, 0], vals)  # read-ahead or not: the same boxes, exactly
    scores = read_scores(csv)[:, 0]
    assert scores[0] == 1.0 and ((scores[1:] >= 0) & (scores[1:] <= 1)).all()


def test_two_targets_and_image_folder(tiny_dir, bag_sequence, tmp_path):
    out = tmp_path / "boxes.txt"
    r = run("--model", tiny_dir("SiamRPNotb"), "--video", bag_sequence, "--bbox", BOX,
            "--bbox", "100,60,80,50", "--out", out, "--max-frames", "8", "--no-progress")
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 8 and all(len(line.split(",")) == 8 for line in lines)
    assert lines[0] == "316.0,140.0,112.0,115.0,100.0,60.0,80.0,50.0"


@pytest.mark.parametrize("fmt", ["csv", "mot", "json"])
def test_formats_read_back_equal(fmt, tiny_dir, bag_video, tmp_path):
    """Every format holds the same boxes (read back exactly) and the frame numbers of the video."""
    model = tiny_dir("siamrpn_alex_dwxcorr")
    ref, out = tmp_path / "ref.csv", tmp_path / f"b.{fmt}"
    assert run("--model", model, "--video", bag_video, "--bbox", BOX, "--out", ref, "--max-frames", "6",
               "--no-progress").returncode == 0
    r = run("--model", model, "--video", bag_video, "--bbox", BOX, "--out", tmp_path / "b.dat", "--format", fmt,
            "--max-frames", "6", "--no-progress")
    assert r.returncode == 0, r.stderr
    (tmp_path / "b.dat").rename(out)
    np.testing.assert_array_equal(read_results(out), read_results(ref))
    np.testing.assert_array_equal(read_scores(out), read_scores(ref))
    if fmt == "mot":
        assert out.read_text().splitlines()[0].startswith("1,1,316.0,140.0,112.0,115.0,1.0,-1,-1,-1")
    if fmt == "csv":
        assert ref.read_text().splitlines()[0] == "frame,target,x,y,w,h,score"


def test_out_dash_writes_stdout_and_no_file(tiny_dir, bag_video, tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--model", str(tiny_dir("siamrpn_alex_dwxcorr")), "--video",
                        str(bag_video), "--bbox", BOX, "--out", "-", "--max-frames", "4", "--no-progress"],
                       capture_output=True, text=True, cwd=tmp_path, env=env(), timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4 and lines[0] == "316.0,140.0,112.0,115.0"  # boxes only: the summary went to stderr
    assert "FPS:" in r.stderr
    assert list(tmp_path.iterdir()) == []  # no file named "-"


def test_start_frame(tiny_dir, bag_video, tmp_path):
    out = tmp_path / "b.csv"
    r = run("--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", bag_video, "--bbox", BOX, "--out", out,
            "--start-frame", "190", "--no-progress")
    assert r.returncode == 0, r.stderr
    rows = out.read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(190, 196)) and "from frame 190" in r.stdout


def test_negative_corner_accepted(tiny_dir, bag_video, tmp_path):
    out = tmp_path / "b.txt"
    r = run("--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", bag_video, "--bbox", "-20,-10,112,115",
            "--out", out, "--max-frames", "3", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert out.read_text().splitlines()[0] == "-20.0,-10.0,112.0,115.0"


def _start_and_stop(args, sig, after_rows, part):
    """Start track.py, wait until ``part`` holds ``after_rows`` rows, send ``sig``; returns (process, rows seen)."""
    p = subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=REPO, env=env())
    deadline = time.monotonic() + 120
    seen = 0
    while time.monotonic() < deadline and p.poll() is None:
        if part.is_file():
            seen = len(part.read_text().splitlines())
            if seen >= after_rows:
                break
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    return p, seen, out, err


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupted_run_keeps_its_rows(sig, code, tiny_dir, bag_video, tmp_path):
    """Killed mid-video: every tracked frame's row is on disk (in b.txt.part), the message says where, the exit
    code is 128 + signal, no traceback, and the user's existing b.txt is untouched."""
    out = tmp_path / "b.txt"
    out.write_text("precious results\n")
    part = tmp_path / "b.txt.part"
    p, seen, _, err = _start_and_stop(["--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", bag_video,
                                       "--bbox", BOX, "--out", out, "--threads", "1", "--no-progress"],
                                      sig, 10, part)
    assert p.returncode == code, err
    assert "Traceback" not in err
    rows = part.read_text().splitlines()
    assert len(rows) >= seen >= 10 and len(rows) < 196
    assert f"interrupted after {len(rows)} frames; boxes so far in {part}" in err
    assert out.read_text() == "precious results\n"
    assert all(len(r.split(",")) == 4 for r in rows)  # whole rows only


def test_interrupted_json_run_reads_back(tiny_dir, bag_video, tmp_path):
    """A JSON box file cut short has no closing ``]}``: read_results still gives every frame written to it."""
    part = tmp_path / "b.json.part"
    p, seen, _, err = _start_and_stop(["--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", bag_video,
                                       "--bbox", BOX, "--out", tmp_path / "b.json", "--threads", "1",
                                       "--no-progress"], signal.SIGINT, 10, part)
    assert p.returncode == 130, err
    lines = part.read_text().splitlines()
    boxes, scores = read_results(part), read_scores(part)
    # every frame on disk when the signal was sent is kept (seen counts the header line too)
    assert seen - 1 <= len(boxes) == len(lines) - 1 < 196 and boxes.shape[1:] == (1, 4)
    assert scores.shape == (len(boxes), 1)
    assert boxes[0, 0].tolist() == [316, 140, 112, 115] and np.isfinite(boxes).all()


def test_bad_save_video_leaves_existing_out_untouched(tiny_dir, bag_video, tmp_path):
    out = tmp_path / "b.txt"
    out.write_text("x\n" * 196)
    before = out.stat().st_mtime_ns
    r = run("--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", bag_video, "--bbox", BOX, "--out", out,
            "--save-video", tmp_path / "no" / "such" / "dir" / "v.xyz", "--no-progress")
    assert r.returncode == 2 and "--save-video" in r.stderr and "Traceback" not in r.stderr
    assert out.read_text() == "x\n" * 196 and out.stat().st_mtime_ns == before
    assert not list(tmp_path.glob("*.part*"))


@pytest.mark.parametrize("case,expect", [
    ("bbox_outside", "lies outside the 480x360 frame"),
    ("bbox_zero", "zero or negative size"),
    ("bbox_format", "four numbers"),
    ("no_model", "does not exist"),
    ("model_missing_file", "lacks ['search.onnx']"),
    ("no_video", "does not exist"),
    ("bad_video", "cannot be opened"),
    ("camera", "camera 97 cannot be opened"),
    ("no_bbox", "no target box given"),
    ("start_past_end", "--start-frame 500 is past the end"),
])
def test_errors_exit_2_without_traceback(case, expect, tiny_dir, bag_video, tmp_path):
    model, video, bbox = tiny_dir("siamrpn_alex_dwxcorr"), bag_video, ["--bbox", BOX]
    extra = []
    if case == "bbox_outside":
        bbox = ["--bbox", "600,10,50,50"]
    elif case == "bbox_zero":
        bbox = ["--bbox", "10,10,0,50"]
    elif case == "bbox_format":
        bbox = ["--bbox", "10,10,50"]
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
    elif case == "camera":
        video = "97"
    elif case == "no_bbox":
        bbox = []
    elif case == "start_past_end":
        extra = ["--start-frame", "500"]
    r = run("--model", model, "--video", video, *bbox, *extra, "--no-progress")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert expect in r.stderr
    assert "Traceback" not in r.stderr
    if case == "camera":
        assert "H.264" not in r.stderr and "/dev/video" in r.stderr  # camera advice, not video-conversion advice


# ------------------------------------------------------------------------------------------------ nothing lost
# A full disk is simulated without root: the tracking process gets a file-size limit (RLIMIT_FSIZE, SIGXFSZ
# ignored), so its writes past the limit fail with EFBIG as they fail with ENOSPC on a full disk (OpenCV's video
# writer ignores both).


def run_limited(limit_bytes: int, *args, timeout=300):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    # ONNX Runtime, one thread, no .pyc writes: only the outputs under test meet the limit (a run under the limit
    # once hung after its error message under heavy load, with OpenVINO's model cache in the same limit)
    args = [*args, "--backend", "onnxruntime", "--threads", "1"]
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=dict(env(), PYTHONDONTWRITEBYTECODE="1"), preexec_fn=limit)


def frames_in(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()
    return n


def test_full_disk_while_writing_boxes_keeps_whole_rows(tiny_dir, bag_video, tmp_path):
    out = tmp_path / "b.txt"
    out.write_text("precious results\n")
    r = run_limited(1500, "--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", bag_video, "--bbox", BOX,
                    "--out", out, "--no-progress")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "cannot write" in r.stderr and "fix:" in r.stderr
    assert out.read_text() == "precious results\n"
    text = (tmp_path / "b.txt.part").read_text()
    rows = text.splitlines()
    assert text.endswith("\n") and 10 < len(rows) < 196 and all(len(r.split(",")) == 4 for r in rows)
    assert f"stopped after {len(rows)} frames; boxes so far in {out}.part" in r.stderr


def test_full_disk_while_writing_the_video_keeps_the_old_video(tiny_dir, bag_video, tmp_path):
    """OpenCV's writer fails silently: the run must notice before renaming an unreadable video into place."""
    vid, out = tmp_path / "v.mp4", tmp_path / "b.txt"
    old = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for _ in range(3):
        old.write(np.zeros((48, 64, 3), np.uint8))
    old.release()
    before = vid.read_bytes()
    r = run_limited(150_000, "--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", bag_video, "--bbox", BOX,
                    "--out", out, "--save-video", vid, "--max-frames", "60", "--no-progress")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "could not be completed" in r.stderr
    assert vid.read_bytes() == before and frames_in(vid) == 3
    assert len(out.read_text().splitlines()) == 60  # the box file is whole: it is kept
    assert frames_in(tmp_path / "v.part.mp4") != 60


def test_folder_removed_mid_run(tiny_dir, bag_video, tmp_path):
    """The output folder deleted while the run writes into it: exit 2 naming the failure, no traceback."""
    folder = tmp_path / "o"
    folder.mkdir()
    p = subprocess.Popen([sys.executable, str(SCRIPT), "--model", str(tiny_dir("siamrpn_alex_dwxcorr")), "--video",
                          str(bag_video), "--bbox", BOX, "--out", str(folder / "b.txt"), "--threads", "1",
                          "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                         env=env())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (folder / "b.txt.part").is_file():
        time.sleep(0.02)
    shutil.rmtree(folder)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2, err
    assert "Traceback" not in err and "cannot write" in err


def test_a_rerun_never_overwrites_an_earlier_runs_partial_files(tiny_dir, bag_video, tmp_path):
    out, vid = tmp_path / "b.txt", tmp_path / "v.mp4"
    for leftover in (tmp_path / "b.txt.part", tmp_path / "v.part.mp4"):
        leftover.write_text("65 frames of an interrupted run\n")
        r = run("--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", bag_video, "--bbox", BOX, "--out", out,
                "--save-video", vid, "--max-frames", "3", "--no-progress")
        assert r.returncode == 2 and "exists: the frames an interrupted run kept" in r.stderr, r.stderr
        assert leftover.read_text() == "65 frames of an interrupted run\n" and not out.exists() and not vid.exists()
        leftover.unlink()


def test_outputs_may_not_meet_by_their_partial_names(tiny_dir, bag_video, tmp_path):
    """--out a.part.mp4 is the partial name of --save-video a.mp4: the box rows would have replaced the video."""
    r = run("--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", bag_video, "--bbox", BOX,
            "--out", tmp_path / "a.part.mp4", "--save-video", tmp_path / "a.mp4", "--max-frames", "3", "--no-progress")
    assert r.returncode == 2 and "are the same file" in r.stderr, r.stderr
    assert not list(tmp_path.iterdir())


def test_out_never_replaces_a_model_file_or_a_binary_file(tiny_dir, bag_video, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(tiny_dir("siamrpn_alex_dwxcorr"), model)
    onnx = (model / "search.onnx").read_bytes()
    r = run("--model", model, "--video", bag_video, "--bbox", BOX, "--out", model / "search.onnx",
            "--max-frames", "3", "--no-progress")
    assert r.returncode == 2 and "is the input" in r.stderr, r.stderr
    assert (model / "search.onnx").read_bytes() == onnx
    victim = tmp_path / "clip.avi"
    shutil.copyfile(bag_video, victim)  # writable: the binary check, not the mode, refuses it
    r = run("--model", model, "--video", bag_video, "--bbox", BOX, "--out", victim, "--max-frames", "3",
            "--no-progress")
    assert r.returncode == 2 and "is not a box file" in r.stderr, r.stderr
    assert victim.read_bytes() == bag_video.read_bytes()
    notes = tmp_path / "old.txt"  # a text file (an earlier box file) is replaced once the new one is complete
    notes.write_text("1,2,3,4\n")
    r = run("--model", model, "--video", bag_video, "--bbox", BOX, "--out", notes, "--max-frames", "3",
            "--no-progress")
    assert r.returncode == 0 and len(notes.read_text().splitlines()) == 3, r.stderr


def test_image_folder_of_mixed_sizes_is_refused_at_the_odd_frame(tiny_dir, bag_sequence, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    frames = sorted((bag_sequence / "img").glob("*.jpg"))[:6]
    for i, f in enumerate(frames):
        img = cv2.imread(str(f))
        cv2.imwrite(str(folder / f.name), img if i != 4 else cv2.resize(img, (320, 240)))
    out = tmp_path / "b.txt"
    r = run("--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", folder, "--bbox", BOX, "--out", out,
            "--no-progress")
    assert r.returncode == 2 and "is 320x240, the sequence's first frame 480x360" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    assert len((tmp_path / "b.txt.part").read_text().splitlines()) == 4  # the frames before it are kept


def test_truncated_video_is_reported(tiny_dir, bag_video, tmp_path):
    cut = tmp_path / "cut.avi"
    data = bag_video.read_bytes()
    cut.write_bytes(data[: len(data) // 4])  # the header still announces 196 frames
    r = run("--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", cut, "--bbox", BOX, "--out", tmp_path / "b.txt",
            "--no-progress")
    assert r.returncode == 0, r.stderr
    n = len((tmp_path / "b.txt").read_text().splitlines())
    assert n < 196 and f"decoded {n} of the 196 frames its header announces" in r.stderr


@pytest.mark.parametrize("name", ["b" * 300 + ".txt"])
def test_a_name_the_os_refuses_is_bad_input(name, tiny_dir, bag_video, tmp_path):
    r = run("--model", tiny_dir("siamrpn_alex_dwxcorr"), "--video", bag_video, "--bbox", BOX, "--out",
            tmp_path / name, "--max-frames", "3", "--no-progress")
    assert r.returncode == 2 and "File name too long" in r.stderr and "Traceback" not in r.stderr, r.stderr
