"""What the installed TensorRT builder can do, detected from its API rather than from its name or version.

One build code path serves ``tensorrt`` 8.5 (JetPack 5), 10.3 (JetPack 6), 10.x/11.x desktop and ``tensorrt_rtx``:

* weak typing (``BuilderFlag.FP16`` / ``INT8``) exists up to TensorRT 10 and is gone in 11 and tensorrt_rtx, where the
  network is strongly typed and precision lives in the ONNX (FP16 tensors, Q/DQ nodes);
* ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` must be passed on 8.x, is ignored on 10.x and gone on 11.x;
* plugin layers (``INetworkDefinition.add_plugin_v3`` / ``add_plugin_v2``) are missing from tensorrt_rtx 1.x, whose
  ONNX parser must then never see a plugin node;
* Python IPluginV3 classes exist from 10.0.

docs/tensorrt.md tabulates what each known TensorRT accepts, ``siamtrt.modeldir.TARGETS`` which model directories each
package takes; the build decisions themselves use :func:`detect` on the module actually imported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

from ..gpu.tensorrt import TrtModule, import_tensorrt


@dataclass(frozen=True)
class BuilderCaps:
    """Capabilities of one TensorRT module's builder (all detected by attribute)."""

    package: str
    version: str
    weak_typing: bool            # BuilderFlag.FP16 exists: precision flags on FP32 networks
    int8_flag: bool              # BuilderFlag.INT8 exists (legacy explicit/implicit INT8 switch)
    int8_calibrator: bool        # IInt8EntropyCalibrator2 exists: implicit INT8 from a calibration cache (<= 10.x)
    strongly_typed: bool         # NetworkDefinitionCreationFlag.STRONGLY_TYPED exists
    explicit_batch_flag: bool    # EXPLICIT_BATCH exists (required on 8.x, ignored on 10.x)
    plugin_v3_layers: bool       # INetworkDefinition.add_plugin_v3
    plugin_v2_layers: bool       # INetworkDefinition.add_plugin_v2
    python_plugin_v3: bool       # trt.IPluginV3 + IPluginCreatorV3One (Python plugins)
    engine_inspector: bool       # ICudaEngine.create_engine_inspector
    progress_monitor: bool       # trt.IProgressMonitor
    timing_cache: bool           # IBuilderConfig.create_timing_cache
    memory_pools: bool           # IBuilderConfig.set_memory_pool_limit (8.4+); else max_workspace_size

    @property
    def plugin_layers(self) -> bool:
        return self.plugin_v3_layers or self.plugin_v2_layers

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        typing = "weak+strong typing" if self.weak_typing and self.strongly_typed else (
            "weak typing only" if self.weak_typing else "strongly typed only")
        plugins = "plugin layers" if self.plugin_layers else "no plugin layers"
        return f"{self.package} {self.version} ({typing}, {plugins})"


def detect(trt: Optional[TrtModule] = None) -> BuilderCaps:
    """Detect the builder capabilities of ``trt`` (default: :func:`import_tensorrt`). Creates no TensorRT object."""
    trt = trt or import_tensorrt()
    m = trt.module
    flag = getattr(m, "BuilderFlag", None)
    ndcf = getattr(m, "NetworkDefinitionCreationFlag", None)
    net = getattr(m, "INetworkDefinition", None)
    cfg = getattr(m, "IBuilderConfig", None)
    return BuilderCaps(
        package=trt.package, version=trt.version,
        weak_typing=hasattr(flag, "FP16"), int8_flag=hasattr(flag, "INT8"),
        int8_calibrator=hasattr(flag, "INT8") and hasattr(m, "IInt8EntropyCalibrator2"),
        strongly_typed=hasattr(ndcf, "STRONGLY_TYPED"), explicit_batch_flag=hasattr(ndcf, "EXPLICIT_BATCH"),
        plugin_v3_layers=hasattr(net, "add_plugin_v3"), plugin_v2_layers=hasattr(net, "add_plugin_v2"),
        python_plugin_v3=hasattr(m, "IPluginV3") and hasattr(m, "IPluginCreatorV3One"),
        engine_inspector=hasattr(getattr(m, "ICudaEngine", None), "create_engine_inspector"),
        progress_monitor=hasattr(m, "IProgressMonitor"),
        timing_cache=hasattr(cfg, "create_timing_cache"),
        memory_pools=hasattr(cfg, "set_memory_pool_limit"),
    )


def network_flags(trt: TrtModule, caps: BuilderCaps, strongly_typed: bool) -> int:
    """``create_network`` flags: EXPLICIT_BATCH where it exists, STRONGLY_TYPED when asked (and available)."""
    m = trt.module
    flags = 0
    if caps.explicit_batch_flag:
        flags |= 1 << int(m.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strongly_typed:
        flags |= 1 << int(m.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return flags


__all__ = ["BuilderCaps", "detect", "network_flags"]
