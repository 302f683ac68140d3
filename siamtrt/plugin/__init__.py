"""The DepthwiseXCorr TensorRT plugin: one CUDA kernel (dwxcorr_kernel.cu) and its wrappers.

* ``dwxcorr_kernel.{h,cuh,cu}`` — the kernel and its C launch functions, shared by every wrapper;
* ``dwxcorr_plugin_v2.*`` (IPluginV2DynamicExt, TensorRT 8.x) and ``dwxcorr_plugin_v3.*`` (IPluginV3, TensorRT
  10/11) + ``CMakeLists.txt`` — the C++ plugin library for Python-free deployment;
* ``python_plugin.py`` — the same plugin as a Python IPluginV3 (needs TensorRT >= 10 and cuda-python);
* ``kernel.py`` — numpy reference, launch geometry, fatbin/NVRTC loading; ``build.py`` — nvcc + CMake driver.

Nothing here imports torch or TensorRT at import time. See docs/tensorrt.md.
"""

from .kernel import FATBIN_NAME, KERNEL_SOURCE, LIBRARY_NAME, PLUGIN_DIR, build_dir, dwxcorr_reference
from .python_plugin import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION

__all__ = ["FATBIN_NAME", "KERNEL_SOURCE", "LIBRARY_NAME", "PLUGIN_DIR", "PLUGIN_NAME", "PLUGIN_NAMESPACE",
           "PLUGIN_VERSION", "build_dir", "dwxcorr_reference"]
