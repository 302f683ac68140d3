"""Batch fixtures: ONE local Ray instance for the whole session (Ray startup is slow on 2 cores), capped at 2 CPUs
and a small object store; a tiny model; bag.avi plus synthetic sequences."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from rt_tiny_models import make_tiny_model_dir  # noqa: E402
from siamtrt.benchmarks.data import DEFAULT_BOX  # noqa: E402

BAG_BOX = DEFAULT_BOX


@pytest.fixture(scope="session")
def ray_local():
    ray = pytest.importorskip("ray", reason="ray not installed (the batch/test extras)")
    pytest.importorskip("pyarrow", reason="pyarrow not installed (the batch/test extras)")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, object_store_memory=80 * 1024 ** 2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def batch_model(tmp_path_factory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("batch_model"), "siamrpn_alex_dwxcorr")


@pytest.fixture(scope="session")
def other_model(tmp_path_factory) -> Path:
    """The same tiny architecture with other random weights (a different model for the resume check)."""
    return make_tiny_model_dir(tmp_path_factory.mktemp("batch_model_other"), "siamrpn_alex_dwxcorr", seed=1)


@pytest.fixture(scope="session")
def video_set(tmp_path_factory, bag_video):
    """A folder with bag.avi, two synthetic OTB sequences (30 frames), an undecodable video, and a bbox file."""
    import shutil

    from siamtrt.benchmarks.synthetic import SyntheticSpec, make_synthetic_sequence

    root = tmp_path_factory.mktemp("videos")
    shutil.copyfile(bag_video, root / "bag.avi")
    for seed in (1, 2):
        make_synthetic_sequence(root / f"synth{seed}", bag_video, SyntheticSpec(frames=30, seed=seed))
    (root / "broken.avi").write_bytes(b"\x00not a video\x00" * 64)
    boxes = root.parent / f"{root.name}_boxes.txt"
    boxes.write_text("bag.avi,{},{},{},{}\nbroken,10,10,20,20\n".format(*BAG_BOX))
    return root, boxes
