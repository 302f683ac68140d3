"""The lean runtime: numpy + OpenCV + one inference backend (never torch).

``from siamtrt.runtime import Tracker``; backends load their libraries only when selected.
"""

from .backend import Backend
from .backends import BACKENDS, backend_class, choose_backend
from .result import MODES, SearchEvent, TemplateEvent, TrackResult
from .tracker import Tracker

__all__ = ["BACKENDS", "Backend", "MODES", "SearchEvent", "TemplateEvent", "TrackResult", "Tracker", "backend_class",
           "choose_backend"]
