"""PNG plots for the benchmarks (matplotlib, Agg backend: works headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence, Union

from ..figures import pyplot, save_png
from . import metrics


def plot_ope(scores: Dict[str, metrics.OPEScores], out_png: Union[str, Path], title: str = "OPE") -> Path:
    """Success plot (IoU thresholds, legend = success score) and precision plot (legend = precision at 20 px)."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    order = sorted(scores, key=lambda k: -scores[k].success_score)
    styles = ("-", "--", "-.", ":")  # identical curves (exact ports) stay distinguishable
    for i, label in enumerate(order):
        s = scores[label]
        ls = styles[i % len(styles)]
        ax1.plot(metrics.IOU_THRESHOLDS, s.success_curve, ls, lw=1.8, label=f"{label} [{s.success_score:.3f}]")
        ax2.plot(metrics.CENTER_THRESHOLDS, s.precision_curve, ls, lw=1.8,
                 label=f"{label} [{s.precision_score:.3f}]")
    ax1.set(xlabel="Overlap threshold (IoU)", ylabel="Success rate", title=f"Success plots of {title}",
            xlim=(0, 1), ylim=(0, 1.02))
    ax2.set(xlabel="Location error threshold (px)", ylabel="Precision", title=f"Precision plots of {title}",
            xlim=(0, 50), ylim=(0, 1.02))
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower left" if ax is ax1 else "lower right", fontsize=8)
    return save_png(fig, out_png)


def plot_fps(rows: Sequence[Dict], stages: Sequence[str], out_png: Union[str, Path], title: str = "") -> Path:
    """Stacked per-stage mean latency per variant (ms/frame), FPS written above each bar.

    Args:
        rows (Sequence[dict]): each with ``label``, ``stages_ms`` {stage: {"mean": ms}} and ``fps`` (optional
            ``text``: what to write above the bar instead of "<fps> fps").
        stages (Sequence[str]): stage keys to stack, in order.
    """
    plt = pyplot()
    labels = [r["label"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(rows) + 2), 4.8))
    bottom = [0.0] * len(rows)
    for st in stages:
        vals = [float(r["stages_ms"].get(st, {}).get("mean", 0.0)) for r in rows]
        ax.bar(labels, vals, bottom=bottom, label=st)
        bottom = [b + v for b, v in zip(bottom, vals)]
    for i, r in enumerate(rows):
        ax.text(i, bottom[i], r.get("text") or f"{r['fps']:.1f} fps", ha="center", va="bottom", fontsize=9)
    ax.set(ylabel="ms per frame (mean)")
    ax.set_title(title or "Per-stage latency", fontsize=9)
    ax.set_ylim(0, max(bottom + [1.0]) * 1.15)
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=15, ha="right")
    return save_png(fig, out_png)
