"""Tracking modes (issue 10) on tiny ONNX models: long-term mode against an independent per-anchor transcription of
pysot's SiamRPNLTTracker frame by frame (switching to and from the lost size), distractor-mode mechanics, mode
errors. Evidence on real weights is in tests/runtime/test_modes_evidence.py."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from siamtrt.config import CONFIGS, with_longterm
from siamtrt.errors import ConfigError, InputError, ModelDirError
from siamtrt.runtime import Tracker
from siamtrt.runtime.modes import DistractorMemory, parse_mode

from reference_trackers import ref_subwindow

BOX = (316, 140, 112, 115)
RATIOS, SCALES, STRIDE = (0.33, 0.5, 1.0, 2.0, 3.0), (8.0,), 8


class RefLT:
    """pysot SiamRPNLTTracker.track transcribed as written (batch 1, Python loops over every anchor)."""

    def __init__(self, model_dir, meta, track):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        self.t = ort.InferenceSession(str(model_dir / "template.onnx"), so, providers=["CPUExecutionProvider"])
        self.s = ort.InferenceSession(str(model_dir / "search.onnx"), so, providers=["CPUExecutionProvider"])
        self.c = track
        self.names = meta["template_outputs"]
        self.longterm_state = False

    def init(self, img, bbox):
        x, y, w, h = bbox
        self.center = [x + (w - 1) / 2, y + (h - 1) / 2]
        self.size = [w, h]
        self.avg = np.mean(img, axis=(0, 1))
        s_z = round(math.sqrt((w + 0.5 * (w + h)) * (h + 0.5 * (w + h))))
        z = ref_subwindow(img, self.center, 127, s_z, self.avg, "pysot")
        self.kernels = dict(zip(self.names, self.t.run(self.names, {"template": z})))
        self.longterm_state = False

    def track(self, img):
        c = self.c
        w0, h0 = self.size
        w_z = w0 + 0.5 * (w0 + h0)
        h_z = h0 + 0.5 * (w0 + h0)
        s_z = math.sqrt(w_z * h_z)
        scale_z = 127 / s_z
        inst = c.lost_instance_size if self.longterm_state else c.instance_size
        S = (inst - 127) // STRIDE + 1 + c.base_size
        hann = np.hanning(S)
        anchors = []
        for r in RATIOS:
            ws = int(math.sqrt(STRIDE * STRIDE / r))
            hs = int(ws * r)
            for sc in SCALES:
                anchors.append((ws * sc, hs * sc))
        ori = -(S // 2) * STRIDE
        s_x = s_z * (inst / 127)
        x = ref_subwindow(img, self.center, inst, round(s_x), self.avg, "pysot")
        cls, loc = self.s.run(["cls", "loc"], dict(self.kernels, search=x))
        cls, loc = cls[0], loc[0]
        A = len(anchors)
        wi = 0.001 if self.longterm_state else c.window_influence

        def change(r):
            return max(r, 1.0 / r)

        def sz(w, h):
            pad = (w + h) * 0.5
            return math.sqrt((w + pad) * (h + pad))

        best = None
        for a in range(A):
            aw, ah = anchors[a]
            for i in range(S):
                for j in range(S):
                    bg, fg = float(cls[a, i, j]), float(cls[A + a, i, j])
                    m = max(bg, fg)
                    score = math.exp(fg - m) / (math.exp(bg - m) + math.exp(fg - m))
                    px = float(loc[a, i, j]) * aw + (ori + STRIDE * j)
                    py = float(loc[A + a, i, j]) * ah + (ori + STRIDE * i)
                    pw, ph = math.exp(float(loc[2 * A + a, i, j])) * aw, math.exp(float(loc[3 * A + a, i, j])) * ah
                    s_c = change(sz(pw, ph) / sz(w0 * scale_z, h0 * scale_z))
                    r_c = change((w0 / h0) / (pw / ph))
                    penalty = math.exp(-(r_c * s_c - 1) * c.penalty_k)
                    pscore = penalty * score * (1 - wi) + hann[i] * hann[j] * wi
                    if best is None or pscore > best[0]:
                        best = (pscore, px, py, pw, ph, penalty, score)
        _, px, py, pw, ph, penalty, best_score = best
        lr = penalty * best_score * c.lr
        if best_score >= c.confidence_low:
            cx, cy = px / scale_z + self.center[0], py / scale_z + self.center[1]
            width = w0 * (1 - lr) + pw / scale_z * lr
            height = h0 * (1 - lr) + ph / scale_z * lr
        else:
            cx, cy, width, height = self.center[0], self.center[1], w0, h0
        self.center, self.size = [cx, cy], [width, height]  # stored before clipping
        H, W = img.shape[:2]
        cx, cy = max(0, min(cx, W)), max(0, min(cy, H))
        width, height = max(10, min(width, W)), max(10, min(height, H))
        if best_score < c.confidence_low:
            self.longterm_state = True
        elif best_score > c.confidence_high:
            self.longterm_state = False
        return [cx - width / 2, cy - height / 2, width, height], best_score, inst


def _lt_dir(tiny_dir, config="siamrpn_alex_dwxcorr", **kw):
    cfg = with_longterm(CONFIGS[config], 831)
    return tiny_dir(config, cfg=cfg, **kw)


def _with_constants(tracker, **c):
    info = tracker.info
    return dataclasses.replace(info, track=dataclasses.replace(info.track, **c))


def _frames(bag_frames):
    """bag frames 1..24 with frames 8..13 replaced by flat grey (the target vanishes: a forced low-score segment)."""
    frames = list(bag_frames[:25])
    for i in range(8, 14):
        frames[i] = np.full_like(frames[i], 90)
    return frames


@pytest.mark.parametrize("config,kw", [("siamrpn_alex_dwxcorr", {}), ("siamrpn_mobilev2_l234_dwxcorr", {"levels": 3})],
                         ids=["alex", "mobilev2-3lvl"])
def test_longterm_follows_pysot_lt_transcription_through_switches(config, kw, tiny_dir, bag_frames):
    d = _lt_dir(tiny_dir, config, **kw)
    frames = _frames(bag_frames)
    probe = Tracker.from_model_dir(d, backend="onnxruntime", threads=1)
    probe.init(frames[0], BOX)
    scores = np.array([probe.track(f).score for f in frames[1:]])
    # thresholds from this model's own score range so that both transitions happen (random tiny weights)
    low, high = float(np.quantile(scores, 0.35)), float(np.quantile(scores, 0.6))
    ref_info = _with_constants(probe, confidence_low=low, confidence_high=high)
    trk = Tracker(probe.backend, ref_info, mode="longterm")
    ref = RefLT(d, probe.info.meta, ref_info.track)
    trk.init(frames[0], BOX)
    ref.init(frames[0], BOX)
    sizes = []
    for f in frames[1:]:
        r = trk.track(f)
        rb, rs, rinst = ref.track(f)
        assert r.instance_size[0] == rinst
        np.testing.assert_allclose(r.bbox, rb, rtol=0, atol=1e-6)
        assert r.score == pytest.approx(rs, abs=1e-9)
        assert r.lost[0] == ref.longterm_state
        np.testing.assert_allclose(trk.center[0], ref.center, atol=1e-6)  # unclipped state, as pysot stores it
        sizes.append(int(r.instance_size[0]))
    # the switch really happened, both ways
    assert 831 in sizes and sizes[0] != 831
    back = [i for i in range(1, len(sizes)) if sizes[i - 1] == 831 and sizes[i] != 831]
    assert back, f"never left the lost state: {sizes}"


@pytest.mark.parametrize("config", ["siamrpn_alex_dwxcorr", "SiamRPNBIG"])
def test_longterm_multi_target_equals_single_trackers(config, tiny_dir, bag_frames):
    """pysot and DaSiamRPN flavours; SiamRPNBIG mixes its adaptive 271 / 287 local sizes with the 831 lost size."""
    d = _lt_dir(tiny_dir, config)
    frames = _frames(bag_frames)
    probe = Tracker.from_model_dir(d, backend="onnxruntime", threads=1)
    probe.init(frames[0], BOX)
    scores = np.array([probe.track(f).score for f in frames[1:]])
    info = _with_constants(probe, confidence_low=float(np.quantile(scores, 0.35)),
                           confidence_high=float(np.quantile(scores, 0.6)))
    boxes = np.array([BOX, (100, 60, 80, 50), (400, 250, 60, 90), (150, 300, 14, 12)], float)
    multi = Tracker(probe.backend, info, mode="longterm")
    multi.init(frames[0], boxes)
    singles = [Tracker(probe.backend, info, mode="longterm") for _ in boxes]
    for t, b in zip(singles, boxes):
        t.init(frames[0], b)
    mixed = False
    for f in frames[1:]:
        r = multi.track(f)
        mixed |= len(set(r.instance_size.tolist())) > 1
        for n, t in enumerate(singles):
            r1 = t.track(f)
            np.testing.assert_allclose(r.boxes[n], r1.bbox, atol=1e-6)
            assert r.instance_size[n] == r1.instance_size[0] and r.lost[n] == r1.lost[0]
    assert mixed, "no frame had targets at different search sizes in one batch"


def test_longterm_state_bound_acts_where_pysot_leaves_the_frame(tiny_dir, bag_frames):
    """The one deviation from SiamRPNLTTracker (docs/runtime.md "Safety bounds"): pysot stores the unclipped state,
    here it is clipped to the frame. Frame by frame equal to the transcription until the transcription's state
    leaves the frame (a global-search jump near the corner, frame 9 here); on that frame the boxes still agree (both
    clip the output) and the stored state is the transcription's, clipped; after it the two search from different
    places (pysot's centre is 40 px outside the frame)."""
    d = _lt_dir(tiny_dir)
    frames = _frames(bag_frames)
    box = (440, 320, 40, 40)  # near the bottom-right corner
    probe = Tracker.from_model_dir(d, backend="onnxruntime", threads=1)
    probe.init(frames[0], box)
    scores = np.array([probe.track(f).score for f in frames[1:]])
    info = _with_constants(probe, confidence_low=float(np.quantile(scores, 0.35)),
                           confidence_high=float(np.quantile(scores, 0.6)))
    trk = Tracker(probe.backend, info, mode="longterm")
    ref = RefLT(d, probe.info.meta, info.track)
    trk.init(frames[0], box)
    ref.init(frames[0], box)
    h, w = frames[0].shape[:2]
    acted = None
    for i, f in enumerate(frames[1:], 1):
        r = trk.track(f)
        rb, rs, rinst = ref.track(f)
        (cx, cy), (sw, sh) = ref.center, ref.size
        inside = 0 <= cx <= w and 0 <= cy <= h and 10 <= sw <= w and 10 <= sh <= h
        np.testing.assert_allclose(r.bbox, rb, atol=1e-6)  # the output box agrees up to and including that frame
        assert r.instance_size[0] == rinst and r.lost[0] == ref.longterm_state
        if inside:
            np.testing.assert_allclose(trk.center[0], ref.center, atol=1e-6)
            np.testing.assert_allclose(trk.size[0], ref.size, atol=1e-6)
            continue
        np.testing.assert_allclose(trk.center[0], np.clip(ref.center, 0, (w, h)), atol=1e-6)
        np.testing.assert_allclose(trk.size[0], np.clip(ref.size, 10, (w, h)), atol=1e-6)
        acted = i
        break
    assert acted == 9, "the transcription's state should leave the frame on the first blank frame's jump"


def test_short_mode_is_unchanged_on_a_longterm_export(tiny_dir, bag_frames):
    """Short mode on the long-term directory equals short mode on the plain one (same weights, same seed)."""
    plain = Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime", threads=1)
    lt = Tracker.from_model_dir(_lt_dir(tiny_dir), backend="onnxruntime", threads=1, mode="short")
    plain.init(bag_frames[0], BOX)
    lt.init(bag_frames[0], BOX)
    for f in _frames(bag_frames)[1:]:
        a, b = plain.track(f), lt.track(f)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        assert b.instance_size[0] == 287 and not b.lost[0]


def test_lost_growth_steps_until_the_frame_is_covered(tiny_dir, bag_frames):
    d = _lt_dir(tiny_dir)
    probe = Tracker.from_model_dir(d, backend="onnxruntime", threads=1)
    info = _with_constants(probe, confidence_low=0.999999, confidence_high=1.0, lost_growth_step=64)
    t = Tracker(probe.backend, info, mode="longterm")
    t.init(bag_frames[0], (300, 200, 30, 30))  # small target: s_x at 831 still covers only part of 640x480
    sizes = [int(t.track(f).instance_size[0]) for f in bag_frames[1:12]]
    assert sizes[0] == 287 and sizes[1] == 287 + 64 and sizes[2] == 287 + 128  # one step per lost frame
    assert all(b >= a for a, b in zip(sizes, sizes[1:])) and max(sizes) <= 831
    assert sizes[-1] == sizes[-2], "growth should stop once the crop covers the frame or reaches the lost size"


def test_lost_growth_keeps_no_state_per_ladder_size(tiny_dir, bag_frames):
    """A step of 8 searches at a new size every lost frame (~70 between 287 and 831): the tracker keeps anchors,
    post-processing scratch and output checks only for the model's sizes, and the crop scratch stays within
    MAX_THREAD_BUFFERS (each ladder size was kept for the life of the process)."""
    from siamtrt.runtime import crop

    probe = Tracker.from_model_dir(_lt_dir(tiny_dir), backend="onnxruntime", threads=1)
    info = _with_constants(probe, confidence_low=0.999999, confidence_high=1.0, lost_growth_step=8)
    t = Tracker(probe.backend, info, mode="longterm")
    t.init(bag_frames[0], (300, 200, 30, 30))
    sizes = [int(t.track(f).instance_size[0]) for f in bag_frames[1:]]
    assert len(set(sizes)) > 2 * crop.MAX_THREAD_BUFFERS and sizes[1] == 295
    assert sorted(t.geometries) == [287, 831] and len(t._workspaces) <= 2
    assert {k[0] for k in t._outputs_checked} == {287}
    assert len(crop._thread_buffers()) <= crop.MAX_THREAD_BUFFERS


# --------------------------------------------------------------------------------------------- distractor
def merged(memory: DistractorMemory, base, weight):
    """The search kernels from scratch (new arrays): ``base`` itself while no target has a distractor, else ``base``
    with the classification kernels merged by ``memory.merge_into``; the regression kernels stay the target's."""
    if not memory.active:
        return base
    cls = {k: np.empty_like(base[k]) for k in memory.sums}
    memory.merge_into(base, cls, weight)
    return {**base, **cls}


def test_distractor_memory_merges_kernels_linearly():
    k = {"cls": np.ones((2, 3, 2, 2), np.float32), "loc": np.full((2, 4, 2, 2), 2.0, np.float32)}
    m = DistractorMemory(2, k)
    assert merged(m, k, 0.5) is k  # nothing learnt yet: the very same arrays (short-mode search)
    d = {"cls": np.full((1, 3, 2, 2), 3.0, np.float32), "loc": np.zeros((1, 4, 2, 2), np.float32)}
    m.update(0.5, np.array([1]), d, k, 0.5)
    out = merged(m, k, 0.5)
    np.testing.assert_array_equal(out["cls"][0], k["cls"][0])  # target 0 has no distractor
    np.testing.assert_allclose(out["cls"][1], (1 - 0.5 * 3) / 0.5)  # (K − α̂·D̄)/(1 − α̂)
    assert out["loc"] is k["loc"]  # regression kernels stay the target's
    m.update(0.5, np.zeros(0, np.int64), {}, k, 0.5)  # decay only: the mean distractor stays, its weight halves
    assert m.weight.tolist() == [0.0, 0.5]
    np.testing.assert_allclose(merged(m, k, 0.5)["cls"][1], (1 - 0.5 * 3) / 0.5)


def test_distractor_kernels_are_rewritten_in_place_only_when_distractors_were_added(tiny_dir, bag_frames):
    """The search kernels are persistent arrays: the merged classification kernels are recomputed (and their
    KernelSet version bumped, so a GPU backend re-uploads them) only after a frame that found distractors, and equal
    what merge_into computes from scratch."""
    d = tiny_dir("siamrpn_alex_dwxcorr")
    dis = Tracker.from_model_dir(d, backend="onnxruntime", threads=1, mode="distractor")
    dis.init(bag_frames[0], np.array([BOX, (100, 60, 80, 50)], float))
    fed = []
    dis.add_observer(lambda ev: fed.append(ev.kernels))
    counts, versions, arrays = [], [], []
    on, off = dis.info, _with_constants(dis, distractor_max=0)  # frames that may / may not find distractors
    for f, find in zip(bag_frames[1:16], [1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 1]):
        dis.info = on if find else off
        want = merged(dis.memory, dis._kernels, dis.info.track.distractor_weight)  # from scratch, before the search
        counts.append(dis.track(f).distractors.sum())
        ks = dis._search_kernels
        versions.append(ks.version("cls_kernel"))
        arrays.append(ks["cls_kernel"])
        np.testing.assert_array_equal(ks["cls_kernel"], want["cls_kernel"])
    assert all(k is fed[0] for k in fed)  # one KernelSet object for the whole run (one group: both targets)
    first = next(i for i, c in enumerate(counts) if c)
    assert arrays[first] is dis._kernels["cls_kernel"]  # until the first distractor: the template's own array
    rewritten = arrays[first + 1]
    assert rewritten is not dis._kernels["cls_kernel"] and all(a is rewritten for a in arrays[first + 1:])
    for i in range(first + 2, len(counts)):  # one bump per frame that follows a frame with new distractors
        assert versions[i] - versions[i - 1] == (1 if counts[i - 1] else 0), (counts, versions)
    assert 0 in counts[first + 1:-1] and versions[-1] > 1  # both cases happened


def test_distractor_mode_learns_templates_and_changes_the_search_kernels(tiny_dir, bag_frames):
    d = tiny_dir("siamrpn_alex_dwxcorr")
    short = Tracker.from_model_dir(d, backend="onnxruntime", threads=1)
    dis = Tracker.from_model_dir(d, backend="onnxruntime", threads=1, mode="distractor")
    templates, kernels_fed = [], []
    dis.add_observer(lambda ev: templates.append((ev.purpose, len(ev.crop))), branch="template")
    dis.add_observer(lambda ev: kernels_fed.append({k: v.copy() for k, v in ev.kernels.items()}))
    short.init(bag_frames[0], BOX)
    dis.init(bag_frames[0], BOX)
    r_s, r_d = short.track(bag_frames[1]), dis.track(bag_frames[1])
    np.testing.assert_array_equal(r_s.boxes, r_d.boxes)  # first frame: nothing learnt, same search as short
    n = int(r_d.distractors[0])
    assert n >= 1, "random tiny weights should give several confident proposals (threshold 0.5)"
    assert templates[-1] == ("distractor", n)
    dis.track(bag_frames[2])
    assert any(not np.array_equal(kernels_fed[-1][k], dis._kernels[k]) for k in dis._kernels)


def test_distractor_memory_leaves_out_non_finite_rows_only():
    """One NaN / inf distractor kernel spoilt its target's memory for good (NaN in S: every later merged kernel NaN).
    Such rows are left out; the batch's other rows, of the same target and of others, are learnt exactly as if the
    bad ones had not been found."""
    rng = np.random.default_rng(0)
    k = {"cls": rng.normal(size=(2, 3, 2, 2)).astype(np.float32), "loc": np.ones((2, 4, 2, 2), np.float32)}
    d = {"cls": rng.normal(size=(4, 3, 2, 2)).astype(np.float32), "loc": np.ones((4, 4, 2, 2), np.float32)}
    d["cls"][1, 0, 0, 0], d["cls"][3, 2, 1, 1] = np.nan, -np.inf
    d["loc"][0] = np.nan  # regression kernels are never learnt: no reason to leave row 0 out
    owner, ok = np.array([0, 0, 1, 1]), np.array([True, False, True, False])
    bad, ref = DistractorMemory(2, k), DistractorMemory(2, k)
    left_out = [bad.update(0.1, owner, d, k, 0.5), ref.update(0.1, owner[ok], {n: v[ok] for n, v in d.items()}, k, 0.5)]
    bad.changed = ref.changed = False
    nan = {n: np.full((2,) + v.shape[1:], np.nan, np.float32) for n, v in d.items()}
    left_out += [bad.update(0.1, np.array([1, 0]), nan, k, 0.5), ref.update(0.1, np.zeros(0, np.int64), {}, k, 0.5)]
    out = merged(bad, k, 0.5)["cls"]
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, merged(ref, k, 0.5)["cls"])
    np.testing.assert_array_equal(bad.sums["cls"], ref.sums["cls"])
    assert not bad.changed and bad.weight.tolist() == ref.weight.tolist() == [0.9, 0.9]
    assert left_out == [2, 0, 2, 0]


