"""``benchmarks/fps.py --mode``'s measurement (siamtrt.benchmarks.fps_modes) on a tiny long-term model: every mode
times the same frames, long-term frames are split into local / global, the forced-lost tracker searches globally
on every frame, and the ratios are computed from the medians it reports."""

import numpy as np
import pytest

from siamtrt.benchmarks.fps_modes import TARGETS, mode_table, run_mode_fps
from siamtrt.errors import InputError, SiamtrtError
from test_modes import _lt_dir

BOX = (316, 140, 112, 115)


def test_modes_side_by_side(tiny_dir, bag_video):
    d = _lt_dir(tiny_dir)
    rep = run_mode_fps(d, ["longterm", "distractor"], bag_video, BOX, frames=6, warmup=1, threads=1, progress=False)
    rows = {r["mode"]: r for r in rep["rows"]}
    assert list(rows) == ["short", "longterm", "distractor", "longterm (global)"]
    assert all(r["frames"] == 6 for r in rows.values())
    assert rows["short"]["ratio_to_short"] == 1.0
    for r in rows.values():
        assert r["ratio_to_short"] == pytest.approx(r["median_ms"] / rows["short"]["median_ms"])
        assert r["p90_ms"] >= r["median_ms"] > 0
    lt = rows["longterm"]
    assert lt["local_frames"] + lt["global_frames"] == 6
    glob = rows["longterm (global)"]
    assert glob["global_frames"] == 6 and glob["local_frames"] == 0  # kept lost: every frame is the 831 search
    assert lt["target_ratio"] == TARGETS["longterm"] and rows["distractor"]["target_ratio"] == TARGETS["distractor"]
    assert "distractors_per_frame" in rows["distractor"] and "target_ratio" not in glob
    table = mode_table(rep)
    assert "longterm (global)" in table and "<= 1.05" in table and "<= 1.15" in table


def test_modes_errors(tiny_dir, bag_video):
    with pytest.raises(SiamtrtError, match="longterm|lost"):  # a short-only export has no 831 search size
        run_mode_fps(tiny_dir("siamrpn_alex_dwxcorr"), ["longterm"], bag_video, BOX, frames=2, warmup=0,
                     progress=False)
    with pytest.raises(InputError, match="warm-up"):
        run_mode_fps(_lt_dir(tiny_dir), ["distractor"], bag_video, BOX, frames=2, warmup=500, progress=False)
    with pytest.raises(SiamtrtError):
        run_mode_fps(_lt_dir(tiny_dir), ["sideways"], bag_video, BOX, frames=2, warmup=0, progress=False)
