"""The runtime half of the engine contract: every engine travels with ``<engine>.json`` (its sidecar), checked here
before TensorRT sees the engine, so a Jetson needs nothing from ``siamtrt.export``.

* :func:`read_sidecar` / :func:`check_sidecar` / :func:`verify_engine` — TensorRT package and version, GPU,
  precision, xcorr mode, hashes of the engine and its source ONNX, the exact build command. An engine from another
  TensorRT, another GPU, or an edited ONNX is refused with that command;
* :func:`load_engine` — probe CUDA first (a TensorRT Runtime without a device segfaults on deserialize), register
  the DepthwiseXCorr plugin the sidecar names, deserialize.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from ..errors import EngineError
from ..gpu.cuda import CudaDevice, require_cuda
from ..gpu.tensorrt import TrtLogger, TrtModule, import_tensorrt
from ..metadata import file_sha256
from ..modeldir import build_command, sidecar_path

LOG = logging.getLogger(__name__)

SIDECAR_SCHEMA = 1
PLUGIN_LIB_ENV = "SIAMTRT_PLUGIN_LIB"
DIGEST_KEY = "sidecar_sha256"  # the sidecar's own digest: an edited sidecar (say, its TensorRT version) is refused


def sidecar_digest(side: Dict[str, Any]) -> str:
    """sha256 of a sidecar's content without its own digest (canonical JSON), written by the builder."""
    body = {k: v for k, v in side.items() if k != DIGEST_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_sidecar(engine_path: Union[str, Path]) -> Dict[str, Any]:
    """The JSON sidecar of an engine.

    Raises:
        EngineError: missing, unreadable or of an unknown schema.
    """
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise EngineError(f"{engine_path} has no sidecar {path.name}, so siamtrt cannot tell what it was built for",
                          evidence="every engine built by export/build_engine.py is written with <engine>.json",
                          fix=f"rebuild: {rebuild_command(engine_path)}")
    try:
        side = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise EngineError(f"sidecar {path} is not readable JSON", evidence=str(e)[:200],
                          fix=f"rebuild: {rebuild_command(engine_path)}") from None
    if not isinstance(side, dict) or side.get("schema") != SIDECAR_SCHEMA:
        raise EngineError(f"sidecar {path} has schema {side.get('schema') if isinstance(side, dict) else '?'}, "
                          f"this siamtrt reads schema {SIDECAR_SCHEMA}",
                          fix=f"rebuild: {rebuild_command(engine_path)}")
    if DIGEST_KEY in side and side[DIGEST_KEY] != sidecar_digest(side):
        raise EngineError(f"sidecar {path} was edited after the build",
                          evidence=f"its content no longer matches the {DIGEST_KEY} the builder recorded (an edited "
                                   "TensorRT version, GPU or hash does not change the engine it describes)",
                          fix=_rebuild(side, Path(engine_path)))
    return side


def rebuild_command(engine_path: Union[str, Path], side: Optional[Dict[str, Any]] = None) -> str:
    """The command that rebuilds an engine: the one its sidecar ``side`` records; for an engine whose sidecar is
    missing or unreadable, the one an intact sibling engine's sidecar records (an engine-only folder holds no ONNX
    to pass as --model); else the build command for the engine's folder."""
    engine_path = Path(engine_path)
    if side and side.get("rebuild_command"):
        return str(side["rebuild_command"])
    for other in sorted(engine_path.parent.glob("*.engine")):
        if other.name == engine_path.name:
            continue
        try:
            sib = json.loads(sidecar_path(other).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(sib, dict) and sib.get("rebuild_command") and sib.get(DIGEST_KEY, sidecar_digest(sib)) == \
                sidecar_digest(sib):
            return str(sib["rebuild_command"])
    return build_command(engine_path.parent)


def _rebuild(side: Dict[str, Any], engine_path: Path) -> str:
    return f"rebuild the engines on this machine: {rebuild_command(engine_path, side)}"


def _cc_tuple(text: Optional[str]) -> Optional[Tuple[int, int]]:
    try:
        major, minor = str(text).split(".")
        return int(major), int(minor)
    except (ValueError, AttributeError):
        return None


def check_sidecar(engine_path: Union[str, Path], side: Dict[str, Any], *, package: Optional[str] = None,
                  version: Optional[str] = None, device: Optional[CudaDevice] = None,
                  check_onnx: bool = True) -> List[str]:
    """Refuse an engine that does not belong here; return warnings for tolerable differences.

    Checks, in order: the engine file's hash (tampered / truncated), the TensorRT package and version (``package`` /
    ``version`` of the importing process; None skips), the source ONNX hash when that file is found next to the engine
    or at its recorded path (edited / re-exported ONNX), and the GPU (``device``; None skips): compute capability must
    match unless the engine was built hardware-compatible or without a GPU (tensorrt_rtx compiles per GPU at load).

    Raises:
        EngineError: with the exact rebuild command.
    """
    engine_path = Path(engine_path)
    fix = _rebuild(side, engine_path)
    warnings: List[str] = []
    eng = side.get("engine", {})
    if not engine_path.is_file():
        raise EngineError(f"engine {engine_path} does not exist", fix=fix)
    size = engine_path.stat().st_size
    if eng.get("bytes") is not None and size != eng.get("bytes"):
        raise EngineError(f"engine {engine_path} was modified after it was built (size changed)",
                          evidence=f"{size} bytes on disk, {eng.get('bytes')} recorded in "
                                   f"{sidecar_path(engine_path).name}",
                          fix=fix)
    if eng.get("sha256") and file_sha256(engine_path) != eng["sha256"]:
        raise EngineError(f"engine {engine_path} was modified after it was built (hash mismatch)",
                          evidence=f"sha256 recorded in {sidecar_path(engine_path).name}: {eng['sha256'][:16]}…",
                          fix=fix)
    trt_info = side.get("tensorrt", {})
    built_with = trt_info.get("package", trt_info.get("flavour"))  # sidecars before 0.2 wrote "flavour"
    if package is not None and built_with != package:
        raise EngineError(f"engine {engine_path.name} was built with {built_with} "
                          f"{trt_info.get('version')}, this process runs {package} {version}",
                          evidence="TensorRT engines load only in the TensorRT that built them",
                          fix=fix + f" (or install {built_with} {trt_info.get('version')})")
    if version is not None and trt_info.get("version") != version:
        raise EngineError(f"engine {engine_path.name} was built with {built_with} "
                          f"{trt_info.get('version')}, this process has {version}",
                          evidence="serialized engines are tied to the exact TensorRT version",
                          fix=fix + f" (or install {built_with}=={trt_info.get('version')})")
    src = side.get("source_onnx") or {}
    if check_onnx and src.get("sha256"):
        cands = [engine_path.parent / src.get("file", ""), Path(src.get("path", ""))]
        found = next((c for c in cands if src.get("file") and c.is_file()), None)
        if found is None:
            LOG.debug("TensorRT: source ONNX of %s not found; hash check skipped", engine_path)
        elif file_sha256(found) != src["sha256"]:
            raise EngineError(f"{found} changed since {engine_path.name} was built (edited or re-exported ONNX)",
                              evidence=f"sha256 now {file_sha256(found)[:16]}…, recorded {src['sha256'][:16]}…",
                              fix=fix)
    gpu = side.get("gpu") or {}
    if device is not None and not gpu.get("built_without_gpu"):
        built_cc = _cc_tuple(gpu.get("compute_capability"))
        hwc = str(side.get("build_options", {}).get("hardware_compatibility", "none")).lower()
        here = device.compute_capability
        compatible = built_cc is None or built_cc == here or (hwc == "ampere_plus" and here >= (8, 0))
        if not compatible:
            raise EngineError(f"engine {engine_path.name} was built for {gpu.get('name')} "
                              f"(sm_{built_cc[0]}{built_cc[1]}), this GPU is {device.name} ({device.sm})",
                              evidence="TensorRT engines are compiled for one GPU architecture",
                              fix=fix)
        if built_cc is not None and built_cc != here:
            warnings.append(f"engine {engine_path.name} is hardware-compatible ({hwc}), built on {gpu.get('name')}, "
                            f"running on {device.name}: expect slower kernels than a native build")
        elif gpu.get("name") and gpu.get("name") != device.name:
            warnings.append(f"engine {engine_path.name} was built on {gpu.get('name')}, running on {device.name} "
                            "(same compute capability: it loads, but tactics were timed on the other GPU)")
    return warnings


def verify_integrity(engine_path: Union[str, Path], *, check_onnx: bool = True) -> Dict[str, Any]:
    """The checks that need neither TensorRT nor a GPU (``inspect``, ``to_triton``): the sidecar is readable and
    unedited, the engine matches its recorded size and sha256, its source ONNX (where found) is unchanged.

    Returns:
        dict: the sidecar.

    Raises:
        EngineError: with the rebuild command.
    """
    side = read_sidecar(engine_path)
    check_sidecar(engine_path, side, check_onnx=check_onnx)
    return side


def verify_engine(engine_path: Union[str, Path], *, trt: Optional[TrtModule] = None,
                  device: Optional[CudaDevice] = None, check_onnx: bool = True) -> Dict[str, Any]:
    """Read and check an engine's sidecar against this process (TensorRT imported here; ``device`` if given).

    Returns:
        dict: the sidecar.

    Raises:
        EngineError: missing/invalid sidecar or any mismatch (message carries the rebuild command).
    """
    side = read_sidecar(engine_path)
    trt = trt or import_tensorrt()
    for w in check_sidecar(engine_path, side, package=trt.package, version=trt.version, device=device,
                           check_onnx=check_onnx):
        LOG.warning("TensorRT: %s", w)
    return side


def plugin_library_candidates(side: Dict[str, Any], engine_path: Path) -> List[Path]:
    """Where to look for the C++ plugin library: $SIAMTRT_PLUGIN_LIB, the sidecar's path, next to the engine."""
    plugin = side.get("plugin") or {}
    cands = []
    if os.environ.get(PLUGIN_LIB_ENV):
        cands.append(Path(os.environ[PLUGIN_LIB_ENV]))
    if plugin.get("library"):
        cands.append(Path(plugin["library"]))
        cands.append(engine_path.parent / Path(plugin["library"]).name)
    return cands


def register_plugins(side: Dict[str, Any], engine_path: Path, trt: TrtModule) -> Optional[str]:
    """Make the DepthwiseXCorr plugin an engine needs available before it is deserialized; return what was loaded.

    Raises:
        EngineError: the engine needs a plugin that cannot be found or registered here.
    """
    plugin = side.get("plugin") or {}
    impl = plugin.get("implementation")
    if not impl:
        return None
    if impl == "cpp":
        import ctypes

        for cand in plugin_library_candidates(side, engine_path):
            if cand.is_file():
                ctypes.CDLL(str(cand), mode=getattr(ctypes, "RTLD_GLOBAL", 0))
                return f"C++ plugin {cand}"
        raise EngineError(f"{engine_path.name} uses the C++ DepthwiseXCorr plugin, whose library is not here",
                          evidence="looked at: " + ", ".join(str(c) for c in
                                                             plugin_library_candidates(side, engine_path)),
                          fix=f"build it (python -m siamtrt.plugin.build) and set {PLUGIN_LIB_ENV}=<path to "
                              "libsiamtrt_dwxcorr.so>")
    if impl == "python":
        # The Python IPluginV3 lives with the kernel sources in siamtrt/plugin (shared by export and runtime; no torch).
        from ..plugin.python_plugin import register

        register(trt.module)
        return "Python DepthwiseXCorr plugin"
    raise EngineError(f"{engine_path.name}: unknown plugin implementation {impl!r} in the sidecar",
                      fix=_rebuild(side, engine_path))


def load_engine(engine_path: Union[str, Path], *, trt: Optional[TrtModule] = None,
                check_onnx: bool = True) -> Tuple[Any, Any, Dict[str, Any]]:
    """Verify, then deserialize an engine: returns (ICudaEngine, Runtime, sidecar). Keep the Runtime alive.

    Raises:
        EngineError: sidecar mismatch or deserialization failure (with the rebuild command).
        BackendError: no CUDA device (checked before any TensorRT runtime object is created).
    """
    engine_path = Path(engine_path)
    trt = trt or import_tensorrt()
    side = verify_engine(engine_path, trt=trt, device=None, check_onnx=check_onnx)
    device = require_cuda(f"loading {engine_path.name}")
    for w in check_sidecar(engine_path, side, device=device, check_onnx=False):
        LOG.warning("TensorRT: %s", w)
    loaded = register_plugins(side, engine_path, trt)
    if loaded:
        LOG.info("TensorRT: %s registered for %s", loaded, engine_path.name)
    logger = TrtLogger.shared(trt.module)
    logger.errors.clear()
    runtime = trt.module.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise EngineError(f"{trt.describe()} could not deserialize {engine_path}",
                          evidence="; ".join(logger.errors)[-800:] or "no TensorRT error message",
                          fix=_rebuild(side, engine_path))
    return engine, runtime, side


__all__ = ["DIGEST_KEY", "PLUGIN_LIB_ENV", "SIDECAR_SCHEMA", "check_sidecar", "load_engine", "read_sidecar",
           "rebuild_command", "register_plugins", "sidecar_digest", "verify_engine", "verify_integrity"]
