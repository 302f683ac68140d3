"""Faults a user of a live stream meets, against a REAL tritonserver: repositories ``siamtrt serve`` cannot run,
the server killed under it, and the tracker's sequence slots held by streams that vanished without END."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from siamtrt.serving.repository import ServingError, write_repository

from serving_helpers import require_server

BOX = (316.0, 140.0, 112.0, 115.0)
ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _serve(repo, *more):
    from siamtrt.serving.server import free_port

    return [sys.executable, "-m", "siamtrt", "serve", "--model-repository", str(repo), "--http-port",
            str(free_port()), "--grpc-port", str(free_port()), *more]


def test_serve_refuses_a_repository_missing_model_py(serving_model, tmp_path):
    """Without the tracker's model.py the Python stub fails to start and the server waited for the whole startup
    timeout, its log naming the cause in an info line; now refused before the server starts."""
    require_server()
    repo = write_repository(serving_model, tmp_path / "repo").out
    (repo / "siamtrt_tracker" / "1" / "model.py").unlink()
    t0 = time.monotonic()
    r = subprocess.run(_serve(repo, "--startup-timeout", "30"), capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "model siamtrt_tracker has no 1/model.py" in r.stderr and "--overwrite" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 20 and "Traceback" not in r.stderr


def test_serve_names_a_damaged_model_file_and_the_fix(serving_model, tmp_path):
    """A truncated model.onnx: the log's error lines are the evidence, the fix says to write the repository again."""
    require_server()
    repo = write_repository(serving_model, tmp_path / "repo").out
    onnx = repo / "siamtrt_search" / "1" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:1000])
    r = subprocess.run(_serve(repo), capture_output=True, text=True, env=ENV, timeout=180)
    assert r.returncode == 2, r.stderr
    assert "INVALID_PROTOBUF" in r.stderr.split("evidence:", 1)[-1], r.stderr
    assert f"--out {repo.resolve()} --overwrite" in r.stderr.split("fix:", 1)[-1], r.stderr


@pytest.mark.parametrize("sig,verb", [(signal.SIGKILL, "killed"), (signal.SIGTERM, "stopped")])
def test_serve_tritonserver_killed(serving_model, tmp_path, sig, verb):
    """The tritonserver under ``siamtrt serve`` SIGKILLed or SIGTERMed: exit 2 naming the signal, not "exited by
    itself with code -9 / 0" over the tail of a healthy log (its option table, its shutdown lines)."""
    require_server()
    repo = write_repository(serving_model, tmp_path / "repo").out
    srv = subprocess.Popen(_serve(repo), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        line = srv.stdout.readline()
        while line and "ready" not in line:
            line = srv.stdout.readline()
        assert "ready" in line
        child = subprocess.run(["pgrep", "-P", str(srv.pid), "-f", "tritonserver"], capture_output=True, text=True)
        os.kill(int(child.stdout.split()[0]), sig)
        _, err = srv.communicate(timeout=60)
    finally:
        if srv.poll() is None:
            srv.kill()
    assert srv.returncode == 2, err
    assert f"tritonserver was {verb} by {sig.name}" in err and "no error in the server's log" in err, err
    assert "+---" not in err and "Traceback" not in err, err


def test_sequence_slots_interrupted_and_abandoned_streams(serving_model, serving_frames, tmp_path):
    """An interrupted stream ENDs its sequence (five in a row on 4 slots do not block a sixth); streams that vanish
    without END hold the slots until --idle-seconds: a new stream then times out with a fix naming the slots, and
    runs once the server released them."""
    dist = require_server()
    from siamtrt.serving.client import RemoteTracker, track_video
    from siamtrt.serving.server import TritonServer
    from siamtrt.serving.stateful import RELEASE_LOG

    repo = write_repository(serving_model, tmp_path / "repo", max_batch=1, idle_seconds=6).out  # 4 slots

    def interrupted():
        yield from serving_frames[:3]
        raise KeyboardInterrupt

    with TritonServer(repo, dist=dist) as srv:
        t0 = time.monotonic()
        for _ in range(5):
            with pytest.raises(KeyboardInterrupt):
                track_video(srv.grpc_url, interrupted(), BOX)
        assert len(track_video(srv.grpc_url, serving_frames[:3], BOX).boxes) == 3
        assert time.monotonic() - t0 < 5, "an interrupted stream held its slot"
        for _ in range(4):  # killed clients: started, never ended
            RemoteTracker(srv.grpc_url).init(serving_frames[0], BOX)
        late = RemoteTracker(srv.grpc_url, timeout=1.5)
        with pytest.raises(ServingError) as e:
            late.init(serving_frames[0], BOX)
        assert "sequence slots" in e.value.fix and "--idle-seconds" in e.value.fix, str(e.value)
        assert len(track_video(srv.grpc_url, serving_frames[:3], BOX).boxes) == 3  # waits for the idle release
        assert RELEASE_LOG in srv.log_tail(1 << 20)


def test_serve_backend_check_maps_every_triton_platform(tmp_path):
    """The backend check refused repositories a server with the right backends runs: an ``ensemble`` model (built
    into the server: no backends/ folder) and ``pytorch_libtorch`` / ``tensorflow_*`` models (their folders are
    ``pytorch`` / ``tensorflow``) were each named as a backend the server lacks. No server needed: the check reads
    the configs and the backends folder."""
    from siamtrt.cli.serve import check_backends, check_repository
    from siamtrt.errors import InputError

    repo, backends = tmp_path / "repo", tmp_path / "backends"
    for name, line in (("ens", 'platform: "ensemble"'), ("pt", 'platform: "pytorch_libtorch"'),
                       ("tf", 'platform: "tensorflow_savedmodel"'), ("ort", 'platform: "onnxruntime_onnx"'),
                       ("py", 'backend: "python"')):
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.py").write_text("")
        (repo / name / "config.pbtxt").write_text(f'name: "{name}"\n{line}\n')
    for b in ("onnxruntime", "python", "pytorch", "tensorflow"):
        (backends / b).mkdir(parents=True)
    (repo / "py" / "2").write_text("a file, no version folder")  # the server skips it; the check read it as one
    models = check_repository(repo)
    assert models == {"ens": None, "ort": "onnxruntime", "pt": "pytorch", "py": "python", "tf": "tensorflow"}
    check_backends(models, backends, repo)  # all there
    (backends / "pytorch").rmdir()
    with pytest.raises(InputError, match=r"lacks the backends .*: pytorch \(pt\)\n"):
        check_backends(models, backends, repo)
