"""The JSON sidecar written beside every engine (``DIR/search.engine.json``): what the engine is and how to remake it.

The runtime reads it (siamtrt.runtime.engines.check_sidecar) before TensorRT sees the engine, and refuses engines from
another TensorRT, another GPU, or an edited ONNX with the exact ``rebuild_command`` recorded here. It also carries the
full siamtrt metadata of the source ONNX (precision and xcorr updated to what was built), so a directory holding only
engines is still self-describing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, Optional

from .. import __version__
from ..metadata import file_sha256
from ..gpu.cuda import CudaProbe
from ..gpu.tensorrt import TrtModule
from ..modeldir import sidecar_path
from ..outputs import atomic_file
from ..runtime.engines import DIGEST_KEY, SIDECAR_SCHEMA, sidecar_digest


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


def make_sidecar(*, engine_path: Path, branch: str, trt: TrtModule, probe: CudaProbe, precision: str, xcorr: str,
                 typing: str, source_onnx: Dict[str, Any], build_options: Dict[str, Any], profile: Dict[str, Any],
                 metadata: Dict[str, Any], plugin: Optional[Dict[str, Any]], rebuild: str, build_seconds: float,
                 layers: Dict[str, Any], io: Dict[str, Any]) -> Dict[str, Any]:
    """Assemble the sidecar dict of one freshly written engine; it ends with its own digest (``sidecar_sha256``), so
    an edited sidecar is refused (:func:`siamtrt.runtime.engines.read_sidecar`)."""
    engine_path = Path(engine_path)
    meta = dict(metadata)
    meta["precision"] = precision
    meta["xcorr"] = xcorr
    side = {
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
    side = json.loads(json.dumps(side))  # the JSON types the digest is computed over when read back
    side[DIGEST_KEY] = sidecar_digest(side)
    return side


def write_sidecar(engine_path: Path, side: Dict[str, Any]) -> Path:
    """Write ``<engine>.json`` (sorted keys, indented: diffable) and return its path."""
    path = sidecar_path(engine_path)
    with atomic_file(path) as f:
        f.write(json.dumps(side, indent=2, sort_keys=True) + "\n")
    return path


__all__ = ["gpu_record", "make_sidecar", "onnx_source", "write_sidecar"]
