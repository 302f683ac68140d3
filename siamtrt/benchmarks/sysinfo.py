"""Machine and library facts recorded with every benchmark result (numbers mean nothing without them).

Versions are read from package metadata where possible, so collecting them imports neither torch nor TensorRT.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .. import __version__

# distribution names probed for versions (first found wins per key)
_DISTS = {
    "numpy": ["numpy"],
    "opencv": ["opencv-python-headless", "opencv-python", "opencv-contrib-python", "opencv-contrib-python-headless"],
    "onnx": ["onnx"],
    "onnxruntime": ["onnxruntime", "onnxruntime-gpu"],
    "openvino": ["openvino"],
    "torch": ["torch"],
    "tensorrt": ["tensorrt", "tensorrt-cu12", "tensorrt-cu13"],
    "tensorrt_rtx": ["tensorrt-rtx", "tensorrt_rtx"],
    "cuda-python": ["cuda-python"],
    "matplotlib": ["matplotlib"],
    "got10k": ["got10k"],
}


def package_versions() -> Dict[str, Optional[str]]:
    """Installed versions of the libraries that influence speed or accuracy (None when absent)."""
    out: Dict[str, Optional[str]] = {"siamtrt": __version__}
    out.update({key: installed_version(dists) for key, dists in _DISTS.items()})
    return out


def installed_version(dists: Sequence[str]) -> Optional[str]:
    """The version of the first of ``dists`` (alternative distribution names of one library) installed here."""
    for d in dists:
        try:
            return importlib_metadata.version(d)
        except importlib_metadata.PackageNotFoundError:
            continue
    return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor")) and ":" in line:
                value = line.split(":", 1)[1].strip()
                if value and not value.isdigit():
                    return value
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: CPU flags that decide matrix speed (x86: AVX2/AVX-512, VNNI int8 dot products, AMX tiles, bf16; aarch64:
#: NEON dot products, int8 matrix multiply, bf16, SVE) — what a speed figure needs beside the CPU model
MATRIX_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "bf16", "sve", "sve2")


def isa_flags() -> List[str]:
    """The CPU's :data:`MATRIX_FLAGS` present here (from /proc/cpuinfo ``flags`` / ``Features``; empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("flags", "features")) and ":" in line:
                have = set(line.split(":", 1)[1].split())
                return [f for f in MATRIX_FLAGS if f in have]
    except OSError:
        pass
    return []


def gpus() -> List[Dict[str, str]]:
    """NVIDIA GPUs reported by nvidia-smi (empty on CPU-only machines)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,driver_version,memory.total,compute_cap",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2:
            rows.append(dict(zip(("name", "driver", "memory", "compute_capability"), parts)))
    return rows


def git_sha(repo: Optional[Path] = None) -> Optional[str]:
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def memory_gib() -> Optional[float]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    except (OSError, ValueError):
        pass
    return None


def load_average() -> Optional[float]:
    """1-minute load average (Unix): other work competing for the cores skews every timing."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def busy_warning(info: Dict[str, Any]) -> Optional[str]:
    """A note when the machine was busy while the benchmark started (load above half the usable cores)."""
    load, cores = info.get("load_average_1min"), info.get("usable_cores") or 1
    if load is not None and load > 0.5 * cores:
        return (f"the machine was busy (1-min load average {load:.1f} on {cores} cores): timings are noisy and "
                f"PyTorch's OpenMP threads suffer most from contention; re-run on an idle machine")
    return None


def machine_info() -> Dict[str, Any]:
    """CPU model, core counts, memory, GPUs, OS, Python and library versions, git commit."""
    from ..runtime.cpu import physical_cores

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    info: Dict[str, Any] = {
        "cpu": cpu_model(), "isa_flags": isa_flags(), "logical_cores": os.cpu_count(), "usable_cores": usable,
        "physical_cores": physical_cores(), "memory_gib": memory_gib(), "gpus": gpus(),
        "os": platform.platform(), "python": platform.python_version(), "versions": package_versions(),
        "git": git_sha(), "load_average_1min": load_average(),
    }
    try:
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        info["onnxruntime_providers"] = []
    return info


def describe(info: Dict[str, Any]) -> str:
    """One line for table headers."""
    gpu = ", ".join(g["name"] for g in info.get("gpus") or []) or "no GPU"
    v = info.get("versions", {})
    libs = ", ".join(f"{k} {v[k]}" for k in ("onnxruntime", "openvino", "torch", "tensorrt", "tensorrt_rtx", "opencv")
                     if v.get(k))
    isa = " ".join(info.get("isa_flags") or []) or "ISA flags unknown"
    return (f"{info.get('cpu')} ({info.get('physical_cores')} physical / {info.get('usable_cores')} usable cores; "
            f"{isa}), {gpu}; {libs}")
