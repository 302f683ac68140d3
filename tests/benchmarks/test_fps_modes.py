"""``benchmarks/fps.py --mode``'s measurement (siamtrt.benchmarks.fps_modes) on a tiny long-term model: every mode
times the same frames, long-term frames are split into local / global, the forced-lost tracker searches globally
on every frame, and the ratios are computed from the medians it reports."""

import sys
from pathlib import Path

import pytest

from siamtrt.benchmarks.fps_modes import TARGETS, mode_table, run_mode_fps
from siamtrt.config import CONFIGS, with_longterm
from siamtrt.errors import InputError, SiamtrtError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from rt_tiny_models import make_tiny_model_dir  # noqa: E402

BOX = (316, 140, 112, 115)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_modes")
    cfg = CONFIGS["siamrpn_alex_dwxcorr"]
    return {"short": make_tiny_model_dir(root / "short", "siamrpn_alex_dwxcorr"),
            "longterm": make_tiny_model_dir(root / "lt", "siamrpn_alex_dwxcorr", cfg=with_longterm(cfg, 831))}


@pytest.mark.parametrize("backend", ["onnxruntime", "auto"])
def test_modes_side_by_side(tiny_dirs, bag_video, backend):
    """Every backend gets the threads option through its declared option names (auto resolves to one)."""
    rep = run_mode_fps(tiny_dirs["longterm"], ["longterm", "distractor"], bag_video, BOX, frames=6, warmup=1,
                       threads=1, backend=backend, progress=False)
    assert rep["backend"] != "auto"
    rows = {r["mode"]: r for r in rep["rows"]}
    assert list(rows) == ["short", "longterm", "distractor", "longterm (global)"]
    assert all(r["frames"] == 6 for r in rows.values())
    for r in rows.values():
        assert r["ratio_to_short"] == pytest.approx(r["median_ms"] / rows["short"]["median_ms"])
        assert r["p90_ms"] >= r["median_ms"]
    lt = rows["longterm"]
    assert lt["local_frames"] + lt["global_frames"] == 6
    glob = rows["longterm (global)"]
    assert glob["global_frames"] == 6 and glob["local_frames"] == 0  # kept lost: every frame is the 831 search
    # the 831 crop has 8.4x the pixels of the 287 one: a tracker that really searched globally is slower
    assert glob["median_ms"] > rows["short"]["median_ms"]
    assert lt["target_ratio"] == TARGETS["longterm"] and rows["distractor"]["target_ratio"] == TARGETS["distractor"]
    assert "distractors_per_frame" in rows["distractor"] and "target_ratio" not in glob
    table = mode_table(rep)
    assert "longterm (global)" in table and "<= 1.05" in table and "<= 1.15" in table


def test_modes_errors(tiny_dirs, bag_video):
    with pytest.raises(SiamtrtError, match="longterm|lost"):  # a short-only export has no 831 search size
        run_mode_fps(tiny_dirs["short"], ["longterm"], bag_video, BOX, frames=2, warmup=0, progress=False)
    with pytest.raises(InputError, match="warm-up"):
        run_mode_fps(tiny_dirs["longterm"], ["distractor"], bag_video, BOX, frames=2, warmup=500, progress=False)
    with pytest.raises(SiamtrtError):
        run_mode_fps(tiny_dirs["longterm"], ["sideways"], bag_video, BOX, frames=2, warmup=0, progress=False)


def test_threads_recorded_as_used(tiny_dirs, bag_video):
    """threads=None ran on the physical cores but the report said null ("default threads" in the table)."""
    from siamtrt.runtime.cpu import physical_cores

    rep = run_mode_fps(tiny_dirs["short"], ["short"], bag_video, BOX, frames=2, warmup=0, backend="onnxruntime",
                       progress=False)
    assert rep["threads"] == physical_cores() and f"{physical_cores()} threads" in mode_table(rep)


def test_an_unavailable_backend_is_refused_before_the_trackers_start(tiny_dirs, bag_video, tmp_path, monkeypatch):
    """--mode --backend tensorrt on a directory with engine files, where TensorRT cannot run them (not installed, no
    GPU, or no sidecars): refused by the check bench uses, before a tracker loads or the progress bar prints (it was
    refused at the first frame)."""
    import shutil

    import siamtrt.runtime as rt
    from siamtrt.errors import BackendError

    d = shutil.copytree(tiny_dirs["short"], tmp_path / "engines")
    for name in ("template.engine", "search.engine"):
        (d / name).write_bytes(b"not an engine")
    monkeypatch.setattr(rt.Tracker, "from_model_dir", lambda *a, **k: pytest.fail("a tracker loaded"))
    with pytest.raises(BackendError, match="backend tensorrt cannot run") as e:
        run_mode_fps(d, ["short"], bag_video, BOX, frames=2, warmup=0, backend="tensorrt", progress=False)
    assert e.value.evidence and e.value.fix


def test_an_interrupted_mode_run_says_nothing_was_saved(tiny_dirs, bag_video, tmp_path, monkeypatch, capsys):
    """Ctrl-C during ``bench --mode``: exit 130 and a message saying no --json was written and why (it said only
    "no output was left half-written")."""
    import siamtrt.runtime as rt
    from siamtrt.cli.main import run_job

    def stopped(self, frame):
        raise KeyboardInterrupt

    monkeypatch.setattr(rt.Tracker, "track", stopped)
    rc = run_job("bench", ["--model", str(tiny_dirs["short"]), "--backend", "onnxruntime", "--video", str(bag_video),
                           "--mode", "short", "--frames", "2", "--quiet", "--json", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert rc == 130 and "nothing saved" in err and "Traceback" not in err and not (tmp_path / "m.json").exists()
