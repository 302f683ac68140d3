"""Runtime test fixtures: tiny hand-made model directories (no torch) and bag.avi frames."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rt_tiny_models import make_tiny_model_dir  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """Factory: tiny_dir("siamrpn_alex_dwxcorr", levels=1, batch="dynamic", ...) → model directory (cached)."""
    cache = {}

    def make(config: str = "siamrpn_alex_dwxcorr", **kw) -> Path:
        key = (config, tuple(sorted(kw.items())))
        if key not in cache:
            d = tmp_path_factory.mktemp("tiny_" + config.replace("/", "_"))
            cache[key] = make_tiny_model_dir(d, config, **kw)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def bag_frames(bag_video):
    """The first 40 frames of bag.avi (BGR uint8)."""
    cap = cv2.VideoCapture(str(bag_video))
    frames = []
    while len(frames) < 40:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    assert len(frames) == 40, "bag.avi should have at least 40 frames"
    return frames


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
