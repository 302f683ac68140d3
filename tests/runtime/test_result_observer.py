"""Issue 12 items 7, 8, 10: the one crop-size function, the tracker's observer hook, the TrackResult type."""

import math

import numpy as np
import pytest

from siamtrt.errors import InputError
from siamtrt.runtime import SearchEvent, TemplateEvent, Tracker, TrackResult
from siamtrt.runtime import tracker as tracker_mod
from siamtrt.runtime.geometry import crop_sizes, template_side

BOX = (316, 140, 112, 115)


# ------------------------------------------------------------------------------------------ crop-size formula
def _old_inline(w, h, ca, e, inst, flavour):
    """The formulas as tracker.py wrote them inline before the refactor (per target, Python floats)."""
    if flavour == "pysot":
        s_z = math.sqrt((w + ca * (w + h)) * (h + ca * (w + h)))
        scale_z = e / s_z
        s_x = s_z * (inst / e)
    else:
        wc_z, hc_z = h + ca * (w + h), w + ca * (w + h)
        s_z = math.sqrt(wc_z * hc_z)
        scale_z = e / s_z
        s_x = s_z + 2 * (((inst - e) / 2) / scale_z)
    return s_z, scale_z, s_x, round(math.sqrt((w + ca * (w + h)) * (h + ca * (w + h))))


@pytest.mark.parametrize("flavour,inst", [("pysot", 255), ("pysot", 287), ("pysot", 831), ("dasiamrpn", 271),
                                          ("dasiamrpn", 287)])
def test_crop_sizes_equal_the_old_inline_formulas_bit_for_bit(flavour, inst):
    rng = np.random.default_rng(0)
    size = np.concatenate([rng.uniform(4, 400, (200, 2)), [[112, 115], [10, 10], [0.5, 3.5]]])
    cs = crop_sizes(size, 0.5, 127, inst, flavour)
    side = template_side(size, 0.5)
    for n, (w, h) in enumerate(size):
        s_z, scale_z, s_x, tz = _old_inline(float(w), float(h), 0.5, 127, inst, flavour)
        assert cs.s_z[n] == s_z and cs.scale_z[n] == scale_z and cs.s_x[n] == s_x
        assert side[n] == tz and cs.search_side[n] == round(s_x)
    # per-target instance sizes (long-term mode): the same numbers as one call per size
    mixed = np.where(np.arange(len(size)) % 2 == 0, inst, 831)
    cm = crop_sizes(size, 0.5, 127, mixed, flavour)
    big = crop_sizes(size, 0.5, 127, 831, flavour)
    np.testing.assert_array_equal(cm.s_x[0::2], cs.s_x[0::2])
    np.testing.assert_array_equal(cm.s_x[1::2], big.s_x[1::2])


def test_crop_sizes_rejects_unknown_flavour():
    with pytest.raises(ValueError, match="flavour"):
        crop_sizes(np.array([[10.0, 10.0]]), 0.5, 127, 255, "siamfc")


# -------------------------------------------------------------------------------------------- result type
def test_track_result_single_and_multi_forms(tiny_dir, bag_frames):
    d = tiny_dir("siamrpn_alex_dwxcorr")
    t = Tracker.from_model_dir(d, backend="onnxruntime", threads=1)
    t.init(bag_frames[0], BOX)
    r = t.track(bag_frames[1])
    assert isinstance(r, TrackResult)
    assert r.bbox.shape == (4,) and isinstance(r.score, float) and r.boxes.shape == (1, 4)
    assert r.boxes.dtype == np.float64 and r.scores.shape == (1,)
    assert r.instance_size.tolist() == [287] and r.lost.tolist() == [False] and r.mode == "short"
    with pytest.raises(TypeError):  # the tuple protocol is gone: one result type, named fields
        box, score = r
    with pytest.raises(TypeError):
        r[0]

    m = Tracker.from_model_dir(d, backend="onnxruntime", threads=1)
    m.init(bag_frames[0], np.array([BOX, (100, 60, 80, 50)], float))
    rm = m.track(bag_frames[1])
    assert rm.boxes.shape == (2, 4) and rm.scores.shape == (2,)
    np.testing.assert_allclose(rm.boxes[0], r.bbox, atol=1e-3)
    with pytest.raises(InputError, match="one target"):
        rm.bbox
    with pytest.raises(InputError, match="one target"):
        rm.score

    one = Tracker.from_model_dir(d, backend="onnxruntime", threads=1)
    one.init(bag_frames[0], np.array([BOX], float))  # (1, 4) init: the same result type, unbatched fields work
    r1 = one.track(bag_frames[1])
    np.testing.assert_array_equal(r1.bbox, r.bbox)
    assert r1.boxes.shape == (1, 4)


