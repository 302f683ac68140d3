"""Which correlations each architecture computes, and when a computed correlation counts as equal to numpy's.

The shapes are not written down here: :func:`correlation_planes` runs each model's own search branch
(``model.track`` of :mod:`siamtrt.export.models`, pysot's static correlation form) on shape-only ``meta`` tensors
and records every convolution whose weight is not a parameter — those are the correlations, whose weights arrive at
run time. pysot's depthwise correlation is one plane per channel; DaSiamRPN's up-channel correlation
(``out[k] = Σ_f x[f] ⋆ kernel[k, f]``) is K·F depthwise planes summed over F, so its planes are run through the same
depthwise kernel (the plugin itself refuses up-channel models; this checks the kernel on their plane sizes and
counts, which include more than 65535 planes at batch N).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ...config import CONFIGS, ModelConfig, get_config, with_longterm
from ...plugin.kernel import dwxcorr_reference

#: default batch of the "batch N" cases: 8 BIG loc kernels make 81920 planes (> 65535: the gridDim.z path)
DEFAULT_BATCH_N = 8
#: pysot's long-term (lost) search size, as ``export/to_onnx.py --lost-instance-size`` exports it by default
DEFAULT_LOST_SIZE = with_longterm(CONFIGS["siamrpn_alex_dwxcorr"]).track.lost_instance_size

# Tolerances (see compare_xcorr): float32 accumulation of h·w ≤ 49 products (the models use 4x4 and 5x5) has a
# worst-case error below γ_50·Σ|x·k| ≈ 3e-6·Σ|x·k| (u = 2^-24); the float64 reference rounded to float32 adds
# 2^-24·|ref|; a half output is rounded once more (relative 2^-11, absolute 2^-25 in the subnormal range).
F32_SUM_TOL = 1e-5
F32_REL_TOL = 1e-6
F16_REL_TOL = 2.0 ** -10
F16_ABS_TOL = 2.0 ** -24


@dataclass(frozen=True)
class Architecture:
    """Configs that share one network (hyper-parameters aside): timed and checked once."""

    name: str
    configs: Tuple[str, ...]
    cfg: ModelConfig


def architecture_key(cfg: ModelConfig) -> tuple:
    """What decides the network and its tensor shapes (tracker hyper-parameters excluded)."""
    return (cfg.family, cfg.backbone, cfg.backbone_kwargs, cfg.adjust, cfg.adjust_kwargs, cfg.rpn, cfg.rpn_kwargs,
            cfg.anchor.anchor_num, cfg.track.exemplar_size, cfg.track.local_instance_sizes)


def architectures(names: Optional[Iterable[str]] = None) -> List[Architecture]:
    """The distinct architectures among ``names`` (default: every built-in config), in config order."""
    names = list(CONFIGS) if names is None else list(names)
    groups: Dict[tuple, List[str]] = {}
    cfgs: Dict[tuple, ModelConfig] = {}
    for n in names:
        cfg = get_config(n)
        key = architecture_key(cfg)
        groups.setdefault(key, []).append(cfg.name)
        cfgs.setdefault(key, cfg)
    return [Architecture(g[0], tuple(g), cfgs[k]) for k, g in groups.items()]


@dataclass(frozen=True)
class Plane:
    """One correlation of a search branch at batch 1 as depthwise planes: x [1,C,H,W] ⋆ k [1,C,h,w]."""

    label: str
    C: int
    H: int
    W: int
    h: int
    w: int


def _trace_correlations(model, x, kernels) -> List[Tuple[tuple, tuple, int]]:
    """(input shape, weight shape, groups) of every conv2d with a run-time (non-parameter) weight in track()."""
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    seen = []

    class Recorder(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in (F.conv2d, torch.conv2d):
                inp, weight = args[0], args[1] if len(args) > 1 else kwargs["weight"]
                if not isinstance(weight, torch.nn.Parameter):
                    groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
                    seen.append((tuple(inp.shape), tuple(weight.shape), int(groups)))
            return func(*args, **kwargs)

    with Recorder():
        model.track(x, *kernels)
    return seen


def correlation_planes(cfg: ModelConfig, instance_size: int) -> List[Plane]:
    """The correlations ``cfg``'s search branch computes for one target at ``instance_size`` (shape-only run)."""
    import torch

    from ...export.models import build_model

    with torch.device("meta"):
        model = build_model(cfg)
    model.dynamic_batch = False  # pysot's own (batch-folded) correlation form
    e = cfg.track.exemplar_size
    kernels = model.template(torch.empty(1, 3, e, e, device="meta"))
    traced = _trace_correlations(model, torch.empty(1, 3, instance_size, instance_size, device="meta"), kernels)
    names = model.template_output_names
    if len(traced) != len(names):
        raise RuntimeError(f"{cfg.name}: expected {len(names)} correlations ({names}), traced {len(traced)}")
    planes = []
    for name, (xs, ws, groups) in zip(names, traced):
        _, cin, H, W = xs
        if groups == cin and ws[1] == 1:  # depthwise: one plane per channel
            C = cin
        elif groups == 1:  # up-channel: ws[0] kernels over all cin channels → ws[0]·cin planes, summed over cin
            C = ws[0] * cin
        else:
            raise RuntimeError(f"{cfg.name}: correlation '{name}' has an unknown form x{xs} w{ws} groups={groups}")
        planes.append(Plane(name.replace("_kernel", ""), C, H, W, ws[2], ws[3]))
    return planes


