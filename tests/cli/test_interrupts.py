"""Every job stops like ``siamtrt track`` does when the user stops it: SIGINT → 130, SIGTERM → 143, one line saying
so, no traceback, and no output file left that looks complete (jobs run through siamtrt.cli.main.run_job)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from cli_helpers import cli_env, snapshot


def _interrupt(argv, cwd, sig, after_s):
    p = subprocess.Popen([sys.executable, "-m", "siamtrt", *map(str, argv)], cwd=cwd, env=cli_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after_s)
    assert p.poll() is None, p.communicate()
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    return p.returncode, out, err


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_collect_interrupted(sig, code, tiny_model, bag_video, tmp_path):
    import json

    import numpy as np

    from siamtrt.calibration.data import FORMAT

    # an older calibration file (collect refuses to replace a file that is not one)
    np.savez(tmp_path / "calib.npz", meta=np.array(json.dumps({"format": FORMAT, "note": "older"})))
    before = snapshot(tmp_path)
    sources = ["--video", bag_video, "--bbox", "316,140,112,115"] * 4  # long enough to be stopped midway
    rc, out, err = _interrupt(["collect", "--model", tiny_model(), *sources, "--out", tmp_path / "calib.npz",
                               "--threads", "1"], tmp_path, sig, 4.0)
    assert rc == code, err[-2000:]
    assert "Traceback" not in err and "interrupted" in err
    assert snapshot(tmp_path) == before  # the old file untouched, nothing half-written beside it


def test_bench_interrupted(tiny_model, tmp_path):
    rc, out, err = _interrupt(["bench", "--model", tiny_model(), "--backend", "onnxruntime", "--no-reference",
                               "--frames", "all", "--targets", "8", "--no-save", "--threads", "1"], tmp_path,
                              signal.SIGTERM, 5.0)
    assert rc == 143, err[-2000:]
    assert "Traceback" not in err and "interrupted before the report: nothing saved" in err and "(SIGTERM)" in err
    assert list(tmp_path.iterdir()) == []