# --------------------------------------------------------------------------------------------- observer
def test_observer_sees_the_exact_crop_kernels_and_outputs(tiny_dir, bag_frames):
    from reference_trackers import ref_subwindow  # independent transcription of pysot's get_subwindow

    d = tiny_dir("siamrpn_alex_dwxcorr")
    t = Tracker.from_model_dir(d, backend="onnxruntime", threads=1)
    fed, events, templates = [], [], []
    orig = t.backend.run_search
    t.backend.run_search = lambda x, k: fed.append((x.copy(), {n: v.copy() for n, v in k.items()})) or orig(x, k)
    fn = t.add_observer(lambda ev: events.append((ev, ev.crop.copy(), ev.cls.copy(), ev.loc.copy())))
    t.add_observer(lambda ev: templates.append((ev, ev.crop.copy())), branch="template")
    t.init(bag_frames[0], BOX)
    assert len(templates) == 1 and isinstance(templates[0][0], TemplateEvent)
    assert templates[0][0].purpose == "init" and templates[0][1].shape == (1, 3, 127, 127)
    center, size = t.center.copy(), t.size.copy()
    r = t.track(bag_frames[1])
    assert len(events) == 1 and len(fed) == 1
    ev, crop, cls, loc = events[0]
    assert isinstance(ev, SearchEvent) and ev.instance_size == 287 and ev.indices.tolist() == [0]
    np.testing.assert_array_equal(crop, fed[0][0])  # the array as fed to the backend
    for name, k in fed[0][1].items():
        np.testing.assert_array_equal(ev.kernels[name], k)
    np.testing.assert_array_equal(ev.center, center)
    np.testing.assert_array_equal(ev.size, size)
    w, h = size[0]
    s_z = math.sqrt((w + 0.5 * (w + h)) * (h + 0.5 * (w + h)))
    ref = ref_subwindow(bag_frames[1], center[0], 287, round(s_z * 287 / 127), t.avg_chans[0], "pysot")
    np.testing.assert_array_equal(crop, ref)
    assert ev.scale_z[0] == pytest.approx(127 / s_z, rel=1e-15)
    # the raw outputs given to the observer are the ones the box was decoded from
    from siamtrt.runtime.postprocess import postprocess

    img_h, img_w = bag_frames[1].shape[:2]
    res = postprocess(cls, loc, t.geometries[287], center, size, ev.scale_z, (img_w, img_h), t.params)
    np.testing.assert_array_equal(np.concatenate([res.center - res.size / 2, res.size], 1), r.boxes)
    assert res.score[0] == r.score
    t.remove_observer(fn)
    t.track(bag_frames[2])
    assert len(events) == 1 and len(fed) == 2


def test_template_event_of_add_names_the_new_targets(tiny_dir, bag_frames):
    """result.py: for "init" the indices are the new targets' indices after the call — add() gave [0] before."""
    t = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime", threads=1)
    seen = []
    t.add_observer(lambda ev: seen.append((ev.purpose, ev.indices.tolist())), branch="template")
    t.init(bag_frames[0], [BOX, (100, 100, 50, 50)])
    idx = t.add(bag_frames[1], [(10, 10, 40, 40), (200, 200, 30, 30)])
    assert idx.tolist() == [2, 3]
    assert seen == [("init", [0, 1]), ("init", [2, 3])]


def test_no_event_is_built_without_observers(tiny_dir, bag_frames, monkeypatch):
    t = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime", threads=1)

    def boom(*a, **k):
        raise AssertionError("an event was built with no observer registered")

    monkeypatch.setattr(tracker_mod, "SearchEvent", boom)
    monkeypatch.setattr(tracker_mod, "TemplateEvent", boom)
    t.init(bag_frames[0], BOX)
    t.track(bag_frames[1])
    with pytest.raises(AssertionError, match="event was built"):
        t.add_observer(lambda ev: None)
        t.track(bag_frames[2])


def test_observer_branch_is_checked(tiny_dir):
    t = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime")
    with pytest.raises(InputError, match="observer branch"):
        t.add_observer(print, branch="searhc")


def test_observer_must_be_callable(tiny_dir, bag_frames):
    """add_observer(None) was accepted; every init / track after it then raised a bare TypeError from inside the
    tracker, so one wrong argument left the tracker unusable."""
    t = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime")
    for bad in (None, "print", [print]):
        with pytest.raises(InputError, match="observer must be callable"):
            t.add_observer(bad)
        with pytest.raises(InputError, match="observer must be callable"):
            t.add_observer(bad, branch="template")
    t.init(bag_frames[0], BOX)
    assert t.track(bag_frames[1]).boxes.shape == (1, 4)
