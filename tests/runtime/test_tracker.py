"""Tracker end to end on tiny ONNX models: equals a plain transcription of each reference tracker, batches
N targets exactly like N single trackers, and refuses bad inputs with specific errors."""


import cv2
import numpy as np
import pytest

from siamtrt.errors import BackendError, InputError, ModelDirError
from siamtrt.runtime import Tracker

from reference_trackers import RefTracker

BOX = (316, 140, 112, 115)


# ------------------------------------------------------------------------------------- independent reference
CASES = [("siamrpn_alex_dwxcorr", {}), ("siamrpn_mobilev2_l234_dwxcorr", {"levels": 3}), ("SiamRPNotb", {}),
         ("SiamRPNBIG", {})]


@pytest.mark.parametrize("config,kw", CASES, ids=[c for c, _ in CASES])
def test_matches_reference_tracker(config, kw, tiny_dir, bag_frames):
    d = tiny_dir(config, **kw)
    tracker = Tracker.from_model_dir(d, backend="onnxruntime", threads=1)
    ref = RefTracker(d, tracker.info.meta)
    box = (150, 300, 14, 12) if config == "SiamRPNBIG" else BOX  # small box → adaptive 287 search
    tracker.init(bag_frames[0], box)
    ref.init(bag_frames[0], box)
    if config == "SiamRPNBIG":
        assert ref.inst == 287 and tracker.instance.tolist() == [287]
    for frame in bag_frames[1:25]:
        r = tracker.track(frame)
        b, s = r.bbox, r.score
        rb, rs = ref.track(frame)
        assert b.shape == (4,) and isinstance(s, float)
        np.testing.assert_allclose(b, rb, rtol=0, atol=1e-4)
        assert s == pytest.approx(rs, abs=1e-5)
    assert set(tracker.last_timings) == {"crop", "search", "post"}


@pytest.mark.parametrize("config", ["siamrpn_alex_dwxcorr", "SiamRPNBIG"])
def test_batched_equals_single(config, tiny_dir, bag_frames):
    d = tiny_dir(config)
    boxes = np.array([BOX, (100, 60, 80, 50), (150, 300, 14, 12), (0, 0, 40, 40)], np.float64)
    multi = Tracker.from_model_dir(d, backend="onnxruntime")
    multi.init(bag_frames[0], boxes)
    singles = [Tracker.from_model_dir(d, backend="onnxruntime") for _ in boxes]
    for t, b in zip(singles, boxes):
        t.init(bag_frames[0], b)
    if config == "SiamRPNBIG":  # the small target searches at 287, the others at 271: two batched calls
        assert sorted(multi.instance.tolist()) == [271, 271, 271, 287] and len(multi._groups) == 2
    calls = []
    orig = multi.backend.run_search
    multi.backend.run_search = lambda x, k: calls.append(x.shape[0]) or orig(x, k)
    for frame in bag_frames[1:15]:
        r = multi.track(frame)
        mb, ms = r.boxes, r.scores
        assert mb.shape == (4, 4) and ms.shape == (4,)
        for n, t in enumerate(singles):
            r1 = t.track(frame)
            sb, ss = r1.bbox, r1.score
            np.testing.assert_allclose(mb[n], sb, rtol=0, atol=1e-3)
            assert ms[n] == pytest.approx(ss, abs=1e-4)
    assert calls[:2] == ([4, 4] if config != "SiamRPNBIG" else [3, 1])[:2]


def test_add_and_remove_targets(tiny_dir, bag_frames):
    d = tiny_dir("siamrpn_alex_dwxcorr")
    t = Tracker.from_model_dir(d, backend="onnxruntime")
    ref_a = Tracker.from_model_dir(d, backend="onnxruntime")
    ref_b = Tracker.from_model_dir(d, backend="onnxruntime")
    t.init(bag_frames[0], np.array([BOX]))
    ref_a.init(bag_frames[0], BOX)
    t.track(bag_frames[1]), ref_a.track(bag_frames[1])
    idx = t.add(bag_frames[1], (100, 60, 80, 50))
    ref_b.init(bag_frames[1], (100, 60, 80, 50))
    assert idx.tolist() == [1] and t.num_targets == 2
    for frame in bag_frames[2:6]:
        b = t.track(frame).boxes
        np.testing.assert_allclose(b[0], ref_a.track(frame).bbox, atol=1e-3)
        np.testing.assert_allclose(b[1], ref_b.track(frame).bbox, atol=1e-3)
    t.remove([0])
    b = t.track(bag_frames[6]).boxes
    assert b.shape == (1, 4)
    np.testing.assert_allclose(b[0], ref_b.track(bag_frames[6]).bbox, atol=1e-3)


