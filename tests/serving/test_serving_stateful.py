"""The tracker model's logic in-process: per-sequence runtime Trackers over a branch-calling backend equal the
runtime's own tracker, sequences do not disturb each other, and protocol errors are named."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from siamtrt.benchmarks.data import DEFAULT_BOX
from siamtrt.errors import InputError
from siamtrt.runtime import Tracker
from siamtrt.serving.repository import write_repository
from siamtrt.serving.stateful import SequenceTrackers

BOX = DEFAULT_BOX


@pytest.fixture(scope="module")
def sequences_factory(serving_model, tmp_path_factory):
    rep = write_repository(serving_model, tmp_path_factory.mktemp("repo_stateful"))
    here = rep.out / "siamtrt_tracker" / "1"
    meta = json.loads((here / "siamtrt_model.json").read_text())
    sessions = {b: ort.InferenceSession(str(rep.out / f"siamtrt_{b}" / "1" / "model.onnx")) for b in
                ("template", "search")}
    calls = []

    def call(branch, feed):
        calls.append(branch)
        names = meta["io"][branch]["outputs"]
        return dict(zip(names, sessions[branch].run(names, feed)))

    return lambda: SequenceTrackers.from_repository_meta(meta, call, here), calls


def test_sequences_equal_the_runtime(serving_model, serving_frames, sequences_factory):
    make, calls = sequences_factory
    seqs = make()
    ref = Tracker.from_model_dir(serving_model, backend="onnxruntime")
    ref.init(serving_frames[0], BOX)
    box0, s0 = seqs.handle(11, True, False, serving_frames[0], np.array(BOX))
    np.testing.assert_array_equal(box0, BOX)
    # A second sequence started late on another box must not disturb the first.
    seqs.handle(12, True, False, serving_frames[3], np.array((100.0, 100.0, 60.0, 80.0)))
    n0 = len(calls)
    for i, f in enumerate(serving_frames[1:15], 1):
        res = ref.track(f)
        want_box, want_score = res.bbox, res.score
        got_box, got_score = seqs.handle(11, False, i == 14, f)
        np.testing.assert_array_equal(got_box, want_box)
        assert got_score == want_score
        seqs.handle(12, False, False, f)
    assert calls[n0:] == ["search"] * 28  # the branches really ran through the call
    assert len(seqs) == 1  # END released sequence 11


def test_protocol_errors(serving_frames, sequences_factory):
    make, _ = sequences_factory
    seqs = make()
    with pytest.raises(InputError, match="was not started"):
        seqs.handle(5, False, False, serving_frames[1])
    with pytest.raises(InputError, match="no init_box"):
        seqs.handle(6, True, False, serving_frames[0], None)
    seqs.handle(7, True, False, serving_frames[0], np.array(BOX))
    seqs.idle_seconds = 0.0
    seqs.handle(8, True, False, serving_frames[0], np.array(BOX))  # a START expires idle sequences
    with pytest.raises(InputError, match="idle"):
        seqs.handle(7, False, False, serving_frames[1])


def test_abandoned_sequences_are_released_by_any_request(serving_frames, sequences_factory):
    """A sequence whose client disconnected without END is dropped once idle, at the next request of any stream
    (not only at a START), and the model is told which ones (it logs them)."""
    make, _ = sequences_factory
    seqs = make()
    released = []
    seqs.on_release = released.extend
    for cid in (21, 22, 23):
        seqs.handle(cid, True, False, serving_frames[0], np.array(BOX))
    seqs.handle(21, False, False, serving_frames[1])
    assert seqs.expire_idle() == [] and len(seqs) == 3  # nothing idle yet (60 s default)
    seqs.idle_seconds = 0.05
    import time

    time.sleep(0.1)
    seqs._seen[23] = time.monotonic()  # 23 is still active
    seqs.handle(23, False, False, serving_frames[2])  # a plain request of another stream releases 21 and 22
    assert sorted(released) == [21, 22] and seqs.released_idle == 2 and len(seqs) == 1
    with pytest.raises(InputError, match="idle"):
        seqs.handle(22, False, False, serving_frames[3])
