"""Section ``torch_timing``: eager PyTorch search-branch times per architecture (the pysot-on-GPU anchor).

For each architecture (:func:`.cases.architectures`) and each of its search sizes, batch 1: a random-weight model
from :mod:`siamtrt.export.models` (torch's default initialisation, seeded: times do not depend on the values, and
untrained weights may overflow FP16 — ``outputs_finite`` says so), moved to the device in FP16 (and FP32), then

* ``split``: ``model.track(x, *kernels)``, the deployable search branch (kernels computed once by ``template``);
* ``reference``: ``model.reference_track(x)``, pysot's own per-frame computation (DaSiamRPN caches its kernels).

Each is warmed up, then timed per iteration: on CUDA by two CUDA events around the call (GPU time from the first
to the last kernel, launch gaps included) and by the wall clock to ``torch.cuda.synchronize()``; on the CPU (dry
run) by the wall clock. Medians are reported. Inputs are already on the device (no crop upload).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Dict, List, Sequence

from .cases import Architecture
from .common import SKIPPED, SectionRecorder, check

MODES = ("split", "reference")


def _timer(torch, device: str) -> Callable[[Callable[[], Any]], Dict[str, float]]:
    """One timed call: {"wall_ms"} (+ {"gpu_ms"} on CUDA, from two events)."""
    if device == "cpu":
        def run_cpu(fn):
            t0 = time.perf_counter()
            fn()
            return {"wall_ms": 1000 * (time.perf_counter() - t0)}
        return run_cpu

    def run_cuda(fn):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return {"wall_ms": 1000 * (time.perf_counter() - t0), "gpu_ms": start.elapsed_time(end)}
    return run_cuda


def _summary(samples: List[Dict[str, float]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"iterations": len(samples)}
    for key in ("gpu_ms", "wall_ms"):
        vals = sorted(s[key] for s in samples if key in s)
        if vals:
            out[f"median_{key}"] = round(statistics.median(vals), 4)
            out[f"min_{key}"] = round(vals[0], 4)
            out[f"p90_{key}"] = round(vals[min(len(vals) - 1, int(0.9 * len(vals)))], 4)
    return out


def time_branch(torch, model, x, kernels, mode: str, device: str, warmup: int, iters: int) -> Dict[str, Any]:
    """Time one search-branch call ``iters`` times after ``warmup`` untimed calls; medians etc. + finiteness."""
    if mode == "split":
        call = lambda: model.track(x, *kernels)  # noqa: E731
    else:
        call = lambda: model.reference_track(x)  # noqa: E731
    timer = _timer(torch, device)
    with torch.inference_mode():
        for _ in range(warmup):
            out = call()
        samples = [timer(call) for _ in range(iters)]
        out = call()
    finite = all(bool(torch.isfinite(t).all()) for t in out)
    return {**_summary(samples), "outputs_finite": finite, "out_shapes": [list(t.shape) for t in out]}


def prepare(torch, arch: Architecture, device: str, dtype, seed: int):
    """(model, template kernels) for one architecture on ``device`` in ``dtype`` (pysot's static correlation)."""
    from ...export.models import build_model

    torch.manual_seed(seed)
    model = build_model(arch.cfg).to(device=device, dtype=dtype).eval()
    model.dynamic_batch = False
    e = arch.cfg.track.exemplar_size
    z = torch.rand(1, 3, e, e, device=device, dtype=dtype) * 255
    with torch.inference_mode():
        kernels = model.template(z)
        model.reference_template(z)
    return model, kernels


def environment(torch, device: str) -> Dict[str, Any]:
    """torch / CUDA / cuDNN versions and the flags that change GPU speed."""
    env: Dict[str, Any] = {"torch": torch.__version__, "device": device, "threads": torch.get_num_threads()}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(torch_cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), gpu=props.name,
                   multiprocessors=props.multi_processor_count, memory_gib=round(props.total_memory / 2 ** 30, 1),
                   cudnn_benchmark=torch.backends.cudnn.benchmark, cudnn_allow_tf32=torch.backends.cudnn.allow_tf32)
    return env


def torch_section(rec: SectionRecorder, archs: Sequence[Architecture], device: str, dtypes: Sequence[str],
                  warmup: int, iters: int, seed: int = 0) -> None:
    """Time every (architecture, search size, dtype, mode); an architecture that raises is one error record."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        rec.finish(SKIPPED, f"this torch ({torch.__version__}, CUDA {torch.version.cuda}) sees no CUDA device")
        return
    if device == "cuda":
        torch.backends.cudnn.benchmark = True  # per-shape algorithm search during warm-up, as deployments do
    try:
        rec.info(**environment(torch, device))
    except Exception as e:  # context only
        rec.info(environment_error=f"{type(e).__name__}: {e}"[:300])
    rec.info(warmup=warmup, iters=iters, batch=1, weights="random, torch default init (seeded); untrained: timings only")
    for arch in archs:
        for dtype_name in dtypes:
            dtype = getattr(torch, dtype_name)
            holder: Dict[str, Any] = {}

            def build(arch=arch, dtype=dtype, holder=holder):
                t0 = time.perf_counter()
                holder["model"], holder["kernels"] = prepare(torch, arch, device, dtype, seed)
                return check(f"{arch.name} {dtype_name} build", True, seconds=round(time.perf_counter() - t0, 2))

            if rec.run(f"{arch.name} {dtype_name} build", build)["status"] != "pass":
                continue
            for size in arch.cfg.track.local_instance_sizes:
                x = torch.rand(1, 3, size, size, device=device, dtype=dtype) * 255
                for mode in MODES:
                    name = f"{arch.name} {dtype_name} search {size} {mode}"
                    rec.run(name, lambda x=x, mode=mode, name=name, held=holder: check(
                        name, True, architecture=arch.name, configs=list(arch.configs), instance_size=size,
                        dtype=dtype_name, mode=mode, device=device,
                        **time_branch(torch, held["model"], x, held["kernels"], mode, device, warmup, iters)))
            holder.clear()  # free the model before the next one
            if device == "cuda":
                torch.cuda.empty_cache()