@dataclass
class XcorrCase:
    """One kernel run: x [N,C,H,W] ⋆ k [N,C,h,w], and every (architecture, size, correlation) it stands for."""

    N: int
    C: int
    H: int
    W: int
    h: int
    w: int
    used_by: List[str] = field(default_factory=list)

    @property
    def shape_key(self) -> Tuple[int, ...]:
        return (self.N, self.C, self.H, self.W, self.h, self.w)

    @property
    def planes(self) -> int:
        return self.N * self.C

    @property
    def out_shape(self) -> Tuple[int, int, int, int]:
        return (self.N, self.C, self.H - self.h + 1, self.W - self.w + 1)

    @property
    def macs(self) -> int:
        return self.planes * self.out_shape[2] * self.out_shape[3] * self.h * self.w

    def describe(self) -> str:
        return f"N{self.N} C{self.C} {self.H}x{self.W}*{self.h}x{self.w}"


def correlation_cases(archs: Sequence[Architecture], batch_n: int = DEFAULT_BATCH_N,
                      lost_size: Optional[int] = DEFAULT_LOST_SIZE) -> List[XcorrCase]:
    """Every architecture's correlations at its search sizes, batch 1 and ``batch_n``, plus the long-term
    ``lost_size`` search at batch 1 (None or 0: none); identical shapes merged (their ``used_by`` lists all users),
    cheapest first."""
    cases: Dict[Tuple[int, ...], XcorrCase] = {}
    for arch in archs:
        sizes = [(s, sorted({1, batch_n})) for s in arch.cfg.track.local_instance_sizes]
        if lost_size:
            sizes.append((int(lost_size), [1]))
        for size, batches in sizes:
            for p in correlation_planes(arch.cfg, size):
                for n in batches:
                    c = XcorrCase(n, p.C, p.H, p.W, p.h, p.w)
                    c = cases.setdefault(c.shape_key, c)
                    c.used_by.append(f"{arch.name} search {size} {p.label} batch {n}")
    return sorted(cases.values(), key=lambda c: (c.macs, c.shape_key))


def random_inputs(case: XcorrCase, dtype, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Standard-normal x and k for a case, in ``dtype`` (float16 values are the float32 draws rounded)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((case.N, case.C, case.H, case.W), dtype=np.float32)
    k = rng.standard_normal((case.N, case.C, case.h, case.w), dtype=np.float32)
    return x.astype(dtype, copy=False), k.astype(dtype, copy=False)


def compare_xcorr(y: np.ndarray, x: np.ndarray, k: np.ndarray) -> Dict[str, object]:
    """Compare a computed correlation ``y`` with :func:`siamtrt.plugin.dwxcorr_reference` on the same inputs.

    Passes when every output is finite and ``|y − ref| ≤ tol`` elementwise, with
    ``tol = F32_SUM_TOL·B + F32_REL_TOL·|ref|`` (float32) or ``F32_SUM_TOL·B + F16_REL_TOL·|ref| + F16_ABS_TOL``
    (float16), where ``B = max|x_plane|·Σ|k_plane|`` bounds Σ|x·k| over each plane (the worst-case summation error
    is proportional to it). A wrong index or a missed output misses by O(|y|), thousands of times the tolerance.

    Returns:
        dict: ``ok``, ``max_abs_err``, ``max_err_over_tol`` (< 1 passes), ``nonfinite`` count, ``worst_index``.
    """
    ref = dwxcorr_reference(x.astype(np.float32), k.astype(np.float32))
    if y.shape != ref.shape:
        return {"ok": False, "error": f"output shape {tuple(y.shape)} != reference {tuple(ref.shape)}"}
    x32, k32 = x.astype(np.float32), k.astype(np.float32)
    bound = np.abs(x32).max(axis=(2, 3), keepdims=True) * np.abs(k32).sum(axis=(2, 3), keepdims=True)
    half = y.dtype == np.float16
    tol = F32_SUM_TOL * bound + (F16_REL_TOL if half else F32_REL_TOL) * np.abs(ref) + (F16_ABS_TOL if half else 0.0)
    tol = np.maximum(tol, np.finfo(np.float32).tiny)
    yf = y.astype(np.float32)
    finite = np.isfinite(yf)
    err = np.where(finite, np.abs(yf - ref), np.inf)
    ratio = err / tol
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return {"ok": bool(finite.all() and (ratio <= 1.0).all()), "max_abs_err": float(np.max(np.where(finite, err, 0))),
            "max_err_over_tol": float(ratio[worst]), "nonfinite": int((~finite).sum()),
            "worst_index": [int(i) for i in worst], "max_abs_ref": float(np.abs(ref).max())}
