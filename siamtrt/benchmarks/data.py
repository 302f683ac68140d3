"""Where the project's test data lives, defined once: ``$SIAMTRT_DATA``, else ``<repo>/../shared/data`` (where CI and
the development sessions lay it), else ``<repo>/shared/data``. It holds ``bag.avi`` (196 frames) and ``bag/`` (the
same frames in the OTB layout, with ``groundtruth_rect.txt``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

DATA_ENV = "SIAMTRT_DATA"
DEFAULT_VIDEO_NAME = "bag.avi"
DEFAULT_SEQUENCE_NAME = "bag"
#: hand-picked box on bag.avi frame 0 (shared/data/README.md)
DEFAULT_BOX = (316.0, 140.0, 112.0, 115.0)


def data_dir_candidates() -> List[Path]:
    """The folders searched, in order."""
    repo = Path(__file__).resolve().parents[2]
    env = os.environ.get(DATA_ENV)
    return ([Path(env)] if env else []) + [repo.parent / "shared" / "data", repo / "shared" / "data"]


def default_data_dir() -> Path:
    """The first candidate folder holding ``bag.avi``; the last candidate when none does (callers report the missing
    file by its full path)."""
    cands = data_dir_candidates()
    for c in cands:
        if (c / DEFAULT_VIDEO_NAME).is_file():
            return c
    return cands[-1] if not os.environ.get(DATA_ENV) else cands[0]


def default_video() -> Path:
    """``bag.avi`` in :func:`default_data_dir`."""
    return default_data_dir() / DEFAULT_VIDEO_NAME


def default_sequence() -> Path:
    """``bag/`` (OTB layout) in :func:`default_data_dir`."""
    return default_data_dir() / DEFAULT_SEQUENCE_NAME


__all__ = ["DATA_ENV", "DEFAULT_BOX", "data_dir_candidates", "default_data_dir", "default_sequence", "default_video"]
