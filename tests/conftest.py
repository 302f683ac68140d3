"""Shared fixtures: test data location and realistic random-weight exported model directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def find_data_dir() -> Path:
    """`$SIAMTRT_DATA`, else `<repo>/../shared/data` (where CI and the sessions lay it)."""
    env = os.environ.get("SIAMTRT_DATA")
    cand = [Path(env)] if env else []
    cand += [REPO.parent / "shared" / "data", REPO / "shared" / "data"]
    for c in cand:
        if (c / "bag.avi").is_file():
            return c
    pytest.skip("test data not found: set SIAMTRT_DATA to the folder holding bag.avi and bag/")


@pytest.fixture(autouse=True)
def own_user_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own user cache folder (``$SIAMTRT_CACHE``: OpenVINO's compiled models and bf16 records):
    a record one test writes — the default benchmark measures bf16 for the model it exports — must not change what
    a later test on the same files sees, and no test writes into the home folder."""
    monkeypatch.setenv("SIAMTRT_CACHE", str(tmp_path_factory.mktemp("user-cache")))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return find_data_dir()


@pytest.fixture(scope="session")
def bag_video(data_dir) -> Path:
    return data_dir / "bag.avi"


@pytest.fixture(scope="session")
def bag_sequence(data_dir) -> Path:
    return data_dir / "bag"


BAG_INIT_BOX = (316, 140, 112, 115)  # hand-picked box for bag.avi frame 0 (shared/data/README.md)


# ------------------------------------------------------------------------------------------------------------------
# Realistic random-weight models (BatchNorm statistics from real bag.avi crops, heads scaled to trained-like ranges),
# saved as checkpoints in the public layout and exported through the same path a user's model.pth takes.
# Factories cache per session, so each architecture is built and exported once per test run.
# ------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def calib_frames(bag_video):
    """Six bag.avi frames with the init box, used to recompute BatchNorm statistics of random models."""
    from siamtrt.export.random_init import video_frames

    return video_frames(bag_video, BAG_INIT_BOX, 6)


@pytest.fixture(scope="session")
def torch_model(calib_frames):
    """Factory: ``torch_model(name, seed=0)`` → realistic random-weight torch model (eval mode, cached)."""
    from siamtrt.export.random_init import realistic_random_model

    cache = {}

    def make(name: str, seed: int = 0):
        if (name, seed) not in cache:
            cache[(name, seed)] = realistic_random_model(name, seed, calib_frames)
        return cache[(name, seed)]

    return make


@pytest.fixture(scope="session")
def checkpoint(torch_model, tmp_path_factory):
    """Factory: ``checkpoint(name, seed=0)`` → path of a bare state_dict .pth in the public layout."""
    import torch

    root = tmp_path_factory.mktemp("checkpoints")
    cache = {}

    def make(name: str, seed: int = 0) -> Path:
        if (name, seed) not in cache:
            path = root / f"{name}-seed{seed}.pth"
            torch.save(torch_model(name, seed).state_dict(), path)
            cache[(name, seed)] = path
        return cache[(name, seed)]

    return make


@pytest.fixture(scope="session")
def model_dir(checkpoint, tmp_path_factory):
    """Factory: ``model_dir(name, batch="dynamic")`` → exported model directory (template.onnx, search.onnx)."""
    from siamtrt.export.onnx import export_model

    root = tmp_path_factory.mktemp("models")
    cache = {}

    def make(name: str, batch: str = "dynamic") -> Path:
        if (name, batch) not in cache:
            out = root / f"{name}-{batch}"
            export_model(name, out, checkpoint=checkpoint(name), batch=batch)
            cache[(name, batch)] = out
        return cache[(name, batch)]

    return make


@pytest.fixture(scope="session")
def fit_frames(bag_sequence):
    """24 bag frames spread over the sequence, each with its ground-truth box (what ``--fit-on`` reads)."""
    from siamtrt.export.random_init import sequence_frames

    return sequence_frames(bag_sequence, 24)


@pytest.fixture(scope="session")
def matching_dir(fit_frames, tmp_path_factory):
    """Factory: ``matching_dir(name)`` → exported directory with untrained template-matching heads
    (``--random-heads matching --fit-on ../shared/data/bag``): the stand-in that follows the target and whose loc
    head regresses, for trajectory-level checks."""
    from siamtrt.export.onnx import export_model

    root = tmp_path_factory.mktemp("matching")
    cache = {}

    def make(name: str) -> Path:
        if name not in cache:
            out = root / name
            export_model(name, out, random_heads="matching", frames=fit_frames)
            cache[name] = out
        return cache[name]

    return make
