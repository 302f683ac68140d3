"""The lean runtime: numpy + OpenCV + one inference backend (never torch).

``from siamtrt.runtime import Tracker``; backends load their libraries only when selected.
"""

from .backend import BACKENDS, Backend, backend_class, choose_backend
from .tracker import Tracker

__all__ = ["BACKENDS", "Backend", "Tracker", "backend_class", "choose_backend"]
