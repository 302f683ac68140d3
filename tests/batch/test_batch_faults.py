"""Faults around a many-video run (one shared local Ray instance): a second run on the same output folder, an
earlier run killed with its partial files left, a summary the disk refuses, a worker killed with no retry left, a
damaged video that decodes short. Nothing finished is lost, and the summary says what happened."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os

import numpy as np
import pytest

from siamtrt.batch import BatchError, VideoJob, read_results, track_many, track_one
from siamtrt.batch.summary import ManyReport
from siamtrt.errors import OutputError
from siamtrt.runtime import Tracker


def test_second_run_on_the_same_out_is_refused(ray_local, batch_model, video_set, tmp_path):
    """Two runs on one folder tracked the same videos twice, renamed each other's .part files away, and the last
    summary written called finished videos failed: the second is refused while the first runs."""
    root, boxes = video_set
    out = tmp_path / "out"
    second = {}

    def on_event(kind, info):
        if kind == "submitted" and not second:
            with pytest.raises(BatchError, match="another track-many run") as e:
                track_many(batch_model, [root / "synth2"], out, bbox_file=boxes, workers=1, max_frames=5,
                           progress=False)
            second["error"] = e.value

    rep = track_many(batch_model, [root / "synth1"], out, bbox_file=boxes, workers=1, max_frames=5, progress=False,
                     on_event=on_event)
    assert not rep.failed and f'"pid": {os.getpid()}' in second["error"].evidence
    assert "--out" in second["error"].fix
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv", "summary.json", "synth1.csv"]  # lock removed
    rep2 = track_many(batch_model, [root / "synth1", root / "synth2"], out, bbox_file=boxes, workers=1,
                      max_frames=5, progress=False)  # the lock is free again
    assert rep2.skipped == ["synth1"] and rep2.tracked == ["synth2"] and not rep2.failed


def test_rerun_after_a_killed_run_replaces_its_leftovers_and_says_so(ray_local, batch_model, video_set, tmp_path,
                                                                     caplog):
    """A run SIGKILLed leaves its run lock, a video's .part (rows so far) and .lock: the rerun says so, tracks the
    video again from frame 0, keeps the finished one, and leaves no leftover behind."""
    root, boxes = video_set
    out = tmp_path / "out"
    track_many(batch_model, [root / "synth1"], out, bbox_file=boxes, workers=1, max_frames=5, progress=False)
    done = (out / "synth1.csv").read_bytes()
    (out / "synth2.csv.part").write_text("frame,target,x,y,w,h,score\n0,0,1,2,3,4,1\n")
    (out / "synth2.csv.lock").write_text(json.dumps({"pid": 1, "host": "gone", "started": 0.0}))
    (out / "track-many.lock").write_text(json.dumps({"pid": 1, "host": "gone", "started": 0.0}))
    with caplog.at_level(logging.WARNING, logger="siamtrt.batch"):
        rep = track_many(batch_model, [root / "synth1", root / "synth2"], out, bbox_file=boxes, workers=1,
                         max_frames=5, progress=False)
    assert rep.skipped == ["synth1"] and rep.tracked == ["synth2"] and not rep.failed
    assert "left unfinished by an earlier run" in caplog.text and "synth2" in caplog.text
    assert "track-many.lock was left by an earlier run" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv", "summary.json", "synth1.csv", "synth2.csv"]
    assert (out / "synth1.csv").read_bytes() == done and len(read_results(out / "synth2.csv").boxes) == 5


def test_summary_the_disk_refuses_stops_the_run_with_what_was_kept(ray_local, batch_model, video_set, tmp_path,
                                                                   monkeypatch):
    """A full disk when the summary is rewritten was an OSError traceback (exit 1): now an OutputError (exit 2)
    saying what was kept; the finished video's file and the last summary stay, and a rerun finishes the rest."""
    import siamtrt.batch.summary as summary_mod

    root, boxes = video_set
    out = tmp_path / "out"
    real, writes = summary_mod.atomic_file, []

    @contextlib.contextmanager
    def disk_full_after_first_video(path, *args, **kwargs):
        writes.append(path)
        if len(writes) > 2:  # summary.json + summary.csv after the first video, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        with real(path, *args, **kwargs) as f:
            yield f

    monkeypatch.setattr(summary_mod, "atomic_file", disk_full_after_first_video)
    with pytest.raises(OutputError, match="No space left on device") as e:
        track_many(batch_model, [root / "synth1", root / "synth2"], out, bbox_file=boxes, workers=1, max_frames=5,
                   progress=False)
    assert "summary.json" in e.value.what and "result files are complete" in e.value.what and "disk" in e.value.fix
    recorded = json.loads((out / "summary.json").read_text())["videos"]
    assert list(recorded) == ["synth1"] and recorded["synth1"]["status"] == "ok" and (out / "synth1.csv").is_file()
    assert not (out / "track-many.lock").exists()
    monkeypatch.setattr(summary_mod, "atomic_file", real)
    rep = track_many(batch_model, [root / "synth1", root / "synth2"], out, bbox_file=boxes, workers=1, max_frames=5,
                     progress=False)
    assert rep.skipped == ["synth1"] and rep.tracked == ["synth2"] and not rep.failed


