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
