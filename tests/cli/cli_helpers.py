"""Helpers of the command tests (a module with a unique name: several test folders have a conftest)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

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


def snapshot(root: Path) -> Dict[str, str]:
    """Relative path → sha256 + mtime of every file under ``root`` (to prove nothing was modified)."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest() + f":{p.stat().st_mtime_ns}"
    return out
