"""Many videos on Ray (one shared local instance): results equal the single-process runtime; a video that cannot be
decoded is reported and does not stop the others; a rerun resumes, but never over another model's results; a
worker killed mid-run loses nothing written and its video is finished (tried again, or by the rerun)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from batch_helpers import assert_equals_runtime, kill_when_rows, long_image_video
from siamtrt.batch import BatchError, discover_jobs, read_results, track_many
from siamtrt.errors import InputError

MAX_FRAMES = 60
REPO = Path(__file__).resolve().parents[2]


def test_discovery(video_set, tmp_path):
    root, boxes = video_set
    jobs = {j.name: j for j in discover_jobs(root, boxes)}
    assert set(jobs) == {"bag", "synth1", "synth2", "broken"}
    assert jobs["bag"].bbox == [316.0, 140.0, 112.0, 115.0] and jobs["bag"].bbox_from.startswith("bbox file")
    assert jobs["synth1"].bbox_from == "ground truth"
    with pytest.raises(InputError, match="do not exist") as e:  # checked before anything starts
        discover_jobs([root / "synth1", tmp_path / "nowhere.avi"], boxes)
    assert "nowhere.avi" in str(e.value)


@pytest.mark.parametrize("fmt", ["parquet"])
def test_results_equal_runtime_and_bad_video_reported(ray_local, batch_model, video_set, tmp_path, fmt):
    root, boxes = video_set
    out = tmp_path / "out"
    rep = track_many(batch_model, root, out, bbox_file=boxes, workers=2, fmt=fmt, max_frames=MAX_FRAMES,
                     progress=False)
    assert rep.workers == 2 and sorted(rep.tracked) == ["bag", "broken", "synth1", "synth2"]
    assert rep.failed == ["broken"]
    assert "cannot be opened" in rep.videos["broken"]["error"]
    assert not list(out.glob("broken*"))  # no partial file left
    jobs = {j.name: j for j in discover_jobs(root, boxes)}
    workers = set()
    for name in ("bag", "synth1", "synth2"):
        got = read_results(out / f"{name}.{fmt}")
        assert_equals_runtime(got, batch_model, jobs[name].source, jobs[name].bbox, MAX_FRAMES)
        assert rep.videos[name]["frames"] == len(got.boxes) == (MAX_FRAMES if name == "bag" else 30)
        workers.add(rep.videos[name]["worker"])
    assert len(workers) == 2  # both actors did work
    doc = json.loads((out / "summary.json").read_text())
    summary = doc["videos"]
    assert {n: r["status"] for n, r in summary.items()} == {"bag": "ok", "synth1": "ok", "synth2": "ok",
                                                             "broken": "failed"}
    ident = doc["run"]["model_identity"]  # what made these files
    assert len(ident["search_onnx_sha256"]) == 64 and ident["backend"] == "onnxruntime"
    with open(out / "summary.csv", newline="") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(summary) and rows["broken"]["status"] == "failed" and rows["broken"]["error"]

    # Resume: finished videos are not redone (files untouched), the failed one is retried (and fails again).
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob(f"*.{fmt}")}
    rep2 = track_many(batch_model, root, out, bbox_file=boxes, workers=2, fmt=fmt, max_frames=MAX_FRAMES,
                      progress=False)
    assert sorted(rep2.skipped) == ["bag", "synth1", "synth2"] and rep2.tracked == ["broken"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob(f"*.{fmt}")} == mtimes


def test_csv_is_the_runtime_format(ray_local, batch_model, video_set, tmp_path):
    """CSV results are the runtime BoxWriter's (header frame,target,x,y,w,h,score) and read back by both readers."""
    from siamtrt.runtime.boxes import read_results as read_box_results

    root, boxes = video_set
    out = tmp_path / "out"
    rep = track_many(batch_model, [root / "synth1"], out, bbox_file=boxes, workers=1, max_frames=12, progress=False)
    assert not rep.failed
    path = out / "synth1.csv"
    assert path.read_text().splitlines()[0] == "frame,target,x,y,w,h,score"
    got = read_results(path)
    np.testing.assert_array_equal(read_box_results(path), got.boxes)
    job = discover_jobs([root / "synth1"], boxes)[0]
    assert_equals_runtime(got, batch_model, job.source, job.bbox, 12)


