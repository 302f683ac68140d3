"""Reading sequences as a user's dataset is read: OTB folders, VOT polygons, videos with a ground-truth file."""

from __future__ import annotations

import numpy as np
import pytest

from siamtrt.runtime.boxes import polygon_to_rect, read_box_file
from siamtrt.runtime.sequences import find_gt, load_folder_sequence, load_sequences, load_video_sequence
from siamtrt.errors import InputError


def test_bag_otb_layout(bag_sequence):
    seq = load_folder_sequence(bag_sequence)
    assert seq.name == "bag" and len(seq) == 196 and len(seq.frames) == 196
    np.testing.assert_allclose(seq.gt[0], [292.23, 128.36, 145.96, 132.47])
    assert seq.polygons is not None and seq.polygons.shape == (196, 8)
    first = next(seq.iter_frames())
    assert first.shape == (360, 480, 3) and first.dtype == np.uint8


def test_vot_polygons_minmax_reproduce_otb_file(bag_sequence):
    """groundtruth_rect.txt was derived from groundtruth.txt by min/max (data README)."""
    polys = read_box_file(bag_sequence / "groundtruth.txt", polygon=None)
    rect = read_box_file(bag_sequence / "groundtruth_rect.txt", polygon=None)
    np.testing.assert_allclose(polygon_to_rect(polys, "minmax"), rect, atol=0.011)


def test_polygon_area_mode_hand_case():
    # axis-aligned 10x20 rectangle: area mode keeps the area (s = 1) and adds 1 to w and h (pysot)
    poly = np.array([[0, 0, 10, 0, 10, 20, 0, 20]], float)
    np.testing.assert_allclose(polygon_to_rect(poly, "minmax"), [[0, 0, 10, 20]])
    x, y, w, h = polygon_to_rect(poly, "area")[0]
    assert (w, h) == (11, 21)
    assert x + (w - 1) / 2 == pytest.approx(5) and y + (h - 1) / 2 == pytest.approx(10)  # same centre
    # a 45-degree square of side 10: bounding box 14.14^2 scaled to area 100 -> side 10 (+1)
    d = 10 / np.sqrt(2)
    diamond = np.array([[0, d, d, 0, 2 * d, d, d, 2 * d]])
    assert polygon_to_rect(diamond, "area")[0, 2] == pytest.approx(11)


def test_vot_only_folder_is_converted(tmp_path, bag_sequence):
    seq_dir = tmp_path / "bagvot"
    (seq_dir / "color").mkdir(parents=True)
    src = load_folder_sequence(bag_sequence)
    for i, p in enumerate(src.frames[:5]):
        (seq_dir / "color" / p.name).symlink_to(p)
    (seq_dir / "groundtruth.txt").write_text("\n".join((bag_sequence / "groundtruth.txt").read_text()
                                                      .splitlines()[:5]))
    seq = load_folder_sequence(seq_dir)
    assert len(seq) == 5 and seq.polygons.shape == (5, 8)
    np.testing.assert_allclose(seq.gt, src.gt[:5], atol=0.011)


def test_gt_file_separators_and_errors(tmp_path):
    p = tmp_path / "gt.txt"
    p.write_text("1,2,3,4\n5\t6\t7\t8\n9 10 11 12,\nNaN,NaN,NaN,NaN\n")
    arr = read_box_file(p, polygon=None)
    assert arr.shape == (4, 4) and np.isnan(arr[3]).all()
    p.write_text("1,2,3\n")
    with pytest.raises(InputError, match="4 or 8 numbers"):
        read_box_file(p, polygon=None)
    p.write_text("1,2,3,x\n")
    with pytest.raises(InputError, match="line 1"):
        read_box_file(p, polygon=None)


def test_video_with_gt_file(tmp_path, bag_video, bag_sequence):
    gt = tmp_path / "bag_gt.txt"
    gt.write_text((bag_sequence / "groundtruth_rect.txt").read_text())
    seq = load_video_sequence(bag_video, gt)
    assert len(seq) == 196 and seq.video == bag_video
    frames = list(seq.iter_frames(limit=3))
    assert len(frames) == 3 and frames[0].shape == (360, 480, 3)
    # VIDEO:GT spec, as the CLI takes it
    (s2,) = load_sequences([f"{bag_video}:{gt}"])
    np.testing.assert_array_equal(s2.gt, seq.gt)


def test_video_without_gt_is_refused(bag_video):
    with pytest.raises(InputError, match="no ground-truth file"):
        load_video_sequence(bag_video)


def test_find_gt_folder_and_video(tmp_path, bag_video, bag_sequence):
    """One lookup for every command: a folder's OTB file before its VOT file; a video's file beside it."""
    assert find_gt(bag_sequence) == bag_sequence / "groundtruth_rect.txt"
    assert find_gt(bag_video) is None  # bag.avi's frames folder is not beside-the-video ground truth
    vot = tmp_path / "vot"
    vot.mkdir()
    (vot / "groundtruth.txt").write_text("1,2,3,4,5,6,7,8\n")
    assert find_gt(vot) == vot / "groundtruth.txt"
    (tmp_path / "clip.mp4").write_bytes(b"")
    assert find_gt(tmp_path / "clip.mp4") is None
    (tmp_path / "clip_gt.txt").write_text("1,2,3,4\n")
    assert find_gt(tmp_path / "clip.mp4") == tmp_path / "clip_gt.txt"


def test_soak_boxes_follow_the_frames_folder_beside_the_video(tmp_path, bag_video, bag_sequence):
    from siamtrt.cli.soak import _gt_boxes

    np.testing.assert_array_equal(_gt_boxes(bag_video, 196, (1, 2, 3, 4)),
                                  read_box_file(bag_sequence / "groundtruth_rect.txt"))
    lone = tmp_path / "lone.avi"
    lone.write_bytes(b"")
    np.testing.assert_array_equal(_gt_boxes(lone, 3, (1, 2, 3, 4)), [[1, 2, 3, 4]] * 3)


def test_frame_count_mismatch(tmp_path, bag_sequence):
    seq_dir = tmp_path / "short"
    (seq_dir / "img").mkdir(parents=True)
    for p in sorted((bag_sequence / "img").iterdir())[:3]:
        (seq_dir / "img" / p.name).symlink_to(p)
    (seq_dir / "groundtruth_rect.txt").write_text("1,2,3,4\n1,2,3,4\n")
    with pytest.raises(InputError, match="3 frames but 2 ground-truth lines"):
        load_folder_sequence(seq_dir)


def test_dataset_root_and_bad_spec(tmp_path, bag_sequence):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "bag").symlink_to(bag_sequence)
    (root / "notes").mkdir()
    seqs = load_sequences([root])
    assert [s.name for s in seqs] == ["bag"]
    with pytest.raises(InputError, match="cannot read"):
        load_sequences([tmp_path / "nothing"])
    with pytest.raises(InputError, match="duplicate"):
        load_sequences([bag_sequence, root])


def test_video_shorter_than_gt(tmp_path, bag_video):
    gt = tmp_path / "long_gt.txt"
    gt.write_text("10,10,20,20\n" * 200)
    seq = load_video_sequence(bag_video, gt)
    with pytest.raises(InputError, match="could only decode 196 of 200 frames"):
        for _ in seq.iter_frames():
            pass
