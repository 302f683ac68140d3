"""Output folders the user's files live in: ``triton --out`` / ``--overwrite`` and ``make-synthetic OUT`` never
replace a folder that is not what the command wrote (nor the model directory it reads), write nothing on a refusal,
and bad values (``--prefix``, ``--object-size``, ``--scale-amplitude``, ``export --fit-on``) exit 2 with one
message and no traceback, before any work.

Each case runs ``python -m siamtrt JOB ...`` in a scratch folder that is snapshotted before and compared after.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cli_helpers import siamtrt, snapshot


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
             "holds other files and no siamtrt Triton repository")
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