def test_truncated_video_is_ok_with_a_warning(batch_model, bag_video, tmp_path):
    """A damaged file decodes short and OpenCV just stops: the summary said "ok" with no word of the frames lost."""
    short = tmp_path / "cut.avi"
    data = bag_video.read_bytes()
    short.write_bytes(data[:len(data) * 3 // 10])
    (tmp_path / "out").mkdir()
    tracker = Tracker.from_model_dir(batch_model, backend="onnxruntime", threads=1)
    row = track_one(tracker, VideoJob("cut", str(short), [316.0, 140.0, 112.0, 115.0]), tmp_path / "out",
                    max_frames=60)
    assert row["status"] == "ok" and 1 < row["frames"] < 60
    assert f"ended after {row['frames']} of the 60 frames expected" in row["warning"]  # the header says 196
    rep = ManyReport(out=tmp_path / "out", workers=1, resource="1 CPU each", videos={"cut": row}, tracked=["cut"])
    assert f"warning cut: the file ended after {row['frames']}" in rep.summary() and not rep.failed
    whole = track_one(tracker, VideoJob("bag", str(bag_video), [316.0, 140.0, 112.0, 115.0]), tmp_path / "out",
                      max_frames=3)
    assert whole["status"] == "ok" and whole["warning"] == ""  # a frame limit is no shortfall
    assert np.isfinite(read_results(tmp_path / "out" / "cut.csv").boxes).all()


def _hold_flock(path):
    """A process holding an exclusive flock on ``path`` (as a worker of a killed run does on its video's .lock)."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                          "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)", str(path)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_rerun_waits_for_the_workers_of_a_killed_run(ray_local, batch_model, video_set, tmp_path):
    """After a driver SIGKILL its workers go on writing their videos for a few seconds: a rerun then replaced their
    .part files under them (two writers in one file). Refused, before Ray starts, while a process holds the flock of
    a video's .lock, whatever pid the file names (here one that has exited); a .lock nobody holds is stale even when
    its pid is alive (the old pid + /proc start-time check refused the first case's opposite and ran the first)."""
    import socket
    import subprocess
    import sys
    import time

    root, boxes = video_set
    out = tmp_path / "out"
    out.mkdir()
    part, lock = out / "synth2.csv.part", out / "synth2.csv.lock"
    part.write_text("frame,target,x,y,w,h,score\n0,0,1,2,3,4,1\n")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid names no process now
    lock.write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "started": time.time()}))
    holder, alive = _hold_flock(lock), subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with pytest.raises(BatchError, match="still being written") as e:
            track_many(batch_model, [root / "synth2"], out, bbox_file=boxes, workers=1, max_frames=5,
                       progress=False)
        assert f"synth2 (pid {gone.pid})" in e.value.evidence and "kill" in e.value.fix
        assert part.read_text().count("\n") == 2 and lock.is_file()  # untouched
        holder.kill()  # SIGKILL: the OS releases its flock
        holder.wait()
        time.sleep(0.5)
        lock.write_text(json.dumps({"pid": alive.pid, "host": socket.gethostname(), "started": time.time()}))
        rep = track_many(batch_model, [root / "synth2"], out, bbox_file=boxes, workers=1, max_frames=5,
                         progress=False)  # a live pid without the flock: stale
    finally:
        for p in (holder, alive):
            p.kill()
            p.wait()
    assert rep.tracked == ["synth2"] and not rep.failed and not lock.exists()
    assert read_results(out / "synth2.csv").boxes.shape[0] == 5


