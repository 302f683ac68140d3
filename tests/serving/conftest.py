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


def require_server():
    """The tritonserver to test against, or a skip naming why there is none."""
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] not installed (the serving/test extras)")
    pytest.importorskip("tritonclient.http", reason="tritonclient[http] not installed (the serving/test extras)")
    from siamtrt.serving.repository import ServingError
    from siamtrt.serving.server import find_server

    try:
        return find_server()
    except ServingError as e:
        pytest.skip(f"no tritonserver here ({e.what}); CI installs one: pip install --no-deps nvidia-pytriton==0.7.0")
