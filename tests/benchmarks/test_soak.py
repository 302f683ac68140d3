"""The runtime soak, short: a tiny long-term model in every mode with one and four targets keeps its memory flat and
its frame time bounded; a leak injected into the loop is caught (the detector can fail); the statistics behind the
verdicts are right on hand-made series; the command writes JSON + PNG."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from siamtrt.benchmarks import soak
from siamtrt.config import CONFIGS, MODES, with_longterm
from siamtrt.errors import InputError, ModelDirError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from rt_tiny_models import make_tiny_model_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FRAMES = 150  # per mode and target count: CI time on 2 shared cores
GOALS = soak.SoakGoals(rss_growth_mb=30.0, local_p99_ratio=6.0, global_p99_ratio=6.0)  # loose (shared CI machine)


@pytest.fixture(scope="module")
def lt_model(tmp_path_factory) -> Path:
    """Tiny alex-layout model with a long-term search size (every mode runs on it).

    The lost size is 383, not 831: the tiny model's fixed 103-px pooling makes an 831 search cost ~20x a local one,
    too slow for CI; the code paths are the same. Its random scores sit near 0.53-0.56 everywhere, so the
    confidence thresholds are set inside that band to make long-term mode switch between local and global searches.
    """
    cfg = with_longterm(CONFIGS["siamrpn_alex_dwxcorr"], 383)
    cfg = dataclasses.replace(cfg, track=dataclasses.replace(cfg.track, confidence_low=0.545, confidence_high=0.55))
    return make_tiny_model_dir(tmp_path_factory.mktemp("soak_lt"), "siamrpn_alex_dwxcorr", cfg=cfg)


def test_statistics_on_known_series():
    x = np.arange(1000)
    flat = soak.rss_trend(x, np.full(1000, 100 * soak.MB), warmup_x=100)
    assert flat["max_growth_mb"] == 0.0 and abs(flat["slope_mb_per_1k"]) < 1e-9 and flat["samples"] == 900
    ramp = soak.rss_trend(x, (100 + 0.05 * x) * soak.MB, warmup_x=100)  # 50 MB per 1000 frames
    assert ramp["slope_mb_per_1k"] == pytest.approx(50.0) and ramp["max_growth_mb"] == pytest.approx(0.05 * 899)
    t = soak.time_stats(np.r_[np.full(990, 0.010), np.full(10, 0.100)])
    assert t["p50_ms"] == pytest.approx(10.0) and t["p99_ms"] == pytest.approx(10.0 + 0.01 * 90, rel=0.2)
    assert t["max_ms"] == pytest.approx(100.0)
    assert [soak.pingpong_index(k, 4) for k in range(8)] == [0, 1, 2, 3, 2, 1, 0, 1]
    gaps = [g for _, _, g in soak.soak_frames([np.zeros((4, 4, 3), np.uint8)] * 3, 30, gap_every=10, gap_len=2,
                                              gap_first=5)]
    assert [k for k, g in enumerate(gaps) if g] == [5, 6, 15, 16, 25, 26]
    assert soak.rss_bytes() >= soak.pss_bytes(os.getpid()) > 10 * soak.MB


def test_a_process_tree_counts_shared_pages_once():
    """Tritonserver and its Python-backend stubs map the same shared-memory pools: the sum of their RSS counts a
    shared page in each. A forked child shares the parent's 64 MB (copy-on-write, untouched): the tree's PSS grows by
    about nothing, the RSS sum by 64 MB."""
    import multiprocessing as mp

    block = np.ones(64 << 20, np.uint8)  # resident in this process
    before = soak.tree_pss_bytes(os.getpid())
    ctx = mp.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=(ready, done))
    child.start()
    try:
        assert ready.wait(30)
        rss_sum = sum(soak.rss_bytes(p) for p in soak.process_tree(os.getpid()))
        pss = soak.tree_pss_bytes(os.getpid())
        assert rss_sum - pss > 48 * soak.MB  # RSS counts the shared block twice
        assert abs(pss - before) < 16 * soak.MB, (pss - before) / soak.MB
        assert soak.pss_bytes(child.pid) < soak.rss_bytes(child.pid) - 24 * soak.MB
    finally:
        done.set()
        child.join(30)
    assert block[-1] == 1
    with pytest.raises(InputError, match="proportional set size"):  # unreadable: an error, never a flat 0
        soak.tree_pss_bytes(2 ** 22 + 7)  # above Linux's largest pid


def _hold(ready, done):
    ready.set()
    done.wait(30)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_every_mode_one_and_four_targets_flat_and_bounded(backend, lt_model, bag_video):
    """Both CPU backends (OpenVINO is what "auto" runs where it is installed). These loose CI goals on 150 frames do
    not catch OpenVINO recompiling on the frame path (checked: they pass with the old per-batch-size compiling);
    tests/runtime/test_openvino.py::test_any_batch_runs_as_chunks_without_recompiling does."""
    if backend == "openvino":
        pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")
    seen = []  # (runs so far, complete) each time a run finishes: what a stopped soak would have saved
    rep = soak.run_runtime_soak(lt_model, bag_video, modes=["all"], targets=[1, 4], frames=FRAMES, warmup=50,
                                gap_every=60, gap_len=6, backend=backend, threads=1, goals=GOALS, progress=False,
                                max_video_frames=40, on_run=lambda r: seen.append((len(r["runs"]), r["complete"])))
    assert rep["backend"] == backend
    planned = 2 * len(MODES)
    assert seen == [(k, k == planned) for k in range(1, planned + 1)] and rep["complete"]
    assert [(r["mode"], r["targets"]) for r in rep["runs"]] == [(m, n) for n in (1, 4) for m in MODES]
    for r in rep["runs"]:
        assert r["frames"] == FRAMES and r["rss"]["samples"] == FRAMES - 50
        assert r["ok"], (r["mode"], r["targets"], r["passed"], r["rss"], r["local"], r["global"])
        assert len(r["series"]["x"]) == FRAMES
        if "longterm" in r["mode"]:  # global frames measured (and local ones with one target: it switches)
            assert r["global"]["n"] > 10 and (r["targets"] > 1 or r["local"]["n"] > 10), (r["mode"], r["targets"])
        else:
            assert r["global_frames"] == 0
    assert rep["ok"]


def test_an_injected_leak_fails_the_soak(lt_model, bag_video):
    """250 kB kept per frame (44 MB over the measured frames) must fail the 30 MB goal; the same run without it
    passes, so the verdict comes from the leak."""
    import mmap

    kept = []

    def leak(k, res):
        # Fresh written pages: resident for sure (heap memory freed by earlier tests could absorb a malloc'd leak,
        # and a zeroed allocation may stay unmapped).
        m = mmap.mmap(-1, 250_000)
        m.write(b"x" * 250_000)
        kept.append(m)

    args = dict(modes=["short"], targets=[1], frames=200, warmup=20, gap_every=0, backend="onnxruntime", threads=1,
                goals=GOALS, progress=False, max_video_frames=40)
    leaky = soak.run_runtime_soak(lt_model, bag_video, on_frame=leak, **args)["runs"][0]
    assert not leaky["passed"]["rss"] and not leaky["ok"]
    assert leaky["rss"]["max_growth_mb"] > 40 and leaky["rss"]["slope_mb_per_1k"] > 200
    for m in kept:
        m.close()
    kept.clear()
    clean = soak.run_runtime_soak(lt_model, bag_video, **args)["runs"][0]
    assert clean["passed"]["rss"] and clean["rss"]["max_growth_mb"] < GOALS.rss_growth_mb


def test_refusals_before_the_first_run(tmp_path, bag_video):
    plain = make_tiny_model_dir(tmp_path / "plain", "siamrpn_alex_dwxcorr")
    with pytest.raises(ModelDirError, match="lost-instance-size"):
        soak.run_runtime_soak(plain, bag_video, modes=["all"], frames=100, progress=False)
    with pytest.raises(InputError, match="1 to 4 targets"):
        soak.run_runtime_soak(plain, bag_video, targets=[5], frames=100, progress=False)
    with pytest.raises(InputError, match="warm-up"):
        soak.run_runtime_soak(plain, bag_video, frames=100, warmup=100, progress=False)


def test_command_writes_json_and_png(lt_model, bag_video, tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), "--model", str(lt_model), "--video",
                        str(bag_video), "--mode", "short", "longterm", "--frames", "120", "--targets", "1",
                        "--warmup", "30", "--gap-every", "50", "--threads", "1", "--out", str(tmp_path / "soak"),
                        "--no-progress"], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "MPLBACKEND": "Agg"})
    assert r.returncode in (0, 1), r.stderr[-2000:]  # 1 = a goal missed on this loaded machine (the table says)
    (run,) = (tmp_path / "soak").iterdir()
    doc = json.loads((run / "soak.json").read_text())
    rows = doc["parts"]["runtime"]["runs"]
    assert [(x["mode"], x["targets"]) for x in rows] == [("short", 1), ("longterm", 1)]
    assert r.returncode == (0 if doc["parts"]["runtime"]["ok"] else 1)
    assert (run / "runtime.png").stat().st_size > 10_000
    assert "RSS growth" in r.stdout and "longterm" in r.stdout


def test_a_stopped_soak_keeps_the_runs_it_finished(lt_model, bag_video, tmp_path):
    """SIGTERM during the second run (4 targets, the longer one): soak.json already holds the first run, marked
    incomplete, and the command exits 143."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "soak.py"), "--model", str(lt_model),
                             "--video", str(bag_video), "--mode", "short", "--frames", "1500", "--targets", "1", "4",
                             "--warmup", "20", "--threads", "1", "--out", str(tmp_path / "soak"), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MPLBACKEND": "Agg"})
    deadline = time.monotonic() + 300
    found = []
    while not found and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        found = list((tmp_path / "soak").glob("*/soak.json"))
    assert found, "soak.json never appeared while the soak ran"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    doc = json.loads(found[0].read_text())
    rt = doc["parts"]["runtime"]
    assert [(r["mode"], r["targets"]) for r in rt["runs"]] == [("short", 1)]
    assert rt["complete"] is False and rt["runs_planned"] == 2 and "machine" in doc


