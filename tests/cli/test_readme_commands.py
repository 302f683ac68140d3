"""The README's command lines, so the README cannot drift from the code (issue 22 item 9, style rule 15).

Every ``bash`` block of README.md is parsed. Each ``siamtrt JOB`` / ``python SCRIPT`` command must name a job that
exists, and every ``--option`` on it or in the ``#   [--option ...]`` lines under it must be one its parser accepts
(read from ``JOB --help``); each ``pip install -e ".[extras]"`` must name extras pyproject.toml defines. Then the
commands run, in README order, in a scratch checkout layout (``../shared/data`` beside it) where the model directories
the earlier steps would export are tiny stand-ins (tests/runtime/rt_tiny_models.py), with fast options appended
(``--max-frames`` and the like). Not run, and said why in ``NOT_RUN``: installs, the test suite, exports (torch,
minutes), INT8 quantization (the tiny stand-ins keep no convolution to quantize), TensorRT engines (a GPU to use
them), a camera with a window, and the benchmarks (minutes; Ray).
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

from cli_helpers import REPO, cli_env
from rt_tiny_models import make_tiny_model_dir
from siamtrt.cli.main import JOBS

README = REPO / "README.md"
SCRIPTS = {script: job for job, (_, script) in JOBS.items() if script}
#: why a kind of command is only checked, not run (matched on job or on the command text)
NOT_RUN = {
    "export": "exports build the PyTorch model and run a parity check (minutes); their output is a tiny stand-in",
    "bench": "the fps benchmark exports mobilev2 and times the PyTorch reference (minutes)",
    "serving-bench": "starts a server and runs 1-8 streams (minutes)",
    "track-many": "starts Ray (its test suite is tests/batch)",
    "build": "TensorRT engines are for a GPU; tests/export/test_engine.py builds them with tensorrt_rtx",
    "int8": "INT8 needs convolutions the tiny stand-in does not keep after its float set; stand-in directories instead",
    "engine": "needs TensorRT engines and a CUDA device",
    "camera": "needs a camera and a display",
}
#: the model directories the README's exports create, as tiny stand-ins of the same architecture
STAND_INS = {"models/siamrpn_mobilev2_l234_dwxcorr-random": ("siamrpn_mobilev2_l234_dwxcorr", {"levels": 3}),
             "models/siamrpn_alex_dwxcorr-random": ("siamrpn_alex_dwxcorr", {}),
             "models/r50": ("siamrpn_r50_l234_dwxcorr", {"levels": 3})}
FAST = {"track": ["--max-frames", "5", "--no-progress"],
        "collect": ["--max-frames", "12", "--max-samples", "8", "--templates", "2", "--no-progress"],
        "report": ["--max-frames", "10", "--samples", "4", "--speed-rounds", "1", "--no-progress"],
        "client": ["--max-frames", "5"]}


# ------------------------------------------------------------------------------------------------------- parsing
class Command:
    def __init__(self, block: int, text: str, options_comment: str = ""):
        self.block, self.text = block, text
        self.words = shlex.split(text)
        self.options_comment = options_comment

    @property
    def job(self) -> Optional[str]:
        w = self.words
        if w[:1] == ["siamtrt"] and len(w) > 1:
            return w[1]
        if w[:1] == ["python"] and len(w) > 1 and w[1].endswith(".py"):
            return SCRIPTS.get(w[1], f"unknown script {w[1]}")
        return None

    @property
    def args(self) -> List[str]:
        return self.words[2:]

    def options(self) -> Set[str]:
        found = {w.split("=")[0] for w in self.args if w.startswith("--")}
        return found | set(re.findall(r"(--[a-z][a-z0-9-]*)", self.options_comment))

    def __repr__(self) -> str:
        return f"block {self.block}: {self.text}"


def readme_commands() -> List[Command]:
    """The README's bash blocks as commands (continuations joined, ``&&`` split, trailing comments kept apart)."""
    text = README.read_text()
    cmds: List[Command] = []
    for b, block in enumerate(re.findall(r"```bash\n(.*?)```", text, re.S)):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):  # "#   [--opt ...]" lines document options of the command above
                if cmds and cmds[-1].block == b:
                    cmds[-1].options_comment += " " + stripped
                continue
            code, _, comment = stripped.partition("  #")
            for part in code.split("&&"):
                if part.strip():
                    cmds.append(Command(b, part.strip(), comment))
    return cmds


_HELP: Dict[str, Set[str]] = {}


def job_options(job: str) -> Set[str]:
    if job not in _HELP:
        r = subprocess.run([sys.executable, "-m", "siamtrt", job, "--help"], capture_output=True, text=True,
                           env=cli_env(), cwd=REPO, timeout=120)
        assert r.returncode == 0, f"siamtrt {job} --help failed: {r.stderr[-500:]}"
        _HELP[job] = set(re.findall(r"(--[a-z][a-z0-9-]*)", r.stdout))
    return _HELP[job]


