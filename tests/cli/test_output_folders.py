"""Output folders the user's files live in: ``triton --out`` / ``--overwrite`` and ``make-synthetic OUT`` never
replace a folder that is not what the command wrote (nor the model directory it reads), write nothing on a refusal,
and bad values (``--prefix``, ``--object-size``, ``--scale-amplitude``, ``export --fit-on``) exit 2 with one
message and no traceback, before any work.

Each case runs ``python -m siamtrt JOB ...`` in a scratch folder that is snapshotted before and compared after.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import cli_env, siamtrt, snapshot


def _refused(r: subprocess.CompletedProcess, expect: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-1500:])
    assert expect in r.stderr, r.stderr[-1500:]
    assert "Traceback" not in r.stderr + r.stdout, r.stderr[-3000:]
    assert "evidence:" in r.stderr or "fix:" in r.stderr, r.stderr


@pytest.fixture
def ws(tmp_path, tiny_model) -> Path:
    """A scratch folder with a copy of a tiny model directory in ws/M."""
    d = tmp_path / "ws"
    d.mkdir()
    shutil.copytree(tiny_model(), d / "M")
    return d


# ------------------------------------------------------------------------------------------------ triton --out
@pytest.mark.parametrize("out, relation", [("M", "is the --model directory"), (".", "contains the --model"),
                                           ("M/repo", "lies inside the --model")])
def test_triton_out_overlapping_the_model_is_refused(ws, out, relation):
    """`triton --model M --out M --overwrite` replaced M with the repository (its ONNX files deleted, exit 0)."""
    before = snapshot(ws)
    r = siamtrt("triton", "--model", "M", "--out", out, "--overwrite", cwd=ws)
    _refused(r, relation)
    assert snapshot(ws) == before
    assert (ws / "M" / "template.onnx").is_file() and not (ws / "M" / "repo").exists()
    assert [p.name for p in ws.iterdir()] == ["M"]  # no staging folder left either


def test_triton_overwrite_replaces_only_a_repository_siamtrt_wrote(ws):
    """`--overwrite` on a folder of the user's files wiped them (exit 0); it replaces a written repository only."""
    user = ws / "U"
    (user / "sub").mkdir(parents=True)
    (user / "notes.txt").write_text("precious\n")
    (user / "sub" / "data.csv").write_text("1,2\n")
    before = snapshot(ws)
    _refused(siamtrt("triton", "--model", "M", "--out", "U", "--overwrite", cwd=ws),
             "holds other files and no Triton repository siamtrt wrote")
    assert snapshot(ws) == before

    r = siamtrt("triton", "--model", "M", "--out", "R", "--max-batch", "4", cwd=ws)
    assert r.returncode == 0, r.stderr
    r = siamtrt("triton", "--model", "M", "--out", "R", "--overwrite", "--prefix", "v2", cwd=ws)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (ws / "R").iterdir()) == ["v2_search", "v2_template", "v2_tracker"]

    (ws / "R" / "keep.txt").write_text("mine\n")  # a user's file inside a written repository is not replaced
    before = snapshot(ws)
    _refused(siamtrt("triton", "--model", "M", "--out", "R", "--overwrite", cwd=ws),
             "holds other files besides the Triton repository siamtrt wrote")
    assert snapshot(ws) == before


@pytest.mark.parametrize("prefix", ["bad name/x", "", "a/b", "a b"])
def test_triton_prefix_must_make_triton_model_names(ws, prefix):
    """`--prefix "bad name/x"` wrote nested folders Triton cannot load; `--prefix ""` wrote `_template`."""
    before = snapshot(ws)
    _refused(siamtrt("triton", "--model", "M", "--out", "R", "--prefix", prefix, cwd=ws),
             "cannot start a Triton model name")
    assert snapshot(ws) == before and not (ws / "R").exists()


# --------------------------------------------------------------------------------------------- make-synthetic
def _syn(ws: Path, *args) -> subprocess.CompletedProcess:
    return siamtrt("make-synthetic", *args, cwd=ws, timeout=120)


