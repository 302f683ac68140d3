"""Safety bounds (issue 20 item 1): whatever the network outputs, every mode's state, crops, time and memory per
frame stay bounded and nothing raises.

A fake backend (a real :class:`~siamtrt.runtime.backend.Backend` subclass) returns crafted score and regression maps
in a periodic schedule of adversarial heads — saturated scores, random logits, all-equal maps, NaN / inf, boxes
regressing to exp(±20) sizes and far off the crop, confident and hopeless blocks (so long-term mode enters and
leaves the lost state and runs its 831 global search with absurd sizes, the case that grew to 11.5 GB before the
bounds). The model metadata (sizes, anchors, constants) is a tiny long-term export's."""

from __future__ import annotations

import os
import time
import warnings
from typing import Dict, List

import numpy as np
import pytest

from siamtrt.config import CONFIGS, with_longterm
from siamtrt.modeldir import ModelDir
from siamtrt.runtime import Tracker
from siamtrt.runtime.backend import Backend
from siamtrt.runtime.geometry import MIN_SIDE, crop_sizes, max_search_side, template_side

MODES = ["short", "longterm", "distractor", "longterm+distractor"]
BOXES = np.array([(316, 140, 112, 115), (0, 0, 40, 40), (440, 320, 40, 40), (150, 300, 14, 12)], float)
KINDS = ["grow", "huge", "saturated", "nan", "grow", "random", "hopeless", "tiny", "equal", "inf", "partial_nan", "far"]
BLOCK = 5  # frames per kind
PERIOD = BLOCK * len(KINDS)  # 60 frames: every period sees the same heads


class AdversarialBackend(Backend):
    """Template: random kernels. Search: ``cls`` / ``loc`` of the current kind, shaped like the model's."""

    name = short = "adversarial"

    def __init__(self, meta: Dict, score_size, seed: int = 0):
        super().__init__(b"", b"", meta)
        self.score_size = score_size
        self.rng = np.random.default_rng(seed)
        self.kind = "random"

    def _activate(self) -> None:
        pass

    def _deactivate(self) -> None:
        pass

    def _input_metadata(self, branch: str):
        f32 = np.dtype(np.float32)
        if branch == "template":
            return {"template": (f32, (None, 3, 127, 127))}
        out = {"search": (f32, (None, 3, None, None))}
        out.update({k: (f32, (None, 6, 4, 4)) for k in self.template_output_names})
        return out

    def _infer(self, branch: str, feed):
        if branch == "template":
            n = feed["template"].shape[0]
            return {k: self.rng.normal(size=(n, 6, 4, 4)).astype(np.float32) for k in self.template_output_names}
        x = feed["search"]
        n, s, a = x.shape[0], self.score_size(x.shape[2]), 5
        cls = np.zeros((n, 2 * a, s, s), np.float32)
        loc = np.zeros((n, 4 * a, s, s), np.float32)
        k, r = self.kind, self.rng
        if k == "grow":  # confident boxes twice the anchors: the state grows ~25 % a frame (pysot LT: forever)
            cls[:, a:] = 30.0
            loc[:, 2 * a:] = np.log(2.0)
        elif k == "huge":  # confident everywhere, boxes exp(20) times the anchors
            cls[:, a:] = 30.0
            loc[:, 2 * a:] = 20.0
        elif k == "tiny":
            cls[:, a:] = 30.0
            loc[:, 2 * a:] = -20.0
        elif k == "saturated":  # logits at float32's end: softmax saturates, fg − bg overflows to inf
            cls[:, :a] = -3e38
            cls[:, a:] = 3e38
            loc[:] = r.normal(0, 3, loc.shape)
        elif k == "random":
            cls[:] = r.normal(0, 8, cls.shape)
            loc[:] = r.normal(0, 4, loc.shape)
        elif k == "hopeless":  # background everywhere: long-term mode goes (or stays) lost
            cls[:, :a] = 30.0
        elif k == "equal":
            pass
        elif k == "nan":
            cls[:] = np.nan
            loc[:] = np.nan
        elif k == "partial_nan":
            cls[:] = r.normal(0, 8, cls.shape)
            loc[:] = r.normal(0, 1, loc.shape)
            cls[r.random(cls.shape) < 0.3] = np.nan
            loc[r.random(loc.shape) < 0.3] = np.nan
        elif k == "inf":
            cls[:, a:] = np.inf
            loc[:, 2 * a:] = np.inf
            loc[:, :a] = -np.inf
        elif k == "far":  # confident boxes far outside the crop, growing
            cls[:, a:] = 30.0
            loc[:, :2 * a] = 1e6
            loc[:, 2 * a:] = 5.0
        return {"cls": cls, "loc": loc}


