"""The runtime must work where torch is not installed: import it and track with torch blocked. And it deploys with
numpy, OpenCV and one inference engine alone (README "Set up", docs/runtime.md): with onnx, tqdm and the other
engines blocked too, it tracks, inspects, and names the fix for a backend that is not installed."""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BLOCK = textwrap.dedent("""
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {names!r}:
                raise ImportError(name.split(".")[0] + " is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    for _name in {names!r}:
        sys.modules.pop(_name, None)
    sys.path.insert(0, {repo!r})
""")
#: everything a minimal ONNX Runtime deployment lacks: what export, calibration and the other engines need
NOT_IN_A_MINIMAL_INSTALL = ("torch", "onnx", "tqdm", "openvino", "tensorrt", "tensorrt_rtx", "cuda", "onnxslim",
                            "onnxscript", "onnx_graphsurgeon", "onnxconverter_common", "polygraphy", "matplotlib",
                            "yaml", "tritonclient", "ray", "pyarrow", "got10k")


def _run(code: str, names=("torch",)) -> subprocess.CompletedProcess:
    src = BLOCK.format(repo=str(REPO), names=tuple(names)) + textwrap.dedent(code)
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
        from siamtrt.runtime import backend, backends, boxes, geometry, postprocess, tracker, video, run, ort
        from siamtrt.runtime import crop, sequences
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


def test_minimal_install_tracks_inspects_and_names_the_fix(tiny_dir, bag_video, tmp_path):
    """numpy + OpenCV + onnxruntime only: the metadata is read without onnx, the progress works on a terminal
    without tqdm, inspect reports what it can, and a backend that is not installed is an exit-2 message that points
    at --backend auto. (Before: ModuleNotFoundError 'onnx' in every command, 'tqdm' on a terminal.)"""
    d, out = tiny_dir("siamrpn_alex_dwxcorr"), tmp_path / "b.txt"
    r = _run(f"""
        import contextlib, io
        import cv2, numpy as np
        from siamtrt.cli.main import main
        from siamtrt.progress import LogProgress, progress_bar
        from siamtrt.runtime import Tracker

        class Terminal(io.StringIO):
            def isatty(self):
                return True
        assert isinstance(progress_bar(3, "t", stream=Terminal()), LogProgress)
        cap = cv2.VideoCapture({str(bag_video)!r})
        frames = [cap.read()[1] for _ in range(3)]
        with Tracker.from_model_dir({str(d)!r}, backend="auto") as t:
            t.init(frames[0], (316, 140, 112, 115))
            assert np.isfinite(t.track(frames[1]).bbox).all()
        print("API", t.backend.name)
        assert main(["track", "--model", {str(d)!r}, "--video", {str(bag_video)!r}, "--bbox", "316,140,112,115",
                     "--max-frames", "3", "--out", {str(out)!r}]) == 0
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            assert main(["inspect", {str(d)!r}]) == 0
            assert main(["inspect", {str(d / "search.onnx")!r}]) == 0
        print(text.getvalue())
        assert main(["track", "--model", {str(d)!r}, "--video", {str(bag_video)!r}, "--bbox", "316,140,112,115",
                     "--max-frames", "3", "--backend", "openvino"]) == 2
        print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in {NOT_IN_A_MINIMAL_INSTALL!r}))
    """, names=NOT_IN_A_MINIMAL_INSTALL)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "API onnxruntime" in r.stdout and "LOADED []" in r.stdout
    assert len(out.read_text().splitlines()) == 3
    assert r.stdout.count("no onnx package here") == 3  # both branches of the directory, and the single file
    bf16 = [line for line in r.stdout.splitlines() if "OpenVINO bf16:" in line]  # a record may be in the cache
    assert bf16 and "openvino is not installed" in bf16[0] and "check-bf16" not in bf16[0], bf16
    assert "openvino is not installed" in r.stderr and "--backend auto" in r.stderr
    # refused when the backend loads, before any output or frame (it said "stopped after 0 frames" after the
    # weights warning)
    assert "stopped after" not in r.stderr
    assert "Traceback" not in r.stderr
