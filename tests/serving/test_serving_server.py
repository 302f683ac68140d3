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


def test_serve_and_client_commands(serving_model, bag_video, reference, tmp_path):
    """What a user types: ``siamtrt triton``, ``siamtrt serve`` in the foreground (the wheel's server set up with its
    Python backend, on free ports), ``siamtrt client --out b.csv``: the file equals the in-process runtime's boxes
    and scores; Ctrl-C stops the server (exit 0) and leaves no tritonserver behind."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from siamtrt.runtime.boxes import read_results, read_scores
    from siamtrt.serving.server import free_port

    require_server()
    repo_root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo_root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "siamtrt"]
    r = subprocess.run(cmd + ["triton", "--model", str(serving_model), "--out", str(tmp_path / "repo")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    http, grpc = free_port(), free_port()
    srv = subprocess.Popen(cmd + ["serve", "--model-repository", str(tmp_path / "repo"), "--http-port", str(http),
                                  "--grpc-port", str(grpc)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env=env)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = srv.stdout.readline()
            lines.append(line)
            if "ready" in line or not line:
                break
        assert any("ready" in ln for ln in lines), "".join(lines)
        out = tmp_path / "b.csv"
        r = subprocess.run(cmd + ["client", "--url", f"127.0.0.1:{grpc}", "--video", str(bag_video), "--bbox",
                                  ",".join(map(str, BOX)), "--max-frames", str(len(reference[1])), "--out",
                                  str(out)], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        np.testing.assert_array_equal(read_results(out)[:, 0], reference[0])
        np.testing.assert_array_equal(read_scores(out)[:, 0], reference[1])
    finally:
        srv.send_signal(signal.SIGINT)
        rest, _ = srv.communicate(timeout=60)
    assert srv.returncode == 0 and "serve: stopped" in rest, rest
    ps = subprocess.run(["pgrep", "-f", "--", f"--grpc-port={grpc}"], capture_output=True, text=True)
    assert ps.returncode == 1 and ps.stdout.strip() == "", "a tritonserver outlived siamtrt serve"


def _cli_env():
    import os
    from pathlib import Path

    repo_root = Path(__file__).resolve().parents[2]
    return dict(os.environ, PYTHONPATH=str(repo_root) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _wait_rows(part, n, proc, timeout=120):
    """Until ``part`` holds ``n`` rows (the client is mid-stream), while ``proc`` runs."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if part.exists() and part.read_text().count("\n") >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{part} did not reach {n} rows: {proc.poll()}")


def test_client_http_interrupt_prints_no_traceback(server, bag_video, tmp_path):
    """Ctrl-C while tritonclient.http waits in gevent's hub: the command's message and exit 130, no traceback from
    the hub before it."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "b.txt"
    p = subprocess.Popen([sys.executable, "-m", "siamtrt", "client", "--url", server.http_url, "--protocol", "http",
                          "--video", str(bag_video), "--bbox", ",".join(map(str, BOX)), "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_cli_env())
    try:
        _wait_rows(tmp_path / "b.txt.part", 3, p)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "boxes so far in" in err and (tmp_path / "b.txt.part").exists()


def test_client_errors_name_protocol_and_model(server, serving_frames):
    from siamtrt.serving.client import RemoteTracker

    for url, protocol, model, expect in [(server.http_url, "grpc", "siamtrt_tracker", "--protocol http"),
                                         (server.grpc_url, "http", "siamtrt_tracker", "--protocol grpc"),
                                         (server.grpc_url, "grpc", "foo_tracker", "--model P_tracker")]:
        rt = RemoteTracker(url, protocol, model, timeout=20)
        with pytest.raises(ServingError) as e:
            rt.init(serving_frames[0], BOX)
        rt.close()
        assert expect in e.value.fix, (url, protocol, model, str(e.value))


def test_serve_killed_mid_stream(serving_model, bag_video, tmp_path):
    """``siamtrt serve`` SIGKILLed while a client streams: its tritonserver goes too (parent-death signal), and the
    client says how many frames it kept, where, and what to do with the partial file."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from siamtrt.serving.server import free_port

    require_server()
    env = _cli_env()
    cmd = [sys.executable, "-m", "siamtrt"]
    repo = write_repository(serving_model, tmp_path / "repo").out
    http, grpc = free_port(), free_port()
    srv = subprocess.Popen(cmd + ["serve", "--model-repository", str(repo), "--http-port", str(http), "--grpc-port",
                                  str(grpc)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    client = None
    try:
        lines = [srv.stdout.readline()]
        while lines[-1] and "ready" not in lines[-1]:
            lines.append(srv.stdout.readline())
        assert "ready" in lines[-1], "".join(lines)
        out = tmp_path / "b.txt"
        client = subprocess.Popen(cmd + ["client", "--url", f"127.0.0.1:{grpc}", "--video", str(bag_video), "--bbox",
                                         ",".join(map(str, BOX)), "--out", str(out)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        _wait_rows(tmp_path / "b.txt.part", 3, client)
        os.kill(srv.pid, signal.SIGKILL)
        srv.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ps = subprocess.run(["pgrep", "-f", "--", f"--grpc-port={grpc}"], capture_output=True, text=True)
            assert ps.returncode in (0, 1), ps.stderr  # 1: none found (2: pgrep misread the pattern)
            if not ps.stdout.strip():
                break
            time.sleep(0.2)
        assert not ps.stdout.strip(), "tritonserver outlived the SIGKILLed siamtrt serve"
        _, err = client.communicate(timeout=120)
    finally:
        for p in (client, srv):
            if p is not None and p.poll() is None:
                p.kill()
        left = subprocess.run(["pgrep", "-f", "--", f"--grpc-port={grpc}"], capture_output=True, text=True)
        for pid in left.stdout.split():  # the server a failing run left behind
            os.kill(int(pid), signal.SIGKILL)
    assert client.returncode == 2, err
    rows = (tmp_path / "b.txt.part").read_text().count("\n")
    assert f"after {rows} frames; boxes so far in {tmp_path / 'b.txt.part'}" in err, err
    assert "move or delete it" in err and "Traceback" not in err, err


def test_serve_refuses_a_backend_the_server_lacks(serving_model, tmp_path):
    """A repository for a backend this server has not (onnxruntime branches on the wheel's server): refused before
    the server starts, naming the backend, its models and the server's backends (the log buried the cause)."""
    import subprocess
    import sys

    from siamtrt.serving.server import free_port

    dist = require_server()
    if (dist.backends / "onnxruntime").is_dir():
        pytest.skip("this tritonserver has the onnxruntime backend: the repository loads")
    repo = write_repository(serving_model, tmp_path / "repo_ort", backend="onnxruntime").out
    r = subprocess.run([sys.executable, "-m", "siamtrt", "serve", "--model-repository", str(repo), "--http-port",
                        str(free_port()), "--grpc-port", str(free_port())], capture_output=True, text=True,
                       env=_cli_env(), timeout=180)
    assert r.returncode == 2, r.stderr
    assert "lacks the backends the repository's models need: onnxruntime (siamtrt_search, siamtrt_template)" \
        in r.stderr, r.stderr
    assert "--backend python" in r.stderr.split("fix:", 1)[-1] and "Traceback" not in r.stderr, r.stderr
