"""The GPU check (scripts/gpu_check.sh, siamtrt/benchmarks/gpu_check).

On this CPU machine: the script runs end to end, exits 3 ("no CUDA device") and writes the JSON with every section
skipped with the reason; the correlation shape list covers every architecture of siamtrt.config.CONFIGS (and agrees
with a real forward pass); the tolerance rule passes exact results and fails wrong ones; the CUDA-layer checks pass
on a simulated CUDA runtime and fail on simulated faults (capture that runs the work, memory never released, a
corrupted copy); the kernel cases' GPU code path (buffers, NaN poison, guard tail, event timing, graph replay) passes
with a simulated kernel and fails with one that writes past its output or skips a plane; time boxes turn into "timeout"; the dry run (--device cpu) passes end to end; the modules need no
OpenCV / ONNX / TensorRT. With a GPU (`gpu` marker): the whole script passes.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from siamtrt.config import CONFIGS
from siamtrt.gpu.cuda import CudaDevice, CudaProbe, probe_cuda
from sim_cuda import SimCudart

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_check.sh"
PROBE = probe_cuda()
needs_gpu = pytest.mark.skipif(not PROBE.available, reason=f"no CUDA device ({PROBE.reason})")
no_gpu_only = pytest.mark.skipif(PROBE.available, reason="a CUDA device is present (this checks the no-GPU path)")


def _run_script(tmp_path: Path, *args: str, timeout: float = 600) -> tuple:
    out = tmp_path / "gpu_check.json"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)}
    res = subprocess.run(["bash", str(SCRIPT), "--out", str(out), *args], capture_output=True, text=True,
                         timeout=timeout, env=env, cwd=str(tmp_path))
    report = json.loads(out.read_text()) if out.is_file() else None
    return res, report


@no_gpu_only
def test_script_writes_a_relative_out_in_the_callers_folder(tmp_path):
    """The script runs in the checkout: a relative --out was written there (and named relative to it) instead of in
    the folder it was typed in."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)}
    for arg in (["--out", "mine.json"], ["--out=sub/mine2.json"]):
        res = subprocess.run(["bash", str(SCRIPT), *arg], capture_output=True, text=True, timeout=120, env=env,
                             cwd=str(tmp_path))
        assert res.returncode == 3, res.stderr[-2000:]
    assert json.loads((tmp_path / "mine.json").read_text())["status"] == "no_cuda_device"
    assert (tmp_path / "sub" / "mine2.json").is_file() and f"wrote {tmp_path / 'sub' / 'mine2.json'}" in res.stderr
    assert not (REPO / "mine.json").exists() and not (REPO / "sub").exists()


# ------------------------------------------------------------------------------------------ the no-GPU path
@no_gpu_only
def test_script_without_cuda_device_exits_3_with_every_section_skipped(tmp_path):
    from siamtrt.benchmarks.gpu_check import EXIT_NO_CUDA, SCHEMA, SECTIONS, validate_report

    t0 = time.monotonic()
    res, report = _run_script(tmp_path, timeout=120)
    assert res.returncode == EXIT_NO_CUDA == 3, res.stderr[-2000:]
    assert "no CUDA device" in res.stderr and "nothing was checked" in res.stderr
    assert report is not None and validate_report(report) == []
    assert report["schema"] == SCHEMA and report["status"] == "no_cuda_device" and report["exit_code"] == 3
    assert report["device"]["cuda_available"] is False and report["device"]["reason"] == PROBE.reason
    assert set(report["sections"]) == set(SECTIONS)
    for name, sec in report["sections"].items():
        assert sec["status"] == "skipped" and sec["reason"] == f"no CUDA device ({PROBE.reason})", name
    assert report["versions"]["python"] and "torch" in report["versions"]
    assert time.monotonic() - t0 < 60  # nothing heavy runs without a device


def test_bad_arguments_exit_2(tmp_path):
    res, report = _run_script(tmp_path, "--configs", "no_such_model", timeout=60)
    assert res.returncode == 2 and "invalid choice" in res.stderr and report is None


