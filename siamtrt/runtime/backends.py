"""The backend registry: name → loader of a :class:`~siamtrt.runtime.backend.Backend` subclass, and ``auto``.

A backend is one module plus one line in :data:`BACKENDS`; loaders import their module only when selected, so
``import siamtrt.runtime`` needs none of the inference libraries.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Type, Union

from ..errors import BackendError
from ..modeldir import ENGINE_FILES
from .backend import OR_AUTO, Backend


def _load_onnxruntime() -> Type[Backend]:
    from .ort import OrtBackend
    return OrtBackend


def _load_openvino() -> Type[Backend]:
    from .openvino import OpenVinoBackend
    return OpenVinoBackend


def _load_tensorrt() -> Type[Backend]:
    try:
        from .trt import TrtBackend
    except ImportError as e:
        raise BackendError("the TensorRT backend is not available in this installation", evidence=repr(e)[:300],
                           fix=f"install TensorRT (JetPack, or pip install tensorrt cuda-python), {OR_AUTO}") from None
    return TrtBackend


#: name → zero-argument loader returning the class. Modules are imported only when their entry is selected.
BACKENDS: Dict[str, Callable[[], Type[Backend]]] = {
    "onnxruntime": _load_onnxruntime,
    "openvino": _load_openvino,
    "tensorrt": _load_tensorrt,
}
ALIASES = {"ort": "onnxruntime", "trt": "tensorrt", "ov": "openvino"}


def backend_class(name: str) -> Type[Backend]:
    """The backend class registered under ``name`` (imports its module).

    Raises:
        BackendError: unknown name (lists valid names, suggests the closest) or the module cannot be imported.
    """
    key = ALIASES.get(name, name)
    if key not in BACKENDS:
        close = difflib.get_close_matches(name, list(BACKENDS) + ["auto"], n=1)
        raise BackendError(f"unknown backend '{name}'", evidence="valid: auto, " + ", ".join(BACKENDS),
                           fix=f"did you mean '{close[0]}'?" if close else "choose one of the valid names")
    return BACKENDS[key]()


def _on_cpu(reason: str) -> Tuple[str, str]:
    """The CPU choice of "auto": OpenVINO where installed (INT8 search 0.5-0.7x ORT INT8's time, FP32 on par;
    README "Backends"), else ONNX Runtime; (name, reason)."""
    if backend_class("openvino").unavailable_reason() is None:
        return "openvino", f"{reason}; OpenVINO installed (the fastest CPU backend)"
    return "onnxruntime", reason


def choose_backend(name: str, model_dir: Optional[Union[str, Path]] = None) -> Tuple[str, str]:
    """Resolve ``"auto"``: tensorrt when the directory has engines, TensorRT imports and a CUDA device exists;
    otherwise the CPU backend (openvino where installed, else onnxruntime). Returns (name, reason).
    """
    if name != "auto":
        return ALIASES.get(name, name), "requested"
    model_dir = Path(model_dir) if model_dir is not None else None
    if model_dir is None or not all((model_dir / f).is_file() for f in ENGINE_FILES.values()):
        return _on_cpu("no TensorRT engines in the model directory")
    try:
        cls = backend_class("tensorrt")
    except BackendError as e:
        return _on_cpu(f"engines present but TensorRT backend unavailable ({e.what})")
    reason = cls.unavailable_reason(model_dir)
    if reason:
        return _on_cpu(f"engines present but {reason}")
    return "tensorrt", "engines present, TensorRT and a CUDA device available"


def accepted_options(name: str, options: Dict[str, Any]) -> Dict[str, Any]:
    """The entries of ``options`` that backend ``name`` declares (its ``option_names``); None values dropped.

    Code outside a backend passes generic options (threads, providers, ...) through this instead of naming
    backends: each backend declares what it accepts, so a new backend needs no change elsewhere.
    """
    cls = backend_class(ALIASES.get(name, name))
    return {k: v for k, v in options.items() if k in cls.option_names and v is not None}


__all__ = ["ALIASES", "BACKENDS", "accepted_options", "backend_class", "choose_backend"]
