"""The Triton soak, short, against a real tritonserver: streams start, end and abandon sequences over and over;
abandoned sequences are released after the idle timeout (logged by the tracker model, and refused when continued),
every sequence's boxes equal a fresh in-process tracker's (no stream sees another's state), the server's memory
stays within a loose bound."""

from __future__ import annotations

import numpy as np

from serving_helpers import require_server
from siamtrt.benchmarks.data import DEFAULT_BOX


def test_triton_soak_short(serving_model, serving_frames, tmp_path):
    require_server()
    from siamtrt.serving.soak import format_triton_table, triton_soak

    boxes = [DEFAULT_BOX] * len(serving_frames)
    rep = triton_soak(serving_model, serving_frames, boxes, streams=4, frames_per_stream=90, seq_len=(8, 30),
                      abandon=0.35, idle_seconds=2.0, seed=3, memory_goal_mb=60.0, box_tolerance=0.0,
                      progress=False, work_dir=tmp_path)
    table = format_triton_table(rep)
    assert rep["frames"] == 4 * 90 and rep["sequences"] >= 4 * 3, table
    assert rep["abandoned"] >= 2 and rep["ended"] >= 2, table  # seed 3: both kinds happen
    assert rep["released_idle"] == rep["abandoned"], table  # every abandoned sequence released, none early
    assert rep["continuing_refused"] == min(5, rep["abandoned"]), table
    assert rep["max_box_diff_px"] == 0.0, table  # identical to in-process trackers: no shared state
    assert rep["checks"]["memory"] and rep["ok"], table
    assert rep["memory_measure"] == "PSS" and rep["memory"]["samples"] >= 3, table
    assert np.isfinite(rep["memory"]["slope_mb_per_1k"]), table
