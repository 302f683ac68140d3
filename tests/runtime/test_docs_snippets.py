"""The Python snippets of the guides run as written, their paths alone adapted, so the guides cannot drift from the
code (tests/cli/test_docs_commands.py checks the guides' command lines):

* README.md and docs/runtime.md: every ``python`` block in a fresh interpreter, ``models/…`` → a tiny model
  directory, ``../shared/data/`` → the test data;
* docs/calibration.md: the Python API block in a fresh interpreter, in a folder where ``models/mv2`` is the realistic
  alex export (tests/conftest.py ``model_dir``; the tiny hand-made model has no quantizable template convolution)
  and ``../shared/data/bag.avi`` a 40-frame clip of bag.avi (the whole video takes ~6 min here; 40 frames leave 39
  search crops: 32 for the fidelity search and 7 held out, so the ``held_out`` record the ``>>>`` session reads
  exists). Then that ``>>>`` session on the INT8 directory the block wrote: every statement runs and every printed
  value equals the doc's, floats excepted (the doc's come from stand-in weights: only their type is checked);
* docs/opencv.md: the cv2.TrackerDaSiamRPN block on files written by the OpenCV export (seeded random SiamRPNvot),
  with frames 0 and 1 of bag.avi as ``frame`` / ``next_frame``;
* docs/tensorrt.md: see :func:`test_tensorrt_block_names_exist_and_fail_clearly_without_tensorrt`.

:func:`test_every_python_block_is_checked` keeps it so: a new block in docs/ fails until a test here runs it.
"""

import ast
import doctest
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import cv2
import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "docs" / "runtime.md"]
#: docs/*.md besides runtime.md whose python blocks the tests below run: name → number of blocks
CHECKED = {"calibration.md": 2, "opencv.md": 1, "tensorrt.md": 1}
ALEX = "siamrpn_alex_dwxcorr"
CLIP_FRAMES = 40


def python_blocks(doc: Path) -> List[str]:
    """The ``python`` blocks of a Markdown file, in order (the one parser of this module)."""
    return re.findall(r"^```python\n(.*?)^```", doc.read_text(), re.S | re.M)


def block(doc: str, marker: str) -> str:
    """The one python block of docs/<doc> that contains ``marker``."""
    found = [b for b in python_blocks(REPO / "docs" / doc) if marker in b]
    assert len(found) == 1, f"docs/{doc}: {len(found)} python blocks contain {marker!r}, expected 1"
    return found[0]


def snippets():
    """(doc name, block number, code) for each python block of DOCS."""
    return [(doc.name, i, code) for doc in DOCS for i, code in enumerate(python_blocks(doc))]


def run_python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter that imports this checkout's siamtrt."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})


def test_the_guide_has_snippets():
    """The parser finds the runtime guide's Python API block (a change of format must not make the test vacuous)."""
    assert any(doc == "runtime.md" and "Tracker.from_model_dir" in code for doc, _, code in snippets())


def test_every_python_block_is_checked():
    counts = {d.name: len(python_blocks(d)) for d in sorted((REPO / "docs").glob("*.md")) if d not in DOCS}
    assert {k: v for k, v in counts.items() if v} == CHECKED, "a docs/*.md python block no test here runs"


@pytest.mark.parametrize("doc,n,code", [pytest.param(*s, id=f"{s[0]}-{s[1]}") for s in snippets()])
def test_snippet_runs_as_written(doc, n, code, tiny_dir, data_dir, tmp_path):
    model = tiny_dir("siamrpn_alex_dwxcorr")
    code = re.sub(r"""(["'])models/[^"']+\1""", repr(str(model)), code)
    code = code.replace("../shared/data/", f"{data_dir}/")
    r = run_python(code, tmp_path)
    assert r.returncode == 0, f"{doc} python block {n} failed:\n{code}\n{r.stderr[-3000:]}"
    assert r.stdout.strip(), f"{doc} python block {n} printed nothing"


# ------------------------------------------------------------------------------------------------ calibration.md
@pytest.fixture(scope="module")
def calibration_run(model_dir, bag_video, tmp_path_factory):
    """docs/calibration.md's Python API block, run in a folder holding ``models/mv2`` (a copy of the alex export)
    with ``../shared/data/bag.avi`` → a 40-frame clip; returns (folder, the finished process)."""
    root = tmp_path_factory.mktemp("calibration_doc")
    shutil.copytree(model_dir(ALEX), root / "models" / "mv2")
    clip = root / "data" / "bag.avi"
    clip.parent.mkdir()
    cap = cv2.VideoCapture(str(bag_video))
    ok, frame = cap.read()
    out = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25, frame.shape[1::-1])
    for _ in range(CLIP_FRAMES):
        out.write(frame)
        ok, frame = cap.read()
        assert ok, f"bag.avi has fewer than {CLIP_FRAMES + 1} frames"
    out.release()
    cap.release()
    code = block("calibration.md", "quantize_int8").replace("../shared/data/", f"{clip.parent}/")
    # the module fixture runs before the autouse per-test cache folder: check_bf16's record gets its own here
    return root, code, run_python(code, root, SIAMTRT_CACHE=str(root / "cache"))


