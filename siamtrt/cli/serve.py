"""Serve a Triton model repository: a real tritonserver, set up so the siamtrt repository loads.

    siamtrt triton --model models/siamrpn_alex_dwxcorr --out triton_repo
    siamtrt serve --model-repository triton_repo                 # HTTP 127.0.0.1:8000, gRPC 127.0.0.1:8001
    siamtrt client --url 127.0.0.1:8001 --video ../shared/data/bag.avi --bbox 316,140,112,115

The server is $SIAMTRT_TRITONSERVER, the NGC container's /opt/tritonserver, a tritonserver on PATH, or the CPU
build inside the nvidia-pytriton wheel (pip install --no-deps nvidia-pytriton==0.7.0), which needs a backend folder
with the Python-backend stub for this interpreter and this interpreter's libpython: arranged here (the wheel's
binary run alone cannot find its Python backend). Runs in the foreground until Ctrl-C or SIGTERM (then stops the
server and exits 0); its log goes to --log (default: a file named at start).
"""

from __future__ import annotations

import argparse
import re
import signal
import socket
import time
from pathlib import Path
from typing import Dict, List, Optional

from .common import add_verbose, parse_args, positive_seconds, run_command, setup_logging

DIST_KINDS = {"custom": "$SIAMTRT_TRITONSERVER", "ngc": "the NGC install", "path": "tritonserver on PATH",
              "pytriton-wheel": "the nvidia-pytriton wheel (CPU, Python backend only)"}


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--model-repository", required=True, type=Path, metavar="DIR",
                   help="model repository (written by siamtrt triton)")
    p.add_argument("--http-port", type=int, default=8000, help="HTTP port (default 8000, as tritonserver)")
    p.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001, as tritonserver)")
    p.add_argument("--address", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for all)")
    p.add_argument("--startup-timeout", type=positive_seconds, default=120.0,
                   help="seconds to wait for readiness (120)")
    p.add_argument("--log", type=Path, help="server log file (default: tritonserver.log in a private folder)")
    add_verbose(p)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(build_parser(), argv)
    setup_logging(args.verbose)
    return run_command(lambda: serve(args), name="serve")


#: backend folder each ``platform:`` of a config runs on (siamtrt writes the first two; Triton's model configuration
#: docs list the others); None: built into the server (ensemble), no folder. A ``backend:`` names its folder itself.
PLATFORM_BACKENDS = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt", "pytorch_libtorch": "pytorch",
                     "tensorflow_savedmodel": "tensorflow", "tensorflow_graphdef": "tensorflow", "ensemble": None}


def check_repository(repo: Path) -> Dict[str, Optional[str]]:
    """Backend of each model of a Triton repository (folders holding config.pbtxt); a Python model must hold
    ``model.py`` (without it the stub fails to start and the server hangs until the startup timeout).

    Raises:
        InputError: missing folder, no model in it, a missing model.py.
    """
    from ..errors import InputError
    from ..modeldir import triton_command

    if not repo.is_dir():
        raise InputError(f"model repository {repo} does not exist" if not repo.exists() else
                         f"{repo} is a file, not a model repository",
                         fix=f"write one first: {triton_command(repo)}")
    configs = sorted(repo.glob("*/config.pbtxt"))
    if not configs:
        raise InputError(f"{repo} holds no Triton model (no */config.pbtxt)",
                         evidence=f"entries: {sorted(p.name for p in repo.iterdir())[:8]}",
                         fix=f"write one: {triton_command(repo)}")
    models: Dict[str, Optional[str]] = {}
    for cfg in configs:
        text = cfg.read_text(errors="replace")
        found = re.search(r'^\s*(backend|platform):\s*"([^"]+)"', text, re.M)
        kind, name = found.groups() if found else ("", None)
        # an unknown platform is no folder name: the server decides
        backend = models[cfg.parent.name] = PLATFORM_BACKENDS.get(name) if kind == "platform" else name
        missing = [v for v in cfg.parent.iterdir()
                   if v.name.isdigit() and v.is_dir() and not (v / "model.py").is_file()]  # a file: no version
        if backend == "python" and missing and "default_model_filename" not in text:  # another file name: not ours
            raise InputError(f"model {cfg.parent.name} has no {missing[0].name}/model.py",
                             evidence=f"{missing[0]} holds {sorted(p.name for p in missing[0].iterdir())[:8]}",
                             fix=f"write the repository again: {triton_command(repo, '--overwrite')}")
    return models