@pytest.mark.parametrize("argv,expect", [
    (["--parts", "ray", "--ray-videos", "0"], "argument --ray-videos: must be 1 or more"),  # was a FileNotFoundError
    (["--gap-every", "-1"], "argument --gap-every: must be 0 or more"),  # was a 10,000-frame soak
    (["--parts", "triton", "--streams", "0"], "argument --streams: must be 1 or more"),  # blamed 'max_batch'
])
def test_soak_counts_are_refused_before_anything_runs(argv, expect, tmp_path, capsys):
    from siamtrt.cli.soak import main

    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path / "soak")])
    assert e.value.code == 2 and expect in capsys.readouterr().err
    assert not (tmp_path / "soak").exists()


@pytest.mark.parametrize("argv,expect", [
    (["--targets", "0"], "1 to 4 targets"),
    (["--mode", "foo"], "unknown tracking mode 'foo'"),
    (["--backend", "foo"], "unknown backend 'foo'"),
    (["--frames", "40", "--warmup", "40"], "warm-up 40 must leave at least 2 frames"),
    (["--bbox", "1000,1000,5,5"], "outside the"),
    (["-v", "--targets", "5"], "1 to 4 targets"),  # -v as every command takes it
])
def test_soak_refusals_leave_no_run_folder(argv, expect, tmp_path, bag_video, capsys):
    """Refused before the stand-in is exported and before any folder is made (each left an empty
    OUT/<date-time>/)."""
    from siamtrt.cli.soak import main

    assert main([*argv, "--video", str(bag_video), "--model", str(tmp_path / "none"),
                 "--out", str(tmp_path / "soak")]) == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err
    assert not (tmp_path / "soak").exists()