# ------------------------------------------------------------------------------------------ shapes
def test_architectures_cover_every_config():
    from siamtrt.benchmarks.gpu_check.cases import architectures

    archs = architectures()
    names = [n for a in archs for n in a.configs]
    assert sorted(names) == sorted(CONFIGS)  # each config exactly once
    groups = {a.name: set(a.configs) for a in archs}
    assert groups["siamrpn_alex_dwxcorr"] == {"siamrpn_alex_dwxcorr", "siamrpn_alex_dwxcorr_otb"}
    assert groups["SiamRPNvot"] == {"SiamRPNvot", "SiamRPNotb"}
    assert groups["SiamRPNBIG"] == {"SiamRPNBIG"}  # wider network: its own architecture
    # pysot's OTB r50 fuses its three levels by a plain mean (RPN weighted: False), the VOT one by learned weights
    assert groups["siamrpn_r50_l234_dwxcorr_otb"] == {"siamrpn_r50_l234_dwxcorr_otb"}
    assert len(archs) == 6


@pytest.fixture(scope="module")
def all_cases():
    from siamtrt.benchmarks.gpu_check.cases import architectures, correlation_cases

    return architectures(), correlation_cases(architectures(), batch_n=8, lost_size=831)


def test_cases_cover_every_architecture_size_level_and_batch(all_cases):
    from siamtrt.export.models import build_model

    archs, cases = all_cases
    used = {u for c in cases for u in c.used_by}
    for arch in archs:
        outputs = [n.replace("_kernel", "") for n in build_model(arch.cfg).template_output_names]
        for size in arch.cfg.track.local_instance_sizes:
            for out in outputs:
                for n in (1, 8):
                    assert f"{arch.name} search {size} {out} batch {n}" in used
        for out in outputs:
            assert f"{arch.name} search 831 {out} batch 1" in used
    # the correlation output is the score map: (I - E) // stride + 1 + BASE_SIZE for every search size
    for c in cases:
        for u in c.used_by:
            arch = next(a for a in archs if u.startswith(a.name + " "))
            size = int(u.split()[2])
            assert c.out_shape[2] == c.out_shape[3] == arch.cfg.track.score_size(arch.cfg.anchor.stride, size), u
    # the up-channel BIG loc kernels at batch 8 exceed gridDim.y's 65535 planes (the gridDim.z path)
    assert max(c.planes for c in cases) == 8 * 20 * 512 > 65535
    assert len({c.shape_key for c in cases}) == len(cases)


def test_traced_shapes_agree_with_a_real_forward_pass():
    """The meta-tensor trace against the models' own tensors on the CPU (alex: depthwise, SiamRPNvot: up-channel)."""
    import torch

    from siamtrt.benchmarks.gpu_check.cases import correlation_planes
    from siamtrt.export.models import build_model

    alex = build_model("siamrpn_alex_dwxcorr")
    with torch.inference_mode():
        kernels = alex.template(torch.rand(1, 3, 127, 127) * 255)
        xf = alex.rpn_head.cls.conv_search(alex._features(torch.rand(1, 3, 287, 287) * 255))
    planes = correlation_planes(alex.cfg, 287)
    assert [p.label for p in planes] == ["cls", "loc"]
    assert (planes[0].C, planes[0].H, planes[0].W) == tuple(xf.shape[1:])
    assert (planes[0].h, planes[0].w) == tuple(kernels[0].shape[2:])
    vot = build_model("SiamRPNvot")
    with torch.inference_mode():
        cls_k, loc_k = vot.template(torch.rand(1, 3, 127, 127) * 255)
        x_cls = vot.conv_cls2(vot.featureExtract(torch.rand(1, 3, 271, 271) * 255))
    cls, loc = correlation_planes(vot.cfg, 271)
    assert cls.C == cls_k.shape[1] == 10 * x_cls.shape[1] and loc.C == loc_k.shape[1] == 20 * x_cls.shape[1]
    assert (cls.H, cls.W, cls.h, cls.w) == (*x_cls.shape[2:], *cls_k.shape[2:])


