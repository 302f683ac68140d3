"""Per-model INT8 sensitivity: which convolutions must stay float for a fidelity target, chosen at quantize time.

A fixed float recipe (stem + the first 5 % of MACs) fitted to one family of weights missed the 0.98 cls-cosine goal
on another (issue 13: 0.966 on a mobilev2 checkpoint whose BatchNorm statistics came from other crops). So the
float set is *measured* on the model in hand:

1. **Ranges are collected once** (:class:`siamtrt.calibration.qdq.BranchQuantizer`); re-quantizing with another
   ``nodes_to_exclude`` set is then one ``quantize_static`` call on the cached ranges (ORT's
   ``calibration_cache_path``), no new calibration pass and no graph code of our own.
2. **Fidelity** of a candidate is measured by ONNX Runtime executing the Q/DQ graph on a subset of the
   calibration crops (default 32 search crops spread over every template, each with its paired template), as
   the **worst target's** ``min(cls cosine, loc cosine)`` against the FP32 model: cosines pooled per template,
   minimum over templates (:class:`FidelityProbe`). For the tensorrt Q/DQ target this is the same Q/DQ arithmetic
   TensorRT executes. The chosen pair is then measured once on **held-out** calibration crops (default 32, none
   of them in the subset, :func:`fidelity_subsets`); that figure is recorded beside the subset's and warned
   about when it misses the target.
3. **Start** from the float set whose reasons hold for any weights — the correlations (run-time weights), the tail
   (last conv of each path onward) and the stem (0..255 input; see :func:`.graph.stem_convs`) — plus whatever the
   user forces (``--float-prefix``, ``--exclude``). If it meets the target: done (``--min-cosine 0`` = this set).
4. **Contiguous float prefix, bisected** (:func:`prefix_fallback`): the remaining quantizable convolutions in
   topological order; the float set grows as a *prefix* of them (the first ``n`` after the stem), ``n`` found by
   bisection — the smallest prefix whose fidelity meets the target, ``~log2(convs)`` evaluations (mobilev2: 7).
   The search is done on ``target + margin`` (default margin 0.003): the subset is part of the calibration crops,
   and held-out crops read a little lower.

Why a prefix and not a per-layer greedy: the sensitivity of these networks is front-loaded and strongly
non-additive. Measured on a mobilev2 member (search branch, 10 groups of ~6 convs, start 0.892 cls cosine):
floating group 0 alone gave +0.056, group 1 alone +0.002 — but group 1 *after* group 0 gave +0.026, because the
early error masked everything after it. A one-shot per-group ranking therefore misses what matters, and
re-probing every group after every step costs ``groups²`` evaluations. A contiguous prefix is also the fastest
float set in ONNX Runtime: every hole adds a Q/DQ pair and two NCHWc layout reorders (qdq.py's docstring). When a
target needs a long prefix, the steps recorded (prefix length → fidelity, MAC share) show which convolutions force
it and what each costs.

The template branch (run once per target, so its float MACs cost almost nothing per frame, while its rounding
persists in every frame's correlation) is chosen first, against a tighter target on the *search outputs* (FP32
search fed INT8 kernels, :func:`template_target`); the search branch is then chosen on the end-to-end pair (INT8
kernels of the chosen template into the candidate INT8 search), so the figure recorded is the pair's.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .graph import conv_macs, mac_share
from .report import cosine  # the report's metric: the quantizer aims at the figure the report prints
from ..progress import progress_bar

LOG = logging.getLogger(__name__)

DEFAULT_MIN_COSINE = 0.98
DEFAULT_FIDELITY_SAMPLES = 32
#: Calibration crops outside the search subset, on which the chosen pair is checked once (recorded, warned on).
DEFAULT_HELD_OUT = 32
#: Added to the target on the calibration subset (held-out crops read a little lower, see the module docstring).
DEFAULT_MARGIN = 0.003
#: The template branch's share of the fidelity loss budget: its kernels feed every frame but its speed barely
#: matters (once per target), so it gets a quarter of the budget (0.98 → 0.995 on the search outputs).
TEMPLATE_BUDGET_SHARE = 0.25

Feed = Dict[str, np.ndarray]


def template_target(min_cosine: float) -> float:
    """Fidelity the template branch must keep on the search outputs for a pair target ``min_cosine``."""
    return 1.0 - (1.0 - float(min_cosine)) * TEMPLATE_BUDGET_SHARE


def quantizable_convs(model, fixed: Sequence[str]) -> List[str]:
    """Convolutions with constant weights not in ``fixed``, in topological (graph) order."""
    macs = conv_macs(model)
    skip = set(fixed)
    return [n.name for n in model.graph.node if n.name in macs and n.name not in skip]


# --------------------------------------------------------------------------------------------------- fidelity
class FidelityProbe:
    """FP32 reference outputs on a subset of the calibration crops, and fidelity of candidate models on them.

    The figure is the **worst target's**: cls and loc cosine are pooled over the crops of each template (one
    template = one tracked target, as the runtime and the report use it), and the fidelity is the minimum over
    templates of ``min(cls, loc)``. A cosine pooled over all templates hides a bad one: on a mobilev2 member the
    pooled pair read 0.982 while single templates ranged 0.949..0.989, and the report (one template, frame 0) read
    0.966.

    Every model runs on ``engine`` — the runtime backend the directory is made for (its registry name: ONNX
    Runtime's arithmetic for the onnxruntime and tensorrt Q/DQ targets, OpenVINO's for openvino), through the
    backend contract with the options it accepts (``threads``; CPU only; no compiled-model cache). Search
    candidates run with the FP32 kernels (``search``), or with kernels from a candidate template model (``pair``);
    template candidates are judged by the FP32 search branch fed their kernels (``template``).
    """

    def __init__(self, template_fp32, search_fp32, templates: np.ndarray, search: np.ndarray, pair: np.ndarray,
                 kernel_names: Sequence[str], threads: int = 2, engine: str = "onnxruntime",
                 meta: Optional[Dict[str, Any]] = None):
        self.threads = int(threads)
        self.engine = engine
        self.templates = np.ascontiguousarray(templates, np.float32)
        self.search = np.ascontiguousarray(search, np.float32)
        self.pair = np.asarray(pair)
        self.kernel_names = list(kernel_names)
        self.meta = dict(meta or {}, template_outputs=self.kernel_names)
        self._fp32 = {"template": _model_bytes(template_fp32), "search": _model_bytes(search_fp32)}
        self._fp32_backend = self._backend(self._fp32["template"], self._fp32["search"]).activate()
        self.kernels = self._run_template(self._fp32_backend)
        self.ref = self._run_search(self._fp32_backend, self.kernels)
        self.evaluations = 0

    def close(self) -> None:
        self._fp32_backend.deactivate()

    def _backend(self, template: bytes, search: bytes, options: Optional[Dict[str, Any]] = None):
        """A backend of :attr:`engine` over two serialised models (activated by the caller); ``options`` are
        engine-specific extras (e.g. OpenVINO's precision hint)."""
        from ..runtime.backends import accepted_options, backend_class

        # f32 float layers (OpenVINO's default "auto" would follow a bf16 record), CPU, no compiled-model cache
        opts = accepted_options(self.engine, {"threads": self.threads, "providers": "cpu", "cache_dir": False,
                                              "precision": "f32"})
        return backend_class(self.engine)(template, search, self.meta, **dict(opts, **(options or {})))

    def _run_template(self, backend) -> Dict[str, np.ndarray]:
        outs = [backend.run_template(self.templates[i:i + 1]) for i in range(len(self.templates))]
        return {n: np.concatenate([np.array(o[n]) for o in outs]) for n in self.kernel_names}

    def run_template(self, model) -> Dict[str, np.ndarray]:
        """Kernels of the subset's templates from a template model (ModelProto or path), one crop at a time."""
        with self._backend(_model_bytes(model), self._fp32["search"]) as be:
            return self._run_template(be)

    def _run_search(self, backend, kernels: Dict[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        cls, loc = [], []
        for i in range(len(self.search)):
            k = {n: np.ascontiguousarray(kernels[n][self.pair[i]:self.pair[i] + 1]) for n in self.kernel_names}
            c, lo = backend.run_search(self.search[i:i + 1], k)
            cls.append(np.array(c))
            loc.append(np.array(lo))
        return np.concatenate(cls), np.concatenate(loc)

    def _score(self, cls: np.ndarray, loc: np.ndarray) -> Dict[str, float]:
        per = {}
        for t in np.unique(self.pair):
            m = self.pair == t
            per[int(t)] = (cosine(self.ref[0][m], cls[m]), cosine(self.ref[1][m], loc[m]))
        worst = min(per, key=lambda t: min(per[t]))
        c, l = per[worst]
        return {"cls": c, "loc": l, "fidelity": min(c, l), "worst_template": worst,
                "cls_pooled": cosine(self.ref[0], cls), "loc_pooled": cosine(self.ref[1], loc)}

    def search_fidelity(self, search_model, kernels: Optional[Dict[str, np.ndarray]] = None) -> Dict[str, float]:
        """cls/loc cosine of a candidate search model vs FP32 (FP32 kernels unless ``kernels`` is given)."""
        self.evaluations += 1
        with self._backend(self._fp32["template"], _model_bytes(search_model)) as be:
            return self._score(*self._run_search(be, kernels or self.kernels))

    def template_fidelity(self, template_model) -> Dict[str, float]:
        """cls/loc cosine of the FP32 search branch fed a candidate template model's kernels, vs FP32."""
        self.evaluations += 1
        return self._score(*self._run_search(self._fp32_backend, self.run_template(template_model)))

    def pair_fidelity(self, template_model, search_model, options: Optional[Dict[str, Any]] = None
                      ) -> Dict[str, float]:
        """cls/loc cosine of a candidate template + search pair vs FP32 (the figure a user's tracker sees), the
        candidate run with the extra backend ``options``."""
        self.evaluations += 1
        with self._backend(_model_bytes(template_model), _model_bytes(search_model), options) as be:
            return self._score(*self._run_search(be, self._run_template(be)))


def _model_bytes(model) -> bytes:
    """A ModelProto, path or bytes → the serialised model (what the backends load without touching the disk)."""
    if hasattr(model, "SerializeToString"):
        return model.SerializeToString()
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    from pathlib import Path

    return Path(model).read_bytes()


Subset = Tuple[np.ndarray, np.ndarray, np.ndarray]


def _subset(cset, idx: np.ndarray) -> Subset:
    """(templates, search crops, pair re-indexed) of the search crops ``idx``."""
    idx = np.sort(np.asarray(idx, dtype=int))
    used = np.unique(cset.pair[idx])
    remap = {int(t): i for i, t in enumerate(used)}
    return cset.template[used], cset.search[idx], np.array([remap[int(t)] for t in cset.pair[idx]])


def fidelity_subsets(cset, n: int = DEFAULT_FIDELITY_SAMPLES, held_out: int = DEFAULT_HELD_OUT
                     ) -> Tuple[Subset, Optional[Subset]]:
    """The crops the float set is searched on, and disjoint held-out crops it is checked on afterwards.

    Both spread over every template (an equal share each, as far as its crops allow; evenly spaced within them),
    so the worst-target figure has crops of every target. Main search size only. The held-out subset is None when
    ``held_out`` is 0 or no crop is left.
    """
    from .collect import even_indices

    def pick(groups: List[np.ndarray], total: int) -> List[int]:
        counts = [0] * len(groups)
        while sum(counts) < total and any(c < len(g) for c, g in zip(counts, groups)):
            for i, g in enumerate(groups):         # round robin: one more crop to every template that has one
                if counts[i] < len(g) and sum(counts) < total:
                    counts[i] += 1
        return sorted(i for g, k in zip(groups, counts) for i in even_indices(g.tolist(), k))

    groups = [np.flatnonzero(cset.pair == t) for t in range(cset.num_templates)]
    chosen = pick(groups, int(n))
    held = pick([np.setdiff1d(g, chosen) for g in groups], int(held_out))
    return _subset(cset, np.array(chosen)), (_subset(cset, np.array(held)) if held else None)


# ------------------------------------------------------------------------------------------------------- bf16
#: The bf16 check keeps at most this share of the search convolutions f32 (the first ones): past it, what bf16 saves
#: is mostly spent, and the f32 hint is the honest answer.
BF16_MAX_F32_SHARE = 0.25


def bf16_fidelity(template_model, search_model, crops: Subset, kernel_names: Sequence[str], meta: Dict[str, Any],
                  threads: int = 2, min_cosine: float = DEFAULT_MIN_COSINE, reference: Optional[Tuple[Any, Any]] = None
                  ) -> Dict[str, Any]:
    """Does OpenVINO's bf16 hint keep this model pair's outputs, and where must it stay f32? The pair under the
    backend's bf16 hint against the same pair in f32 (or against ``reference``: an INT8 pair is judged against its
    FP32 source, the error a user sees), on real crops, with the worst-template measure of :class:`FidelityProbe`.
    Candidates, fastest first, until one passes: the whole pair in bf16 (``template_bf16``; distractor mode runs
    the template branch every frame); then the template branch f32 and the search branch bf16 but for its first
    ``f32_convs`` convolutions (:func:`siamtrt.runtime.openvino.keep_f32`): 0, 1, … up to
    :data:`BF16_MAX_F32_SHARE` of them.

    Why real crops: on bag.avi crops bf16 took a mobilev2 stand-in's cls cosine to 0.83 (argmax agreement 25 %),
    while synthetic image-like probes read 0.9996 for the same model. Why a prefix: the same stand-in's error came
    from its first layers (template f32 and search in bf16: 0.976; its first two convolutions f32 as well: 0.993).
    The record returned is what the OpenVINO backend's ``precision="bf16"|"auto"`` looks for
    (:mod:`siamtrt.runtime.openvino`).

    Args:
        template_model, search_model: ModelProto, path or bytes of the pair.
        crops (Subset): (templates, search crops, pair) from :func:`fidelity_subsets`.
        kernel_names (Sequence[str]): the template outputs. meta (dict): the directory's search metadata.
        threads (int): OpenVINO threads. Defaults to 2.
        min_cosine (float): what bf16 must keep (worst template, min of cls and loc). Defaults to 0.98.
        reference (tuple): (template, search) models the outputs are compared with, in f32. Defaults to the pair.

    Returns:
        dict: ``passed``, ``cls``, ``loc``, ``template_bf16`` and ``f32_convs`` of the passing candidate (else of
        the best one),
        ``steps`` (every candidate's figures), ``min_cosine``, ``crops``, ``templates``, ``openvino``, ``cpu``,
        ``measure`` (or ``passed`` False with a ``reason`` on a CPU without bf16 units).
    """
    import openvino

    from ..errors import BackendError
    from ..runtime.openvino import convolutions, cpu_has_bf16, shared_core

    if not cpu_has_bf16():
        return {"passed": False, "reason": "no bf16 units on this CPU (the hint would run in f32)",
                "openvino": openvino.__version__}
    search_bytes = _model_bytes(search_model)
    most = int(len(convolutions(shared_core().read_model(search_bytes, b""))) * BF16_MAX_F32_SHARE)
    probe = FidelityProbe(*(reference or (template_model, search_model)), *crops, kernel_names, threads=threads,
                          engine="openvino", meta=meta)
    steps, best = [], None
    try:
        for template_bf16, count in [(True, 0)] + [(False, n) for n in range(most + 1)]:
            plan = {"template_bf16": template_bf16, "f32_convs": count}
            try:
                fid = probe.pair_fidelity(template_model, search_bytes, dict(plan, precision="bf16", bf16_gate=False))
            except BackendError as e:   # OpenVINO could not compile this cut (seen inside residual blocks)
                steps.append(dict(plan, error=str(e).splitlines()[0][:200]))
                continue
            step = dict(plan, cls=fid["cls"], loc=fid["loc"], worst_template=fid["worst_template"])
            steps.append(step)
            LOG.debug("bf16 %s: cls %.4f loc %.4f", plan, fid["cls"], fid["loc"])
            if best is None or fid["fidelity"] > min(best["cls"], best["loc"]):
                best = step   # a passing step is always the best so far: every earlier one failed
            if fid["fidelity"] >= min_cosine:
                break
    finally:
        probe.close()
    if best is None:
        return {"passed": False, "reason": "OpenVINO compiled no bf16 candidate", "steps": steps,
                "openvino": openvino.__version__}
    return {"passed": bool(min(best["cls"], best["loc"]) >= min_cosine), "cls": best["cls"], "loc": best["loc"],
            "worst_template": best["worst_template"], "template_bf16": best["template_bf16"],
            "f32_convs": best["f32_convs"], "steps": steps,
            "min_cosine": float(min_cosine), "crops": int(len(probe.search)), "templates": int(len(probe.templates)),
            "openvino": openvino.__version__, "cpu": _cpu_model(),
            "reference": "source pair, f32 hint" if reference else "same files, f32 hint",
            "measure": "bf16 hint (the template branch too where template_bf16, the search's first f32_convs "
                       "convolutions f32) vs the reference, OpenVINO CPU; worst template min(cls, loc) cosine"}


def _cpu_model() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def check_bf16(model_dir, calib, *, samples: int = DEFAULT_FIDELITY_SAMPLES, threads: Optional[int] = None,
               cache_dir=None, force: bool = False) -> Tuple[Dict[str, Any], Any]:
    """Measure :func:`bf16_fidelity` for a model directory (any precision) on calibration crops and record it in
    the OpenVINO cache folder, keyed by the model files' sha256 (the directory itself may be read-only); returns
    (record, record file). ``quantize.py --check-bf16``. ``calib``: a calibration file or a CalibrationSet.

    Raises:
        ModelDirError / CalibrationError: bad directory or calibration file (see ``quantize_int8``).
    """
    from ..metadata import file_sha256
    from ..modeldir import ModelDir
    from ..runtime.cpu import cpu_threads
    from ..runtime.openvino import default_cache_dir, model_key, save_bf16_record
    from .data import CalibrationSet, load_calibration

    md = ModelDir.open(model_dir, require_conv=True)
    cset = calib if isinstance(calib, CalibrationSet) else load_calibration(calib)
    cset.check_model(md, other_weights=force)
    subset, _ = fidelity_subsets(cset, samples, 0)
    rec = bf16_fidelity(md.onnx("template"), md.onnx("search"), subset, md.template_outputs, md.meta,
                        threads=cpu_threads(threads))
    store = save_bf16_record(cache_dir or default_cache_dir(),
                             model_key(file_sha256(md.onnx("template")), file_sha256(md.onnx("search"))),
                             dict(rec, model_dir=str(md.path)))
    return rec, store


#: The default benchmark's own bf16 check (:func:`bf16_record_for`): search crops from the first this many frames of
#: its video, at most :data:`AUTO_BF16_CROPS` of them (the check uses DEFAULT_FIDELITY_SAMPLES).
AUTO_BF16_FRAMES = 120
AUTO_BF16_CROPS = 64


def bf16_record_for(model_dir, video, bbox: Sequence[float], *, threads: Optional[int] = None,
                    progress: bool = True) -> Tuple[Optional[Dict[str, Any]], bool]:
    """(the OpenVINO bf16 record of a directory, measured now?): its record where one exists, else measured on
    crops the FP32 tracker cuts from ``video`` starting at ``bbox`` and recorded, as ``quantize.py --check-bf16``
    would. This is how the default benchmark lets ``precision="auto"`` pick the fastest float precision that keeps
    fidelity on the machine at hand. A failing record from before the check tried leading f32 convolutions (it has
    no ``steps``), and one another OpenVINO version measured, are measured again. (None, False) where OpenVINO is
    missing or the CPU has no bf16 units.
    """
    from pathlib import Path

    from ..metadata import file_sha256
    from ..modeldir import ModelDir
    from ..runtime.openvino import (OpenVinoBackend, cpu_has_bf16, default_cache_dir, model_key, stale_bf16_record,
                                    stored_bf16_record)
    from .collect import SourceSpec, collect

    if OpenVinoBackend.unavailable_reason() or not cpu_has_bf16():
        return None, False
    md = ModelDir.open(model_dir, require_conv=True)
    rec, _ = stored_bf16_record(md.meta, default_cache_dir(),
                                lambda: model_key(file_sha256(md.onnx("template")), file_sha256(md.onnx("search"))))
    if rec is not None and (rec.get("passed") or "steps" in rec) and not stale_bf16_record(rec):
        return rec, False
    crops = collect(md.path, [SourceSpec(Path(video), bbox=tuple(bbox))], None, max_samples=AUTO_BF16_CROPS,
                    max_frames=AUTO_BF16_FRAMES, threads=threads, progress=progress).calib
    return check_bf16(md.path, crops, threads=threads)[0], True


# ----------------------------------------------------------------------------------------------------- search
@dataclass
class FallbackResult:
    """What the fallback chose for one branch (recorded in the metadata's ``quantization.fidelity``)."""

    branch: str
    target: float
    met: bool
    start: Dict[str, float]
    achieved: Dict[str, float]
    prefix: int                      # quantizable convs after the start set kept float, from the input side
    candidates: int                  # quantizable convs the prefix could grow over
    float_nodes: List[str]
    float_mac_share: float           # MAC share of the prefix alone
    steps: List[Dict[str, Any]] = field(default_factory=list)
    evaluations: int = 0
    note: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One summary line."""
        ok = "met" if self.met else "NOT met"
        return (f"{self.branch}: target {self.target:.3f} {ok}: cls {self.achieved['cls']:.4f} loc "
                f"{self.achieved['loc']:.4f} (start {self.start['cls']:.4f}/{self.start['loc']:.4f}); float prefix "
                f"{self.prefix}/{self.candidates} convs ({self.float_mac_share * 100:.1f} % of conv MACs), "
                f"{self.evaluations} evaluations")


def prefix_fallback(convs: Sequence[str], macs: Dict[str, float], measure: Callable[[List[str]], Dict[str, float]],
                    target: float, *, branch: str = "search", margin: float = 0.0,
                    progress: bool = False) -> FallbackResult:
    """The shortest float prefix of ``convs`` with ``measure(prefix)["fidelity"] >= target + margin`` (bisection).

    Args:
        convs (Sequence[str]): quantizable convolutions not already float, topological order.
        macs (dict): conv name → MACs (:func:`.graph.conv_macs`), for the reported cost.
        measure (Callable): extra float node names → {"cls", "loc", "fidelity"} of the quantized candidate.
        target (float): fidelity to reach; ≤ 0 measures the start set once and keeps it.
        branch (str): label for the result. Defaults to "search".
        margin (float): added to ``target`` for the search (held-out crops read lower). Defaults to 0.
        progress (bool): a progress line over the evaluations. Defaults to False.
    """
    convs = list(convs)
    goal = float(target) + (float(margin) if target > 0 else 0.0)
    # evaluations: the start set, the longest prefix, then a bisection over the prefixes in between
    bar = progress_bar(2 + int(np.ceil(np.log2(max(len(convs) - 1, 1)))), f"INT8 fidelity {branch}", "eval",
                       progress, leave=False)
    seen: Dict[int, Dict[str, float]] = {}
    steps: List[Dict[str, Any]] = []

    def share(n: int) -> float:
        return mac_share(macs, convs[:n])

    def run(n: int) -> Dict[str, float]:
        if n not in seen:
            r = dict(measure(convs[:n]))
            seen[n] = r
            steps.append({"prefix": n, "last": convs[n - 1] if n else None, "mac_share": share(n), **r})
            bar.update(1)
            bar.set_postfix(fidelity=f"{r['fidelity']:.4f}")
        return seen[n]

    def result(n: int, met: bool, note: str = "") -> FallbackResult:
        bar.close()
        return FallbackResult(branch=branch, target=float(target), met=met, start=seen[0], achieved=seen[n],
                              prefix=n, candidates=len(convs), float_nodes=convs[:n], float_mac_share=share(n),
                              steps=sorted(steps, key=lambda s: s["prefix"]), evaluations=len(seen), note=note)

    try:
        if run(0)["fidelity"] >= goal or target <= 0:
            return result(0, run(0)["fidelity"] >= target)
        if len(convs) <= 1:
            return result(0, False, "no quantizable convolution left to keep float")
        lo, hi = 0, len(convs) - 1          # all float would leave nothing quantized: the last one stays int8
        if run(hi)["fidelity"] < goal:
            return result(hi, run(hi)["fidelity"] >= target,
                          f"target {goal:.4f} not reached even with {hi} of {len(convs)} convs float "
                          f"({share(hi) * 100:.0f} % of MACs): the error comes from the convs that always stay "
                          "int8 here; quantize with --exclude or lower --min-cosine")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if run(mid)["fidelity"] >= goal:
                hi = mid
            else:
                lo = mid
        note = (f"the prefix ends at {convs[hi - 1]} (conv {hi} of {len(convs)}, prefix {share(hi) * 100:.1f} % of "
                f"MACs; {hi - 1} convs gave {seen[lo]['fidelity']:.4f})" if hi > 0 else "")
        return result(hi, True, note)
    finally:
        bar.close()


__all__ = ["AUTO_BF16_CROPS", "AUTO_BF16_FRAMES", "BF16_MAX_F32_SHARE", "DEFAULT_FIDELITY_SAMPLES",
           "DEFAULT_HELD_OUT", "DEFAULT_MARGIN", "DEFAULT_MIN_COSINE", "FallbackResult", "FidelityProbe",
           "bf16_fidelity", "bf16_record_for", "check_bf16", "fidelity_subsets", "prefix_fallback",
           "quantizable_convs", "template_target"]