def test_make_synthetic_refuses_an_existing_sequence_unless_overwrite(ws, bag_video):
    """A second run with fewer frames rewrote frames 1-3 and the ground truth in place, then failed: 5 jpgs and
    3 gt lines. Now it is refused untouched, and --overwrite replaces the sequence whole."""
    bg = str(bag_video)
    r = _syn(ws, "syn/a2", "--frames", "5", "--background", bg)
    assert r.returncode == 0, r.stderr
    before = snapshot(ws)
    _refused(_syn(ws, "syn/a2", "--frames", "3", "--background", bg, "--seed", "4"), "exists and is not empty")
    assert snapshot(ws) == before
    r = _syn(ws, "syn/a2", "--frames", "3", "--background", bg, "--seed", "4", "--overwrite")
    assert r.returncode == 0, r.stderr
    seq = ws / "syn" / "a2"
    assert sorted(p.name for p in (seq / "img").iterdir()) == [f"{i:08d}.jpg" for i in (1, 2, 3)]
    assert len((seq / "groundtruth_rect.txt").read_text().splitlines()) == 3
    assert sorted(p.name for p in (ws / "syn").iterdir()) == ["a2"]  # no staging folder left


def test_make_synthetic_never_writes_into_a_users_folder(ws, bag_video):
    """`make-synthetic EXISTING_USER_FOLDER` mixed img/ and ground-truth files into it (exit 0); --overwrite
    does not replace it either, nor a written sequence the user added a file to."""
    bg = str(bag_video)
    user = ws / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("precious\n")
    before = snapshot(ws)
    _refused(_syn(ws, "mine", "--frames", "3", "--background", bg), "exists and is not empty")
    _refused(_syn(ws, "mine", "--frames", "3", "--background", bg, "--overwrite"),
             "holds other files and no synthetic sequence")
    assert snapshot(ws) == before
    assert _syn(ws, "seq", "--frames", "3", "--background", bg, "--video").returncode == 0
    (ws / "seq" / "notes.txt").write_text("mine\n")
    before = snapshot(ws)
    _refused(_syn(ws, "seq", "--frames", "3", "--background", bg, "--overwrite"),
             "holds other files and no synthetic sequence")
    assert snapshot(ws) == before


@pytest.mark.parametrize("args, expect", [
    (["syn/h", "--object-size", "0,0"], "too small for a textured object"),
    (["syn/h", "--object-size", "72"], "--object-size must be w,h integers"),
    (["syn/h", "--scale-amplitude", "1.5"], "reach 0 or below"),
    (["syn/h", "--scale-amplitude", "-1"], "reach 0 or below"),
    (["syn/h", "--scale-amplitude", "nan"], "is not a number"),
    (["syn/h", "--frames", "1"], "at least 2 frames"),
    (["b.csv"], "exists and is not a folder"),
    (["syn/i", "--object-size", "5000,5000"], "does not fit in 480x360 frames"),
])
def test_make_synthetic_bad_values_are_refused_up_front(ws, bag_video, args, expect):
    """--object-size 0,0 (cv2.error traceback), an existing file as OUT (NotADirectoryError traceback), and
    --scale-amplitude 1.5 (accepted: the scale went negative) exit 2 with what / evidence / fix."""
    (ws / "b.csv").write_text("1,2\n")
    before = snapshot(ws)
    start = time.monotonic()
    _refused(_syn(ws, *args, "--background", str(bag_video)), expect)
    assert time.monotonic() - start < 60
    assert snapshot(ws) == before and not (ws / "syn").exists()


def test_make_synthetic_large_object_is_refused_at_once(ws, bag_video):
    """--object-size 5000,5000 blurred a 5000x5000 texture for > 10 min (deaf to SIGTERM) before the fit check."""
    proc = subprocess.Popen([sys.executable, "-m", "siamtrt", "make-synthetic", "syn/i", "--frames", "5",
                             "--object-size", "5000,5000", "--background", str(bag_video)], cwd=ws, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        pytest.fail("make-synthetic --object-size 5000,5000 still ran after 30 s")
    assert proc.returncode == 2 and "does not fit" in err and "Traceback" not in err, err


# ---------------------------------------------------------------------------------------------- export --fit-on
@pytest.mark.parametrize("fit_on, expect", [("nonexist", "--fit-on nonexist does not exist"),
                                            ("b.csv", "is a file, not a sequence folder"),
                                            ("empty", "no image frames found")])
def test_export_fit_on_is_checked_before_any_work(ws, fit_on, expect):
    """`export --fit-on nonexist` failed with a FileNotFoundError traceback (exit 1) after building the model."""
    (ws / "b.csv").write_text("1,2\n")
    (ws / "empty").mkdir()
    before = snapshot(ws)
    r = siamtrt("export", "--config", "siamrpn_alex_dwxcorr", "--fit-on", fit_on, "--out", "ex/a", cwd=ws,
                env=cli_env({"SIAMTRT_CACHE": str(ws / "cache")}), timeout=120)
    _refused(r, expect)
    assert snapshot(ws) == before and not (ws / "ex").exists()
