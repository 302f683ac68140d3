"""The model directory's cross-check of its two branches (siamtrt.modeldir): a branch copied in from another
directory — another precision, or another quantize run of the same export — is refused with what / evidence / fix
(exit 2 from every command), while each directory siamtrt writes still opens."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from siamtrt.errors import ModelDirError
from siamtrt.metadata import read_onnx_metadata
from siamtrt.modeldir import ModelDir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """(fp32 export, its fp16 derivation, a second fp16 derivation with another range guard)."""
    pytest.importorskip("onnxconverter_common")
    sys.path.insert(0, str(REPO / "tests" / "runtime"))
    from rt_tiny_models import make_tiny_model_dir

    from siamtrt.calibration.fp16 import convert_fp16

    root = tmp_path_factory.mktemp("modeldir")
    fp32 = make_tiny_model_dir(root / "fp32")
    convert_fp16(fp32, root / "fp16")
    convert_fp16(fp32, root / "fp16b", data_max=1000.0)
    return fp32, root / "fp16", root / "fp16b"


def test_directories_siamtrt_writes_still_open(tiny_dirs):
    fp32, fp16, fp16b = tiny_dirs
    assert ModelDir.open(fp32).precision == "fp32"
    for d in (fp16, fp16b):
        md = ModelDir.open(d)
        assert md.precision == md.template_meta["precision"] == "fp16"
        assert md.quantization["source_dir"] == str(fp32)


def test_branches_of_different_precisions_are_refused(tiny_dirs, tmp_path):
    fp32, fp16, _ = tiny_dirs
    mixed = tmp_path / "mixed"
    shutil.copytree(fp32, mixed)
    shutil.copy(fp16 / "search.onnx", mixed / "search.onnx")
    with pytest.raises(ModelDirError) as e:
        ModelDir.open(mixed)
    msg = str(e.value)
    assert "template.onnx is fp32 but search.onnx is fp16" in msg
    assert "precision: template 'fp32' vs search 'fp16'" in msg and "none (an export)" in msg  # evidence
    assert "copy template.onnx and search.onnx from the same directory" in msg  # fix
    # every command refuses it: exit 2, the message, no traceback
    r = subprocess.run([sys.executable, "-m", "siamtrt", "inspect", str(mixed)], capture_output=True, text=True,
                       timeout=300, cwd=REPO)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "template.onnx is fp32 but search.onnx is fp16" in r.stderr and "Traceback" not in r.stderr


def test_branches_of_two_quantize_runs_are_refused(tiny_dirs, tmp_path):
    _, fp16, fp16b = tiny_dirs
    mixed = tmp_path / "mixed16"
    shutil.copytree(fp16, mixed)
    shutil.copy(fp16b / "search.onnx", mixed / "search.onnx")
    assert read_onnx_metadata(mixed / "search.onnx")["precision"] == "fp16"
    with pytest.raises(ModelDirError, match="come from different fp16 derivations") as e:
        ModelDir.open(mixed)
    assert "differs in data_max" in str(e.value) and "copy template.onnx and search.onnx" in str(e.value)


@pytest.mark.parametrize("value", ["abc", 255.5, None])
def test_malformed_sizes_are_refused_not_a_traceback(tiny_dirs, tmp_path, value):
    """A non-integer size in both branches' metadata is a ModelDirError (exit 2), like a malformed 'anchor'."""
    import onnx

    from siamtrt.metadata import set_onnx_metadata

    bad = tmp_path / "badsize"
    shutil.copytree(tiny_dirs[0], bad)
    for name in ("template.onnx", "search.onnx"):
        meta = read_onnx_metadata(bad / name)
        model = onnx.load(str(bad / name))
        set_onnx_metadata(model, {**meta, "instance_size": value})
        onnx.save(model, str(bad / name))
    with pytest.raises(ModelDirError, match="metadata sizes are malformed") as e:
        ModelDir.open(bad)
    assert "instance_size" in str(e.value) and "re-export" in str(e.value)
    if value == "abc":
        r = subprocess.run([sys.executable, "-m", "siamtrt", "inspect", str(bad)], capture_output=True, text=True,
                           timeout=300, cwd=REPO)
        assert r.returncode == 2 and "metadata sizes are malformed" in r.stderr, r.stdout + r.stderr
        assert "Traceback" not in r.stderr
