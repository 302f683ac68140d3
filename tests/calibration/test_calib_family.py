"""INT8 fidelity on a family of checkpoints the quantizer was not tuned on (issue 13).

Members: seeds of the realistic random init other than the fixtures' seed 0, heads scaled 0.5× and 2× (the last
head convolutions, after the BatchNorm recalibration), BatchNorm statistics from bag.avi frames or from synthetic
texture frames — each saved as a pysot-layout ``model.pth`` and exported through the same path a user's
checkpoint takes. Calibration: 24 crops along the FP32 trajectory on the first 48 frames of bag.avi (the fixtures'
recipe). Held-out check: search crops from the bag OTB sequence's ground truth, at frames ≥ 48 only, with their
own template (frame 0 ground-truth box) — none of them reached the ranges or the fallback choice.

The default quantizer (``min_cosine=0.98``) must keep cls cosine ≥ 0.98 on every member; the start set alone
(``min_cosine=0``: stem, correlations, tail float) must miss it on the mobilev2 member, so these tests fail with
the fidelity search off. One alex and one mobilev2 member run in the normal suite; the other members are ``slow``
and run with SIAMTRT_FAMILY=full (about 30 min).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from calib_helpers import ALEX, BAG_INIT_BOX, FRAMES, MOBILEV2, SAMPLES, TEMPLATES, run_branches
from siamtrt.calibration.report import cosine
from siamtrt.calibration.sensitivity import prefix_fallback, template_target
from siamtrt.metadata import read_onnx_metadata

import os

R50 = "siamrpn_r50_l234_dwxcorr"
#: the wider family takes ~30 min on 2 cores (r50 members ~5 min each), too long for every CI run
FULL = os.environ.get("SIAMTRT_FAMILY") == "full"
needs_full = pytest.mark.skipif(not FULL, reason="wider INT8 family (~30 min on 2 cores): set SIAMTRT_FAMILY=full; "
                                                 "last results per member are in docs/calibration.md")
TARGET = 0.98
HELD_OUT = 24   # ground-truth crops sampled over the whole sequence, those at frames ≥ FRAMES kept

#: (arch, seed, head scale, BatchNorm crops)
QUICK = [(ALEX, 1, 0.5, "synthetic"), (MOBILEV2, 1, 1.0, "bag")]
SLOW = [(ALEX, 2, 2.0, "bag"), (MOBILEV2, 2, 0.5, "synthetic"), (MOBILEV2, 3, 2.0, "bag"), (R50, 1, 1.0, "bag"),
        (R50, 2, 2.0, "synthetic")]


def member_id(m) -> str:
    return f"{m[0].split('_')[1]}-seed{m[1]}-head{m[2]}-bn_{m[3]}"


@pytest.fixture(scope="session")
def family(calib_frames, bag_video, bag_sequence, tmp_path_factory):
    """Factory: ``family(member)`` → (model dir, calibration .npz, held-out CalibrationSet), cached."""
    import torch

    from siamtrt.calibration.collect import SourceSpec, collect
    from siamtrt.export.onnx import export_model
    from siamtrt.export.random_init import realistic_random_model, scale_rpn_heads, synthetic_frames

    root = tmp_path_factory.mktemp("family")
    cache = {}

    def make(m):
        if m not in cache:
            name, seed, head, bn = m
            d = root / member_id(m)
            d.mkdir()
            frames = calib_frames if bn == "bag" else synthetic_frames(6, seed=seed)
            model = realistic_random_model(name, seed, frames)
            scale_rpn_heads(model, head)
            torch.save(model.state_dict(), d / "model.pth")
            out = d / "fp32"
            export_model(name, out, checkpoint=d / "model.pth")
            calib = collect(out, [SourceSpec(bag_video, bbox=BAG_INIT_BOX)], d / "calib.npz", max_samples=SAMPLES,
                            templates_per_source=TEMPLATES, max_frames=FRAMES, progress=False).path
            ev = collect(out, [SourceSpec(bag_sequence)], None, max_samples=HELD_OUT, templates_per_source=1,
                         progress=False).calib
            keep = np.array([f >= FRAMES for f in ev.meta["sources"][0]["search_frames"]])
            held = replace(ev, search=ev.search[keep], pair=ev.pair[keep])
            cache[m] = (out, calib, held)
        return cache[m]

    return make


def _held_out_cosines(src: Path, cand: Path, held):
    _, rc, rl = run_branches(src, held)
    _, qc, ql = run_branches(cand, held)
    return cosine(rc, qc), cosine(rl, ql)


def _check_member(family, m, target, tmp_path):
    from siamtrt.calibration.qdq import quantize_int8

    src, calib, held = family(m)
    assert len(held.search) >= 10
    out = tmp_path / f"{member_id(m)}_{target}"
    quantize_int8(src, calib, out, target=target, progress=False)
    cls, loc = _held_out_cosines(src, out, held)
    meta = read_onnx_metadata(out / "search.onnx")["quantization"]
    fid = meta["fidelity"]
    assert fid["met"] and fid["min_cosine"] == TARGET and fid["pair"]["cls"] >= TARGET
    assert fid["branches"]["search"]["float_nodes"] == len(meta["excluded_nodes"])
    assert 0 < meta["float_mac_share"] < 1
    assert cls >= TARGET, f"{member_id(m)} {target}: held-out cls cosine {cls:.4f} (quantizer's subset: {fid['pair']})"
    assert loc >= TARGET - 0.01, f"{member_id(m)} {target}: held-out loc cosine {loc:.4f}"
    return cls, loc, fid


@pytest.mark.parametrize("m", QUICK, ids=member_id)
def test_fallback_meets_target_on_member(family, m, tmp_path):
    _check_member(family, m, "onnxruntime", tmp_path)


@pytest.mark.slow
@needs_full
@pytest.mark.parametrize("m", SLOW, ids=member_id)
def test_fallback_meets_target_on_slow_member(family, m, tmp_path):
    _check_member(family, m, "onnxruntime", tmp_path)


@pytest.mark.parametrize("m", [QUICK[0]], ids=member_id)
def test_tensorrt_qdq_target_meets_target(family, m, tmp_path):
    """The tensorrt Q/DQ target, fidelity measured by ONNX Runtime executing its Q/DQ graph."""
    _check_member(family, m, "tensorrt", tmp_path)


@pytest.mark.slow
@needs_full
@pytest.mark.parametrize("m", [QUICK[1], SLOW[1]], ids=member_id)
def test_tensorrt_qdq_target_meets_target_slow(family, m, tmp_path):
    _check_member(family, m, "tensorrt", tmp_path)


def test_start_set_alone_misses_target(family, tmp_path):
    """The feature off: on the mobilev2 member the start set (stem, correlations, tail float; ``min_cosine=0``)
    gives held-out cls cosine well below 0.98 (measured ≈ 0.87), so the member test above passes only because the
    float prefix was searched."""
    from siamtrt.calibration.qdq import quantize_int8

    m = QUICK[1]
    src, calib, held = family(m)
    out = tmp_path / "start_only"
    quantize_int8(src, calib, out, min_cosine=0, progress=False)
    cls, _ = _held_out_cosines(src, out, held)
    fid = read_onnx_metadata(out / "search.onnx")["quantization"]["fidelity"]
    assert fid["branches"]["search"]["prefix"] == 0 and fid["branches"]["search"]["evaluations"] == 1
    assert cls < TARGET, f"start set alone reached {cls:.4f}: the member no longer exercises the fallback"


# --------------------------------------------------------------------------------------- the search itself
def test_prefix_fallback_bisects_to_the_shortest_prefix():
    convs = [f"c{i}" for i in range(40)]
    macs = {c: 1.0 for c in convs}
    calls = []

    def measure(nodes):  # fidelity grows with the prefix, reaches 0.98 at 13 convs
        calls.append(len(nodes))
        f = 0.9 + 0.08 * min(len(nodes), 13) / 13 + 0.0001 * len(nodes)
        return {"cls": f, "loc": f + 0.01, "fidelity": f}

    r = prefix_fallback(convs, macs, measure, 0.98)
    assert r.met and r.prefix == 13 and r.float_nodes == convs[:13]
    assert r.evaluations == len(set(calls)) <= 2 + int(np.ceil(np.log2(40)))
    assert abs(r.float_mac_share - 13 / 40) < 1e-9 and r.achieved["fidelity"] >= 0.98
    assert [s["prefix"] for s in r.steps] == sorted(s["prefix"] for s in r.steps)
    # margin: the search aims higher than the target
    assert prefix_fallback(convs, macs, measure, 0.98, margin=0.002).prefix > 13
    # no search: the start set, measured once
    calls.clear()
    r0 = prefix_fallback(convs, macs, measure, 0.0)
    assert r0.prefix == 0 and calls == [0] and r0.met


def test_prefix_fallback_reports_an_unreachable_target():
    convs = [f"c{i}" for i in range(8)]
    r = prefix_fallback(convs, {c: 1.0 for c in convs}, lambda n: {"cls": 0.9, "loc": 0.9, "fidelity": 0.9}, 0.98)
    assert not r.met and "not reached" in r.note and r.prefix == 7
    assert template_target(0.98) == pytest.approx(0.995)


def test_cli_min_cosine_zero_keeps_the_start_set(model_dir, calib_set, tmp_path, capsys):
    """--min-cosine 0 quantizes the start set without searching; --float-prefix still forces float convs."""
    from siamtrt.cli import quantize as cli  # what calibration/quantize.py and `siamtrt quantize` run

    path, _ = calib_set(ALEX)
    assert cli.main(["--model", str(model_dir(ALEX)), "--calib", str(path), "--precision", "int8",
                     "--min-cosine", "0", "--float-prefix", "0.05", "--out", str(tmp_path / "q")]) == 0
    printed = capsys.readouterr().out
    assert "float set:" in printed and "fidelity search: target 0.000" in printed
    fid = read_onnx_metadata(tmp_path / "q" / "search.onnx")["quantization"]["fidelity"]
    assert fid["min_cosine"] == 0.0 and fid["branches"]["search"]["evaluations"] == 1
    assert fid["branches"]["search"]["prefix"] == 0 and fid["branches"]["template"]["prefix"] == 0
    meta = read_onnx_metadata(tmp_path / "q" / "search.onnx")["quantization"]
    assert meta["float_prefix"]["search"] == 0.05 and meta["float_mac_share"] > 0.0


# ------------------------------------------------------------------------------------------ the fidelity measure
def _cset(pairs):
    from siamtrt.calibration.data import CalibrationSet

    n_t = max(pairs) + 1
    return CalibrationSet(template=np.arange(n_t, dtype=np.uint8).reshape(n_t, 1, 1, 1).repeat(3, 1),
                          search=np.arange(len(pairs), dtype=np.uint8).reshape(-1, 1, 1, 1).repeat(3, 1),
                          pair=np.array(pairs), kernels={}, meta={})


def test_fidelity_subsets_cover_every_template_and_are_disjoint():
    from siamtrt.calibration.sensitivity import fidelity_subsets

    cset = _cset([0] * 30 + [1] * 30 + [2] * 10 + [3] * 2)
    (tpl, srch, pair), held = fidelity_subsets(cset, 12, 12)
    assert len(srch) == 12 and len(tpl) == 4 and set(pair.tolist()) == {0, 1, 2, 3}
    # each crop keeps its own template after re-indexing (the crops encode their index, the templates theirs)
    assert [int(tpl[p, 0, 0, 0]) for p in pair] == [int(cset.pair[s]) for s in srch[:, 0, 0, 0]]
    h_tpl, h_srch, h_pair = held
    assert len(h_srch) == 12 and not set(srch[:, 0, 0, 0].tolist()) & set(h_srch[:, 0, 0, 0].tolist())
    assert [int(h_tpl[p, 0, 0, 0]) for p in h_pair] == [int(cset.pair[s]) for s in h_srch[:, 0, 0, 0]]
    # everything in the subset: no held-out crops left
    assert fidelity_subsets(cset, 100, 12)[1] is None and fidelity_subsets(cset, 12, 0)[1] is None


def test_fidelity_is_the_worst_templates():
    """Pooled over all crops a bad template hides behind good ones; the probe reports the worst template's."""
    from siamtrt.calibration.sensitivity import FidelityProbe

    rng = np.random.default_rng(0)
    probe = FidelityProbe.__new__(FidelityProbe)
    probe.pair = np.array([0] * 6 + [1] * 2)
    ref_cls, ref_loc = rng.normal(size=(8, 10, 5, 5)), rng.normal(size=(8, 20, 5, 5))
    probe.ref = (ref_cls, ref_loc)
    cls = ref_cls.copy()
    cls[6:] += rng.normal(scale=0.5, size=cls[6:].shape)        # template 1 degraded
    s = probe._score(cls, ref_loc.copy())
    assert s["worst_template"] == 1 and s["fidelity"] == s["cls"] < s["cls_pooled"] < 1.0
    assert s["cls"] == pytest.approx(cosine(ref_cls[6:], cls[6:])) and s["loc"] == pytest.approx(1.0)


def test_report_prints_the_quantizers_subset_and_held_out_figures():
    from siamtrt.cli import report as cli   # calibration/report.py is a shim over it
    branch = {"float_nodes": 3, "float_mac_share": 0.04, "prefix": 2, "candidates": 9, "note": "",
              "steps": [{"prefix": 0, "fidelity": 0.95, "mac_share": 0.0}, {"prefix": 2, "fidelity": 0.985,
                                                                           "mac_share": 0.031}]}
    fid = {"min_cosine": 0.98, "met": True, "subset_crops": 32, "pair": {"cls": 0.984, "loc": 0.999},
           "measure": "worst template", "held_out_crops": 32, "held_out": {"cls": 0.975, "loc": 0.999},
           "held_out_met": False, "branches": {"search": branch}}
    lines = cli.fidelity_lines({"candidates": [{"name": "q", "quantization": {"fidelity": fid}}]})
    assert "worst template: pair cls 0.9840" in lines[0] and "held-out 32 crops: cls 0.9750" in lines[0]
    assert "below the target" in lines[0] and "prefix 2/9 convs" in lines[1]
    assert "0: 0.9500, 0.0 %, 2: 0.9850, 3.1 %" in lines[2]
