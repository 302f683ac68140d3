"""The vectorised post-processing against a straightforward per-anchor transcription of the reference formulas.

``reference_step`` below deliberately shares no code with siamtrt.runtime: it rebuilds anchors and the hanning
window with plain loops and math, and evaluates every anchor one at a time as pysot's SiamRPNTracker.track and
DaSiamRPN's tracker_eval (+ SiamRPN_track clipping) write it.
"""

import math

import numpy as np
import pytest

from siamtrt.runtime.geometry import geometry
from siamtrt.runtime.postprocess import PostParams, Workspace, postprocess

RATIOS = (0.33, 0.5, 1.0, 2.0, 3.0)
SCALES = (8.0,)
STRIDE = 8


def reference_step(cls, loc, center, size, frame_wh, pk, wi, lr, flavour, exemplar=127, instance=287, ca=0.5):
    """One target, one frame. cls [2A,S,S], loc [4A,S,S]. Returns (cx, cy, w, h, score, best_k)."""
    A = len(RATIOS) * len(SCALES)
    S = cls.shape[1]
    anchors = []
    for r in RATIOS:
        ws = int(math.sqrt(STRIDE * STRIDE / r))
        hs = int(ws * r)
        for s in SCALES:
            anchors.append((ws * s, hs * s))
    ori = -(S // 2) * STRIDE
    hann = [0.5 - 0.5 * math.cos(2 * math.pi * n / (S - 1)) for n in range(S)]
    w0, h0 = float(size[0]), float(size[1])
    if flavour == "pysot":
        wz, hz = w0 + ca * (w0 + h0), h0 + ca * (w0 + h0)
    else:
        wz, hz = h0 + ca * (w0 + h0), w0 + ca * (w0 + h0)
    s_z = math.sqrt(wz * hz)
    scale_z = exemplar / s_z
    tw, th = w0 * scale_z, h0 * scale_z

    def change(r):
        return max(r, 1.0 / r)

    def sz(w, h):
        p = (w + h) * 0.5
        return math.sqrt((w + p) * (h + p))

    best = None
    for a in range(A):
        aw, ah = anchors[a]
        for i in range(S):
            for j in range(S):
                bg, fg = float(cls[a, i, j]), float(cls[A + a, i, j])
                m = max(bg, fg)
                score = math.exp(fg - m) / (math.exp(bg - m) + math.exp(fg - m))
                dx, dy = float(loc[a, i, j]), float(loc[A + a, i, j])
                dw, dh = float(loc[2 * A + a, i, j]), float(loc[3 * A + a, i, j])
                px = dx * aw + (ori + STRIDE * j)
                py = dy * ah + (ori + STRIDE * i)
                pw, ph = math.exp(dw) * aw, math.exp(dh) * ah
                s_c = change(sz(pw, ph) / sz(tw, th))
                ratio = (tw / th) if flavour == "dasiamrpn" else (w0 / h0)
                r_c = change(ratio / (pw / ph))
                penalty = math.exp(-(r_c * s_c - 1) * pk)
                pscore = penalty * score * (1 - wi) + hann[i] * hann[j] * wi
                if best is None or pscore > best[0]:
                    best = (pscore, a * S * S + i * S + j, px, py, pw, ph, penalty, score)
    _, k, px, py, pw, ph, penalty, score = best
    l = penalty * score * lr
    cx = center[0] + px / scale_z
    cy = center[1] + py / scale_z
    w = w0 * (1 - l) + pw / scale_z * l
    h = h0 * (1 - l) + ph / scale_z * l
    W, H = frame_wh
    cx = max(0, min(W, cx))
    cy = max(0, min(H, cy))
    w = max(10, min(W, w))
    h = max(10, min(H, h))
    return cx, cy, w, h, score, k


def _run(cls, loc, centers, sizes, frame_wh, params, S, instance=287):
    geo = geometry(S, STRIDE, RATIOS, SCALES, params.flavour)
    w, h = sizes[:, 0], sizes[:, 1]
    ca = 0.5
    if params.flavour == "pysot":
        s_z = np.sqrt((w + ca * (w + h)) * (h + ca * (w + h)))
    else:
        s_z = np.sqrt((h + ca * (w + h)) * (w + ca * (w + h)))
    return postprocess(cls, loc, geo, centers, sizes, 127 / s_z, frame_wh, params, Workspace())


@pytest.mark.parametrize("flavour,S,pk,wi,lr", [("pysot", 21, 0.16, 0.40, 0.30), ("pysot", 25, 0.05, 0.42, 0.38),
                                                ("dasiamrpn", 19, 0.055, 0.42, 0.295),
                                                ("dasiamrpn", 21, 0.22, 0.40, 0.30)])
def test_random_maps_match_reference(flavour, S, pk, wi, lr, rng):
    n = 4
    cls = rng.normal(0, 2.0, (n, 10, S, S)).astype(np.float32)
    loc = rng.normal(0, 0.3, (n, 20, S, S)).astype(np.float32)
    centers = rng.uniform(20, 400, (n, 2))
    sizes = rng.uniform(15, 150, (n, 2))
    params = PostParams(pk, wi, lr, flavour)
    res = _run(cls, loc, centers, sizes, (480, 360), params, S)
    for t in range(n):
        cx, cy, w, h, score, k = reference_step(cls[t], loc[t], centers[t], sizes[t], (480, 360), pk, wi, lr, flavour)
        assert res.best[t] == k
        np.testing.assert_allclose(res.center[t], [cx, cy], rtol=0, atol=1e-9)
        np.testing.assert_allclose(res.size[t], [w, h], rtol=0, atol=1e-9)
        assert res.score[t] == pytest.approx(score, abs=1e-12)


def test_single_peak_decodes_to_known_box():
    """A lone confident anchor with zero deltas decodes to that anchor's box in image pixels."""
    S, A = 21, 5
    cls = np.zeros((1, 2 * A, S, S), np.float32)
    loc = np.zeros((1, 4 * A, S, S), np.float32)
    a, i, j = 2, 10, 13  # square 64x64 anchor, 3 cells right of centre
    cls[0, A + a, i, j] = 40.0  # foreground logit → probability 1
    center = np.array([[200.0, 150.0]])
    size = np.array([[60.0, 60.0]])
    params = PostParams(penalty_k=0.0, window_influence=0.4, lr=1.0, flavour="pysot")
    res = _run(cls, loc, center, size, (480, 360), params, S)
    scale_z = 127 / math.sqrt(120.0 * 120.0)  # w_z = h_z = 60 + 0.5·120
    assert res.best[0] == a * S * S + i * S + j
    assert res.score[0] == pytest.approx(1.0)
    np.testing.assert_allclose(res.center[0], [200 + (3 * 8) / scale_z, 150.0], atol=1e-9)
    np.testing.assert_allclose(res.size[0], [64 / scale_z, 64 / scale_z], atol=1e-9)
    box = np.concatenate([res.center[0] - res.size[0] / 2, res.size[0]])  # the tracker's output box
    np.testing.assert_allclose(box, [200 + 24 / scale_z - 32 / scale_z, 150 - 32 / scale_z,
                                     64 / scale_z, 64 / scale_z], atol=1e-9)


def test_single_peak_with_deltas_and_smoothing():
    """Deltas shift/scale the anchor; LR smoothing mixes old and new size by penalty·score·LR."""
    S, A = 19, 5
    cls = np.full((1, 2 * A, S, S), -3.0, np.float32)
    cls[0, :A] = 3.0  # background everywhere
    loc = np.zeros((1, 4 * A, S, S), np.float32)
    a, i, j = 1, 8, 9  # 88x40 anchor, one cell above centre
    cls[0, a, i, j], cls[0, A + a, i, j] = 0.0, 6.0
    loc[0, a, i, j], loc[0, A + a, i, j] = 0.25, -0.5
    loc[0, 2 * A + a, i, j], loc[0, 3 * A + a, i, j] = math.log(1.5), math.log(0.5)
    center, size = np.array([[100.0, 80.0]]), np.array([[50.0, 30.0]])
    params = PostParams(penalty_k=0.055, window_influence=0.42, lr=0.295, flavour="dasiamrpn")
    res = _run(cls, loc, center, size, (480, 360), params, S)
    cx, cy, w, h, score, k = reference_step(cls[0], loc[0], center[0], size[0], (480, 360), 0.055, 0.42, 0.295,
                                            "dasiamrpn")
    assert k == res.best[0] == a * S * S + i * S + j
    s_z = math.sqrt((30 + 40) * (50 + 40))
    scale_z = 127 / s_z
    assert cx == pytest.approx(100 + (0.25 * 88 + 0) / scale_z)
    assert cy == pytest.approx(80 + (-0.5 * 40 - 8) / scale_z)
    np.testing.assert_allclose(res.center[0], [cx, cy], atol=1e-9)
    np.testing.assert_allclose(res.size[0], [w, h], atol=1e-9)
    assert 50 < res.size[0, 0] < 132 / scale_z and res.size[0, 1] < 30  # moved towards (132, 20)/scale_z


def test_clipping_to_frame():
    S, A = 21, 5
    cls = np.zeros((2, 2 * A, S, S), np.float32)
    loc = np.zeros((2, 4 * A, S, S), np.float32)
    cls[:, A + 0, 0, 0] = 40.0  # top-left corner anchor wins (window is 0 there, score 1 dominates)
    loc[:, 2 * A:] = 5.0  # huge boxes
    params = PostParams(penalty_k=0.0, window_influence=0.0, lr=1.0, flavour="pysot")
    res = _run(cls, loc, np.array([[5.0, 5.0], [470.0, 350.0]]), np.array([[40.0, 40.0], [40.0, 40.0]]),
               (480, 360), params, S)
    assert res.center[0].tolist() == [0.0, 0.0]
    assert res.size[0].tolist() == [480.0, 360.0]
    cls2 = np.zeros((1, 2 * A, S, S), np.float32)
    loc2 = np.full((1, 4 * A, S, S), -8.0, np.float32)  # tiny boxes → min size 10
    res2 = _run(cls2, loc2, np.array([[100.0, 100.0]]), np.array([[12.0, 12.0]]), (480, 360),
                PostParams(0.0, 0.0, 1.0, "pysot"), S)
    assert res2.size[0].tolist() == [10.0, 10.0]


def test_workspace_reused_between_calls(rng):
    S = 21
    geo = geometry(S, STRIDE, RATIOS, SCALES, "pysot")
    ws = Workspace()
    cls = rng.normal(size=(3, 10, S, S)).astype(np.float32)
    loc = rng.normal(0, 0.2, (3, 20, S, S)).astype(np.float32)
    args = (np.full((3, 2), 100.0), np.full((3, 2), 40.0), np.full(3, 1.5), (480, 360), PostParams(0.1, 0.4, 0.3))
    r1 = postprocess(cls, loc, geo, *args[:3], args[3], args[4], ws)
    arrays = dict(ws.arrays)
    r2 = postprocess(cls, loc, geo, *args[:3], args[3], args[4], ws)
    assert all(ws.arrays[k] is arrays[k] for k in arrays)
    np.testing.assert_array_equal(r1.center, r2.center)