def test_distractor_memory_leaves_out_a_frame_whose_rows_overflow_the_merged_kernel():
    """Finite but huge distractor kernels (3e38 in float32) stay finite in S (float64), but the merged kernel
    (K_z − α̂·S/W)/(1 − α̂) overflowed to inf once cast back to float32: the target's search kernel inf for good. That
    target learns none of the frame's rows; the other targets learn theirs as if those were not found; kernels whose
    merged kernel stays finite (1e30) are learnt as before."""
    rng = np.random.default_rng(1)
    k = {"cls": rng.normal(size=(3, 3, 2, 2)).astype(np.float32), "loc": np.ones((3, 4, 2, 2), np.float32)}
    d = {"cls": rng.normal(size=(4, 3, 2, 2)).astype(np.float32), "loc": np.ones((4, 4, 2, 2), np.float32)}
    d["cls"][1] = 3e38  # target 0: mean 1.5e38, merged (K_z − 0.8·1.5e38)/0.2 ≈ −6e38 beyond float32
    owner, ok = np.array([0, 0, 1, 2]), np.array([False, False, True, True])
    bad, ref = DistractorMemory(3, k), DistractorMemory(3, k)
    assert bad.update(0.1, owner, d, k, 0.8) == 2
    assert ref.update(0.1, owner[ok], {n: v[ok] for n, v in d.items()}, k, 0.8) == 0
    out = merged(bad, k, 0.8)["cls"]
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, merged(ref, k, 0.8)["cls"])
    np.testing.assert_array_equal(bad.sums["cls"], ref.sums["cls"])
    assert bad.weight.tolist() == ref.weight.tolist() == [0.0, 1.0, 1.0]
    huge = {n: np.full((1,) + v.shape[1:], 1e30, np.float32) for n, v in d.items()}
    assert bad.update(0.1, np.array([0]), huge, k, 0.8) == 0 and bad.weight[0] == 1.0
    np.testing.assert_allclose(merged(bad, k, 0.8)["cls"][0], (k["cls"][0] - 0.8 * 1e30) / 0.2, rtol=1e-6)
    # above the cheap bound ((|K_z| + α̂·|S|/W)/(1 − α̂) > float32 max) yet finite once merged: K_z and the mean
    # cancel, (3e38 − 0.8·3e38)/0.2 = 3e38: learnt (the bound only decides which rows are merged exactly)
    big = {n: np.full_like(v, 3e38) for n, v in k.items()}
    same = DistractorMemory(3, big)
    assert same.update(0.1, np.array([2]), {n: v[:1] for n, v in big.items()}, big, 0.8) == 0
    assert same.weight[2] == 1.0 and np.isfinite(merged(same, big, 0.8)["cls"]).all()


