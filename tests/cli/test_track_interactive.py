"""siamtrt track in-process where a subprocess cannot reach: a camera index, the ROI selector, the order of the
checks (cheap ones before the model loads), the long-term progress state and the read-ahead thread."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest

from siamtrt.cli import track as track_cli
from siamtrt.config import CONFIGS, with_longterm
from siamtrt.errors import BackendError, InputError
from siamtrt.progress import LogProgress
from siamtrt.runtime import run as run_mod
from siamtrt.runtime.boxes import read_results
from siamtrt.runtime.video import ReadAhead, open_frames

BOX = [316.0, 140.0, 112.0, 115.0]


class FakeCamera:
    """cv2.VideoCapture(int) stand-in serving bag.avi frames: no camera exists on a CI machine."""

    def __init__(self, video, n):
        self._cap = cv2.VideoCapture(str(video))
        self.left = n

    def isOpened(self):
        return True

    def get(self, prop):
        return 0.0  # cameras often report no fps and no frame count

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return self._cap.read()

    def grab(self):
        ok, _ = self.read()
        return ok

    def release(self):
        self._cap.release()


def test_camera_index_end_to_end(monkeypatch, tiny_model, bag_video, tmp_path, capsys):
    real = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda t, *a: FakeCamera(bag_video, 12) if isinstance(t, int)
                        else real(t, *a))
    out, vid = tmp_path / "cam.csv", tmp_path / "cam.mp4"
    code = track_cli.main(["--model", str(tiny_model()), "--video", "0", "--bbox", ",".join(map(str, BOX)),
                           "--out", str(out), "--save-video", str(vid), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    boxes = read_results(out)
    assert boxes.shape == (12, 1, 4) and boxes[0, 0].tolist() == BOX
    assert "tracked 12 frames" in capsys.readouterr().out
    cap = real(str(vid))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12  # 30 fps assumed for the writer
    cap.release()


@pytest.fixture
def fake_gui(monkeypatch):
    """A display and an OpenCV GUI that record what the tracker does with them."""
    calls = {"imshow": 0, "roi": None}
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(cv2, "namedWindow", lambda *a, **k: None)
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda *a, **k: None)
    monkeypatch.setattr(cv2, "waitKey", lambda *a, **k: -1)

    def imshow(name, img):
        calls["imshow"] += 1

    def select_roi(name, img, showCrosshair=True, fromCenter=False):
        calls["roi"] = img.shape
        return calls.get("answer", (300, 130, 100, 110))

    monkeypatch.setattr(cv2, "imshow", imshow)
    monkeypatch.setattr(cv2, "selectROI", select_roi)
    return calls


def test_show_without_bbox_opens_the_roi_selector(fake_gui, tiny_model, bag_video, tmp_path):
    out = tmp_path / "b.txt"
    code = track_cli.main(["--model", str(tiny_model()), "--video", str(bag_video), "--show", "--out", str(out),
                           "--max-frames", "5", "--start-frame", "10", "--no-progress"])
    assert code == 0
    assert fake_gui["roi"] == (360, 480, 3) and fake_gui["imshow"] == 5
    assert out.read_text().splitlines()[0] == "300.0,130.0,100.0,110.0"


def test_roi_selection_cancelled_is_one_message(fake_gui, tiny_model, bag_video, tmp_path, capsys):
    fake_gui["answer"] = (0, 0, 0, 0)
    code = track_cli.main(["--model", str(tiny_model()), "--video", str(bag_video), "--show", "--out",
                           str(tmp_path / "b.txt"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "no box was drawn" in err and not (tmp_path / "b.txt").exists()


@pytest.mark.parametrize("kw,error,match", [
    ({"bbox": [600, 10, 50, 50]}, InputError, "outside"),
    ({"mode": "long-term"}, InputError, "did you mean 'longterm'"),
    ({"backend": "onnxrt"}, BackendError, "unknown backend"),
    ({"fmt": "xml"}, InputError, "unknown box format"),
    ({"video": "/nonexistent.avi"}, InputError, "does not exist"),
    ({"save_video": "out.gif"}, InputError, "container"),
    ({"max_frames": 0}, InputError, "--max-frames"),
])
def test_cheap_checks_come_before_the_model_loads(kw, error, match, monkeypatch, bag_video, tmp_path):
    """Issue 20 item 5: a bad box, mode, backend, format or video is reported before any model file is read."""
    def no_model(*a, **k):
        raise AssertionError("the model was opened before a cheap check failed")

    monkeypatch.setattr(run_mod.Tracker, "from_model_dir", no_model)
    monkeypatch.setattr(run_mod, "ModelDir", no_model, raising=False)
    args = {"bbox": BOX, "video": bag_video, **kw}
    with pytest.raises(error, match=match):
        run_mod.track_video(tmp_path / "model-not-read", args.pop("video"), args.pop("bbox"), progress=False, **args)


def test_track_command_keeps_nothing_per_frame(monkeypatch, tiny_model, bag_video, tmp_path, capsys):
    """A live stream (``--video 0``) runs for as long as the camera does: the command keeps no per-frame boxes or
    scores in memory (the rows stream to --out), while the Python API still returns them by default."""
    real = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda t, *a: FakeCamera(bag_video, 15) if isinstance(t, int)
                        else real(t, *a))
    states, loop = [], run_mod._loop
    monkeypatch.setattr(run_mod, "_loop", lambda *a: states.append(a[-1]) or loop(*a))
    out = tmp_path / "cam.txt"
    code = track_cli.main(["--model", str(tiny_model()), "--video", "0", "--bbox", ",".join(map(str, BOX)),
                           "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert "tracked 15 frames" in capsys.readouterr().out and len(read_results(out)) == 15
    assert states[0].boxes is None and states[0].scores is None  # nothing kept, however long the stream
    res = run_mod.track_video(tiny_model(), bag_video, BOX, max_frames=5, progress=False)
    assert res.frames == 5 and res.boxes.shape == (5, 1, 4) and res.scores.shape == (5, 1)
    assert len(states[1].boxes) == 5
    res = run_mod.track_video(tiny_model(), bag_video, BOX, max_frames=5, progress=False, keep_results=False)
    assert res.frames == 5 and res.boxes is None and res.scores is None


def test_longterm_progress_shows_lost_state(tiny_model, bag_video):
    """The long-term bar's postfix names the lost / global state and the search size (a forced-lost stand-in:
    confidence_low above any score, so every frame after the first is lost)."""
    cfg = with_longterm(CONFIGS["siamrpn_alex_dwxcorr"], 831, confidence_low=1.0, confidence_high=1.0)
    model = tiny_model("siamrpn_alex_dwxcorr", cfg=cfg)
    stream = io.StringIO()
    bar = LogProgress(6, "track", "frame", stream=stream, log_every=0.2)
    orig = run_mod.progress_bar
    try:
        run_mod.progress_bar = lambda *a, **k: bar
        res = run_mod.track_video(model, bag_video, BOX, max_frames=6, mode="longterm", progress=True)
    finally:
        run_mod.progress_bar = orig
    text = stream.getvalue()
    assert res.frames == 6
    assert "lost=1/1" in text and "search=global" in text and "size=831" in text, text


def test_read_ahead_yields_the_same_frames_and_stops_cleanly(bag_video):
    plain = list(open_frames(bag_video, max_frames=30))
    ahead = ReadAhead(open_frames(bag_video, max_frames=30))
    got = list(ahead)
    ahead.close()
    assert len(got) == 30 and all(np.array_equal(a, b) for a, b in zip(plain, got))
    src = open_frames(bag_video)
    ra = ReadAhead(src)
    it = iter(ra)
    next(it)
    ra.close()  # stopped mid-video (Ctrl-C): the reader thread ends before the source is closed
    assert not ra._thread.is_alive()
    src.close()


def test_read_ahead_raises_the_readers_error_in_the_consumer():
    def frames():
        yield np.zeros((2, 2, 3), np.uint8)
        raise InputError("image 0002.jpg cannot be decoded")

    ra = ReadAhead(frames())
    it = iter(ra)
    next(it)
    with pytest.raises(InputError, match="cannot be decoded"):
        next(it)
    ra.close()