def test_resume_refuses_another_model(ray_local, batch_model, other_model, video_set, tmp_path):
    """A rerun with a different --model must not skip the videos and stamp the new model over the old files."""
    root, boxes = video_set
    out = tmp_path / "out"
    track_many(batch_model, [root / "synth1"], out, bbox_file=boxes, workers=1, max_frames=8, progress=False)
    before = (out / "synth1.csv").read_bytes()
    summary_before = (out / "summary.json").read_bytes()
    with pytest.raises(BatchError, match="another model") as e:
        track_many(other_model, [root / "synth1"], out, bbox_file=boxes, workers=1, max_frames=8, progress=False)
    assert "search_onnx_sha256" in e.value.evidence and "--no-resume" in e.value.fix
    assert (out / "synth1.csv").read_bytes() == before and (out / "summary.json").read_bytes() == summary_before
    rep = track_many(other_model, [root / "synth1"], out, bbox_file=boxes, workers=1, max_frames=8, resume=False,
                     progress=False)
    assert rep.tracked == ["synth1"] and not rep.failed
    assert (out / "synth1.csv").read_bytes() != before  # the new model's boxes, under the new model's identity
    ident = json.loads((out / "summary.json").read_text())["run"]["model_identity"]
    assert ident["path"] == str(Path(other_model).resolve())
    job = discover_jobs([root / "synth1"], boxes)[0]
    assert_equals_runtime(read_results(out / "synth1.csv"), other_model, job.source, job.bbox, 8)


def test_killed_worker_is_retried_and_loses_nothing(ray_local, batch_model, video_set, tmp_path, bag_sequence):
    """A worker SIGKILLed mid-video: its actor is replaced and the video tracked again from frame 0 in the same
    run (retries=1); with retries=0 it is reported and the rerun finishes it. Finished files are never touched."""
    root, boxes = video_set
    long = long_image_video(tmp_path / "videos2", bag_sequence)
    (tmp_path / "boxes.txt").write_text("long,316,140,112,115\n")
    videos = [long, root / "synth1", root / "synth2"]
    n_frames = 2 * len(list((bag_sequence / "img").iterdir()))

    for retries in (1, 0):
        out = tmp_path / f"out{retries}"
        killed = {}

        def on_event(kind, info):
            if kind == "submitted" and info["name"] == "long" and info["attempt"] == 1:
                killed["rows"] = kill_when_rows(out / "long.csv.part", info["pid"])

        rep = track_many(batch_model, videos, out, bbox_file=tmp_path / "boxes.txt", workers=2, progress=False,
                         retries=retries, on_event=on_event)
        assert killed["rows"] > 1 and rep.worker_deaths == 1
        done = {n: (out / f"{n}.csv").read_bytes() for n in ("synth1", "synth2")}
        assert all(rep.videos[n]["status"] == "ok" for n in done)
        if retries:
            assert not rep.failed and rep.videos["long"]["attempts"] == 2
        else:
            assert rep.failed == ["long"] and "worker died" in rep.videos["long"]["error"]
            assert not (out / "long.csv").exists()  # never a truncated final file
            assert rep.videos["long"]["file"] == "long.csv.part"  # the rows so far, named
            assert not (out / "long.csv.lock").exists()  # no worker is on it any more
            rep2 = track_many(batch_model, videos, out, bbox_file=tmp_path / "boxes.txt", workers=2, progress=False)
            assert rep2.tracked == ["long"] and sorted(rep2.skipped) == ["synth1", "synth2"] and not rep2.failed
            assert {n: (out / f"{n}.csv").read_bytes() for n in done} == done  # kept as they were
        got = read_results(out / "long.csv")
        assert len(got.boxes) == n_frames
        head = type(got)(got.boxes[:40], got.scores[:40])
        assert_equals_runtime(head, batch_model, long, (316, 140, 112, 115), 40)