def test_fixed_batch_model_runs_targets_one_by_one(tiny_dir, bag_frames):
    dyn = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime")
    one = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr", batch="1"), backend="onnxruntime")
    boxes = np.array([BOX, (100, 60, 80, 50)], np.float64)
    dyn.init(bag_frames[0], boxes)
    one.init(bag_frames[0], boxes)
    for frame in bag_frames[1:5]:
        np.testing.assert_allclose(dyn.track(frame).boxes, one.track(frame).boxes, atol=1e-3)


# ------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("box,msg", [((0, 0, 0, 10), "zero or negative size"), ((10, 10, 20, -5), "zero or negative"),
                                     ((500, 10, 20, 20), "outside"), ((-50, -50, 40, 40), "outside"),
                                     ((1, 2, 3), "4 numbers"), ((np.nan, 1, 2, 3), "non-finite"),
                                     (("a", 1, 2, 3), "4 numbers"), ({"x": 1}, "4 numbers"),
                                     ([(1, 2, 3, 4), (1, 2)], "4 numbers"), (None, "got None")])
def test_bad_boxes(box, msg, tiny_dir, bag_frames):
    """init and add refuse the same boxes the same way (strings, dicts, ragged lists: ValueError / TypeError from
    numpy before)."""
    t = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime")
    with pytest.raises(InputError, match=msg):
        t.init(bag_frames[0], box)
    t.init(bag_frames[0], BOX)
    with pytest.raises(InputError, match=msg):
        t.add(bag_frames[1], box)
    assert t.num_targets == 1


def test_remove_refuses_indices_of_no_target(tiny_dir, bag_frames):
    """remove([99]) and remove([-1]) were ignored silently; the docstring's contract is indices 0 … N − 1."""
    t = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime")
    t.init(bag_frames[0], [BOX, (100, 60, 80, 50)])
    for bad in ([99], [-1], [2], [0.0], ["a"], [0, 5]):
        with pytest.raises(InputError, match="not indices of tracked targets"):
            t.remove(bad)
        assert t.num_targets == 2
    t.remove([])
    assert t.num_targets == 2
    t.remove(np.array([1]))
    assert t.num_targets == 1 and t.size[0].tolist() == [112, 115]


def test_instance_size_must_be_one_the_model_has(tiny_dir, bag_frames):
    """287.5 and "287" were truncated by int() and accepted."""
    t = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime")
    for bad in (287.5, "287", 999, [287]):
        with pytest.raises(InputError, match="is not a search size of this model"):
            t.init(bag_frames[0], BOX, instance_size=bad)
    t.init(bag_frames[0], BOX, instance_size=np.int64(287))
    assert t.instance.tolist() == [287]


def test_non_finite_template_kernels_are_refused(tiny_dir, bag_frames):
    """A template branch returning NaN / inf left the target lost forever without a word."""
    t = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime")
    t.init(bag_frames[0], BOX)
    orig = t.backend.run_template

    def broken(z):
        out = orig(z)
        out["cls_kernel"][0, 0, :2] = np.nan
        return out

    t.backend.run_template = broken
    with pytest.raises(BackendError, match="ort-template returned non-finite kernels") as e:
        t.add(bag_frames[1], (100, 60, 80, 50))
    assert "cls_kernel: 8 of" in str(e.value)
    assert t.num_targets == 1  # the target tracked so far is kept
    with pytest.raises(BackendError, match="non-finite kernels"):
        t.init(bag_frames[1], BOX)
    t.backend.run_template = orig
    assert t.track(bag_frames[1]).boxes.shape == (1, 4)


def test_bad_frames_and_order(tiny_dir, bag_frames):
    t = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime")
    with pytest.raises(InputError, match="before init"):
        t.track(bag_frames[0])
    with pytest.raises(InputError, match="HxWx3 uint8"):
        t.init(bag_frames[0][:, :, 0], BOX)
    with pytest.raises(InputError, match="HxWx3 uint8"):
        t.init(bag_frames[0].astype(np.float32), BOX)


@pytest.mark.parametrize("make,fix", [
    (lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), "COLOR_GRAY2BGR"), (lambda f: f[:, :, :1], "COLOR_GRAY2BGR"),
    (lambda f: cv2.cvtColor(f, cv2.COLOR_BGR2BGRA), "COLOR_BGRA2BGR"),
    (lambda f: f.astype(np.float32), "astype(np.uint8)"), (lambda f: f / 255.0, "* 255"),
    (lambda f: f.astype(np.uint16) * 257, ">> 8"), (lambda f: np.zeros((0, 0, 3), np.uint8), "empty"),
    (lambda f: f.transpose(2, 0, 1), "transpose(1, 2, 0)"), (lambda f: f[None], "one frame"),
    (lambda f: None, "cap.read()"), (lambda f: f.tolist(), "numpy array")])
