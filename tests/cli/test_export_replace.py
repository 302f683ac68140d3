"""``siamtrt export --out DIR`` over an existing model directory: the same weights (checkpoint sha256, or random
seed and heads) replace it silently; other weights — a forgotten --checkpoint over a trained export — are refused
before any work (exit 2, both weights named, the directory untouched) unless --force."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from siamtrt.calibration.derive import check_replaced_weights
from siamtrt.errors import InputError
from siamtrt.metadata import export_weights, file_sha256

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "runtime"))
from rt_tiny_models import make_tiny_model_dir  # noqa: E402

SHA = "0123456789abcdef" * 4


def _trained_dir(path: Path, sha: str = SHA) -> Path:
    """A tiny model directory whose metadata says: exported from the checkpoint with sha256 ``sha``."""
    meta = {"checkpoint_sha256": sha, "weights": "checkpoint"}
    return make_tiny_model_dir(path, meta_overrides={"template": meta, "search": meta})


def test_same_weights_replace_silently_other_weights_need_force(tmp_path):
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(b"trained weights")
    sha = file_sha256(ckpt)
    assert export_weights(ckpt) == {"weights": "checkpoint", "checkpoint_sha256": sha}
    assert export_weights(None, 3, "matching") == {"weights": "random-matching",
                                                   "checkpoint_sha256": "random-seed-3-matching"}
    trained = _trained_dir(tmp_path / "trained", sha)
    random0 = make_tiny_model_dir(tmp_path / "random0")  # random-seed-0, realistic heads
    # harmless: the same checkpoint, the same seed and heads, a new or unreadable directory
    check_replaced_weights(trained, export_weights(ckpt))
    check_replaced_weights(random0, export_weights(None, 0))
    check_replaced_weights(tmp_path / "new", export_weights(None, 0))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "search.onnx").write_bytes(b"")
    check_replaced_weights(broken, export_weights(None, 0))
    # other weights: checkpoint -> random, another checkpoint, another seed or heads
    with pytest.raises(InputError) as e:
        check_replaced_weights(trained, export_weights(None, 0))
    msg = str(e.value)
    assert f"checkpoint (sha256 {sha[:16]}" in msg and "random-realistic (seed 0" in msg  # both weights
    assert "--force" in msg and f"the file with sha256 {sha[:16]}" in msg
    other = tmp_path / "other.pth"
    other.write_bytes(b"other weights")
    with pytest.raises(InputError, match="exported from other weights"):
        check_replaced_weights(trained, export_weights(other))
    for seed, heads in ((1, "realistic"), (0, "matching")):
        with pytest.raises(InputError, match="no --checkpoint, --seed 0"):
            check_replaced_weights(random0, export_weights(None, seed, heads))
    check_replaced_weights(trained, export_weights(None, 0), force=True)


def test_export_without_checkpoint_over_a_trained_export_is_refused(tmp_path):
    """The user-reported case: exit 2 before torch is even imported, no file changed, no staging folder left."""
    trained = _trained_dir(tmp_path / "alex")
    before = {p.name: p.read_bytes() for p in trained.iterdir()}
    r = subprocess.run([sys.executable, "-m", "siamtrt", "export", "--config", "siamrpn_alex_dwxcorr", "--out",
                        str(trained)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "holds a model exported from other weights" in r.stderr and "Traceback" not in r.stderr
    assert f"checkpoint (sha256 {SHA[:16]}" in r.stderr and "random-realistic (seed 0" in r.stderr
    assert "--force" in r.stderr
    assert {p.name: p.read_bytes() for p in trained.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alex"]


def test_library_export_refuses_too(tmp_path):
    pytest.importorskip("torch", reason="the exporter needs torch")
    from siamtrt.export.onnx import export_model

    trained = _trained_dir(tmp_path / "alex")
    with pytest.raises(InputError, match="exported from other weights"):
        export_model("siamrpn_alex_dwxcorr", trained, seed=0)


def test_random_weights_of_another_architecture_need_force(tmp_path):
    """Seeded random weights of two architectures share the label random-seed-0: exporting alex into a folder that
    holds a mobilev2 stand-in of the same seed replaced it silently; the export's arch is compared too."""
    other = {"arch": "siamrpn_mobilev2_l234_dwxcorr"}
    stand_in = make_tiny_model_dir(tmp_path / "models", meta_overrides={"template": other, "search": other})
    before = {p.name: p.read_bytes() for p in stand_in.iterdir()}
    r = subprocess.run([sys.executable, "-m", "siamtrt", "export", "--config", "siamrpn_alex_dwxcorr", "--out",
                        str(stand_in)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "exported from other weights" in r.stderr and "siamrpn_mobilev2_l234_dwxcorr, random-realistic" in r.stderr
    assert "--config siamrpn_mobilev2_l234_dwxcorr, no --checkpoint, --seed 0" in r.stderr
    assert {p.name: p.read_bytes() for p in stand_in.iterdir()} == before
    check_replaced_weights(stand_in, export_weights(None, 0, arch="siamrpn_mobilev2_l234_dwxcorr"))  # same: kept
