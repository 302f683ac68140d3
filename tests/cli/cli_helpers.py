"""Helpers of the command tests (a module with a unique name: several test folders have a conftest)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set, Tuple

REPO = Path(__file__).resolve().parents[2]


def cli_env(extra: Dict[str, str] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env.update(extra or {})
    return env


def siamtrt(*args, cwd=None, timeout=300, env=None) -> subprocess.CompletedProcess:
    """``siamtrt ARGS`` (as ``python -m siamtrt``, which is what the console script runs)."""
    return subprocess.run([sys.executable, "-m", "siamtrt", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or REPO, env=env or cli_env())


_HELP: Dict[Tuple[str, ...], Set[str]] = {}


def help_options(argv: List[str]) -> Set[str]:
    """The ``--options`` that ``python ARGV --help`` lists (run once per argv)."""
    if tuple(argv) not in _HELP:
        r = subprocess.run([sys.executable, *argv, "--help"], capture_output=True, text=True, env=cli_env(),
                           cwd=REPO, timeout=120)
        assert r.returncode == 0, f"{' '.join(argv)} --help failed: {r.stderr[-500:]}"
        _HELP[tuple(argv)] = set(re.findall(r"(--[a-z][a-z0-9-]*)", r.stdout))
    return _HELP[tuple(argv)]


def snapshot(root: Path) -> Dict[str, str]:
    """Relative path → sha256 + mtime of every file under ``root`` (to prove nothing was modified)."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest() + f":{p.stat().st_mtime_ns}"
    return out
