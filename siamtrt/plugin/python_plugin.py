"""DepthwiseXCorr as a Python IPluginV3 (JIT plugin): build and run plugin-mode engines without compiling C++.

Follows NVIDIA's samples/python/python_plugin: one class deriving from ``IPluginV3``, ``IPluginV3OneCore``,
``IPluginV3OneBuild`` and ``IPluginV3OneRuntime`` (it is its own capability interface), and an
``IPluginCreatorV3One`` registered in TensorRT's plugin registry under name "DepthwiseXCorr", version "1",
namespace "" — the names the ONNX node carries, so the ONNX parser finds it. ``enqueue`` launches the compiled kernel
(kernel.py: the nvcc fatbin, else NVRTC) through cuda-python on TensorRT's stream.

Engines built with this plugin need it registered again in every process that deserializes them (the runtime does
that from the engine sidecar, before deserializing). For Python-free deployment build the C++ plugin (CMakeLists.txt).

Importing this module needs neither TensorRT nor cuda-python: the classes are created by :func:`plugin_classes`
for the TensorRT module in use (``tensorrt`` or tensorrt_rtx, same API).
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Optional, Tuple

import numpy as np

PLUGIN_NAME = "DepthwiseXCorr"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""

log = logging.getLogger(__name__)
_REGISTERED: dict = {}  # id(trt module) -> creator (TensorRT keeps a raw pointer: the object must stay alive)


def _np_dtype(trt: Any, dt: Any) -> np.dtype:
    if dt == trt.DataType.FLOAT:
        return np.dtype(np.float32)
    if dt == trt.DataType.HALF:
        return np.dtype(np.float16)
    raise TypeError(f"DepthwiseXCorr: unsupported data type {dt}")


@functools.lru_cache(maxsize=None)
def plugin_classes(trt: Any) -> Tuple[type, type]:
    """(plugin class, creator class) subclassing the IPluginV3 interfaces of the TensorRT module ``trt``."""

    class DepthwiseXCorrPlugin(trt.IPluginV3, trt.IPluginV3OneCore, trt.IPluginV3OneBuild, trt.IPluginV3OneRuntime):
        def __init__(self):
            trt.IPluginV3.__init__(self)
            trt.IPluginV3OneCore.__init__(self)
            trt.IPluginV3OneBuild.__init__(self)
            trt.IPluginV3OneRuntime.__init__(self)
            self.plugin_name = PLUGIN_NAME
            self.plugin_version = PLUGIN_VERSION
            self.plugin_namespace = PLUGIN_NAMESPACE
            self.num_outputs = 1
            self.kernel = None  # CompiledKernel, loaded at the first enqueue (needs a CUDA context)

        # IPluginV3
        def get_capability_interface(self, type):
            return self

        def clone(self):
            cloned = DepthwiseXCorrPlugin()
            cloned.kernel = self.kernel
            return cloned

        # IPluginV3OneBuild
        def get_output_data_types(self, input_types):
            return [input_types[0]]

        def get_output_shapes(self, inputs, shape_inputs, expr_builder):
            x, k = inputs[0], inputs[1]
            out = trt.DimsExprs(x)
            one = expr_builder.constant(1)
            for axis in (2, 3):
                diff = expr_builder.operation(trt.DimensionOperation.SUB, x[axis], k[axis])
                out[axis] = expr_builder.operation(trt.DimensionOperation.SUM, diff, one)
            return [out]

        def supports_format_combination(self, pos, in_out, num_inputs):
            desc = in_out[pos].desc
            if desc.format != trt.TensorFormat.LINEAR:
                return False
            if pos == 0:
                return desc.type in (trt.DataType.FLOAT, trt.DataType.HALF)
            return desc.type == in_out[0].desc.type

        def configure_plugin(self, inp, out):
            pass

        def get_workspace_size(self, inp, out):
            return 0

        def get_valid_tactics(self):
            return []

        # IPluginV3OneRuntime
        def set_tactic(self, tactic):
            pass

        def on_shape_change(self, inp, out):
            pass

        def attach_to_context(self, context):
            return self.clone()

        def get_fields_to_serialize(self):
            return trt.PluginFieldCollection([])

        def enqueue(self, input_desc, output_desc, inputs, outputs, workspace, stream):
            from .kernel import CompiledKernel

            if self.kernel is None:
                self.kernel = _shared_kernel(CompiledKernel)
            n, c, hh, ww = (int(d) for d in input_desc[0].dims)
            _, _, kh, kw = (int(d) for d in input_desc[1].dims)
            self.kernel.launch(_np_dtype(trt, input_desc[0].type), inputs[0], inputs[1], outputs[0],
                               n, c, hh, ww, kh, kw, stream)

    class DepthwiseXCorrCreator(trt.IPluginCreatorV3One):
        def __init__(self):
            trt.IPluginCreatorV3One.__init__(self)
            self.name = PLUGIN_NAME
            self.plugin_version = PLUGIN_VERSION
            self.plugin_namespace = PLUGIN_NAMESPACE
            self.field_names = trt.PluginFieldCollection([])

        def create_plugin(self, name, fc, phase):
            return DepthwiseXCorrPlugin()

    return DepthwiseXCorrPlugin, DepthwiseXCorrCreator


_KERNEL: dict = {}


def _shared_kernel(loader) -> Any:
    """One loaded module per process (every plugin instance and context shares it)."""
    if "k" not in _KERNEL:
        _KERNEL["k"] = loader.load()
    return _KERNEL["k"]


def register(trt: Optional[Any] = None) -> Any:
    """Register the Python DepthwiseXCorr creator in ``trt``'s plugin registry (idempotent); return the creator.

    Args:
        trt (module): the TensorRT module. Defaults to the one :func:`siamtrt.gpu.tensorrt.import_tensorrt` picks.

    Raises:
        EngineError: this TensorRT has no Python IPluginV3 support (TensorRT < 10).
    """
    from ..errors import EngineError

    if trt is None:
        from ..gpu.tensorrt import import_tensorrt
        trt = import_tensorrt().module
    if id(trt) in _REGISTERED:
        return _REGISTERED[id(trt)]
    if not (hasattr(trt, "IPluginV3") and hasattr(trt, "IPluginCreatorV3One")):
        raise EngineError(f"{trt.__name__} {getattr(trt, '__version__', '?')} has no Python IPluginV3 interface",
                          evidence="Python plugins need TensorRT >= 10.0",
                          fix="build the C++ plugin (python -m siamtrt.plugin.build) and pass "
                              "--plugin-lib build/libsiamtrt_dwxcorr.so, or use --xcorr conv")
    _, creator_cls = plugin_classes(trt)
    creator = creator_cls()
    ok = trt.get_plugin_registry().register_creator(creator, PLUGIN_NAMESPACE)
    if not ok:
        existing = trt.get_plugin_registry().get_creator(PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE)
        if existing is None:
            raise EngineError("TensorRT refused to register the Python DepthwiseXCorr plugin creator",
                              fix="check the TensorRT log above")
        log.info("plugin: a DepthwiseXCorr creator was already registered (C++ library?); keeping it")
        creator = existing
    _REGISTERED[id(trt)] = creator
    return creator