def test_non_finite_distractor_kernels_are_not_learnt(tiny_dir, bag_frames, caplog):
    """A template branch returning NaN / inf for the distractor crops of one frame lost the target for good (its
    memory NaN, then every merged kernel). Those kernels are left out: the run equals the one where those frames
    found no distractor, with finite kernels and boxes, and one warning (not one per frame) says how many."""
    d = tiny_dir("siamrpn_alex_dwxcorr")
    bad, ref = (Tracker.from_model_dir(d, backend="onnxruntime", threads=1, mode="distractor") for _ in range(2))
    on, off = ref.info, _with_constants(ref, distractor_max=0)
    for t in bad, ref:
        t.init(bag_frames[0], BOX)
    orig, poison, poisoned = bad.backend.run_template, iter([1, 0, 1, 1, 0, 0, 1] + [0] * 100), []

    def broken(z):  # after init every template call is a distractor batch
        out = orig(z)
        if next(poison):
            out["cls_kernel"][:, 0, 0, 0] = np.nan
            out["cls_kernel"][-1, 1] = np.inf
            poisoned.append(len(z))
        return out

    bad.backend.run_template = broken
    with caplog.at_level("WARNING", logger="siamtrt"):
        for f in bag_frames[1:16]:
            n = len(poisoned)
            r = bad.track(f)
            ref.info = off if len(poisoned) > n else on  # the frames whose distractors were poisoned find none
            np.testing.assert_array_equal(r.boxes, ref.track(f).boxes)
            assert np.isfinite(r.boxes).all() and np.isfinite(bad.memory.sums["cls_kernel"]).all()
            np.testing.assert_array_equal(bad._search_kernels["cls_kernel"], ref._search_kernels["cls_kernel"])
    assert len(poisoned) >= 2 and ref.memory.active  # several frames poisoned, others learnt
    assert np.isfinite(bad._search_kernels["cls_kernel"]).all()
    assert bad.distractors_dropped == sum(poisoned)
    msgs = [m for m in caplog.messages if "not finite" in m]
    assert len(msgs) == 1 and f"{poisoned[0]} of {poisoned[0]} distractor kernels from ort-template" in msgs[0]


