"""Model variants (fp32 / fp16 / int8 directories) side by side: their outputs on calibration crops, and the
search-branch time of each, for the retention report and the INT8 family benchmark.

Every variant runs through the runtime's backend contract on the backend asked for (ONNX Runtime CPU by default;
any registered backend, its options filtered by what it declares), so the figures are those of the engine a
directory is deployed on.

Honest timing (style rule 13): ``time.perf_counter()`` around the backend call only, warm-up excluded, every
variant with the same thread count, and the variants *interleaved* round by round so a machine whose load changes
during the run (other jobs, thermal throttling) penalises all of them alike. Ratios are medians over rounds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..modeldir import ModelDir


@dataclass
class Timing:
    """Per-call seconds of one variant."""

    label: str
    samples: List[float]

    @property
    def median_ms(self) -> float:
        return 1000.0 * float(np.median(self.samples))

    @property
    def p90_ms(self) -> float:
        return 1000.0 * float(np.percentile(self.samples, 90))


def time_search(backends: Dict[str, "object"], x: np.ndarray, kernels: Dict[str, Dict[str, np.ndarray]], *,
                rounds: int = 10, iters: int = 3, warmup: int = 2) -> Dict[str, Timing]:
    """Median search-branch time of several activated backends on the same crop, interleaved.

    Args:
        backends (dict): label → activated :class:`siamtrt.runtime.backend.Backend`.
        x (np.ndarray): one search batch [N,3,S,S] float32.
        kernels (dict): label → that variant's kernels (each from its own template branch).
        rounds (int): interleaved rounds. Defaults to 10.
        iters (int): calls per variant per round. Defaults to 3.
        warmup (int): untimed calls per variant first. Defaults to 2.
    """
    for label, be in backends.items():
        for _ in range(warmup):
            be.run_search(x, kernels[label])
    out = {label: Timing(label, []) for label in backends}
    for r in range(rounds):
        order = list(backends) if r % 2 == 0 else list(reversed(list(backends)))
        for label in order:
            be = backends[label]
            for _ in range(iters):
                t0 = time.perf_counter()
                be.run_search(x, kernels[label])
                out[label].samples.append(time.perf_counter() - t0)
    return out


def ratios(timings: Dict[str, Timing], reference: str) -> Dict[str, Optional[float]]:
    """median(variant) / median(reference) for every variant."""
    ref = timings[reference].median_ms
    return {k: (t.median_ms / ref if ref > 0 else None) for k, t in timings.items()}


def variant_backend(md: ModelDir, threads: int, backend: str = "onnxruntime"):
    """A (not yet activated) backend over ``md`` on the CPU: ``backend``'s class with the generic options it
    accepts (threads; CPU providers; no compiled-model cache for throw-away variants)."""
    from ..runtime.backends import accepted_options, backend_class

    opts = accepted_options(backend, {"threads": threads, "providers": "cpu", "cache_dir": False})
    return backend_class(backend).from_model_dir(md.path, md.meta, **opts)


def run_branches(md: ModelDir, cset, threads: int, batch: int = 8, backend: str = "onnxruntime"
                 ) -> Tuple[Dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(template outputs, cls, loc) of one variant on a calibration set's crops, the kernels from its own
    template branch (each search crop with its paired template), through ``backend``."""
    be = variant_backend(md, threads, backend)
    step = batch if md.dynamic_batch else 1
    with be:
        kern: Dict[str, List[np.ndarray]] = {n: [] for n in md.template_outputs}
        for i in range(0, cset.num_templates, step):
            out = be.run_template(cset.template[i:i + step].astype(np.float32))
            for n in kern:
                kern[n].append(np.array(out[n], np.float32))
        kernels = {n: np.concatenate(v) for n, v in kern.items()}
        cls, loc = [], []
        for feed in cset.search_feeds(kernels, step):
            x = feed.pop("search")
            c, lo = be.run_search(x, feed)
            cls.append(np.array(c, np.float32))
            loc.append(np.array(lo, np.float32))
    return kernels, np.concatenate(cls), np.concatenate(loc)


def time_search_branches(mds: Sequence[ModelDir], crops, threads: int, rounds: int, backend: str = "onnxruntime"
                         ) -> Tuple[Dict[str, Timing], Dict[str, Optional[float]]]:
    """(timings, ratios to the first) of every variant's search branch on one crop of ``crops``, interleaved
    (:func:`time_search`), each with kernels from its own template branch, through ``backend``. Keys: the
    directories' paths as strings."""
    bes = {str(md.path): variant_backend(md, threads, backend) for md in mds}
    x = crops.search[:1].astype(np.float32)
    kern = {}
    try:
        for key, be in bes.items():
            be.activate()
            out_t = be.run_template(crops.template[:1].astype(np.float32))
            kern[key] = {n: np.ascontiguousarray(v[:1]) for n, v in out_t.items()}
        timings = time_search(bes, x, kern, rounds=rounds)
    finally:
        for be in bes.values():
            be.deactivate()
    return timings, ratios(timings, str(mds[0].path))


__all__ = ["Timing", "ratios", "run_branches", "time_search", "time_search_branches", "variant_backend"]
