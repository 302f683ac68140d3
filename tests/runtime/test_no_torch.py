"""The runtime must work where torch is not installed: import it and track with torch blocked."""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BLOCK = textwrap.dedent("""
    import sys

    class BlockTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockTorch())
    sys.modules.pop("torch", None)
    sys.path.insert(0, {repo!r})
""")


def _run(code: str) -> subprocess.CompletedProcess:
    src = BLOCK.format(repo=str(REPO)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=300, cwd=REPO)


def test_blocker_really_blocks():
    r = _run("import torch\n")
    assert r.returncode != 0 and "torch is blocked" in r.stderr


def test_runtime_imports_and_tracks_without_torch(tiny_dir, bag_video):
    d = tiny_dir("siamrpn_alex_dwxcorr")
    r = _run(f"""
        import cv2, numpy as np
        import siamtrt.runtime
        from siamtrt.runtime import Tracker
        from siamtrt.runtime import backend, backends, boxes, geometry, postprocess, tracker, video, run, ort, crop, sequences
        import siamtrt.runtime.openvino
        from siamtrt import modeldir, outputs
        cap = cv2.VideoCapture({str(bag_video)!r})
        frames = [cap.read()[1] for _ in range(4)]
        with Tracker.from_model_dir({str(d)!r}) as t:
            t.init(frames[0], (316, 140, 112, 115))
            for f in frames[1:]:
                box = t.track(f).bbox
        assert np.isfinite(box).all()
        assert "torch" not in sys.modules, "torch got imported"
        print("OK", t.backend.name)
    """)
    assert r.returncode == 0, r.stderr
    import importlib.util

    cpu_default = "openvino" if importlib.util.find_spec("openvino") else "onnxruntime"  # what auto picks on a CPU
    assert f"OK {cpu_default}" in r.stdout


def test_cli_help_and_run_without_torch(tiny_dir, bag_video, tmp_path):
    script = REPO / "runtime" / "track.py"
    r = _run(f"""
        import runpy
        sys.argv = [{str(script)!r}, "--help"]
        try:
            runpy.run_path({str(script)!r}, run_name="__main__")
        except SystemExit as e:
            assert e.code == 0
    """)
    assert r.returncode == 0, r.stderr
    assert "--bbox" in r.stdout
    out = tmp_path / "b.txt"
    r = _run(f"""
        import runpy
        sys.argv = [{str(script)!r}, "--model", {str(tiny_dir("siamrpn_alex_dwxcorr"))!r}, "--video",
                    {str(bag_video)!r}, "--bbox", "316,140,112,115", "--max-frames", "5", "--out", {str(out)!r},
                    "--no-progress"]
        try:
            runpy.run_path({str(script)!r}, run_name="__main__")
        except SystemExit as e:
            assert e.code == 0, e.code
        assert "torch" not in sys.modules
    """)
    assert r.returncode == 0, r.stderr
    assert len(out.read_text().splitlines()) == 5
