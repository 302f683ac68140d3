"""The Ray soak, short: many short videos, one worker SIGKILLed twice (the actor, then its replacement), nothing lost:
the summary holds every video, the killed ones were tried again and finished, every file has every frame and equals
the single-process runtime, a rerun has nothing left to do."""

from __future__ import annotations

from siamtrt.batch.soak import format_ray_table, make_short_videos, ray_soak
from siamtrt.batch import read_results
from siamtrt.runtime.boxes import read_box_file


def test_worker_killed_twice_loses_nothing(ray_local, batch_model, bag_sequence, tmp_path):
    videos = make_short_videos(bag_sequence, tmp_path / "videos", count=8, frames=30,
                               boxes=read_box_file(bag_sequence / "groundtruth_rect.txt"))
    assert len(list(videos.iterdir())) == 9  # 8 videos + boxes.txt
    rep = ray_soak(batch_model, videos, tmp_path / "out", kills=2, workers=2, progress=False)
    table = format_ray_table(rep)
    assert len(rep["kills"]) == 2 and rep["worker_deaths"] == 2, table
    assert rep["kills"][0]["pid"] != rep["kills"][1]["pid"] and all(k["rows_before_kill"] >= 3 for k in rep["kills"])
    assert rep["ok_videos"] == 8 and rep["summary_complete"] and rep["frames_complete"], table
    assert sorted(rep["retried"]) == sorted(k["video"] for k in rep["kills"]), table
    assert rep["equal_to_runtime"] is True and rep["rerun_tracked"] == [] and rep["ok"], table
    assert all(len(read_results(tmp_path / "out" / f"short{i:03d}.csv").boxes) == 30 for i in range(8))
