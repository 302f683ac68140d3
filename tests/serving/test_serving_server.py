"""Against a REAL tritonserver (the nvidia-pytriton wheel's CPU build, or $SIAMTRT_TRITONSERVER): the generated
repository is served, and boxes through the server equal the in-process runtime's on bag.avi for 1 stream (gRPC and
HTTP) and 8 concurrent streams, whose search requests the dynamic batcher really merges."""

from __future__ import annotations

import numpy as np
import pytest

from siamtrt.runtime import Tracker
from siamtrt.serving.repository import ServingError, write_repository

from serving_helpers import require_server

BOX = (316.0, 140.0, 112.0, 115.0)


@pytest.fixture(scope="module")
def server(serving_model, tmp_path_factory):
    dist = require_server()
    from siamtrt.serving.server import TritonServer

    repo = write_repository(serving_model, tmp_path_factory.mktemp("repo_served"), max_batch=8,
                            queue_delay_us=5000).out
    srv = TritonServer(repo, dist=dist, startup_timeout=120)
    srv.start()
    yield srv
    srv.stop()
    assert srv.proc.poll() is not None


@pytest.fixture(scope="module")
def reference(serving_model, serving_frames):
    """In-process runtime boxes/scores for the same frames (frame 0: the init box, score 1)."""
    t = Tracker.from_model_dir(serving_model, backend="onnxruntime")
    t.init(serving_frames[0], BOX)
    res = [(r.bbox, r.score) for r in (t.track(f) for f in serving_frames[1:])]
    return np.stack([np.asarray(BOX)] + [b for b, _ in res]), np.asarray([1.0] + [s for _, s in res])


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_one_stream_equals_runtime(server, serving_frames, reference, protocol):
    from siamtrt.serving.client import track_video

    res = track_video(server.url(protocol), serving_frames, BOX, protocol=protocol)
    np.testing.assert_array_equal(res.boxes, reference[0])
    np.testing.assert_array_equal(res.scores, reference[1])
    assert len(res.latencies) == len(serving_frames) - 1


def _search_stats(server):
    import tritonclient.http as h

    st = h.InferenceServerClient(server.http_url).get_inference_statistics("siamtrt_search")["model_stats"][0]
    return int(st["inference_count"]), int(st["execution_count"])


def test_eight_concurrent_streams_equal_runtime_and_are_batched(server, serving_frames, reference):
    from siamtrt.serving.client import track_streams

    inf0, exe0 = _search_stats(server)
    results = track_streams(server.grpc_url, [(serving_frames, BOX)] * 8, protocol="grpc")
    for r in results:
        np.testing.assert_array_equal(r.boxes, reference[0])
        np.testing.assert_array_equal(r.scores, reference[1])
    inf1, exe1 = _search_stats(server)
    inferences, executions = inf1 - inf0, exe1 - exe0
    assert inferences == 8 * (len(serving_frames) - 1)
    # Dynamic batching: the 8 streams' search requests share executions (1.0 would mean no batching at all).
    assert inferences / executions > 1.5, (inferences, executions)


def test_mixed_sequences_and_errors(server, serving_frames, reference):
    """A stream on another box runs beside the bag stream without changing it; a frame for a sequence that was never
    started, or a START without a box, is answered with an error naming the cause, and the server keeps serving."""
    from siamtrt.serving.client import RemoteTracker, track_streams

    other = [f[:, ::-1].copy() for f in serving_frames]  # mirrored video, mirrored box
    w = serving_frames[0].shape[1]
    obox = (w - BOX[0] - BOX[2], BOX[1], BOX[2], BOX[3])
    a, b = track_streams(server.url("http"), [(serving_frames, BOX), (other, obox)], protocol="http")
    np.testing.assert_array_equal(a.boxes, reference[0])
    assert not np.array_equal(b.boxes, reference[0])
    rt = RemoteTracker(server.grpc_url, "grpc", sequence_id=987654321)
    rt.sequence_id = 987654321
    with pytest.raises(ServingError, match="START flag"):  # the sequence batcher's own check
        rt.track(serving_frames[1])
    with pytest.raises(ServingError, match="no init_box"):  # the tracker model's check
        rt._infer(serving_frames[0], None, start=True, end=True)
    assert server.is_ready()


def test_onnxruntime_flavour_fails_only_for_the_missing_backend(serving_model, tmp_path):
    """The wheel's server has no ONNX Runtime backend: the onnxruntime_onnx configs pass Triton's own parsing and
    are refused only because the backend library is absent (a broken config is refused differently)."""
    dist = require_server()
    if (dist.backends / "onnxruntime").is_dir():
        pytest.skip("this tritonserver has the onnxruntime backend: the served python-backend tests cover it")
    import tritonclient.http as h

    from siamtrt.serving.server import TritonServer

    rep = write_repository(serving_model, tmp_path / "repo_ort", backend="onnxruntime")
    broken = rep.out / "siamtrt_broken"
    broken.mkdir()
    (broken / "config.pbtxt").write_text(rep.models["siamtrt_template"].read_text()
                                         .replace("siamtrt_template", "siamtrt_broken").replace("dims:", "dimz:"))
    with TritonServer(rep.out, dist=dist, extra_args=["--model-control-mode=explicit"]) as srv:
        c = h.InferenceServerClient(srv.http_url)
        errors = {}
        for name in ("siamtrt_template", "siamtrt_search", "siamtrt_broken"):
            with pytest.raises(Exception) as e:
                c.load_model(name)
            errors[name] = str(e.value)
    for name in ("siamtrt_template", "siamtrt_search"):
        assert "unable to find backend library for backend 'onnxruntime'" in errors[name], errors[name]
    assert "backend library" not in errors["siamtrt_broken"], errors["siamtrt_broken"]