# ------------------------------------------------------------------------------------------ tolerance rule
def test_compare_passes_exact_and_rounded_results_and_fails_wrong_ones():
    from siamtrt.benchmarks.gpu_check.cases import XcorrCase, compare_xcorr, random_inputs
    from siamtrt.plugin import dwxcorr_reference

    case = XcorrCase(2, 16, 29, 29, 5, 5)
    x, k = random_inputs(case, np.float32, 0)
    ref = dwxcorr_reference(x, k)
    assert compare_xcorr(ref.copy(), x, k)["ok"]
    off = ref.copy()
    off[1, 3, 4, 5] += 0.01 * abs(ref).max()
    res = compare_xcorr(off, x, k)
    assert not res["ok"] and res["worst_index"] == [1, 3, 4, 5] and res["max_err_over_tol"] > 10
    nan = ref.copy()
    nan[0, 0, 0, 0] = np.nan  # an output never written keeps the NaN poison
    assert not compare_xcorr(nan, x, k)["ok"] and compare_xcorr(nan, x, k)["nonfinite"] == 1
    shifted = dwxcorr_reference(np.roll(x, 1, axis=3), k)  # an indexing bug
    assert compare_xcorr(shifted, x, k)["max_err_over_tol"] > 100
    x16, k16 = random_inputs(case, np.float16, 1)
    y16 = dwxcorr_reference(x16.astype(np.float32), k16.astype(np.float32)).astype(np.float16)  # rounded output
    res16 = compare_xcorr(y16, x16, k16)
    assert res16["ok"] and res16["max_err_over_tol"] <= 0.5 + 1e-3  # half rounding uses at most half the budget
    wrong_half = y16.copy()
    wrong_half[0, 0, 2, 2] = np.float16(float(y16[0, 0, 2, 2]) * 1.01 + 0.01)
    assert not compare_xcorr(wrong_half, x16, k16)["ok"]


# ------------------------------------------------------------------------------------------ CUDA layer, simulated
class _SimKernel:
    """CompiledKernel's launch on the simulated runtime: numpy at the buffers' addresses, queued on the stream.

    Faults: ``overrun`` writes one element past the output, ``skip_last`` leaves the last plane unwritten.
    """

    origin = "simulated"

    def __init__(self, sim, fault=None):
        self.sim, self.fault = sim, fault
        self.unloaded = False

    def unload(self):
        self.unloaded = True

    def launch(self, dtype, x_ptr, k_ptr, y_ptr, N, C, H, W, h, w, stream):
        from siamtrt.plugin import dwxcorr_reference

        dtype = np.dtype(dtype)

        def at(ptr, shape):
            n = int(np.prod(shape)) * dtype.itemsize
            return np.frombuffer((ctypes.c_uint8 * n).from_address(int(ptr)), np.uint8).view(dtype).reshape(shape)

        def run():
            x, k = at(x_ptr, (N, C, H, W)), at(k_ptr, (N, C, h, w))
            y = dwxcorr_reference(x.astype(np.float32), k.astype(np.float32))
            flat = y.astype(dtype).reshape(-1)
            if self.fault == "skip_last":
                flat = flat[:-(H - h + 1) * (W - w + 1)]
            if self.fault == "overrun":
                flat = np.concatenate([flat, flat[:1]])
            at(y_ptr, flat.shape)[...] = flat
        self.sim.enqueue(run)


def _simulated_checks(monkeypatch, **faults):
    import siamtrt.gpu.cuda as gcuda
    from siamtrt.benchmarks.gpu_check.cuda_layer import CHECK_NAMES, cuda_layer_checks

    sim = SimCudart(**faults)
    monkeypatch.setattr(gcuda, "cudart", lambda: sim)
    monkeypatch.setattr(gcuda, "probe_cuda", lambda: CudaProbe(devices=(CudaDevice(0, "simulated", (9, 0)),)))
    results = {}
    for name, fn in zip(CHECK_NAMES, cuda_layer_checks(kernel_loader=None, seed=0)):
        rec = fn()
        assert rec["name"] == name
        results[name] = rec
    return results


def test_cuda_layer_checks_pass_on_a_simulated_runtime(monkeypatch):
    results = _simulated_checks(monkeypatch)
    assert {k: v["status"] for k, v in results.items()} == {k: "pass" for k in results}
    assert len(results) == 7  # the kernel graph needs a real GPU
    assert results["graph_memcpy_replay"]["captured"] and results["graph_memcpy_replay"]["ran_at_capture"] is False


@pytest.mark.parametrize("fault, failing", [
    ("run_at_capture", {"graph_memcpy_replay"}),
    ("leak", {"device_memory_released"}),
    ("corrupt_d2h", {"stream_round_trips", "stream_ordering", "graph_memcpy_replay", "failed_capture_falls_back"}),
])
def test_cuda_layer_checks_fail_on_simulated_faults(monkeypatch, fault, failing):
    results = _simulated_checks(monkeypatch, **{fault: True})
    assert {k for k, v in results.items() if v["status"] == "fail"} == failing


