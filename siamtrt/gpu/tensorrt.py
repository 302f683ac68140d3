"""The TensorRT library, imported once for export and runtime alike (a leaf: no other siamtrt module below it).

* :func:`import_tensorrt` — ``tensorrt`` (JetPack, NVIDIA's wheels) else ``tensorrt_rtx``; ``$SIAMTRT_TENSORRT``
  or ``prefer`` picks one explicitly;
* :class:`TrtLogger` — an ILogger forwarding to ``logging`` that keeps the errors for messages.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..errors import EngineError

LOG = logging.getLogger(__name__)

TRT_PACKAGES = ("tensorrt", "tensorrt_rtx")
TRT_ENV = "SIAMTRT_TENSORRT"


@dataclass(frozen=True)
class TrtModule:
    """The imported TensorRT module and which package it is ("tensorrt" or "tensorrt_rtx")."""

    module: Any
    package: str  # "tensorrt" | "tensorrt_rtx"
    version: str

    def describe(self) -> str:
        return f"{self.package} {self.version}"


@functools.lru_cache(maxsize=None)
def import_tensorrt(prefer: Optional[str] = None) -> TrtModule:
    """Import ``tensorrt``, else ``tensorrt_rtx`` (``prefer`` or ``$SIAMTRT_TENSORRT`` picks one explicitly).

    Raises:
        EngineError: neither is installed (or the preferred one is not).
    """
    prefer = prefer or os.environ.get(TRT_ENV) or None
    if prefer is not None and prefer not in TRT_PACKAGES:
        raise EngineError(f"unknown TensorRT package '{prefer}'", evidence=f"valid: {TRT_PACKAGES}",
                          fix=f"set {TRT_ENV} to one of them or unset it")
    order = [prefer] if prefer else list(TRT_PACKAGES)
    errors = []
    for name in order:
        try:
            mod = __import__(name)
        except ImportError as e:
            errors.append(f"{name}: {e}")
            continue
        return TrtModule(mod, name, str(getattr(mod, "__version__", "unknown")))
    raise EngineError("TensorRT is not installed" if not prefer else f"{prefer} is not installed",
                      evidence="; ".join(errors)[:400],
                      fix="JetPack ships tensorrt; on a desktop: pip install tensorrt --extra-index-url "
                          "https://pypi.nvidia.com (needs a GPU to build), or pip install tensorrt-rtx "
                          "(builds without a GPU; no plugins)")


class TrtLogger:
    """Factory for a TensorRT ILogger that forwards to ``logging`` and keeps the errors for messages."""

    _shared: Dict[int, Any] = {}

    @classmethod
    def shared(cls, trt: Any):
        """One logger per TensorRT module for the whole process: runtimes keep a raw pointer to their logger, so it
        must outlive every engine (its ``errors`` list is cleared by callers before use)."""
        if id(trt) not in cls._shared:
            cls._shared[id(trt)] = cls.create(trt)
        return cls._shared[id(trt)]

    @staticmethod
    def create(trt: Any, name: str = "TensorRT"):
        class _Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.errors: List[str] = []

            def log(self, severity, msg):
                if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                    self.errors.append(str(msg))
                    LOG.debug("%s: [E] %s", name, msg)
                elif severity == trt.ILogger.Severity.WARNING:
                    LOG.debug("%s: [W] %s", name, msg)

        return _Logger()


__all__ = ["TRT_ENV", "TRT_PACKAGES", "TrtLogger", "TrtModule", "import_tensorrt"]
