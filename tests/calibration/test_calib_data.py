"""Calibration data: crops are the tracker's crops, sampling is deterministic and capped, files are validated."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from calib_helpers import ALEX, BAG_INIT_BOX, FRAMES, SAMPLES, TEMPLATES
from siamtrt.runtime.boxes import read_box_file
from siamtrt.calibration.collect import SourceSpec, collect, even_indices, sources_from_args, split_budget
from siamtrt.calibration.data import CalibrationSet, load_calibration
from siamtrt.errors import CalibrationError, InputError


class _Spy:
    """Backend wrapper keeping the crops a tracker feeds it (an independent recorder for the test)."""

    def __init__(self, backend):
        self._b = backend
        self.z = []
        self.x = []

    def run_template(self, z):
        self.z.append(np.array(z))
        return self._b.run_template(z)

    def run_search(self, x, k):
        self.x.append(np.array(x))
        return self._b.run_search(x, k)

    def __getattr__(self, n):
        return getattr(self._b, n)


def test_collect_layout(calib_set):
    path, c = calib_set(ALEX)
    assert path.is_file() and path.suffix == ".npz"
    assert c.template.dtype == np.uint8 and c.template.shape == (TEMPLATES, 3, 127, 127)
    assert c.search.dtype == np.uint8 and c.search.shape == (SAMPLES, 3, 287, 287)
    assert c.pair.shape == (SAMPLES,) and c.pair.min() >= 0 and c.pair.max() < TEMPLATES
    assert set(c.kernels) == {"cls_kernel", "loc_kernel"}
    assert c.kernels["cls_kernel"].shape == (TEMPLATES, 256, 4, 4)
    src = c.meta["sources"][0]
    assert src["boxes_from"] == "tracker" and src["frames"] == FRAMES
    assert src["search_frames"] == sorted(src["search_frames"]) and src["search_frames"][0] == 1
    assert src["template_frames"][0] == 0
    # each search crop is paired with the latest template taken before its frame
    for f, p in zip(src["search_frames"], c.pair):
        assert src["template_frames"][p] < f
        assert p == len(src["template_frames"]) - 1 or src["template_frames"][p + 1] >= f
    # and the file round-trips
    again = load_calibration(path)
    np.testing.assert_array_equal(again.search, c.search)
    np.testing.assert_array_equal(again.kernels["loc_kernel"], c.kernels["loc_kernel"])


def test_crops_are_the_trackers_crops(calib_set, model_dir, bag_video):
    """Frame-0 template and frame-1 search crop equal what an independent tracker run feeds its backend."""
    from siamtrt.runtime import Tracker
    from siamtrt.runtime.video import open_frames

    _, c = calib_set(ALEX)
    tracker = Tracker.from_model_dir(model_dir(ALEX), backend="onnxruntime", providers="cpu")
    spy = _Spy(tracker.backend)
    tracker.backend = spy
    frames = iter(open_frames(bag_video, max_frames=2))
    tracker.init(next(frames), BAG_INIT_BOX)
    tracker.track(next(frames))
    np.testing.assert_array_equal(c.template[0].astype(np.float32), spy.z[0][0])
    np.testing.assert_array_equal(c.search[0].astype(np.float32), spy.x[0][0])
    # the stored kernels are the FP32 template outputs of those crops
    out = spy._b.run_template(spy.z[0])
    np.testing.assert_allclose(c.kernels["cls_kernel"][0], out["cls_kernel"][0], rtol=1e-5, atol=1e-5)


def test_feeds_pair_kernels(calib_set):
    _, c = calib_set(ALEX)
    feeds = list(c.search_feeds(c.kernels, batch=5))
    assert sum(f["search"].shape[0] for f in feeds) == c.num_search
    f = feeds[1]
    assert f["search"].dtype == np.float32 and set(f) == {"search", "cls_kernel", "loc_kernel"}
    np.testing.assert_array_equal(f["cls_kernel"], c.kernels["cls_kernel"][c.pair[5:10]])
    assert [t["template"].shape[0] for t in c.template_feeds(2)] == [2, 1]


def test_collect_is_deterministic_and_capped(model_dir, bag_video, tmp_path):
    runs = [collect(model_dir(ALEX), [SourceSpec(bag_video, bbox=BAG_INIT_BOX)], tmp_path / f"c{i}.npz",
                    max_samples=5, templates_per_source=2, max_frames=20, progress=False).calib for i in range(2)]
    assert runs[0].num_search == 5 and runs[0].num_templates == 2
    np.testing.assert_array_equal(runs[0].search, runs[1].search)
    # np.linspace(0, 18, 5) = 0, 4.5, 9, 13.5, 18, rounded half to even
    assert runs[0].meta["sources"][0]["search_frames"] == [1, 5, 10, 15, 19]


def test_collect_from_otb_ground_truth(model_dir, bag_sequence, tmp_path, monkeypatch):
    """An OTB folder without --bbox uses its groundtruth_rect.txt, read once (checked before the model loads, the
    same boxes then planned); crops follow those boxes."""
    collect_mod = importlib.import_module("siamtrt.calibration.collect")  # the package's `collect` is the function
    reads = []
    monkeypatch.setattr(collect_mod, "read_box_file", lambda p, *a, **k: reads.append(p) or read_box_file(p, *a, **k))
    s = collect(model_dir(ALEX), [SourceSpec(bag_sequence)], tmp_path / "gt.npz", max_samples=4,
                templates_per_source=2, max_frames=12, progress=False)
    src = s.calib.meta["sources"][0]
    assert src["boxes_from"].endswith("groundtruth_rect.txt")
    gt = read_box_file(bag_sequence / "groundtruth_rect.txt")
    np.testing.assert_allclose(src["init_bbox"], gt[0])
    assert s.calib.num_search == 4
    assert reads == [bag_sequence / "groundtruth_rect.txt"]


def test_sampling_helpers():
    assert even_indices(range(1, 11), 3) == [1, 5, 10]  # linspace(0, 9, 3) = 0, 4.5, 9; half to even
    assert even_indices([4, 5], 10) == [4, 5]
    assert even_indices([1, 2, 3], 0) == []
    assert split_budget([100, 50], 30) == [20, 10]
    assert split_budget([3, 50], 30) == [3, 27] or sum(split_budget([3, 50], 30)) == 30
    assert split_budget([5, 5], 100) == [5, 5]


def test_read_boxes_polygons_and_gaps(tmp_path):
    f = tmp_path / "gt.txt"
    f.write_text("1,2,3,4\n10 20 30 20 30 40 10 40\nNaN,NaN,NaN,NaN\n5\t6\t0\t8\n")
    b = read_box_file(f)
    np.testing.assert_allclose(b[0], [1, 2, 3, 4])
    np.testing.assert_allclose(b[1], [10, 20, 20, 20])
    assert np.isnan(b[2]).all() and np.isnan(b[3]).all()  # missing, zero width
    f.write_text("1,2,3\n")
    with pytest.raises(InputError, match="line 1"):
        read_box_file(f)


def test_sources_from_args_pairs_boxes():
    s = sources_from_args(["a.avi", "b.avi"], ["1,2,3,4", "5,6,7,8"])
    assert [x.bbox for x in s] == [[1, 2, 3, 4], [5, 6, 7, 8]]
    with pytest.raises(InputError, match="1 --bbox for 2 --video"):
        sources_from_args(["a.avi", "b.avi"], ["1,2,3,4"])
    with pytest.raises(InputError, match="both --bbox and --boxes"):
        sources_from_args(["a.avi"], ["1,2,3,4"], ["gt.txt"])


def test_source_without_box_is_refused(model_dir, bag_video, tmp_path):
    with pytest.raises(InputError, match="has no box"):
        collect(model_dir(ALEX), [SourceSpec(bag_video)], tmp_path / "x.npz", progress=False)


def test_box_outside_frame_is_refused(model_dir, bag_video, tmp_path):
    with pytest.raises(InputError, match="outside"):
        collect(model_dir(ALEX), [SourceSpec(bag_video, bbox=(900, 900, 10, 10))], tmp_path / "x.npz",
                max_frames=3, progress=False)


# --------------------------------------------------------------------------------------------- file validation
def _write_set(path: Path, **over) -> Path:
    arrays = {"template": np.zeros((2, 3, 127, 127), np.uint8), "search": np.zeros((3, 3, 287, 287), np.uint8),
              "pair": np.zeros(3, np.int32), "meta": np.array(json.dumps({"format": "siamtrt-calib/1"}))}
    arrays.update(over)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def test_empty_file_is_a_clear_error(tmp_path):
    p = tmp_path / "empty.npz"
    p.write_bytes(b"")
    with pytest.raises(CalibrationError, match="empty") as e:
        load_calibration(p)
    assert "siamtrt collect" in str(e.value)


def test_corrupt_file_is_a_clear_error(tmp_path):
    p = tmp_path / "corrupt.npz"
    p.write_bytes(b"PK\x03\x04 this is not a zip archive at all" * 10)
    with pytest.raises(CalibrationError, match="corrupt"):
        load_calibration(p)


def test_truncated_file_is_a_clear_error(calib_set, tmp_path):
    path, _ = calib_set(ALEX)
    p = tmp_path / "trunc.npz"
    p.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CalibrationError, match="corrupt"):
        load_calibration(p)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        load_calibration(tmp_path / "nope.npz")


def test_set_without_samples_is_refused(tmp_path):
    p = _write_set(tmp_path / "zero.npz", search=np.zeros((0, 3, 287, 287), np.uint8), pair=np.zeros(0, np.int32))
    with pytest.raises(CalibrationError, match="no samples"):
        load_calibration(p)


def test_set_missing_arrays_or_bad_meta_is_refused(tmp_path):
    with pytest.raises(CalibrationError, match="lacks"):
        load_calibration(_write_set(tmp_path / "a.npz", pair=None))
    with pytest.raises(CalibrationError, match="format"):
        load_calibration(_write_set(tmp_path / "b.npz", meta=np.array(json.dumps({"format": "other/9"}))))
    with pytest.raises(CalibrationError, match="pair"):
        load_calibration(_write_set(tmp_path / "c.npz", pair=np.array([0, 1, 2], np.int32)))
    with pytest.raises(CalibrationError, match="uint8"):
        load_calibration(_write_set(tmp_path / "d.npz", search=np.zeros((3, 3, 287, 287), np.float32)))


def test_crop_size_mismatch_names_the_fix(calib_set, model_dir):
    from siamtrt.modeldir import ModelDir

    _, c = calib_set(ALEX)
    fake = CalibrationSet(template=c.template, search=c.search[:, :, :255, :255].copy(), pair=c.pair, meta=c.meta)
    with pytest.raises(CalibrationError, match="does not fit") as e:
        fake.check_model(ModelDir.open(model_dir(ALEX), require_conv=True))
    assert "287" in str(e.value) and "siamtrt collect" in str(e.value)
