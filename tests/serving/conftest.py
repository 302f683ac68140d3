"""Serving fixtures: a tiny model directory (tests/runtime/rt_tiny_models.py), bag.avi frames, a repository and a
real tritonserver serving it (started once per module on 127.0.0.1, free ports, always stopped)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from rt_tiny_models import make_tiny_model_dir  # noqa: E402

N_FRAMES = 30  # bag.avi frames tracked through the server (CI time)


@pytest.fixture(scope="session")
def serving_model(tmp_path_factory) -> Path:
    """Tiny alex-layout model directory (dynamic batch)."""
    return make_tiny_model_dir(tmp_path_factory.mktemp("serving_model"), "siamrpn_alex_dwxcorr")


@pytest.fixture(scope="session")
def serving_frames(bag_video):
    from siamtrt.runtime.video import open_frames

    frames = list(open_frames(bag_video, max_frames=N_FRAMES))
    assert len(frames) == N_FRAMES
    return frames
