"""Issue 10 item 6: no CLI accepts abbreviated options (``track.py --mode short`` was read as ``--model short``)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for d in ("export", "runtime", "calibration", "benchmarks") for p in (REPO / d).glob("*.py")
                 if p.name != "__init__.py")


def test_every_cli_is_covered():
    names = {p.relative_to(REPO).as_posix() for p in SCRIPTS}
    assert {"runtime/track.py", "export/to_onnx.py", "export/build_engine.py", "benchmarks/fps.py",
            "benchmarks/modes.py"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_prefix_of_an_option_is_refused(script):
    """``--hel`` would print the help (exit 0) with prefix matching; without it argparse refuses it (exit 2)."""
    r = subprocess.run([sys.executable, str(script), "--hel"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 2, (r.stdout[-300:], r.stderr[-300:])
    assert "usage:" in r.stderr


def test_track_mode_is_not_read_as_model(tiny_dir, bag_video, tmp_path):
    script = REPO / "runtime" / "track.py"
    r = subprocess.run([sys.executable, str(script), "--mode", "longterm", "--video", str(bag_video), "--bbox",
                        "316,140,112,115", "--max-frames", "3", "--no-progress"],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 2 and "--model" in r.stderr and "required" in r.stderr  # not "model directory longterm"
    r = subprocess.run([sys.executable, str(script), "--model", str(tiny_dir("siamrpn_alex_dwxcorr")), "--mode",
                        "longterm", "--video", str(bag_video), "--bbox", "316,140,112,115", "--max-frames", "3",
                        "--no-progress"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 2 and "--lost-instance-size 831" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, str(script), "--model", str(tiny_dir("siamrpn_alex_dwxcorr")), "--mode",
                        "distractor", "--video", str(bag_video), "--bbox", "316,140,112,115", "--max-frames", "3",
                        "--no-progress", "--out", str(tmp_path / "b.txt")], capture_output=True, text=True,
                       timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "mode distractor" in r.stdout and len((tmp_path / "b.txt").read_text().splitlines()) == 3