def test_bad_frames_name_their_own_fix(make, fix, tiny_dir, bag_frames):
    """The mistakes users make with frames each get the conversion they need (a float or 16-bit frame was told to
    convert grey or RGBA, None — cv2.imread's answer for an unreadable file — to use cv2.imread), at init and at
    track, and the tracker goes on."""
    t = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime")
    bad = make(bag_frames[1])
    with pytest.raises(InputError, match="frame") as e:
        t.init(bad, BOX)
    assert fix in e.value.fix
    t.init(bag_frames[0], BOX)
    with pytest.raises(InputError) as e:
        t.track(bad)
    assert fix in e.value.fix
    assert t.track(bag_frames[1]).boxes.shape == (1, 4)


@pytest.mark.parametrize("frame", [lambda f: f[:, ::-1], lambda f: np.asfortranarray(f), lambda f: f[::2, ::2]])
def test_views_and_other_sizes_are_tracked(frame, tiny_dir, bag_frames):
    """Strided / non-contiguous views and frames of another size than init's are images too (the references take
    them): tracked like a contiguous copy."""
    a = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime")
    b = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime")
    a.init(bag_frames[0], BOX)
    b.init(bag_frames[0], BOX)
    np.testing.assert_array_equal(a.track(frame(bag_frames[1])).boxes,
                                  b.track(np.ascontiguousarray(frame(bag_frames[1]))).boxes)


def test_model_dir_errors(tiny_dir, tmp_path):
    import shutil

    import onnx

    from siamtrt.metadata import read_onnx_metadata, set_onnx_metadata

    with pytest.raises(ModelDirError, match="does not exist"):
        Tracker.from_model_dir(tmp_path / "nope")
    src = tiny_dir("siamrpn_alex_dwxcorr")
    d = tmp_path / "m"
    shutil.copytree(src, d)
    (d / "search.onnx").unlink()
    with pytest.raises(ModelDirError, match=r"lacks \['search.onnx'\]"):
        Tracker.from_model_dir(d)
    # search.onnx from another export (different architecture)
    shutil.copy(tiny_dir("SiamRPNotb") / "search.onnx", d / "search.onnx")
    with pytest.raises(ModelDirError, match="different exports"):
        Tracker.from_model_dir(d)
    # swapped branches
    shutil.copy(src / "template.onnx", d / "search.onnx")
    shutil.copy(src / "search.onnx", d / "template.onnx")
    with pytest.raises(ModelDirError, match="branch"):
        Tracker.from_model_dir(d)
    # not ONNX at all
    (d / "template.onnx").write_bytes(b"garbage")
    with pytest.raises(ModelDirError, match="not a readable ONNX"):
        Tracker.from_model_dir(d)
    # metadata from a future major version
    shutil.copy(src / "template.onnx", d / "template.onnx")
    shutil.copy(src / "search.onnx", d / "search.onnx")
    for name in ("template.onnx", "search.onnx"):
        m = onnx.load(str(d / name))
        meta = read_onnx_metadata(d / name)
        meta["version"] = "9.0.0"
        set_onnx_metadata(m, meta)
        onnx.save(m, str(d / name))
    with pytest.raises(ModelDirError, match="incompatible"):
        Tracker.from_model_dir(d)


def test_metadata_score_size_must_match_outputs(tiny_dir, tmp_path, bag_frames):
    """A directory whose metadata claims another instance size fails at the first search with a clear message."""
    from rt_tiny_models import make_tiny_model_dir

    from siamtrt.config import CONFIGS

    cfg = CONFIGS["siamrpn_alex_dwxcorr"]
    d = make_tiny_model_dir(tmp_path / "m", cfg=cfg)
    import onnx

    from siamtrt.metadata import read_onnx_metadata, set_onnx_metadata

    for name in ("template.onnx", "search.onnx"):
        m = onnx.load(str(d / name))
        meta = read_onnx_metadata(d / name)
        meta["anchor"]["ratios"] = [0.5, 1.0, 2.0]  # 3 anchors claimed, model has 5
        meta["config"]["anchor"]["ratios"] = [0.5, 1.0, 2.0]
        set_onnx_metadata(m, meta)
        onnx.save(m, str(d / name))
    t = Tracker.from_model_dir(d, backend="onnxruntime")
    t.init(bag_frames[0], BOX)
    with pytest.raises(ModelDirError, match="search outputs do not match"):
        t.track(bag_frames[1])


def test_close_releases_and_tracking_resumes(tiny_dir, bag_frames):
    t = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime")
    ref = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime")
    with t:
        t.init(bag_frames[0], BOX)
        ref.init(bag_frames[0], BOX)
        t.track(bag_frames[1]), ref.track(bag_frames[1])
    assert not t.backend.is_active and t.backend.sessions == {}
    np.testing.assert_allclose(t.track(bag_frames[2]).bbox, ref.track(bag_frames[2]).bbox, atol=1e-6)