def test_soak_out_a_file_and_stopped_soak_leave_nothing(tmp_path, bag_video, capsys, monkeypatch):
    """--out naming a file is refused up front (was a NotADirectoryError traceback); a soak stopped before its first
    result leaves no empty run folder."""
    import siamtrt.cli.soak as cli

    (tmp_path / "afile").write_text("")
    assert cli.main(["--video", str(bag_video), "--out", str(tmp_path / "afile")]) == 2
    assert "afile exists and is not a directory" in capsys.readouterr().err

    def stopped(a, model, video, box, out):
        assert out.is_dir()
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_soak", stopped)
    assert cli.main(["--video", str(bag_video), "--model", str(tmp_path / "m"), "--out", str(tmp_path / "soak")]) \
        == 130
    assert not any((tmp_path / "soak").iterdir())
    capsys.readouterr()

    def stopped_after_a_run(a, model, video, box, out):
        (out / "soak.json").write_text("{}")  # what save() leaves after the first finished run
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_soak", stopped_after_a_run)
    assert cli.main(["--video", str(bag_video), "--model", str(tmp_path / "m"), "--out", str(tmp_path / "soak")]) \
        == 130
    err = capsys.readouterr().err  # it said "no output was left half-written", not where the finished runs are
    kept = next((tmp_path / "soak").iterdir()) / "soak.json"
    assert f"{kept} holds the runs finished before the stop" in err and "half-written" not in err


def test_soaks_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    """Two soaks started in one second shared OUT/<date-time>/: the later soak.json replaced the earlier's runs."""
    monkeypatch.setattr(soak.time, "strftime", lambda fmt, *a: "20260101-120000")
    first, second = soak.results_dir(tmp_path), soak.results_dir(tmp_path)
    assert first != second and first.is_dir() and second.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20260101-120000", "20260101-120000-2"]


def test_warmup_refusals_name_the_rule():
    """--warmup 0 was told it "must leave frames to measure" (the rule is at least 1); too large a warm-up names the
    --frames / --warmup that would work."""
    from siamtrt.benchmarks.soak import resolve_warmup
    from siamtrt.errors import InputError

    assert resolve_warmup(3, 1) == 1 and resolve_warmup(2000) == 100 and resolve_warmup(100) == 50
    with pytest.raises(InputError, match="at least 1 warm-up frame"):
        resolve_warmup(100, 0)
    with pytest.raises(InputError, match="at least 2 frames to measure") as e:
        resolve_warmup(10, 9)
    assert "--frames 11" in e.value.fix and "--warmup 8" in e.value.fix
