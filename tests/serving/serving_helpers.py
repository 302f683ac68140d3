"""Helpers for the serving tests (a module with a unique name: several test folders have a conftest)."""

from __future__ import annotations

import pytest


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