def test_worker_holds_the_flock_of_its_video(batch_model, bag_video, tmp_path):
    """The worker flocks its video's .lock while it tracks (a record alone told nothing once its pid was reused),
    removes it when done, and a video whose .lock another process holds is failed, not written beside it."""
    import fcntl

    lock, seen = tmp_path / "bag.csv.lock", []
    tracker = Tracker.from_model_dir(batch_model, backend="onnxruntime", threads=1)
    real_init = tracker.init

    def probe(frame, box):  # during tracking: another open of the .lock cannot take the flock
        with open(lock) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append("free")
            except BlockingIOError:
                seen.append(json.loads(lock.read_text())["pid"])
        real_init(frame, box)

    tracker.init = probe
    job = VideoJob("bag", str(bag_video), [316.0, 140.0, 112.0, 115.0])
    assert track_one(tracker, job, tmp_path, max_frames=2)["status"] == "ok"
    assert seen == [os.getpid()] and not lock.exists()
    holder = _hold_flock(lock)
    try:
        row = track_one(tracker, job, tmp_path, max_frames=2)
    finally:
        holder.kill()
        holder.wait()
    assert row["status"] == "failed" and "being tracked by another process" in row["error"] and lock.exists()
    assert len(seen) == 1  # not tracked


def test_run_lock_on_a_file_system_without_locks_and_damaged_worker_locks(tmp_path, monkeypatch):
    """flock failing with ENOLCK (NFS without lockd) was an OSError traceback that left track-many.lock behind (the
    next run then called it a killed run's); a worker .lock naming pid -1 or a non-numeric time crashed the check or
    advised `kill -1`. Now: a BatchError naming the mount problem, nothing left; a damaged .lock nobody holds is
    replaced as before, one a process holds is refused with its text."""
    import fcntl

    import siamtrt.batch.many as many

    def no_locks(f, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(BatchError, match="does not support file locks") as e:
        with many.output_lock(tmp_path):
            pass
    assert "ENOLCK" in e.value.evidence or "No locks available" in e.value.evidence
    assert not (tmp_path / many.RUN_LOCK).exists()
    monkeypatch.undo()
    todo = [VideoJob("v", str(tmp_path / "v.avi"), None)]
    for bad in ({"pid": -1, "started": 1e18}, {"pid": os.getppid(), "started": "x"}, ["not", "a", "record"]):
        (tmp_path / "v.csv.lock").write_text(json.dumps(bad))
        many._refuse_live_workers(tmp_path, todo, "csv")  # nobody holds it: no error
    holder = _hold_flock(tmp_path / "v.csv.lock")
    try:
        with pytest.raises(BatchError, match="still being written") as e:
            many._refuse_live_workers(tmp_path, todo, "csv")
    finally:
        holder.kill()
        holder.wait()
    assert 'v (["not", "a", "record"])' in e.value.evidence


def test_live_worker_check_creates_no_lock_file(tmp_path, monkeypatch):
    """A rerun's check of a video's .lock opened it to lock it, creating it: a worker of the stopped run that removed
    its .lock between the check's exists() and open() left an empty .lock behind (reported and replaced by the next
    run, but a file nobody wrote). Simulated by a .lock that exists() reports and that is gone when opened: the check
    now finds nobody on it and creates nothing."""
    from pathlib import Path

    import siamtrt.batch.many as many

    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda p, *a, **k: p.name.endswith(".lock") or real_exists(p, *a, **k))
    many._refuse_live_workers(tmp_path, [VideoJob("v", str(tmp_path / "v.avi"), None)], "csv")
    monkeypatch.undo()
    assert sorted(tmp_path.iterdir()) == []
