"""How many CPU cores this process should use (a leaf: backends and benchmarks read it)."""

from __future__ import annotations

import numbers
from typing import Optional

from ..errors import InputError


def physical_cores() -> int:
    """Physical CPU cores usable by this process (hyper-threads excluded; honours CPU affinity / containers)."""
    import os

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    cores = None
    try:
        pairs = set()
        phys = core = None
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("physical id"):
                    phys = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":")[1].strip()
                elif not line.strip():
                    if core is not None:
                        pairs.add((phys, core))
                    phys = core = None
        if core is not None:
            pairs.add((phys, core))
        cores = len(pairs) or None
    except OSError:
        pass
    return max(1, min(cores or usable, usable))


def cpu_threads(threads: Optional[int] = None) -> int:
    """The thread count a CPU engine gets: ``threads``, or :func:`physical_cores` when it is None.

    Raises:
        InputError: ``threads`` is not a whole number ≥ 1 (ONNX Runtime took -2 silently, torch failed with a
            traceback), nor a number at all ("4", [2]: a TypeError / ValueError before).
    """
    if threads is None:
        return physical_cores()
    if isinstance(threads, bool) or not isinstance(threads, numbers.Real) or not float(threads).is_integer() \
            or threads < 1:
        raise InputError(f"threads must be a whole number of 1 or more, got {threads!r}",
                         fix=f"pass --threads N with N >= 1, or leave it out for this machine's {physical_cores()} "
                             "physical cores")
    return int(threads)


__all__ = ["cpu_threads", "physical_cores"]
