"""The DepthwiseXCorr kernel and its wrappers.

Verified where:
* CI (CPU): the CUDA source compiles with nvcc for every architecture this nvcc supports (+ PTX), with warnings as
  errors; the Python launch geometry mirrors the C launcher; the numpy reference is the op's definition; the Python
  IPluginV3 answers TensorRT's build-time questions (tensorrt_rtx provides the Python plugin base classes).
* GPU (when one is lent): kernel numerics against numpy, float and half, including more than 65535 planes.
* TensorRT headers present: the C++ plugin library builds with CMake (skipped otherwise, with the reason).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from siamtrt.plugin import build as pbuild
from siamtrt.plugin.kernel import (BLOCK, KERNEL_SOURCE, MAX_GRID_X, PLUGIN_DIR, dwxcorr_reference,
                                          launch_geometry)
from siamtrt.gpu.cuda import probe_cuda

REPO = Path(__file__).resolve().parents[2]
needs_nvcc = pytest.mark.skipif(pbuild.find_nvcc() is None, reason="nvcc (CUDA toolkit) not installed")
_PROBE = probe_cuda()
needs_gpu = pytest.mark.skipif(not _PROBE.available, reason=f"no CUDA device ({_PROBE.reason})")


def test_reference_is_the_definition():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    k = rng.standard_normal((2, 3, 3, 2)).astype(np.float32)
    y = dwxcorr_reference(x, k)
    assert y.shape == (2, 3, 5, 5)
    for n, c, i, j in [(0, 0, 0, 0), (1, 2, 4, 4), (1, 1, 2, 3)]:
        assert y[n, c, i, j] == pytest.approx(float((x[n, c, i:i + 3, j:j + 2] * k[n, c]).sum()), rel=1e-5)
    with pytest.raises(ValueError):
        dwxcorr_reference(x, k[:, :2])


def test_python_geometry_mirrors_the_c_launcher():
    header = (PLUGIN_DIR / "dwxcorr_kernel.h").read_text()
    source = KERNEL_SOURCE.read_text()
    assert int(re.search(r"#define SIAMTRT_DWXCORR_BLOCK (\d+)", header).group(1)) == BLOCK
    assert re.search(rf"gx = gx > {MAX_GRID_X} \? {MAX_GRID_X} : gx;", source)
    assert "65535LL" in source
    grid, block, shared = launch_geometry(1, 256, 29, 29, 5, 5)
    assert grid == (5, 256, 1) and block == BLOCK and shared == 100
    grid, _, _ = launch_geometry(300, 256, 29, 29, 5, 5)  # 76800 planes continue in gridDim.z
    assert grid[1] == 65535 and grid[2] == 2 and grid[1] * grid[2] >= 300 * 256


@needs_nvcc
def test_select_archs_reports_what_nvcc_cannot_build():
    archs, dropped = pbuild.select_archs()
    assert archs and set(archs) | set(dropped) == set(pbuild.WANTED_ARCHS)
    if pbuild.nvcc_version() >= (13, 0):
        assert {53, 62, 72} <= set(dropped)  # CUDA 13 removed Maxwell/Pascal/Volta: JetPack's nvcc builds those
        assert {75, 86, 87, 90} <= set(archs)


@needs_nvcc
@pytest.mark.parametrize("kind", ["object", "fatbin"])
def test_kernel_compiles_for_all_supported_archs(tmp_path, kind):
    """CI's guard: a syntax or type error in the CUDA source fails here (warnings are errors)."""
    out = pbuild.compile_kernel(tmp_path / f"dwxcorr.{'o' if kind == 'object' else 'fatbin'}", kind=kind,
                                extra_flags=["-Werror", "all-warnings"])
    assert out.stat().st_size > 1000