# ------------------------------------------------------------------------------------------------- errors
def test_mode_errors_give_the_fix_as_its_own_line(tiny_dir):
    """what / fix like every other error: the fix is the error's ``fix``, not "; fix:" inside the what-text."""
    with pytest.raises(InputError) as e:
        parse_mode("long-term")
    assert "did you mean 'longterm'" in e.value.what and "fix" not in e.value.what
    assert "longterm+distractor" in e.value.fix and "\n  fix: use one of" in str(e.value)
    assert parse_mode("distractor+longterm").name == "longterm+distractor"
    for typo, near in (("SHORT", "short"), ("LongTerm", "longterm"), ("Distracter", "distractor")):
        with pytest.raises(InputError, match=f"did you mean {near!r}"):  # case-insensitive suggestion, no fix-up
            parse_mode(typo)
    with pytest.raises(ModelDirError) as e:
        Tracker.from_model_dir(tiny_dir("siamrpn_alex_dwxcorr"), backend="onnxruntime", mode="longterm")
    assert "fix" not in e.value.what and "long-term search size" in e.value.what
    assert "--lost-instance-size 831" in e.value.fix and "siamtrt export --config" in e.value.fix


def test_inconsistent_lt_yaml_is_refused_in_one_line(tmp_path):
    from siamtrt.config import get_config

    src = (Path(__file__).parents[1] / "data" / "pysot_configs" / "siamrpn_r50_l234_dwxcorr_lt"
           / "config.yaml").read_text()
    p = tmp_path / "config.yaml"
    p.write_text(src.replace("CONFIDENCE_LOW: 0.8", "CONFIDENCE_LOW: 0.999"))
    with pytest.raises(ConfigError) as e:
        get_config(p)
    msg = str(e.value)
    assert str(p) in msg and "CONFIDENCE_LOW 0.999" in msg and "fix:" in msg and "\n" not in msg
    p.write_text(src.replace("INSTANCE_SIZE: 255", "INSTANCE_SIZE: 255\n    LOST_INSTANCE_SIZE: 255"))
    with pytest.raises(ConfigError, match="LOST_INSTANCE_SIZE 255 must exceed"):
        get_config(p)