# -------------------------------------------------------------------------------------------------- the checks
def test_readme_has_the_documented_steps():
    cmds = readme_commands()
    jobs = {c.job for c in cmds}
    assert {"export", "track", "collect", "quantize", "report", "build", "inspect", "triton", "serve", "client",
            "bench", "track-many"} <= jobs, jobs


@pytest.mark.parametrize("cmd", readme_commands(), ids=lambda c: c.text[:60])
def test_documented_command_and_options_exist(cmd):
    if cmd.words[0] == "pip":
        extras = re.findall(r"\.\[([a-z,]+)\]", cmd.text)
        import tomllib

        defined = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
        for group in extras:
            assert set(group.split(",")) <= defined, (group, defined)
        return
    if cmd.words[:3] == ["python", "-m", "pytest"]:
        return
    assert cmd.job in JOBS, f"{cmd}: no such job"
    unknown = cmd.options() - job_options(cmd.job)
    assert not unknown, f"{cmd}: options {sorted(unknown)} are not accepted by siamtrt {cmd.job}"


def _skip_reason(cmd: Command) -> Optional[str]:
    if cmd.words[0] == "pip" or cmd.words[:3] == ["python", "-m", "pytest"]:
        return "installs / the test suite itself"
    if cmd.job in NOT_RUN:
        return NOT_RUN[cmd.job]
    if cmd.job == "quantize" and "int8" in cmd.args:
        return NOT_RUN["int8"]
    if "--backend" in cmd.args and "tensorrt" in cmd.args or any(w.endswith(".engine") for w in cmd.args):
        return NOT_RUN["engine"]
    if "--show" in cmd.args or (cmd.job == "track" and "--video" in cmd.args and
                                cmd.args[cmd.args.index("--video") + 1].isdigit()):
        return NOT_RUN["camera"]
    return None


def _workspace(tmp: Path, data_dir: Path) -> Path:
    work = tmp / "checkout"
    work.mkdir()
    (tmp / "shared").mkdir()
    (tmp / "shared" / "data").symlink_to(data_dir)
    for rel, (config, kw) in STAND_INS.items():
        make_tiny_model_dir(work / rel, config, **kw)
    # what the INT8 commands would write (not run): stand-ins with the same files
    for rel in ("models/mv2-int8", "models/mv2-int8-trt"):
        make_tiny_model_dir(work / rel, "siamrpn_mobilev2_l234_dwxcorr", levels=3)
    return work


def _argv(cmd: Command, ports: Tuple[int, int]) -> List[str]:
    head = [sys.executable, "-m", "siamtrt", cmd.job] if cmd.words[0] == "siamtrt" else \
        [sys.executable, str(REPO / cmd.words[1])]
    args = list(cmd.args)
    if cmd.job == "serve":
        args += ["--http-port", str(ports[0]), "--grpc-port", str(ports[1])]
    if cmd.job == "client" and "--url" in args:
        args[args.index("--url") + 1] = f"127.0.0.1:{ports[1]}"
    return head + args + [a for a in FAST.get(cmd.job, []) if a not in args]


def test_readme_commands_run(tmp_path, data_dir):
    """The runnable commands, in README order, exit 0; serve runs in the background until its block ends."""
    from siamtrt.serving.server import free_port

    work = _workspace(tmp_path, data_dir)
    ports = (free_port(), free_port())
    ran, skipped, server = [], [], None
    cmds = readme_commands()
    try:
        for i, cmd in enumerate(cmds):
            reason = _skip_reason(cmd)
            if reason:
                skipped.append((cmd.text, reason))
                continue
            argv = _argv(cmd, ports)
            if cmd.job == "serve":
                pytest.importorskip("tritonclient.grpc", reason="the serving commands need tritonclient")
                server = subprocess.Popen(argv, cwd=work, env=cli_env(), stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True)
                _wait_ready(server)
                ran.append(cmd.text)
                continue
            r = subprocess.run(argv, cwd=work, env=cli_env(), capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, f"{cmd}\n{' '.join(argv)}\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
            ran.append(cmd.text)
            if server is not None and (i + 1 == len(cmds) or cmds[i + 1].block != cmd.block):
                _stop(server)
                server = None
    finally:
        if server is not None:
            _stop(server)
    jobs_run = {c.split()[1] for c in ran if c.startswith("siamtrt")}
    assert {"inspect", "track", "collect", "quantize", "report", "triton", "serve", "client"} <= jobs_run, (ran,
                                                                                                         skipped)
    assert (work / "boxes.txt").is_file() and (work / "boxes.csv").is_file() and (work / "calib.npz").is_file()
    assert (work / "models" / "mv2-fp16" / "search.onnx").is_file() and (work / "triton_repo").is_dir()
    assert not list(work.glob("**/*.part"))


def _wait_ready(server: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        seen.append(line)
        if "ready" in line:
            return
        if not line and server.poll() is not None:
            break
    server.kill()
    raise AssertionError("siamtrt serve did not become ready:\n" + "".join(seen)[-3000:])


def _stop(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGINT)
    try:
        out, _ = server.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        raise
    assert server.returncode == 0 and "serve: stopped" in out, out[-2000:]
