"""Fixtures of the command tests: tiny model directories (tests/runtime/rt_tiny_models.py, no torch)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from rt_tiny_models import make_tiny_model_dir  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Factory: tiny_model("siamrpn_alex_dwxcorr", **kw) → a tiny model directory (cached per session)."""
    cache = {}

    def make(config: str = "siamrpn_alex_dwxcorr", **kw) -> Path:
        key = (config, tuple(sorted((k, repr(v)) for k, v in kw.items())))
        if key not in cache:
            cache[key] = make_tiny_model_dir(tmp_path_factory.mktemp("tiny_" + config), config, **kw)
        return cache[key]

    return make