@pytest.mark.parametrize("mode", ["distractor", "longterm+distractor"])
def test_distractor_modes_multi_target_equal_single_trackers(mode, tiny_dir, bag_frames):
    d = _lt_dir(tiny_dir)
    frames = _frames(bag_frames)[:14]
    probe = Tracker.from_model_dir(d, backend="onnxruntime", threads=1)
    probe.init(frames[0], BOX)
    scores = np.array([probe.track(f).score for f in frames[1:]])
    info = _with_constants(probe, confidence_low=float(np.quantile(scores, 0.35)),
                           confidence_high=float(np.quantile(scores, 0.6)))
    boxes = np.array([BOX, (100, 60, 80, 50)], float)
    multi = Tracker(probe.backend, info, mode=mode)
    multi.init(frames[0], boxes)
    singles = [Tracker(probe.backend, info, mode=mode) for _ in boxes]
    for t, b in zip(singles, boxes):
        t.init(frames[0], b)
    learnt = 0
    for f in frames[1:]:
        r = multi.track(f)
        for n, t in enumerate(singles):
            r1 = t.track(f)
            np.testing.assert_allclose(r.boxes[n], r1.bbox, atol=1e-3)
            assert r.distractors[n] == r1.distractors[0] and r.lost[n] == r1.lost[0]
        learnt += int(r.distractors.sum())
    assert learnt > 0 and r.mode == mode


