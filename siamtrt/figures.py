"""PNG figures for every job that plots (benchmarks, reports, soak, serving and batch runs).

One place for the two things each plot needs: a headless matplotlib (the Agg backend, so plots work over SSH, in
CI and on a Jetson without a display) and a complete-or-absent PNG (written through
:func:`siamtrt.outputs.atomic_path`, so an interrupted run never leaves half a figure next to its JSON).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from .outputs import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Union[str, Path], dpi: int = 110) -> Path:
    """Lay out ``fig``, write it to ``path`` (folder created, atomic) and close it."""
    plt = pyplot()
    path = Path(path)
    try:
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return path


__all__ = ["pyplot", "save_png"]
