"""The Triton client without a server (a recording stand-in for tritonclient): every sequence it starts is ENDed —
a 1-frame video, a failed or interrupted stream — without hiding the error that stopped it; sequence ids do not
depend on the clock; a failed request's fix names the likely mistake; the command's summary of a 1-frame run."""

from __future__ import annotations

import types

import numpy as np
import pytest

from siamtrt.serving import client as client_mod
from siamtrt.serving.repository import ServingError

BOX = (2.0, 2.0, 4.0, 4.0)
FRAMES = [np.full((12, 16, 3), i, np.uint8) for i in range(5)]


class _Recorder:
    """tritonclient's module as RemoteTracker uses it: every request's (start, end) flags recorded; request number
    ``fail_at`` (0-based) raises like a server that went away."""

    def __init__(self, fail_at=None):
        self.requests = []
        self.fail_at = fail_at
        rec = self

        class Input:
            def __init__(self, name, shape, dtype):
                self.name = name

            def set_data_from_numpy(self, a):
                pass

        class Client:
            def __init__(self, url, **kw):
                pass

            def infer(self, model, inputs, outputs=None, sequence_id=0, sequence_start=False, sequence_end=False,
                      **kw):
                rec.requests.append((sequence_id, sequence_start, sequence_end))
                if len(rec.requests) - 1 == rec.fail_at:
                    raise ConnectionError("Socket closed")
                return types.SimpleNamespace(as_numpy=lambda n: np.asarray(BOX) if n == "bbox" else np.ones(1))

            def close(self):
                pass

        self.module = types.SimpleNamespace(InferInput=Input, InferRequestedOutput=lambda name: name,
                                            InferenceServerClient=Client)


@pytest.fixture
def recorder(monkeypatch):
    def install(fail_at=None):
        rec = _Recorder(fail_at)
        monkeypatch.setattr(client_mod, "_client_module", lambda protocol: rec.module)
        return rec

    return install


def test_a_one_frame_video_starts_and_ends_its_sequence(recorder):
    rec = recorder()
    res = client_mod.track_video("h:1", FRAMES[:1], BOX)
    assert len(res.boxes) == 1
    assert [(s, e) for _, s, e in rec.requests] == [(True, True)]  # was START only: held until the idle timeout


def test_a_failed_stream_is_ended_and_its_error_kept(recorder):
    rec = recorder(fail_at=2)
    with pytest.raises(ServingError, match="request failed") as e:
        client_mod.track_video("h:1", FRAMES, BOX)
    assert "Socket closed" in e.value.evidence
    assert [(s, e) for _, s, e in rec.requests] == [(True, False), (False, False), (False, False), (False, True)]
    assert len({i for i, _, _ in rec.requests}) == 1


def test_a_failed_start_is_ended(recorder):
    rec = recorder(fail_at=0)
    with pytest.raises(ServingError, match="request failed"):
        client_mod.track_video("h:1", FRAMES, BOX)
    assert [(s, e) for _, s, e in rec.requests] == [(True, False), (False, True)]


def test_an_interrupted_stream_is_ended(recorder):
    rec = recorder()

    def frames():
        yield from FRAMES[:3]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client_mod.track_video("h:1", frames(), BOX)
    assert [(s, e) for _, s, e in rec.requests] == [(True, False), (False, False), (False, True)]


def test_a_complete_stream_sends_one_end(recorder):
    rec = recorder()
    client_mod.track_video("h:1", FRAMES, BOX)
    assert [e for _, _, e in rec.requests] == [False] * 4 + [True]


def test_sequence_ids_do_not_depend_on_the_clock(monkeypatch):
    """Two client processes started in the same millisecond (the clock frozen, each process's counter at its
    start) must not share a correlation id: the server would mix their sequences."""
    import itertools

    monkeypatch.setattr(client_mod.time, "time", lambda: 1_700_000_000.0)
    ids = []
    for _ in range(2):  # a fresh process each time: its counter starts again
        monkeypatch.setattr(client_mod, "_ids", itertools.count(1), raising=False)
        ids.append(client_mod._next_sequence_id())
    assert ids[0] != ids[1]
    assert all(0 < i < 1 << 63 for i in ids)


@pytest.mark.parametrize("evidence,protocol,expect", [
    ("[StatusCode.UNAVAILABLE] failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:8000: "
     "Socket closed", "grpc", "--protocol http"),
    ("('Expected HTTP/, RTSP/ or ICE/', 8)", "http", "--protocol grpc"),
    ("[StatusCode.NOT_FOUND] Request for unknown model: 'foo_tracker' is not found", "grpc", "--prefix"),
    ("[StatusCode.UNAVAILABLE] failed to connect to all addresses; Connection refused", "grpc", "--protocol"),
    # a server stopping mid-stream (SIGTERM) is not a protocol mismatch, though its words hold "Socket closed"
    ("[StatusCode.UNAVAILABLE] Stream removed (Socket closed (GOAWAY received; Error code: 0; Debug Text: ))",
     "grpc", "the server is stopping"),
    ("[StatusCode.DEADLINE_EXCEEDED] Deadline Exceeded", "grpc", "--idle-seconds"),
])
def test_request_fix_names_the_likely_mistake(evidence, protocol, expect):
    fix = client_mod._request_fix(evidence, "foo_tracker", protocol)
    assert expect in fix, fix


def test_summary_of_a_one_frame_run():
    from siamtrt.cli.client import summary

    one = client_mod.StreamResult(np.zeros((1, 4)), np.ones(1), 0.02, np.zeros(0))
    assert "nan" not in summary(one) and "0.0 frames/s" not in summary(one) and "1 frame " in summary(one)
    three = client_mod.StreamResult(np.zeros((3, 4)), np.ones(3), 1.0, np.asarray([0.1, 0.2]))
    assert "3 frames in 1.00 s (2.0 frames/s, median latency 150.0 ms)" in summary(three)
