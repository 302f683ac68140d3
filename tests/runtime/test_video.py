"""Frame sources: video, image folder (OTB layout), and the errors a user can cause."""

import numpy as np
import pytest

from siamtrt.errors import InputError
from siamtrt.runtime.video import open_frames


def test_video_frames(bag_video):
    src = open_frames(bag_video)
    assert src.kind == "video" and src.size == (480, 360) and src.fps > 0
    n = sum(1 for _ in src)
    assert n == 196


def test_max_frames_and_image_folder(bag_sequence):
    src = open_frames(bag_sequence, max_frames=5)  # OTB folder: frames come from img/
    frames = list(src)
    assert src.kind == "images" and len(frames) == 5 and len(src) == 5
    assert frames[0].shape == (360, 480, 3) and frames[0].dtype == np.uint8


def test_missing(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_frames(tmp_path / "nope.avi")


def test_empty_and_unreadable(tmp_path):
    (tmp_path / "empty.avi").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        open_frames(tmp_path / "empty.avi")
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video" * 100)
    with pytest.raises(InputError, match="cannot be opened|no readable frames"):
        open_frames(tmp_path / "junk.mp4")


def test_empty_folder_and_bad_image(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        open_frames(tmp_path / "d")
    (tmp_path / "d" / "0001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="cannot be decoded"):
        open_frames(tmp_path / "d")


def test_camera_that_does_not_exist():
    with pytest.raises(InputError, match="camera 97 cannot be opened"):
        open_frames("97")


def test_camera_message_is_about_cameras():
    with pytest.raises(InputError) as e:
        open_frames("97")
    assert "/dev/video" in str(e.value) and "H.264" not in str(e.value)


def test_start_frame_video_and_folder(bag_video, bag_sequence):
    full = list(open_frames(bag_video, max_frames=12))
    src = open_frames(bag_video, start_frame=5, max_frames=7)
    got = list(src)
    assert src.start_frame == 5 and len(got) == 7 and src.frame_count == 7
    assert all(np.array_equal(a, b) for a, b in zip(full[5:], got))
    imgs = open_frames(bag_sequence, start_frame=3, max_frames=2)
    assert imgs.frame_count == 2 and len(list(imgs)) == 2


def test_start_frame_past_the_end(bag_video, bag_sequence):
    with pytest.raises(InputError, match="past the end"):
        open_frames(bag_video, start_frame=196)
    with pytest.raises(InputError, match="past the end"):
        open_frames(bag_sequence, start_frame=10_000)
    with pytest.raises(InputError, match="0 or more"):
        open_frames(bag_video, start_frame=-1)
