"""Build the DepthwiseXCorr plugin: the kernel fatbin (nvcc) and, where TensorRT headers exist, the C++ library.

    python -m siamtrt.plugin.build [--out DIR] [--archs 72,87] [--no-cpp] [--tensorrt-root DIR]

Why a script: the kernel must be compiled for the GPUs users have (Jetson Nano sm_53, TX2 sm_62, Xavier sm_72,
Orin sm_87, desktop sm_75–sm_90, plus PTX for newer ones), but every nvcc supports a different subset (CUDA 13
dropped sm_53/62/72, so those builds use JetPack's own nvcc). This module asks nvcc which architectures it has,
compiles what it can, and says what it dropped. CI calls :func:`compile_kernel` so a syntax or type error in the
kernel cannot land. The C++ plugin (CMakeLists.txt) is configured only when NvInfer.h is found.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..errors import ExportError, SiamtrtError
from .kernel import FATBIN_NAME, KERNEL_SOURCE, LIBRARY_NAME, PLUGIN_DIR, build_dir

log = logging.getLogger(__name__)

#: Jetson Nano 53, TX2 62, Xavier 72, Turing 75, A100 80, Ampere 86, Orin 87, Ada 89, Hopper 90.
WANTED_ARCHS = (53, 62, 72, 75, 80, 86, 87, 89, 90)


def find_nvcc() -> Optional[Path]:
    """nvcc on PATH, else under $CUDA_HOME / $CUDA_PATH / /usr/local/cuda (JetPack does not put it on PATH)."""
    found = shutil.which("nvcc")
    if found:
        return Path(found)
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return Path(root) / "bin" / "nvcc"
    return None


def _require_nvcc(nvcc: Optional[Path]) -> Path:
    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        raise ExportError("nvcc (the CUDA compiler) was not found",
                          evidence="searched PATH, $CUDA_HOME/bin, $CUDA_PATH/bin, /usr/local/cuda/bin",
                          fix="install the CUDA toolkit (JetPack includes it at /usr/local/cuda/bin) or set CUDA_HOME")
    return nvcc


def nvcc_version(nvcc: Optional[Path] = None) -> Tuple[int, int]:
    out = subprocess.run([str(_require_nvcc(nvcc)), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"release (\d+)\.(\d+)", out)
    if not m:
        raise ExportError("cannot read the nvcc version", evidence=out[-300:])
    return int(m.group(1)), int(m.group(2))


def supported_archs(nvcc: Optional[Path] = None) -> List[int]:
    """SM numbers this nvcc can target (``nvcc --list-gpu-arch``; a version table for nvcc < 11.0)."""
    nvcc = _require_nvcc(nvcc)
    res = subprocess.run([str(nvcc), "--list-gpu-arch"], capture_output=True, text=True)
    archs = sorted({int(m) for m in re.findall(r"compute_(\d+)", res.stdout)}) if res.returncode == 0 else []
    if archs:
        return archs
    major, minor = nvcc_version(nvcc)  # CUDA 10.2 (JetPack 4.6) has no --list-gpu-arch
    table = [30, 32, 35, 37, 50, 52, 53, 60, 61, 62, 70, 72, 75]
    if (major, minor) >= (11, 0):
        table += [80]
    return table


def select_archs(wanted: Optional[Sequence[int]] = None, nvcc: Optional[Path] = None) -> Tuple[List[int], List[int]]:
    """(architectures to build, wanted ones this nvcc cannot build)."""
    wanted = list(WANTED_ARCHS if wanted is None else wanted)
    have = set(supported_archs(nvcc))
    return [a for a in wanted if a in have], [a for a in wanted if a not in have]


def gencode_flags(archs: Sequence[int]) -> List[str]:
    """SASS for each architecture plus PTX of the newest (JIT-compiled by the driver on later GPUs)."""
    if not archs:
        raise ExportError("no GPU architecture to compile for",
                          fix="pass --archs with numbers this nvcc supports (nvcc --list-gpu-arch)")
    flags = []
    for a in archs:
        flags += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    flags += ["-gencode", f"arch=compute_{max(archs)},code=compute_{max(archs)}"]
    return flags


def compile_kernel(out: Path, *, kind: str = "fatbin", archs: Optional[Sequence[int]] = None,
                   nvcc: Optional[Path] = None, extra_flags: Sequence[str] = ()) -> Path:
    """Compile dwxcorr_kernel.cu with nvcc into ``out``.

    Args:
        out (Path): output file.
        kind (str): "fatbin" (device code only, what the Python plugin loads) or "object" (host launchers + device
            code, what the C++ plugin links). Defaults to "fatbin".
        archs (list[int]): SM numbers. Defaults to :data:`WANTED_ARCHS` filtered by this nvcc.
        nvcc (Path): compiler. Defaults to :func:`find_nvcc`.
        extra_flags (list[str]): more nvcc flags (e.g. ``-Werror all-warnings``).

    Raises:
        ExportError: nvcc missing or compilation failed (compiler output attached).
    """
    nvcc = _require_nvcc(nvcc)
    if archs is None:
        archs, _ = select_archs(nvcc=nvcc)
    mode = {"fatbin": ["-fatbin"], "object": ["-c", "-Xcompiler", "-fPIC"]}.get(kind)
    if mode is None:
        raise ExportError(f"unknown kernel output kind '{kind}'", evidence="valid: fatbin, object")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(nvcc), *mode, "-O3", "-std=c++14", "-I", str(PLUGIN_DIR), *gencode_flags(archs), *extra_flags,
           "-o", str(out), str(KERNEL_SOURCE)]
    log.info("plugin: %s", " ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ExportError(f"nvcc failed to compile {KERNEL_SOURCE.name}",
                          evidence=(res.stderr or res.stdout)[-2000:], fix="fix the kernel source; command: "
                          + " ".join(cmd))
    return out


def find_tensorrt_include(tensorrt_root: Optional[Path] = None) -> Optional[Path]:
    """The folder holding NvInfer.h (TENSORRT_ROOT, the TensorRT tarball, JetPack / deb layout), or None."""
    roots = [tensorrt_root, os.environ.get("TENSORRT_ROOT"), "/usr/local/TensorRT", "/opt/tensorrt", "/usr"]
    for root in roots:
        if not root:
            continue
        for sub in ("include", "include/x86_64-linux-gnu", "include/aarch64-linux-gnu"):
            cand = Path(root) / sub
            if (cand / "NvInfer.h").is_file():
                return cand
    return None


def build_cpp_plugin(out_dir: Path, *, tensorrt_root: Optional[Path] = None, api: str = "AUTO",
                     archs: Optional[Sequence[int]] = None, nvcc: Optional[Path] = None) -> Path:
    """Configure and build CMakeLists.txt into ``out_dir``; return the path of libsiamtrt_dwxcorr.so.

    Raises:
        ExportError: cmake missing, TensorRT headers missing, or the build failed (output attached).
    """
    cmake = shutil.which("cmake")
    if cmake is None:
        raise ExportError("cmake was not found", fix="apt-get install cmake (or pip install cmake)")
    include = find_tensorrt_include(tensorrt_root)
    if include is None:
        raise ExportError("TensorRT C++ headers (NvInfer.h) were not found, so the C++ plugin cannot be built here",
                          evidence="pip wheels of tensorrt / tensorrt_rtx ship no headers",
                          fix="install TensorRT from JetPack, the tar/deb packages or an NGC container and pass "
                              "--tensorrt-root DIR; the Python plugin (python_plugin.py) needs no build")
    nvcc = _require_nvcc(nvcc)
    cmake_dir = Path(out_dir) / "cmake"
    root = include.parent if include.name == "include" else include.parent.parent
    cfg = [cmake, "-S", str(PLUGIN_DIR), "-B", str(cmake_dir), "-DCMAKE_BUILD_TYPE=Release",
           f"-DCMAKE_CUDA_COMPILER={nvcc}", f"-DTENSORRT_ROOT={root}", f"-DSIAMTRT_PLUGIN_API={api}"]
    if archs:
        cfg.append("-DSIAMTRT_CUDA_ARCHS=" + ";".join(str(a) for a in archs))
    for cmd in (cfg, [cmake, "--build", str(cmake_dir), "-j", str(os.cpu_count() or 2)]):
        log.info("plugin: %s", " ".join(cmd))
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise ExportError("building the C++ DepthwiseXCorr plugin failed",
                              evidence=(res.stdout + res.stderr)[-2500:], fix="command: " + " ".join(cmd))
    lib = next(iter(sorted(cmake_dir.rglob(LIBRARY_NAME))), None)
    if lib is None:
        raise ExportError(f"the CMake build finished but {LIBRARY_NAME} is missing", evidence=str(cmake_dir))
    dst = Path(out_dir) / LIBRARY_NAME
    shutil.copy2(lib, dst)
    return dst


@dataclass
class PluginBuildReport:
    """What :func:`build_plugin` produced and what it skipped (with reasons)."""

    out_dir: Path
    archs: List[int] = field(default_factory=list)
    dropped_archs: List[int] = field(default_factory=list)
    nvcc_version: Optional[Tuple[int, int]] = None
    fatbin: Optional[Path] = None
    library: Optional[Path] = None
    skipped: List[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"plugin: nvcc {'.'.join(map(str, self.nvcc_version or ()))}, architectures "
                 f"{', '.join(f'sm_{a}' for a in self.archs)} + PTX compute_{max(self.archs) if self.archs else '?'}"]
        if self.dropped_archs:
            lines.append(f"plugin: this nvcc cannot build {', '.join(f'sm_{a}' for a in self.dropped_archs)} "
                         "(build those on the device with JetPack's nvcc)")
        if self.fatbin:
            lines.append(f"plugin: kernel fatbin   {self.fatbin} ({self.fatbin.stat().st_size / 1024:.0f} KiB)")
        if self.library:
            lines.append(f"plugin: C++ library     {self.library} ({self.library.stat().st_size / 1024:.0f} KiB)")
        lines += [f"plugin: skipped {s}" for s in self.skipped]
        lines.append(f"plugin: done in {self.seconds:.1f} s")
        return "\n".join(lines)


def build_plugin(out_dir: Optional[Path] = None, *, archs: Optional[Sequence[int]] = None, cpp: str = "auto",
                 tensorrt_root: Optional[Path] = None, api: str = "AUTO") -> PluginBuildReport:
    """Compile the kernel fatbin and, where possible, the C++ plugin library.

    Args:
        out_dir (Path): output folder. Defaults to :func:`siamtrt.plugin.kernel.build_dir`.
        archs (list[int]): SM numbers. Defaults to :data:`WANTED_ARCHS` filtered by this nvcc.
        cpp (str): "auto" (build when NvInfer.h is found), "yes" (fail without it) or "no". Defaults to "auto".
        tensorrt_root (Path): TensorRT install root for the C++ build. Defaults to $TENSORRT_ROOT and standard paths.
        api (str): "AUTO", "V2" or "V3" (see CMakeLists.txt). Defaults to "AUTO".

    Raises:
        ExportError: nvcc missing or a compile failed; ``cpp="yes"`` without TensorRT headers.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir) if out_dir is not None else build_dir()
    nvcc = _require_nvcc(None)
    report = PluginBuildReport(out_dir=out_dir, nvcc_version=nvcc_version(nvcc))
    if archs is None:
        report.archs, report.dropped_archs = select_archs(nvcc=nvcc)
    else:
        report.archs, report.dropped_archs = select_archs(archs, nvcc=nvcc)
        if report.dropped_archs:
            raise ExportError(f"this nvcc cannot build {report.dropped_archs}",
                              evidence=f"nvcc {report.nvcc_version} supports {supported_archs(nvcc)}",
                              fix="drop them from --archs or use the CUDA toolkit of the target (JetPack's nvcc)")
    report.fatbin = compile_kernel(out_dir / FATBIN_NAME, archs=report.archs, nvcc=nvcc)
    if cpp == "no":
        report.skipped.append("C++ plugin (--no-cpp)")
    elif cpp == "yes" or find_tensorrt_include(tensorrt_root) is not None:
        report.library = build_cpp_plugin(out_dir, tensorrt_root=tensorrt_root, api=api, archs=report.archs,
                                          nvcc=nvcc)
    else:
        report.skipped.append("C++ plugin: NvInfer.h not found (pip TensorRT wheels ship no headers; use JetPack, "
                              "the TensorRT tarball or --tensorrt-root)")
    report.seconds = time.perf_counter() - t0
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siamtrt.plugin.build", description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default: {build_dir()})")
    parser.add_argument("--archs", default=None, help="comma-separated SM numbers, e.g. 72,87 (default: all this "
                                                      "nvcc supports of " + ",".join(map(str, WANTED_ARCHS)) + ")")
    parser.add_argument("--no-cpp", action="store_true", help="only the kernel fatbin (Python plugin)")
    parser.add_argument("--cpp", action="store_true", help="fail if the C++ plugin cannot be built")
    parser.add_argument("--tensorrt-root", type=Path, default=None, help="TensorRT root holding include/NvInfer.h")
    parser.add_argument("--api", choices=("AUTO", "V2", "V3"), default="AUTO", help="C++ plugin interface")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    archs = [int(a) for a in args.archs.split(",")] if args.archs else None
    try:
        report = build_plugin(args.out, archs=archs, cpp="no" if args.no_cpp else ("yes" if args.cpp else "auto"),
                              tensorrt_root=args.tensorrt_root, api=args.api)
    except SiamtrtError as e:
        print(e, file=sys.stderr)
        return 2
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