@pytest.fixture(scope="module")
def lt_info(tiny_dir):
    return ModelDir.open(tiny_dir("siamrpn_alex_dwxcorr", cfg=with_longterm(CONFIGS["siamrpn_alex_dwxcorr"], 831)))


def rss_bytes() -> int:
    """Resident set size of this process (/proc/self/statm, no psutil)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_adversarial(info: ModelDir, frames: List[np.ndarray], mode: str, n_targets: int, periods: int = 3,
                    seed: int = 0) -> Dict:
    """Track ``periods`` periods of the adversarial schedule; checks every bound on every frame (AssertionError).

    Returns per-frame time and memory statistics: the median frame time of the second period (the first one starts
    from a normal state; by its end every head has pushed the state to its extremes) and of the last, the worst
    frame, and the resident-memory growth after the first period.
    """
    n_frames = periods * PERIOD
    t = info.track
    score_size = lambda inst: t.score_size(info.anchor.stride, inst)  # noqa: E731
    be = AdversarialBackend(info.meta, score_size, seed)
    tracker = Tracker(be, info, mode=mode)
    h, w = frames[0].shape[:2]
    sides: List[int] = []
    tsides: List[int] = []

    def on_search(ev):
        cs = crop_sizes(ev.size, t.context_amount, t.exemplar_size, ev.instance_size, t.flavour)
        sides.extend(cs.search_side.tolist())
        limit = max_search_side((w, h), t.context_amount, t.exemplar_size, ev.instance_size, t.flavour)
        assert (cs.search_side <= limit).all(), f"{mode}: crop side {cs.search_side} above the bound {limit}"

    def on_template(ev):
        if ev.purpose == "distractor":
            tsides.extend(np.asarray(ev.side).tolist())

    tracker.add_observer(on_search)
    tracker.add_observer(on_template, branch="template")
    tracker.init(frames[0], BOXES[:n_targets])
    times, rss, lost = [], [], 0
    for i in range(n_frames):
        be.kind = KINDS[(i // BLOCK) % len(KINDS)]
        t0 = time.perf_counter()
        r = tracker.track(frames[1 + i % (len(frames) - 1)])
        times.append(time.perf_counter() - t0)
        rss.append(rss_bytes())
        lost += int(r.lost.sum())
        where = f"{mode}, {n_targets} targets, frame {i} ({be.kind})"
        assert np.isfinite(r.boxes).all() and np.isfinite(r.scores).all(), where
        assert ((r.scores >= 0) & (r.scores <= 1)).all(), where
        c, z = tracker.center, tracker.size
        assert ((c >= 0) & (c <= (w, h))).all(), f"{where}: centre {c}"
        assert ((z >= MIN_SIDE) & (z <= (w, h))).all(), f"{where}: size {z}"
    max_tside = float(template_side(np.array([[w, h]], float), t.context_amount)[0])
    assert all(s <= max_tside for s in tsides), f"{mode}: distractor template side above {max_tside}"
    times = np.array(times)
    return {"mode": mode, "targets": n_targets, "frames": n_frames,
            "median_second_period_ms": 1e3 * np.median(times[PERIOD:2 * PERIOD]),
            "median_last_period_ms": 1e3 * np.median(times[-PERIOD:]), "max_ms": 1e3 * times.max(),
            "rss_growth_mb": (max(rss[PERIOD:]) - rss[PERIOD - 1]) / 2 ** 20, "max_side": max(sides),
            "lost_target_frames": lost, "crops_over_exact_side": int(sum(s > 2048 for s in sides)),
            "distractor_templates": len(tsides)}


@pytest.mark.parametrize("n_targets", [1, 4])
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_stays_bounded_under_adversarial_heads(mode, n_targets, lt_info, bag_frames):
    st = run_adversarial(lt_info, bag_frames[:8], mode, n_targets)
    # time per frame does not grow (3x + 5 ms of slack for a loaded shared machine), memory does not grow
    assert st["median_last_period_ms"] <= 3 * st["median_second_period_ms"] + 5, st
    assert st["max_ms"] < 2000, st
    assert st["rss_growth_mb"] < 64, st
    if "longterm" in mode:
        assert st["max_side"] > 2048, "the schedule should drive the global search to its largest crops"


def test_a_nonfinite_step_keeps_the_state_and_scores_zero(lt_info, bag_frames):
    info = lt_info
    be = AdversarialBackend(info.meta, lambda inst: info.track.score_size(info.anchor.stride, inst))
    t = Tracker(be, info, mode="short")
    t.init(bag_frames[0], BOXES[:2])
    be.kind = "equal"
    t.track(bag_frames[1])
    center, size = t.center.copy(), t.size.copy()
    be.kind = "nan"
    r = t.track(bag_frames[2])
    np.testing.assert_array_equal(t.center, center)
    np.testing.assert_array_equal(t.size, size)
    assert r.scores.tolist() == [0.0, 0.0]
    be.kind = "partial_nan"  # NaN in some anchors: the best finite anchor is chosen
    r = t.track(bag_frames[3])
    assert (r.scores > 0).all() and np.isfinite(r.boxes).all()


# ---------------------------------------------------------------------------------------------- the boxes given
INSIDE_OR_PARTLY_OUT = [(316, 140, 112, 115), (0, 0, 5, 5), (150, 300, 14, 12), (-50, -50, 60, 60),
                        (400, 300, 120, 90), (0, 0, 480, 360)]


@pytest.mark.parametrize("config", ["siamrpn_alex_dwxcorr", "SiamRPNotb"])
def test_the_init_bound_leaves_boxes_no_larger_than_the_frame_alone(config, tiny_dir, bag_frames):
    """Boxes inside the frame, tiny, partly outside or the frame itself: stored as given and tracked exactly as the
    reference transcription tracks them (the bound acts only on a box wider or taller than the frame)."""
    from reference_trackers import RefTracker

    d = tiny_dir(config)
    tracker = Tracker.from_model_dir(d, backend="onnxruntime", threads=1)
    for box in INSIDE_OR_PARTLY_OUT:
        ref = RefTracker(d, tracker.info.meta)
        tracker.init(bag_frames[0], box)
        ref.init(bag_frames[0], box)
        assert tracker.size[0].tolist() == list(box[2:]) and tracker.center[0].tolist() == list(ref.center)
        for frame in bag_frames[1:4]:
            r = tracker.track(frame)
            rb, rs = ref.track(frame)
            np.testing.assert_allclose(r.bbox, rb, rtol=0, atol=1e-4, err_msg=str(box))
            assert r.score == pytest.approx(rs, abs=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_a_box_far_larger_than_the_frame_runs_in_every_mode(mode, tiny_dir, bag_frames):
    """--bbox 0,0,1e300,1e300 crashed distractor mode (OverflowError in the crop) and left short mode at score 0
    with NaN warnings: its stored size is the frame's, its template crop that of a frame-sized box."""
    d = tiny_dir("siamrpn_alex_dwxcorr", cfg=with_longterm(CONFIGS["siamrpn_alex_dwxcorr"], 831))
    tracker = Tracker.from_model_dir(d, backend="onnxruntime", mode=mode, threads=1)
    h, w = bag_frames[0].shape[:2]
    sides = []
    tracker.add_observer(lambda ev: sides.extend(np.asarray(ev.side).tolist()), branch="template")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid-value warnings either
        tracker.init(bag_frames[0], [(0, 0, 1e300, 1e300), (-1e9, -1e9, 2e9, 2e9), BOXES[0]])
        assert tracker.size[:2].tolist() == [[w, h], [w, h]] and tracker.size[2].tolist() == [112, 115]
        tracker.add(bag_frames[0], (0, 0, 1e300, 1e300))
        for frame in bag_frames[1:5]:
            r = tracker.track(frame)
            assert np.isfinite(r.boxes).all() and np.isfinite(r.scores).all()
            assert ((tracker.size >= MIN_SIDE) & (tracker.size <= (w, h))).all()
    assert max(sides) <= template_side(np.array([[w, h]], float), tracker.context_amount)[0]