def test_pysot_lt_yaml_selects_longterm_with_its_constants():
    from siamtrt.config import get_config

    configs = Path(__file__).parents[1] / "data" / "pysot_configs"
    cfg = get_config(configs / "siamrpn_r50_l234_dwxcorr_lt" / "config.yaml")
    t = cfg.track
    assert (t.mode, t.lost_instance_size, t.confidence_low, t.confidence_high) == ("longterm", 831, 0.8, 0.998)
    assert (t.window_influence, t.lr, t.penalty_k) == (0.28, 0.22, 0.05)
    assert t.instance_sizes == (255, 831) and t.score_size(8, 831) == 97
    assert cfg.adjust_args["out_channels"] == [128, 256, 512]


@pytest.mark.parametrize("name", ["exit-right-gap10-same", "exit-left-gap10-opposite", "exit-top-gap30-same"])
def test_exit_scenarios_leave_and_come_back_as_specified(name, bag_video):
    """The re-acquisition scenarios of benchmarks/modes.py: the target walks out across the named edge, is absent
    exactly `gap` frames, and is scored only once fully back inside, near the named re-entry edge."""
    from siamtrt.benchmarks.modes import EXIT_SCORED, EXIT_VARIANTS, render, scenario

    v = EXIT_VARIANTS[name]
    r = render(scenario(name, seed=3), bag_video)
    h, w = r.frames[0].shape[:2]
    absent = np.isnan(r.boxes[:, 0])
    gone = np.flatnonzero(absent)
    assert len(gone) == v["gap"] and np.all(np.diff(gone) == 1)
    x, y, bw, bh = r.boxes[gone[0] - 1]  # last visible frame: partly outside the exit edge
    assert {"right": x + bw > w, "left": x < 0, "top": y < 0}[v["exit"]]
    back = {"right": "left", "left": "right", "top": "bottom"}[v["exit"]] if v["reentry"] == "opposite" else v["exit"]
    x, y, bw, bh = r.boxes[gone[-1] + 1]  # first frame back: partly outside the re-entry edge
    assert {"right": x + bw > w, "left": x < 0, "top": y < 0, "bottom": y + bh > h}[back]
    s = r.boxes[r.scored]
    assert r.scored.sum() == EXIT_SCORED and np.all(s[:, :2] >= 0) and np.all(s[:, 0] + s[:, 2] <= w) \
        and np.all(s[:, 1] + s[:, 3] <= h)
    assert not r.scored[: gone[-1] + 1].any()
