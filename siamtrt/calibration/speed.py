"""Side-by-side ONNX Runtime CPU timing of model variants (fp32 vs fp16 vs int8), for the retention report.

Honest timing (style rule 13): ``time.perf_counter()`` around the backend call only, warm-up excluded, every
variant with the same thread count, and the variants *interleaved* round by round so a machine whose load changes
during the run (other jobs, thermal throttling) penalises all of them alike. Ratios are medians over rounds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np


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


__all__ = ["Timing", "ratios", "time_search"]
