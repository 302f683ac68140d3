"""The JSON sidecar written beside every engine (``DIR/search.engine.json``): what the engine is and how to remake it.

The runtime reads it (siamtrt.runtime.engines.check_sidecar) before TensorRT sees the engine, and refuses engines from
another TensorRT, another GPU, or an edited ONNX with the exact ``rebuild_command`` recorded here. It also carries the
full siamtrt metadata of the source ONNX (precision and xcorr updated to what was built), so a directory holding only
engines is still self-describing.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any, Dict, Optional

from .. import __version__
from ..metadata import file_sha256
from ..gpu.cuda import CudaProbe
from ..gpu.tensorrt import TrtModule
from ..modeldir import sidecar_path
from ..runtime.engines import SIDECAR_SCHEMA


def onnx_source(onnx_path: Path) -> Dict[str, Any]:
    """Name, absolute path and sha256 of the ONNX an engine was built from (the user-facing file, not temp copies)."""
    onnx_path = Path(onnx_path)
    return {"file": onnx_path.name, "path": str(onnx_path.resolve()), "sha256": file_sha256(onnx_path)}


def gpu_record(probe: CudaProbe) -> Dict[str, Any]:
    """The GPU the engine was built on, or ``built_without_gpu`` (tensorrt_rtx on a CPU machine)."""
    if not probe.available:
        return {"built_without_gpu": True, "name": "built without GPU", "compute_capability": None,
                "reason": probe.reason}
    d = probe.devices[0]
    return {"built_without_gpu": False, "name": d.name,
            "compute_capability": f"{d.compute_capability[0]}.{d.compute_capability[1]}",
            "driver_version": probe.driver_version}


def rebuild_command(model_dir: Path, *, precision: str, xcorr: str, max_batch: int, opt_batch: int,
                    workspace_gib: Optional[float], timing_cache: Optional[Path], dla_core: Optional[int],
                    out_dir: Optional[Path], plugin_lib: Optional[Path], hardware_compatibility: str,
                    calib: Optional[Path] = None) -> str:
    """The exact ``export/build_engine.py`` command that reproduces a build (absolute paths)."""
    parts = ["python", "export/build_engine.py", "--model", str(Path(model_dir).resolve()), f"--{precision}",
             "--xcorr", xcorr, "--max-batch", str(max_batch)]
    if opt_batch != 1:
        parts += ["--opt-batch", str(opt_batch)]
    if workspace_gib is not None:
        parts += ["--workspace", f"{workspace_gib:g}"]
    if timing_cache is not None:
        parts += ["--timing-cache", str(Path(timing_cache).resolve())]
    if dla_core is not None:
        parts += ["--dla", str(dla_core)]
    if plugin_lib is not None:
        parts += ["--plugin-lib", str(Path(plugin_lib).resolve())]
    if hardware_compatibility != "none":
        parts += ["--hardware-compatibility", hardware_compatibility]
    if calib is not None:
        parts += ["--calib", str(Path(calib).resolve())]
    if out_dir is not None and Path(out_dir).resolve() != Path(model_dir).resolve():
        parts += ["--out", str(Path(out_dir).resolve())]
    return " ".join(shlex.quote(p) for p in parts)


def make_sidecar(*, engine_path: Path, branch: str, trt: TrtModule, probe: CudaProbe, precision: str, xcorr: str,
                 typing: str, source_onnx: Dict[str, Any], build_options: Dict[str, Any], profile: Dict[str, Any],
                 metadata: Dict[str, Any], plugin: Optional[Dict[str, Any]], rebuild: str, build_seconds: float,
                 layers: Dict[str, Any], io: Dict[str, Any]) -> Dict[str, Any]:
    """Assemble the sidecar dict of one freshly written engine."""
    engine_path = Path(engine_path)
    meta = dict(metadata)
    meta["precision"] = precision
    meta["xcorr"] = xcorr
    return {
        "schema": SIDECAR_SCHEMA,
        "siamtrt_version": __version__,
        "branch": branch,
        "engine": {"file": engine_path.name, "sha256": file_sha256(engine_path), "bytes": engine_path.stat().st_size},
        "tensorrt": {"package": trt.package, "version": trt.version},
        "gpu": gpu_record(probe),
        "precision": precision,
        "xcorr": xcorr,
        "typing": typing,
        "source_onnx": source_onnx,
        "build_options": build_options,
        "profile": profile,
        "io": io,
        "plugin": plugin,
        "layers": layers,
        "build_seconds": round(build_seconds, 3),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rebuild_command": rebuild,
        "metadata": meta,
    }


def write_sidecar(engine_path: Path, side: Dict[str, Any]) -> Path:
    """Write ``<engine>.json`` (sorted keys, indented: diffable) and return its path."""
    path = sidecar_path(engine_path)
    path.write_text(json.dumps(side, indent=2, sort_keys=True) + "\n")
    return path


__all__ = ["gpu_record", "make_sidecar", "onnx_source", "rebuild_command", "write_sidecar"]