@pytest.mark.parametrize("fault", [None, "overrun", "skip_last"])
def test_kernel_cases_through_the_gpu_code_path_on_a_simulated_runtime(monkeypatch, fault):
    """GpuXcorr (buffers, NaN poison, guard tail, event timing) and the CUDA-graph kernel check, with a simulated
    kernel: a correct one passes, one writing past its output or leaving a plane unwritten fails."""
    import siamtrt.gpu.cuda as gcuda
    from siamtrt.benchmarks.gpu_check.cases import XcorrCase
    from siamtrt.benchmarks.gpu_check.common import Deadline, SectionRecorder
    from siamtrt.benchmarks.gpu_check.cuda_layer import check_graph_kernel
    from siamtrt.benchmarks.gpu_check.kernel_check import GpuXcorr, run_cases

    sim = SimCudart()
    monkeypatch.setattr(gcuda, "cudart", lambda: sim)
    kernel = _SimKernel(sim, fault)
    rec = SectionRecorder("kernel", None, Deadline(120), lambda m: None)
    with gcuda.Stream() as stream:
        run_cases(rec, [XcorrCase(1, 8, 12, 12, 4, 4), XcorrCase(3, 5, 9, 11, 5, 5)], GpuXcorr(kernel, stream),
                  "sim", seed=0)
    assert len(rec.checks) == 4
    graph = check_graph_kernel(kernel, np.random.default_rng(0))
    if fault is None:
        assert [c["status"] for c in rec.checks] == ["pass"] * 4 and graph["status"] == "pass"
        assert all(c["guard_intact"] and c["kernel_us"] == 100.0 for c in rec.checks)  # 2 ms / 20 launches
    elif fault == "overrun":
        assert all(c["status"] == "fail" and not c["guard_intact"] and c["nonfinite"] == 0 for c in rec.checks)
    else:
        assert all(c["status"] == "fail" and c["guard_intact"] and c["nonfinite"] > 0 for c in rec.checks)
        assert graph["status"] == "fail"


def test_cuda_sections_dispatch_on_a_simulated_device(monkeypatch, tmp_path):
    """The sections' --device cuda branches end to end in one process: simulated runtime and kernel module (the
    fatbin is really built by nvcc when it is installed), every check recorded and passing."""
    import siamtrt.gpu.cuda as gcuda
    from siamtrt.benchmarks.gpu_check import run as gc_run
    from siamtrt.benchmarks.gpu_check.common import Deadline, SectionRecorder
    from siamtrt.plugin.build import find_nvcc
    from siamtrt.plugin.kernel import CompiledKernel

    sim = SimCudart()
    probe = CudaProbe(devices=(CudaDevice(0, "simulated", (9, 0)),))
    loads = []
    monkeypatch.setattr(gcuda, "cudart", lambda: sim)
    monkeypatch.setattr(gcuda, "cuda_driver", lambda: object())
    monkeypatch.setattr(gcuda, "probe_cuda", lambda: probe)
    monkeypatch.setattr(gc_run, "probe_cuda", lambda: probe)
    monkeypatch.setattr(CompiledKernel, "load", classmethod(
        lambda cls, cc=None, fatbin=None: loads.append((cc, fatbin)) or _SimKernel(sim)))
    args = gc_run.build_parser().parse_args(["--configs", "siamrpn_alex_dwxcorr", "--batch-n", "2", "--lost-size",
                                             "0"])
    args.batch_n, args.lost_size = 2, 0
    records = {}
    for section in ("cuda_layer", "kernel"):
        args.section = section
        rec = SectionRecorder(section, tmp_path / f"{section}.json", Deadline(300), lambda m: None)
        gc_run._dispatch(rec, args)
        records[section] = rec.finish()
        assert json.loads((tmp_path / f"{section}.json").read_text())["status"] == "pass"
    layer = {c["name"]: c["status"] for c in records["cuda_layer"]["checks"]}
    assert layer == {n: "pass" for n in layer} and "graph_kernel_replay" in layer and len(layer) == 8
    kernel = [c["name"] for c in records["kernel"]["checks"]]
    assert all(cc == (9, 0) for cc, _ in loads)
    if find_nvcc() is not None:  # fatbin for sm_90 built by nvcc, then the NVRTC fallback (fatbin path absent)
        assert kernel[:2] == ["nvcc_build", "load_fatbin"] and "load_nvrtc" in kernel
        assert sum(n.startswith("sm_90 fatbin") for n in kernel) == 2 * 2  # alex cls = loc shape: 2 batches, 2 dtypes
        assert sum(n.startswith("sm_90 nvrtc") for n in kernel) == 2 * 2  # the smallest and the most planes
        assert any(str(f).endswith("dwxcorr.fatbin") for _, f in loads) and Path("/nonexistent") in [f for _, f in loads]


