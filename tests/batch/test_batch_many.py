"""Many videos on Ray (one shared local instance): results equal the single-process runtime; a video that cannot be
decoded is reported and does not stop the others; a rerun resumes; a worker killed mid-run loses nothing written
and the rerun finishes."""

from __future__ import annotations

import csv
import json
import os
import signal
import time

import numpy as np
import pytest

from siamtrt.batch import discover_jobs, read_results, track_many
from siamtrt.runtime import Tracker
from siamtrt.runtime.video import open_frames

MAX_FRAMES = 60


def runtime_rows(model, source, box, max_frames=None):
    t = Tracker.from_model_dir(model, backend="onnxruntime", threads=1)
    rows = []
    for i, f in enumerate(open_frames(source, max_frames=max_frames)):
        if i == 0:
            t.init(f, np.asarray(box, np.float64))
            rows.append([0, *box, 1.0])
        else:
            res = t.track(f)
            b, s = res.bbox, res.score
            rows.append([i, *b, s])
    return np.asarray(rows, np.float64)


def test_discovery(video_set):
    root, boxes = video_set
    jobs = {j.name: j for j in discover_jobs(root, boxes)}
    assert set(jobs) == {"bag", "synth1", "synth2", "broken"}
    assert jobs["bag"].bbox == [316.0, 140.0, 112.0, 115.0] and jobs["bag"].bbox_from.startswith("bbox file")
    assert jobs["synth1"].bbox_from == "ground truth"


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
        want = runtime_rows(batch_model, jobs[name].source, jobs[name].bbox, MAX_FRAMES)
        np.testing.assert_array_equal(got, want)
        assert rep.videos[name]["frames"] == len(want)
        workers.add(rep.videos[name]["worker"])
    assert len(workers) == 2  # both actors did work
    summary = json.loads((out / "summary.json").read_text())["videos"]
    assert {n: r["status"] for n, r in summary.items()} == {"bag": "ok", "synth1": "ok", "synth2": "ok",
                                                             "broken": "failed"}
    with open(out / "summary.csv", newline="") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(summary) and rows["broken"]["status"] == "failed" and rows["broken"]["error"]

    # Resume: finished videos are not redone (files untouched), the failed one is retried (and fails again).
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob(f"*.{fmt}")}
    rep2 = track_many(batch_model, root, out, bbox_file=boxes, workers=2, fmt=fmt, max_frames=MAX_FRAMES,
                      progress=False)
    assert sorted(rep2.skipped) == ["bag", "synth1", "synth2"] and rep2.tracked == ["broken"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob(f"*.{fmt}")} == mtimes


def test_killed_worker_loses_nothing_and_rerun_finishes(ray_local, batch_model, video_set, tmp_path, bag_sequence):
    root, boxes = video_set
    # A long image-folder video (bag's frames twice, as links) so the kill lands mid-video.
    long = tmp_path / "videos2" / "long" / "img"
    long.mkdir(parents=True)
    imgs = sorted((bag_sequence / "img").iterdir())
    for k, src in enumerate(imgs * 2):
        os.symlink(src, long / f"{k + 1:08d}.jpg")
    (long.parent.parent / "boxes.txt").write_text("long,316,140,112,115\n")
    videos = [long.parent, root / "synth1", root / "synth2"]
    out = tmp_path / "out"
    killed = {}

    def on_event(kind, info):
        if kind == "submitted" and info["name"] == "long":
            part = out / "long.csv.part"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < 2000):
                time.sleep(0.01)
            killed["rows_before"] = part.read_text().count("\n")
            os.kill(info["pid"], signal.SIGKILL)

    rep = track_many(batch_model, videos, out, bbox_file=long.parent.parent / "boxes.txt", workers=2,
                     progress=False, on_event=on_event)
    assert killed["rows_before"] > 1
    assert rep.failed == ["long"] and "worker died" in rep.videos["long"]["error"]
    assert not (out / "long.csv").exists()  # never a truncated final file
    done = {n: (out / f"{n}.csv").read_bytes() for n in ("synth1", "synth2")}
    assert all(rep.videos[n]["status"] == "ok" for n in done)

    rep2 = track_many(batch_model, videos, out, bbox_file=long.parent.parent / "boxes.txt", workers=2,
                      progress=False)
    assert rep2.tracked == ["long"] and sorted(rep2.skipped) == ["synth1", "synth2"] and not rep2.failed
    assert {n: (out / f"{n}.csv").read_bytes() for n in done} == done  # what was written is kept as it was
    got = read_results(out / "long.csv")
    assert len(got) == 2 * len(imgs)
    np.testing.assert_array_equal(got[:80], runtime_rows(batch_model, long.parent, (316, 140, 112, 115), 80))


def test_cli_on_an_existing_cluster(ray_local, batch_model, video_set, tmp_path):
    """benchmarks/track_many.py --address joins the running Ray instance (a cluster it did not start), shows tqdm over
    videos, writes the results and summary; failed videos make the exit status 1."""
    import subprocess
    import sys
    from pathlib import Path

    root, boxes = video_set
    address = ray_local.get_runtime_context().gcs_address
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "track_many.py"
    out = tmp_path / "cli_out"
    cmd = [sys.executable, str(script), "--model", str(batch_model), "--videos", str(root / "synth1"),
           str(root / "broken.avi"), "--bbox-file", str(boxes), "--out", str(out), "--address", address,
           "--max-frames", "10", "--json", str(tmp_path / "many.json")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert r.returncode == 1, r.stderr[-2000:]  # broken.avi failed (reported), synth1 done
    assert "Connecting to existing Ray cluster" in r.stderr and "video" in r.stderr  # joined, tqdm over videos
    assert "failed broken" in r.stdout
    job = {j.name: j for j in discover_jobs(root, boxes)}["synth1"]
    np.testing.assert_array_equal(read_results(out / "synth1.csv"), runtime_rows(batch_model, job.source, job.bbox, 10))
    assert json.loads((out / "summary.json").read_text())["videos"]["synth1"]["status"] == "ok"
