"""Start a local ``tritonserver`` on a model repository (for tests, benchmarks and trying the deployment).

Where the server comes from, in order: ``$SIAMTRT_TRITONSERVER`` (path of a ``tritonserver`` binary, backends in
``$SIAMTRT_TRITON_BACKENDS`` or ``<bin>/../backends``), ``/opt/tritonserver`` (the NGC container), a
``tritonserver`` on ``PATH`` (backends beside it as in a Triton install), or the ``nvidia-pytriton`` wheel (``pip
install --no-deps nvidia-pytriton==0.7.0``), which ships a CPU-capable ``tritonserver`` 2.x with the Python backend
only (no ONNX Runtime / TensorRT backends). The wheel's Python backend needs a stub built for this interpreter's
version and this interpreter's ``libpython`` first on the library path; both are arranged here in a private work
folder (the wheel's binary alone fails with "unable to find backend library for backend 'python'"). Ports are free
ones on 127.0.0.1 unless given. ``siamtrt serve`` runs one in the foreground (siamtrt/cli/serve.py).
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import re
import signal
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

from ..modeldir import triton_command
from .repository import ServingError

LOG = logging.getLogger(__name__)

#: a tritonserver log line that reports an error: glog's "E<MMDD> ..." lines, "error: ..." and the model table's
#: UNAVAILABLE rows
_ERROR_LINE = re.compile(r"^(E\d{4} |error: )|\| *UNAVAILABLE")
#: error lines every CPU start logs, which explain nothing
_BENIGN_ERRORS = ("CudaDriverHelper has not been initialized",)


@dataclass
class ServerDist:
    """A tritonserver installation: binary, backend folder, extra library folders, what it is."""

    binary: Path
    backends: Path
    libs: List[Path]
    kind: str
    stub: Optional[Path] = None  # Python-backend stub to place in the backend folder (pytriton wheel)
    caches: Optional[Path] = None


def find_server() -> ServerDist:
    """Locate a tritonserver (see the module docstring for the order).

    Raises:
        ServingError: none found.
    """
    env = os.environ.get("SIAMTRT_TRITONSERVER")
    if env:
        b = Path(env)
        be = Path(os.environ.get("SIAMTRT_TRITON_BACKENDS", b.parent.parent / "backends"))
        return ServerDist(b, be, [], "custom")
    ngc = Path("/opt/tritonserver/bin/tritonserver")
    if ngc.is_file():
        return ServerDist(ngc, ngc.parent.parent / "backends", [], "ngc")
    on_path = shutil.which("tritonserver")
    if on_path:
        b = Path(on_path).resolve()
        return ServerDist(b, b.parent.parent / "backends", [], "path")
    spec = importlib.util.find_spec("pytriton")  # located, not imported (its Python deps are not needed)
    if spec is not None and spec.submodule_search_locations:
        root = Path(list(spec.submodule_search_locations)[0])
        dist = root / "tritonserver"
        binary = dist / "bin" / "tritonserver"
        if binary.is_file():
            ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
            stub = dist / "python_backend_stubs" / ver / "triton_python_backend_stub"
            if not stub.is_file():
                raise ServingError(f"the nvidia-pytriton wheel has no Python-backend stub for Python {ver}",
                                   evidence="stubs: " + ", ".join(sorted(
                                       p.name for p in (dist / "python_backend_stubs").iterdir())),
                                   fix="use a supported Python, or the NGC tritonserver container")
            libs = [root.parent / "nvidia_pytriton.libs"]
            return ServerDist(binary, dist / "backends", libs, "pytriton-wheel", stub=stub, caches=dist / "caches")
    raise ServingError("no tritonserver found",
                       evidence="checked $SIAMTRT_TRITONSERVER, /opt/tritonserver, the nvidia-pytriton wheel",
                       fix="pip install --no-deps nvidia-pytriton==0.7.0 (CPU test server), or run inside "
                           "nvcr.io/nvidia/tritonserver:<ver>-py3 / set SIAMTRT_TRITONSERVER=/path/to/tritonserver")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_this_process():
    """preexec_fn for the server (Linux): it gets SIGTERM when the thread that started it dies, so a ``siamtrt serve``
    killed with SIGKILL (no ``finally`` runs) leaves no tritonserver behind. Also covers a parent that died between
    fork and prctl (the child's parent pid is no longer ours then)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class TritonServer:
    """A ``tritonserver`` subprocess on 127.0.0.1; use as a context manager (always stopped on exit).

    Args:
        repository (str | Path): model repository.
        http_port, grpc_port (int): ports. Defaults to free ones.
        startup_timeout (float): seconds to wait for readiness. Defaults to 120.
        dist (ServerDist): installation. Defaults to :func:`find_server`.
        extra_args (list[str]): more tritonserver arguments (e.g. ``--model-control-mode=explicit``).
        log_path (str | Path): server log file. Defaults to a file in the private work folder.
        address (str): interface the endpoints listen on. Defaults to "127.0.0.1" (this machine only).
    """

    def __init__(self, repository: Union[str, Path], http_port: Optional[int] = None, grpc_port: Optional[int] = None,
                 startup_timeout: float = 120.0, dist: Optional[ServerDist] = None,
                 extra_args: Optional[List[str]] = None, log_path: Optional[Union[str, Path]] = None,
                 address: str = "127.0.0.1"):
        self.repository = Path(repository).resolve()
        self.address = address
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.startup_timeout = startup_timeout
        self.dist = dist or find_server()
        self.extra_args = list(extra_args or [])
        self._work = Path(tempfile.mkdtemp(prefix="siamtrt-triton-"))
        self.log_path = Path(log_path) if log_path else self._work / "tritonserver.log"
        self.proc: Optional[subprocess.Popen] = None

    @property
    def _host(self) -> str:
        return "127.0.0.1" if self.address in ("0.0.0.0", "") else self.address

    @property
    def http_url(self) -> str:
        return f"{self._host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self._host}:{self.grpc_port}"

    def url(self, protocol: str) -> str:
        return self.grpc_url if protocol == "grpc" else self.http_url

    def _backend_dir(self) -> Path:
        if self.dist.stub is None:
            return self.dist.backends
        be = self._work / "backends"
        shutil.copytree(self.dist.backends, be, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(self.dist.stub, be / "python" / "triton_python_backend_stub")
        return be

    def _env(self) -> Dict[str, str]:
        env = dict(os.environ)
        libs = [str(p) for p in self.dist.libs]
        if self.dist.stub is not None:
            libs.insert(0, sysconfig.get_config_var("LIBDIR"))  # this interpreter's libpython for the stub
        if libs:
            env["LD_LIBRARY_PATH"] = ":".join(libs + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def command(self) -> List[str]:
        cmd = [str(self.dist.binary), f"--model-repository={self.repository}",
               f"--backend-directory={self._backend_dir()}", f"--http-port={self.http_port}",
               f"--grpc-port={self.grpc_port}", "--allow-metrics=false", f"--http-address={self.address}",
               f"--grpc-address={self.address}", "--exit-timeout-secs=5"]
        if self.dist.caches is not None:
            cmd.append(f"--cache-directory={self.dist.caches}")
        return cmd + self.extra_args

    def start(self) -> "TritonServer":
        """Start and wait until ``/v2/health/ready``.

        Raises:
            ServingError: the server exited or was not ready in time (the log tail is the evidence).
        """
        cmd = self.command()
        LOG.debug("Triton: %s", " ".join(cmd))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self._env(),
                                     start_new_session=True, preexec_fn=_die_with_this_process())
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise ServingError(f"tritonserver exited with code {self.proc.returncode} while starting",
                                   evidence=self.log_errors(),
                                   fix="read the errors above; a repository siamtrt wrote that fails to load is "
                                       "incomplete or damaged: write it again ("
                                       f"{triton_command(self.repository, '--overwrite')})")
            if self.is_ready():
                return self
            time.sleep(0.25)
        errors = self.log_errors()
        self.stop()
        raise ServingError(f"tritonserver was not ready within {self.startup_timeout:g} s", evidence=errors,
                           fix=f"read the log {self.log_path}; a slow machine: a longer startup timeout")

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"

    def log_errors(self, limit: int = 12, tail: bool = True) -> str:
        """Evidence from the log: its error lines (glog ``E`` lines, ``error:`` lines, UNAVAILABLE models: the cause,
        e.g. "unable to find backend library for backend 'onnxruntime'", is rarely in the last lines), else its
        tail (``tail``, else a line saying it has none); then where the whole log is."""
        found: List[str] = []
        for line in self.log_tail(1 << 24).splitlines():
            line = " ".join(line.split())
            if _ERROR_LINE.search(line) and not any(b in line for b in _BENIGN_ERRORS) and line not in found:
                found.append(line[:400])
        body = "\n".join(found[:limit] + ([f"... and {len(found) - limit} more"] if len(found) > limit else []))
        return (body or (self.log_tail(1500) if tail else "no error in the server's log")) + f"\nlog: {self.log_path}"

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``), idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None:
            try:  # Python-backend stubs left behind share the server's process group
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self._work / "backends", ignore_errors=True)  # the copied backend (the log stays)

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["ServerDist", "TritonServer", "find_server", "free_port"]