def check_backends(models: Dict[str, Optional[str]], backends: Path, repo: Path) -> None:
    """Refuse models whose backend the server's ``backends`` folder lacks (the server says so only in its log)."""
    from ..errors import InputError
    from ..modeldir import triton_command

    if not backends.is_dir():  # a layout not known here: the server decides
        return
    lacking: Dict[str, List[str]] = {}
    for model, backend in models.items():
        if backend and not (backends / backend).is_dir():
            lacking.setdefault(backend, []).append(model)
    if lacking:
        raise InputError("this tritonserver lacks the backends the repository's models need: "
                         + "; ".join(f"{b} ({', '.join(m)})" for b, m in lacking.items()),
                         evidence=f"its backends ({backends}): {', '.join(sorted(p.name for p in backends.iterdir()))}",
                         fix="write the repository for this server: "
                             f"{triton_command(repo, '--overwrite --backend python')}, or serve it with a "
                             "tritonserver that has those backends (the NGC container, or "
                             "SIAMTRT_TRITONSERVER=/path/to/tritonserver)")


def check_port(address: str, port: int, option: str) -> None:
    """Refuse a port another program listens on before starting the server (its own message is buried in a log).

    SO_REUSEADDR, as servers bind: the connections a stopped server (or this command's readiness probe) left in
    TIME-WAIT do not count, only a socket bound or listening on the port does."""
    from ..errors import InputError

    if not 0 < port < 65536:
        raise InputError(f"{option} {port} is not a TCP port", fix=f"{option} 1..65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1" if address in ("0.0.0.0", "") else address, port))
        except OSError as e:
            raise InputError(f"port {port} ({option}) is in use or not available", evidence=str(e),
                             fix=f"stop the program holding it (another tritonserver?) or pass {option} N") from None


def serve(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..serving.server import TritonServer, find_server

    models = check_repository(args.model_repository)
    if args.http_port == args.grpc_port:
        raise InputError(f"--http-port and --grpc-port are both {args.http_port}", fix="give them different ports")
    check_port(args.address, args.http_port, "--http-port")
    check_port(args.address, args.grpc_port, "--grpc-port")
    dist = find_server()
    check_backends(models, dist.backends, args.model_repository)
    srv = TritonServer(args.model_repository, http_port=args.http_port, grpc_port=args.grpc_port,
                       startup_timeout=args.startup_timeout, dist=dist, log_path=args.log, address=args.address)
    print(f"serve: starting {dist.binary} ({DIST_KINDS.get(dist.kind, dist.kind)}) on {args.model_repository} "
          f"({', '.join(models)}); log {srv.log_path}", flush=True)
    try:
        srv.start()
        print(f"serve: ready — gRPC {srv.grpc_url}, HTTP {srv.http_url}; Ctrl-C stops it", flush=True)
        while srv.proc.poll() is None:
            time.sleep(0.5)
        code = srv.proc.returncode
        from ..serving.repository import ServingError

        # killed (code -N), or stopped by a signal sent to it (it logs "Signal (N) received." and exits 0): its
        # log is a healthy server's, no evidence
        got = re.findall(r"^Signal \((\d+)\) received", srv.log_tail(1 << 16), re.M)
        sig = -code if code < 0 else int(got[-1]) if got else 0
        if sig:
            name = {s.value: s.name for s in signal.Signals}.get(sig, f"signal {sig}")
            raise ServingError(f"tritonserver was {'killed' if code < 0 else 'stopped'} by {name} (not by siamtrt "
                               "serve); streams still running stopped with an error (their clients keep the frames "
                               "answered so far)", evidence=srv.log_errors(tail=False),
                               fix="find what sent it (another user's kill, a service manager; SIGKILL: also the OOM "
                                   "killer, dmesg | grep -i kill), then start siamtrt serve again")
        raise ServingError(f"tritonserver exited by itself with code {code}", evidence=srv.log_errors(),
                           fix=f"read the log {srv.log_path}")
    except KeyboardInterrupt:
        print("serve: stopping the server", flush=True)
        srv.stop()
        print("serve: stopped", flush=True)
        return 0
    finally:
        srv.stop()