def test_cuda_sections_without_cuda_python_are_skipped_with_the_reason(monkeypatch, tmp_path):
    import siamtrt.gpu.cuda as gcuda
    from siamtrt.benchmarks.gpu_check import run as gc_run
    from siamtrt.benchmarks.gpu_check.common import Deadline, SectionRecorder
    from siamtrt.errors import BackendError

    def missing():
        raise BackendError("the TensorRT backend needs cuda-python, which is not installed")

    monkeypatch.setattr(gcuda, "cudart", missing)
    monkeypatch.setattr(gc_run, "probe_cuda", lambda: CudaProbe(devices=(CudaDevice(0, "simulated", (9, 0)),)))
    args = gc_run.build_parser().parse_args(["--configs", "siamrpn_alex_dwxcorr"])
    args.batch_n, args.lost_size, args.section = 2, 0, "kernel"
    rec = SectionRecorder("kernel", None, Deadline(60), lambda m: None)
    gc_run._dispatch(rec, args)
    assert rec.data["status"] == "skipped" and "needs cuda-python" in rec.data["reason"] and not rec.checks


# ------------------------------------------------------------------------------------------ time boxes, report
def test_spent_time_box_records_timeouts():
    from siamtrt.benchmarks.gpu_check.cases import XcorrCase
    from siamtrt.benchmarks.gpu_check.common import Deadline, SectionRecorder
    from siamtrt.benchmarks.gpu_check.kernel_check import cpu_standin, run_cases

    rec = SectionRecorder("kernel", None, Deadline(0.0), lambda m: None)
    assert rec.run("anything", lambda: {"status": "pass"})["status"] == "timeout"
    run_cases(rec, [XcorrCase(1, 4, 8, 8, 3, 3)], cpu_standin, "x", seed=0)
    assert [c["status"] for c in rec.checks] == ["timeout"] * 3
    assert rec.finish()["status"] == "timeout"


def test_a_section_process_past_its_box_is_killed_and_reported(monkeypatch, tmp_path):
    from siamtrt.benchmarks.gpu_check import run as gc_run

    monkeypatch.setattr(gc_run, "GRACE_S", 0.5)
    monkeypatch.setattr(gc_run, "section_argv", lambda *a: [sys.executable, "-c", "import time; time.sleep(60)"])
    t0 = time.monotonic()
    sec = gc_run.run_section_process(gc_run.build_parser().parse_args([]), "kernel", 1.0, tmp_path)
    assert time.monotonic() - t0 < 20
    assert sec["status"] == "timeout" and "killed after its 1 s time box" in sec["reason"]


def test_summary_and_exit_codes():
    from siamtrt.benchmarks.gpu_check import run as gc_run

    def report(device, available, **sections):
        r = {"schema": gc_run.SCHEMA, "created": "now", "status": "running", "exit_code": None, "elapsed_s": 1.0,
             "device": {"cuda_available": available}, "versions": {}, "options": {"device": device},
             "sections": {s: {"status": "pass", "checks": [{"name": "a", "status": "pass"}]} for s in gc_run.SECTIONS},
             "summary": {}}
        for name, status in sections.items():
            r["sections"][name] = {"status": status, "reason": "why", "checks": [{"name": "b", "status": status,
                                                                                   "reason": "why"}]}
        return r

    cases = [(report("cuda", True), 0, "pass"), (report("cuda", True, kernel="fail"), 1, "fail"),
             (report("cuda", True, kernel="timeout"), 1, "fail"), (report("cuda", True, kernel="error"), 1, "fail"),
             (report("cuda", True, torch_timing="skipped"), 4, "incomplete"),
             (report("cpu", False, cuda_layer="skipped"), 0, "pass"), (report("cuda", False), 3, "no_cuda_device")]
    subset = report("cuda", True, torch_timing="skipped", cuda_layer="skipped")
    subset["options"]["sections"] = ["kernel"]  # --sections kernel: the others are left out on purpose
    cases.append((subset, 0, "pass"))
    for r, code, status in cases:
        assert gc_run.summarize(r) == code and r["status"] == status
        assert gc_run.validate_report(r) == [], (status, gc_run.validate_report(r))
    bad = report("cuda", True)
    gc_run.summarize(bad)
    bad["sections"]["kernel"] = {"status": "skipped", "checks": [{"name": "c", "status": "skipped"}]}
    bad["exit_code"] = 0 if bad["status"] != "pass" else 1
    problems = gc_run.validate_report(bad)
    assert any("without a reason" in p for p in problems) and any("do not match" in p for p in problems)