@pytest.mark.slow
def test_calibration_api_block_runs_as_written(calibration_run):
    root, code, r = calibration_run
    assert r.returncode == 0, f"calibration.md API block failed:\n{code}\n{r.stderr[-3000:]}"
    assert "accuracy retention vs FP32" in r.stdout, r.stdout[-2000:]  # the last call's report printed
    assert all((root / "models" / d / "search.onnx").is_file() for d in ("mv2_int8", "mv2_int8_ov", "mv2_fp16"))


def same_form(got: Any, want: Any) -> bool:
    """``got`` equals the doc's ``want``, except that a float of the doc only has to be a float."""
    if isinstance(want, float):
        return isinstance(got, float)
    if isinstance(want, (list, tuple)):
        return type(got) is type(want) and len(got) == len(want) and all(map(same_form, got, want))
    return got == want


@pytest.mark.slow
def test_calibration_metadata_session_holds(calibration_run, monkeypatch):
    """The ``>>>`` session on the INT8 (onnxruntime) directory the API block wrote: the key list of
    ``quantization`` is exactly the doc's, ``('int8', 'onnxruntime', 'max')`` as shown, the fidelity line's shape."""
    root, _, r = calibration_run
    assert r.returncode == 0, "the API block failed (see test_calibration_api_block_runs_as_written)"
    session = block("calibration.md", ">>> ")
    examples = doctest.DocTestParser().get_examples(session)
    assert sum(bool(e.want) for e in examples) == 3, "the session's printed results changed: update this test"
    monkeypatch.chdir(root)
    ns: dict = {}
    for e in examples:
        if not e.want:
            exec(e.source, ns)
            continue
        got, want = eval(e.source, ns), ast.literal_eval(e.want)
        assert same_form(got, want), f"calibration.md: {e.source.strip()}\n doc: {want}\n now: {got}"


# ----------------------------------------------------------------------------------------------------- opencv.md
def test_opencv_block_runs_on_the_exported_files(tmp_path, bag_video, monkeypatch):
    from siamtrt.export.opencv import export_opencv

    export_opencv(tmp_path / "models" / "vot-opencv", config="SiamRPNvot")
    cap = cv2.VideoCapture(str(bag_video))
    ns = {"frame": cap.read()[1], "next_frame": cap.read()[1]}
    cap.release()
    monkeypatch.chdir(tmp_path)
    exec(block("opencv.md", "TrackerDaSiamRPN"), ns)
    assert isinstance(ns["ok"], bool) and all(isinstance(ns[k], int) for k in "xywh")
    assert ns["tracker"].getTrackingScore() > 0  # the tracker really ran the files


# --------------------------------------------------------------------------------------------------- tensorrt.md
def test_tensorrt_block_names_exist_and_fail_clearly_without_tensorrt(tiny_dir, tmp_path, monkeypatch):
    """Verified: the block's import, ``Tracker.from_model_dir`` and its keywords exist (``backend="tensorrt"`` and
    ``cuda_graph=True`` are accepted: a misspelled option is refused by the same call, checked below), and using the
    tracker here fails with siamtrt's own error naming what is missing (TensorRT, or a CUDA device), not a
    NameError/TypeError. The directory is a tiny ONNX model plus empty placeholder engine files: the call only
    checks that they exist (loading is lazy), so the option check is reached.

    Not verified: building or running engines, CUDA-graph capture (tests/runtime/test_trt.py does that on a GPU
    machine with TensorRT, where this test is skipped)."""
    from siamtrt.errors import BackendError, SiamtrtError
    from siamtrt.runtime.trt import TrtBackend

    if TrtBackend.unavailable_reason() is None:
        pytest.skip("TensorRT and a CUDA device are present: the placeholder engines would fail on load "
                    "(tests/runtime/test_trt.py runs the backend for real)")
    d = tmp_path / "models" / "mv2"
    shutil.copytree(tiny_dir(ALEX), d)
    for name in TrtBackend.file_names:
        (d / name).write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    code = block("tensorrt.md", "Tracker.from_model_dir")
    ns: dict = {}
    exec(code, ns)
    assert ns["trk"].backend.name == "tensorrt" and ns["trk"].backend.options == {"cuda_graph": True}
    with pytest.raises(SiamtrtError, match="TensorRT is not installed|CUDA device"):
        with ns["trk"]:
            pass
    with pytest.raises(BackendError, match="does not accept the options"):  # the option check is live
        exec(code.replace("cuda_graph=", "cuda_graphs="), {})
