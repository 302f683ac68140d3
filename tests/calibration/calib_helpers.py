"""Constants and helpers shared by the calibration tests (a uniquely named module: ``conftest`` is ambiguous when
several test folders each have one)."""

from __future__ import annotations

from pathlib import Path

BAG_INIT_BOX = (316, 140, 112, 115)
ALEX = "siamrpn_alex_dwxcorr"
MOBILEV2 = "siamrpn_mobilev2_l234_dwxcorr"
FRAMES = 48     # frames of bag.avi used by the fixtures
SAMPLES = 24    # search crops per calibration set
TEMPLATES = 3   # template crops per calibration set


def run_branches(model: Path, cset):
    """(kernels, cls, loc) of a directory on a calibration set (each variant with its own template branch), via the
    runtime's ONNX Runtime backend — the report's own helper (calibration.speed.run_branches)."""
    from siamtrt.calibration import speed
    from siamtrt.modeldir import ModelDir

    return speed.run_branches(ModelDir.open(model, require_conv=True), cset, threads=2)
