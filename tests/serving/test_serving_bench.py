"""benchmarks/serving.py end to end on the tiny model (a short run: JSON + PNG written, both sides measured), the
CLIs' --help, and the runtime staying free of serving/batch imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from serving_helpers import require_server

REPO = Path(__file__).resolve().parents[2]


def test_serving_benchmark_cli(serving_model, tmp_path, bag_video):
    require_server()
    out_json, out_png = tmp_path / "s.json", tmp_path / "s.png"
    tmp = tmp_path / "tmp"  # the run's temporary folders
    tmp.mkdir()
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "serving.py"), "--model", str(serving_model),
                        "--frames", "6", "--streams", "1", "2", "--video", str(bag_video), "--json", str(out_json),
                        "--plot", str(out_png)],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "MPLBACKEND": "Agg", "TMPDIR": str(tmp)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert not list(tmp.glob("siamtrt-serving-bench-*")), "the benchmark's repository was left behind"
    rep = json.loads(out_json.read_text())
    assert [row["streams"] for row in rep["rows"]] == [1, 2]
    for row in rep["rows"]:
        assert row["in_process"]["frames"] == row["streams"] * 5 == row["server"]["frames"]
        assert row["max_box_diff_px"] == 0.0
        assert row["weights"] == "stand-in (random-realistic)"
    assert out_png.stat().st_size > 1000
    assert "stand-in (random-realistic)" in r.stdout


def test_help_and_runtime_isolation():
    for script in ("export/to_triton.py", "benchmarks/serving.py", "benchmarks/track_many.py", "benchmarks/soak.py"):
        r = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "usage" in r.stdout, (script, r.stderr)
    code = ("import sys, siamtrt.runtime, siamtrt.runtime.tracker, siamtrt.runtime.ort;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tritonclient', 'ray', 'pyarrow')"
            " or m.startswith(('siamtrt.serving', 'siamtrt.batch'))]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