# ------------------------------------------------------------------------------------------ dry run, imports
def test_dry_run_on_cpu_passes_end_to_end(tmp_path):
    from siamtrt.benchmarks.gpu_check import validate_report
    from siamtrt.plugin.build import find_nvcc

    res, report = _run_script(tmp_path, "--device", "cpu", "--configs", "siamrpn_alex_dwxcorr", "--batch-n", "2",
                              "--lost-size", "0", "--warmup", "0", "--iters", "2", timeout=500)
    assert res.returncode == 0, res.stderr[-3000:]
    assert validate_report(report) == [] and report["status"] == "pass" and report["dry_run"] is True
    secs = report["sections"]
    assert secs["cuda_layer"]["status"] == "skipped" and "dry run" in secs["cuda_layer"]["reason"]
    kernel = {c["name"]: c for c in secs["kernel"]["checks"]}
    assert "stand-in" in secs["kernel"]["info"]["implementation"]
    if find_nvcc() is not None:
        assert kernel["nvcc_build"]["status"] == "pass" and kernel["nvcc_build"]["sm"] == "sm_90"
    standin = [c for n, c in kernel.items() if n.startswith("cpu-standin")]
    assert len(standin) == 4 and all(c["status"] == "pass" and c["max_err_over_tol"] < 1 for c in standin)
    timing = [c for c in secs["torch_timing"]["checks"] if "search" in c["name"]]
    assert {c["mode"] for c in timing} == {"split", "reference"}
    assert all(c["median_wall_ms"] > 0 and c["out_shapes"] == [[1, 10, 21, 21], [1, 20, 21, 21]] for c in timing)


def test_gpu_check_needs_no_opencv_onnx_or_tensorrt():
    """The lent GPU image may lack them: the check's modules, shapes and CPU stand-in run without them."""
    code = ("import sys; [sys.modules.__setitem__(m, None) for m in ('cv2', 'onnx', 'onnxruntime', 'tensorrt', "
            "'tensorrt_rtx', 'onnxslim', 'onnxscript', 'tqdm')]; "
            f"sys.path.insert(0, {str(REPO)!r}); "
            "import numpy as np; "
            "from siamtrt.benchmarks.gpu_check import run, cuda_layer, kernel_check, torch_timing; "
            "from siamtrt.benchmarks.gpu_check.cases import architectures, correlation_cases, random_inputs, "
            "compare_xcorr; "
            "c = correlation_cases(architectures(['SiamRPNvot']), 2, 0)[0]; "
            "x, k = random_inputs(c, np.float32, 0); y, _ = kernel_check.cpu_standin(x, k, c); "
            "print('OK', compare_xcorr(y, x, k)['ok'], run.versions()['python'])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "OK True" in res.stdout, res.stderr[-2000:]


# ------------------------------------------------------------------------------------------ the GPU path
@needs_gpu
@pytest.mark.gpu
def test_script_passes_on_a_gpu(tmp_path):
    from siamtrt.benchmarks.gpu_check import validate_report

    res, report = _run_script(tmp_path, "--configs", "siamrpn_alex_dwxcorr", "SiamRPNBIG", timeout=600)
    assert report is not None and validate_report(report) == [], res.stderr[-3000:]
    assert res.returncode == 0 and report["status"] == "pass", json.dumps(report["summary"])
    names = [c["name"] for c in report["sections"]["kernel"]["checks"]]
    assert any(n.startswith("sm_") and "fatbin" in n for n in names) and any("nvrtc" in n for n in names)
    assert "graph_kernel_replay" in [c["name"] for c in report["sections"]["cuda_layer"]["checks"]]
