"""Benchmark test fixtures: a short synthetic sequence, the exported alex model (shared session fixture) and its
checkpoint, and stand-in trackers that need no model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from siamtrt.runtime.result import TrackResult

ALEX = "siamrpn_alex_dwxcorr"


@pytest.fixture(scope="session")
def synthetic_seq(tmp_path_factory, bag_video):
    """A 16-frame synthetic OTB-layout sequence (with video + gt file) written once per session."""
    from siamtrt.benchmarks.synthetic import SyntheticSpec, make_synthetic_sequence

    out = tmp_path_factory.mktemp("synth") / "synthetic-test"
    return make_synthetic_sequence(out, bag_video, SyntheticSpec(frames=16, seed=3), video=True)


@pytest.fixture(scope="session")
def alex_dir(model_dir) -> Path:
    """Exported alex model directory (trained-style: exported from a checkpoint file)."""
    return model_dir(ALEX)


@pytest.fixture(scope="session")
def alex_ckpt(checkpoint) -> Path:
    return checkpoint(ALEX)


class OracleTracker:
    """Stand-in tracker (the runtime Tracker interface: track() returns a TrackResult): returns the ground truth (plus optional Gaussian noise) of the sequence it was started on.

    It recognises the sequence by its initial box, as a real tracker only ever sees frames and the init box.
    """

    def __init__(self, sequences, noise: float = 0.0, seed: int = 0):
        self.by_init = {tuple(np.round(s.gt[0], 3)): s.gt for s in sequences}
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.gt = None
        self.i = 0
        self.closed = False

    def init(self, frame, bbox):
        assert frame.ndim == 3 and frame.dtype == np.uint8
        self.gt = self.by_init[tuple(np.round(np.asarray(bbox, float), 3))]
        self.i = 0

    def track(self, frame):
        self.i += 1
        box = self.gt[self.i] + self.rng.normal(0, self.noise, 4) * np.r_[1, 1, 0.5, 0.5]
        return TrackResult(boxes=box[None], scores=np.array([1.0]))

    def close(self):
        self.closed = True


class StuckTracker:
    """Stand-in tracker that never moves from the initial box."""

    def init(self, frame, bbox):
        self.box = np.asarray(bbox, float)

    def track(self, frame):
        return TrackResult(boxes=self.box.copy()[None], scores=np.array([0.5]))


@pytest.fixture
def oracle_cls():
    return OracleTracker


@pytest.fixture
def stuck_cls():
    return StuckTracker
