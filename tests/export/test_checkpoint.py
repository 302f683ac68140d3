"""Checkpoint loading: strict, safe (weights_only), and explicit about mismatches."""

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siamtrt.errors import CheckpointError, InputError
from siamtrt.export.checkpoint import load_checkpoint
from siamtrt.export.models import build_model
from siamtrt.export.onnx import export_model

REPO = Path(__file__).parents[2]


def test_wrapped_and_prefixed_checkpoint_loads(torch_model, tmp_path):
    src = torch_model("siamrpn_alex_dwxcorr")
    sd = {"module." + k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "snap.pth"
    torch.save({"epoch": 3, "state_dict": sd}, path)
    model = build_model("siamrpn_alex_dwxcorr")
    sha = load_checkpoint(model, path)
    assert len(sha) == 64
    for k, v in src.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(model.state_dict()[k], v)


def test_wrong_architecture_lists_keys_and_suggests_config(checkpoint):
    model = build_model("siamrpn_mobilev2_l234_dwxcorr")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(model, checkpoint("siamrpn_alex_dwxcorr"))
    msg = str(e.value)
    assert "missing keys" in msg and "unexpected keys" in msg
    assert "backbone.layer0.0.weight" in msg  # a missing one
    assert "backbone.features.0.weight" in msg  # an unexpected one
    assert "likely 'siamrpn_alex_dwxcorr'" in msg


def test_checkpoint_matching_no_architecture_names_none(tmp_path):
    """One stray key overlaps no config: the message must not guess one ("likely r50" was printed before)."""
    path = tmp_path / "stray.pth"
    torch.save({"foo.weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(build_model("siamrpn_alex_dwxcorr"), path)
    msg = str(e.value)
    assert "likely" not in msg and "matches none of the built-in configs" in msg


def test_shape_mismatch_is_reported(torch_model, tmp_path):
    sd = dict(torch_model("SiamRPNvot").state_dict())
    path = tmp_path / "vot.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_checkpoint(build_model("SiamRPNBIG"), path)


def test_truncated_checkpoint(checkpoint, tmp_path):
    data = Path(checkpoint("siamrpn_alex_dwxcorr")).read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(build_model("siamrpn_alex_dwxcorr"), path)


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_with_arbitrary_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="other than tensors"):
        load_checkpoint(build_model("siamrpn_alex_dwxcorr"), path)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": Evil()}))
    with pytest.raises(CheckpointError):
        load_checkpoint(build_model("siamrpn_alex_dwxcorr"), plain)


def test_missing_file():
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(build_model("siamrpn_alex_dwxcorr"), "/nonexistent/model.pth")


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot write output directory .* is a file, not a folder"):
        export_model("siamrpn_alex_dwxcorr", blocker / "out")


def test_cli_errors_are_clean(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "export" / "to_onnx.py"), "--config", "siamrpn_alex_dwxcor",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "unknown model config" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    r = subprocess.run([sys.executable, str(REPO / "export" / "to_onnx.py"), "--config", "siamrpn_alex_dwxcorr",
                        "--checkpoint", str(bad), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and "cannot read checkpoint" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("trained, fits", [("siamrpn_r50_l234_dwxcorr_lt", None),
                                           ("siamrpn_r50_l234_dwxcorr_otb", "siamrpn_r50_l234_dwxcorr_otb")])
def test_mismatch_names_only_a_config_the_checkpoint_fits(tmp_path, trained, fits):
    """The yaml of one pysot model with another's model.pth: the _lt checkpoint shares 81% of its keys with the r50
    configs, which the fix named as 'likely' (the very config that had just failed); name one only if it loads."""
    from siamtrt.config import get_config

    data = Path(__file__).parents[1] / "data" / "pysot_configs"
    path = tmp_path / "model.pth"
    torch.save(build_model(get_config(data / trained / "config.yaml")).state_dict(), path)
    cfg = get_config(data / "siamrpn_r50_l234_dwxcorr" / "config.yaml")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(build_model(cfg), path, cfg)
    assert (f"likely '{fits}'" in e.value.fix) if fits else ("likely" not in e.value.fix
                                                             and "config.yaml" in e.value.fix)