@needs_nvcc
def test_compile_error_is_reported_with_the_compiler_output(tmp_path, monkeypatch):
    bad = tmp_path / "bad.cu"
    bad.write_text('#include "dwxcorr_kernel.cuh"\n__global__ void k() { undefined_symbol(); }\n')
    monkeypatch.setattr(pbuild, "KERNEL_SOURCE", bad)
    with pytest.raises(pbuild.ExportError, match="nvcc failed") as e:
        pbuild.compile_kernel(tmp_path / "bad.o", kind="object", archs=[75])
    assert "undefined_symbol" in str(e.value)


def test_cpp_plugin_builds_where_tensorrt_headers_exist(tmp_path):
    if pbuild.find_tensorrt_include() is None:
        pytest.skip("TensorRT C++ headers (NvInfer.h) not found: pip wheels ship none; the C++ plugin is built with "
                    "CMake on JetPack / the TensorRT tarball")
    if pbuild.find_nvcc() is None:
        pytest.skip("nvcc (CUDA toolkit) not installed")
    lib = pbuild.build_cpp_plugin(tmp_path)
    assert lib.is_file() and lib.stat().st_size > 10000


def test_build_script_help_and_missing_headers_path():
    res = subprocess.run([sys.executable, "-m", "siamtrt.plugin.build", "--help"], cwd=REPO,
                         capture_output=True, text=True)
    assert res.returncode == 0 and "--archs" in res.stdout


# ------------------------------------------------------------------------------------------ Python IPluginV3
_PLUGIN_PROBE = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    import tensorrt_rtx as trt
    from siamtrt.plugin.python_plugin import plugin_classes, register, PLUGIN_NAME
    plugin_cls, creator_cls = plugin_classes(trt)
    creator = register(trt)
    assert register(trt) is creator                      # idempotent
    assert creator.name == PLUGIN_NAME == "DepthwiseXCorr" and creator.plugin_version == "1"
    names = [c.name for c in trt.get_plugin_registry().all_creators]
    assert "DepthwiseXCorr" in names, names
    p = creator.create_plugin("x", trt.PluginFieldCollection([]), trt.TensorRTPhase.BUILD)
    assert p.get_capability_interface(trt.PluginCapabilityType.BUILD) is p
    assert p.num_outputs == 1
    assert p.get_output_data_types([trt.DataType.HALF, trt.DataType.HALF]) == [trt.DataType.HALF]
    def desc(t, fmt=trt.TensorFormat.LINEAR):
        d = trt.DynamicPluginTensorDesc(); d.desc.type = t; d.desc.format = fmt; return d
    F, H = trt.DataType.FLOAT, trt.DataType.HALF
    assert p.supports_format_combination(0, [desc(F), desc(F), desc(F)], 2)
    assert p.supports_format_combination(2, [desc(H), desc(H), desc(H)], 2)
    assert not p.supports_format_combination(1, [desc(F), desc(H), desc(F)], 2)
    assert not p.supports_format_combination(0, [desc(trt.DataType.INT8), desc(F), desc(F)], 2)
    assert not p.supports_format_combination(0, [desc(F, trt.TensorFormat.CHW32), desc(F), desc(F)], 2)
    q = p.clone()
    assert q is not p and q.plugin_name == "DepthwiseXCorr"
    assert len(p.get_fields_to_serialize()) == 0
    print("OK")