def test_cli_on_an_existing_cluster(ray_local, batch_model, video_set, tmp_path):
    """benchmarks/track_many.py --address joins the running Ray instance (a cluster it did not start), shows tqdm over
    videos, writes the results and summary; failed videos make the exit status 1."""
    root, boxes = video_set
    address = ray_local.get_runtime_context().gcs_address
    out = tmp_path / "cli_out"
    cmd = [sys.executable, str(REPO / "benchmarks" / "track_many.py"), "--model", str(batch_model), "--videos",
           str(root / "synth1"), str(root / "broken.avi"), "--bbox-file", str(boxes), "--out", str(out), "--address",
           address, "--max-frames", "10", "--json", str(tmp_path / "many.json"), "--verbose"]  # Ray's lines shown
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert r.returncode == 1, r.stderr[-2000:]  # broken.avi failed (reported), synth1 done
    assert "Connecting to existing Ray cluster" in r.stderr  # joined
    assert "track-many: " in r.stderr and " videos" in r.stderr  # progress over videos (plain lines in a log)
    assert "failed broken" in r.stdout
    assert "(raylet)" not in r.stderr and "worker died" not in r.stderr  # Ray's noise comes only with a real death
    job = {j.name: j for j in discover_jobs(root, boxes)}["synth1"]
    assert_equals_runtime(read_results(out / "synth1.csv"), batch_model, job.source, job.bbox, 10)
    assert json.loads((out / "summary.json").read_text())["videos"]["synth1"]["status"] == "ok"


def test_cli_checks_cheap_inputs_before_exporting(tmp_path):
    """Without --model and with a video that does not exist: exit 2 with the missing path, no default model
    exported into ./models, no --out folder left behind (and no Ray started: it returns in seconds)."""
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "track_many.py"), "--videos",
                        str(tmp_path / "missing.avi"), "--out", str(out)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "do not exist" in r.stderr and "missing.avi" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and not (tmp_path / "models").exists()


def test_resume_follows_the_request_and_keeps_the_folders_other_videos(ray_local, batch_model, video_set, tmp_path):
    """A finished video is reused only for the same init box and --max-frames; a rerun over some videos keeps the
    summary entries (and files) of the others."""
    root, boxes = video_set
    out = tmp_path / "out"
    track_many(batch_model, [root / "synth1"], out, bbox_file=boxes, workers=1, max_frames=5, progress=False)
    rep = track_many(batch_model, [root / "synth1"], out, bbox_file=boxes, workers=1, max_frames=8, progress=False)
    assert rep.tracked == ["synth1"] and not rep.skipped  # 5 frames do not answer a request for 8
    assert len(read_results(out / "synth1.csv").boxes) == 8
    rep = track_many(batch_model, [root / "synth1"], out, bbox_file=boxes, workers=1, max_frames=8, progress=False)
    assert rep.skipped == ["synth1"] and not rep.tracked  # the same request: reused
    moved = tmp_path / "moved.txt"
    moved.write_text("synth1,20,20,60,60\n")
    rep = track_many(batch_model, [root / "synth1"], out, bbox_file=moved, workers=1, max_frames=8, progress=False)
    assert rep.tracked == ["synth1"]  # another init box: tracked again from it
    assert read_results(out / "synth1.csv").boxes[0, 0].tolist() == [20, 20, 60, 60]
    rep = track_many(batch_model, [root / "synth2"], out, bbox_file=boxes, workers=1, max_frames=8, progress=False)
    assert set(rep.videos) == {"synth2"}  # the report speaks of this run's videos
    summary = json.loads((out / "summary.json").read_text())["videos"]
    assert set(summary) == {"synth1", "synth2"} and summary["synth1"]["init_box"] == [20, 20, 60, 60]
    assert summary["synth2"]["max_frames"] == 8


def test_cli_sigterm_stops_with_143_and_says_what_was_kept(batch_model, tmp_path, bag_sequence):
    """SIGTERM to a track-many that started its own Ray: exit 143 (not Ray's abort, 134) and a message naming the
    partial rows; rerunning finishes the video."""
    import os
    import signal
    import time

    long = long_image_video(tmp_path / "videos", bag_sequence, repeats=3)
    (tmp_path / "boxes.txt").write_text("long,316,140,112,115\n")
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "benchmarks" / "track_many.py"), "--model", str(batch_model), "--videos",
           str(long), "--bbox-file", str(tmp_path / "boxes.txt"), "--out", str(out), "--num-cpus", "1"]
    env = dict(os.environ, RAY_ADDRESS="")  # its own local Ray, not the session's
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    part = out / "long.csv.part"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and p.poll() is None and (not part.exists() or part.stat().st_size < 2000):
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err[-3000:]
    assert "interrupted after 0 of the 1 videos" in err and f"{out}/NAME.csv.part" in err and "long" in err
    assert "SIGTERM received" not in err and "Traceback" not in err
    assert "Started a local Ray instance" not in err  # Ray's own INFO lines only with --verbose
