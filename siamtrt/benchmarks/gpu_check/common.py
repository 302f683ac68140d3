"""What the GPU check's sections share: check records, statuses, the time box, and the section's part file.

Every check is a plain dict ``{"name": str, "status": one of STATUSES, ...numbers}`` so it goes to JSON as it is.
A section (one process) appends its checks to a :class:`SectionRecorder`, which rewrites the section's part file
atomically after each one: a section killed at its time box still leaves every check it finished.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ...outputs import atomic_file

PASS, FAIL, ERROR, SKIPPED, TIMEOUT = "pass", "fail", "error", "skipped", "timeout"
#: every status a check or a section can have ("not_run": the run stopped before the section started)
STATUSES = (PASS, FAIL, ERROR, SKIPPED, TIMEOUT)
SECTION_STATUSES = STATUSES + ("not_run",)
BAD = (FAIL, ERROR, TIMEOUT)


def plain(obj: Any) -> Any:
    """Strict-JSON values: numpy scalars and arrays to Python, non-finite floats to None, tuples to lists.

    (benchmarks.results.json_safe does the same but importing it loads OpenCV through the runtime package, which
    this check must not need.)
    """
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if obj is None or isinstance(obj, (str, int)):
        return obj
    return str(obj)


def write_json(path: Path, obj: Any) -> Path:
    """Write strict JSON atomically (a reader never sees half a file)."""
    text = json.dumps(plain(obj), indent=1, allow_nan=False)
    with atomic_file(path) as f:
        f.write(text + "\n")
    return Path(path)


def check(name: str, ok: bool, **fields: Any) -> Dict[str, Any]:
    """A pass/fail record."""
    return {"name": name, "status": PASS if ok else FAIL, **fields}


def skipped(name: str, reason: str, **fields: Any) -> Dict[str, Any]:
    return {"name": name, "status": SKIPPED, "reason": reason, **fields}


def error_record(name: str, exc: BaseException) -> Dict[str, Any]:
    """An exception inside a check: its message and the last frames of the traceback."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"name": name, "status": ERROR, "error": f"{type(exc).__name__}: {exc}"[:2000], "traceback": tb[-3000:]}


def section_status(checks: List[Dict[str, Any]]) -> str:
    """fail if any check failed or raised; timeout if any ran out of time; skipped if all skipped; else pass."""
    states = [c["status"] for c in checks]
    if any(s in (FAIL, ERROR) for s in states):
        return FAIL
    if TIMEOUT in states:
        return TIMEOUT
    if not states or all(s == SKIPPED for s in states):
        return SKIPPED
    return PASS


class Deadline:
    """A time box: seconds left until ``limit_s`` after creation."""

    def __init__(self, limit_s: float):
        self.start = time.monotonic()
        self.limit_s = float(limit_s)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.limit_s - self.elapsed()

    def expired(self) -> bool:
        return self.left() <= 0


class SectionRecorder:
    """One section's result, rewritten to ``part`` after every check.

    Args:
        name (str): section name.
        part (Path): where the section's JSON goes (the parent process reads it).
        deadline (Deadline): the section's time box (checks stop, marked ``timeout``, when it is spent).
        log (callable): progress lines (stderr).
    """

    def __init__(self, name: str, part: Optional[Path], deadline: Deadline, log: Callable[[str], None]):
        self.name = name
        self.part = Path(part) if part else None
        self.deadline = deadline
        self.log = log
        self.data: Dict[str, Any] = {"section": name, "status": "running", "time_box_s": deadline.limit_s,
                                     "elapsed_s": 0.0, "info": {}, "checks": []}
        self.flush()

    @property
    def checks(self) -> List[Dict[str, Any]]:
        return self.data["checks"]

    def info(self, **fields: Any) -> None:
        self.data["info"].update(fields)
        self.flush()

    def add(self, record: Dict[str, Any]) -> Dict[str, Any]:
        self.checks.append(record)
        extra = record.get("reason") or record.get("error") or ""
        suffix = f" ({extra})"[:300] if extra else ""
        self.log(f"{self.name}: {record['status'].upper():7s} {record['name']}{suffix}")
        self.flush()
        return record

    def run(self, name: str, fn: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
        """Run one check function (returns its record); an exception becomes an ``error`` record; no time left
        becomes a ``timeout`` record without running it."""
        if self.deadline.expired():
            return self.add({"name": name, "status": TIMEOUT, "reason": "the section's time box was spent first"})
        try:
            record = fn()
        except Exception as e:  # a check that raises is a finding, not a crash of the whole run
            record = error_record(name, e)
        record.setdefault("name", name)
        return self.add(record)

    def finish(self, status: Optional[str] = None, reason: Optional[str] = None) -> Dict[str, Any]:
        self.data["status"] = status or section_status(self.checks)
        if reason:
            self.data["reason"] = reason
        self.flush()
        return self.data

    def flush(self) -> None:
        self.data["elapsed_s"] = round(self.deadline.elapsed(), 3)
        if self.part is not None:
            write_json(self.part, self.data)