""")


def test_python_plugin_answers_build_time_queries():
    """Instantiates the Python IPluginV3 on tensorrt_rtx's bindings (in a subprocess: TensorRT objects)."""
    pytest.importorskip("tensorrt_rtx", reason="tensorrt_rtx provides the IPluginV3 Python classes on CPU")
    res = subprocess.run([sys.executable, "-c", _PLUGIN_PROBE.format(repo=str(REPO))], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and "OK" in res.stdout, res.stdout[-2000:] + res.stderr[-2000:]


def test_plugin_modules_import_without_tensorrt_or_cuda():
    code = ("import sys; sys.modules['tensorrt'] = None; sys.modules['tensorrt_rtx'] = None; "
            "sys.modules['cuda'] = None; sys.modules['torch'] = None; "
            f"sys.path.insert(0, {str(REPO)!r}); "
            "import siamtrt.plugin.python_plugin, siamtrt.plugin.kernel, siamtrt.plugin.build; "
            "print('OK')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-1500:]


# ------------------------------------------------------------------------------------------ GPU numerics
@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("shape", [(1, 256, 29, 29, 5, 5), (3, 256, 22, 22, 4, 4), (2, 7, 9, 12, 3, 5),
                                   (300, 256, 8, 8, 3, 3)])
def test_kernel_numerics_match_numpy_on_gpu(dtype, shape):
    """Compiled kernel (prebuilt fatbin, else NVRTC) vs numpy; the last case exceeds gridDim.y (planes in z)."""
    from siamtrt.plugin.kernel import CompiledKernel, FATBIN_NAME
    from siamtrt.gpu.cuda import DeviceBuffer, Stream, cuda_call, cudart

    pytest.importorskip("cuda.bindings", reason="cuda-python not installed")
    cuda_call(cudart().cudaFree(0), "cudaFree(0)")  # create the primary context the driver API loads into
    fatbin = None
    if pbuild.find_nvcc() is not None:
        import tempfile

        dev = _PROBE.devices[0].compute_capability
        fatbin = pbuild.compile_kernel(Path(tempfile.mkdtemp()) / FATBIN_NAME, archs=[dev[0] * 10 + dev[1]])
    kernel = CompiledKernel.load(_PROBE.devices[0].compute_capability, fatbin=fatbin or Path("/nonexistent"))
    n, c, hh, ww, kh, kw = shape
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c, hh, ww)).astype(dtype)
    k = rng.standard_normal((n, c, kh, kw)).astype(dtype)
    y = np.zeros((n, c, hh - kh + 1, ww - kw + 1), dtype)
    with Stream() as s, DeviceBuffer(x.nbytes) as dx, DeviceBuffer(k.nbytes) as dk, DeviceBuffer(y.nbytes) as dy:
        s.htod(dx, x)
        s.htod(dk, k)
        kernel.launch(dtype, dx.ptr, dk.ptr, dy.ptr, n, c, hh, ww, kh, kw, s.ptr)
        s.dtoh(y, dy.ptr)
        s.synchronize()
    ref = dwxcorr_reference(x.astype(np.float32), k.astype(np.float32))
    tol = 1e-4 if dtype == np.float32 else 2e-2 * max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(y.astype(np.float32), ref, rtol=1e-3, atol=tol)
    kernel.unload()


def test_names_agree_across_cuda_cpp_python_and_onnx():
    """The plugin's name/version and the kernel entry points are spelled in C++, CUDA and Python: keep them equal."""
    from siamtrt.plugin.kernel import KERNEL_NAMES
    from siamtrt.plugin.python_plugin import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
    from siamtrt.export.xcorr_plugin_onnx import PLUGIN_ATTRS, PLUGIN_OP

    common = (PLUGIN_DIR / "dwxcorr_plugin_common.h").read_text()
    assert f'kDWXCORR_PLUGIN_NAME = "{PLUGIN_NAME}"' in common
    assert f'kDWXCORR_PLUGIN_VERSION = "{PLUGIN_VERSION}"' in common
    assert PLUGIN_OP == PLUGIN_NAME and PLUGIN_ATTRS == {"plugin_version": PLUGIN_VERSION,
                                                         "plugin_namespace": PLUGIN_NAMESPACE}
    cuh = (PLUGIN_DIR / "dwxcorr_kernel.cuh").read_text()
    header = (PLUGIN_DIR / "dwxcorr_kernel.h").read_text()
    for name in KERNEL_NAMES.values():
        assert f'extern "C" __global__ void {name}(' in cuh and f'"{name}"' in header
