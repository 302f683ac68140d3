"""How many CPU cores this process should use (a leaf: backends and benchmarks read it)."""

from __future__ import annotations


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


__all__ = ["physical_cores"]
