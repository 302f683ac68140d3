"""The stateful part of the Triton deployment: one runtime :class:`~siamtrt.runtime.Tracker` per sequence.

The tracker model (``models/tracker_model.py`` in the repository) is thin: it reads the sequence controls (START,
END, CORRID), the frame and the init box of each request and hands them to :class:`SequenceTrackers`, which keeps a
``Tracker`` per correlation id over a :class:`CallableBackend` whose branches are BLS requests to the template and
search models. Geometry, crops and post-processing are therefore exactly the runtime's; the search model's dynamic
batcher merges the concurrent per-stream requests into one batched call.

No Triton import here: the same classes run in-process (tests feed them an ONNX Runtime call).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from ..errors import InputError
from ..runtime.backend import Backend, InputMetadata
from ..modeldir import ModelDir
from ..runtime.tracker import Tracker

#: the tracker model's server-log line when it drops idle sequences: ``RELEASE_LOG <count> (sequences ...)``
RELEASE_LOG = "siamtrt_tracker: released idle sequences:"

#: call(branch, feed) -> {output name: array}; ``branch`` is "template" or "search".
BranchCall = Callable[[str, Dict[str, np.ndarray]], Dict[str, np.ndarray]]


class CallableBackend(Backend):
    """A runtime backend whose two branches are run by a function (a BLS request inside Triton, a tritonclient or
    ONNX Runtime call elsewhere). The base class still checks feeds and splits batches for ``--batch 1`` models.

    Args:
        call (BranchCall): runs one branch on a feed dict.
        inputs (dict): per branch, {input name: (numpy dtype name, shape with None for dynamic axes)}.
        meta (dict): the model directory's (search-branch) metadata.
    """

    name = "callable"
    short = "call"

    def __init__(self, call: BranchCall, inputs: Dict[str, Dict[str, Any]], meta: Dict[str, Any]):
        super().__init__(template=None, search=None, meta=meta)
        self._call = call
        self._inputs = inputs

    def _activate(self) -> None:
        pass

    def _deactivate(self) -> None:
        pass

    def _input_metadata(self, branch: str) -> InputMetadata:
        return {n: (np.dtype(dt), tuple(shape)) for n, (dt, shape) in self._inputs[branch].items()}

    def _infer(self, branch: str, feed: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        return self._call(branch, feed)


class SequenceTrackers:
    """Per-sequence trackers keyed by correlation id (thread-safe: different sequences may run concurrently).

    Args:
        info (ModelDir): the model's checked metadata. backend (Backend): shared by every sequence's tracker.
        idle_seconds (float): a sequence not seen for this long is dropped (the server released it: a client that
            disconnected without END). Defaults to 60.
        on_release (callable): ``on_release(corrids)`` after idle sequences were dropped (the tracker model logs
            it). Defaults to None.
    """

    def __init__(self, info: ModelDir, backend: Backend, idle_seconds: float = 60.0,
                 on_release: Optional[Callable[[List[int]], None]] = None):
        self.info = info
        self.backend = backend
        self.idle_seconds = idle_seconds
        self.on_release = on_release
        self.released_idle = 0  # sequences dropped for idleness so far
        self._trackers: Dict[int, Tracker] = {}
        self._seen: Dict[int, float] = {}
        self._locks: Dict[int, threading.Lock] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_repository_meta(cls, meta: Dict[str, Any], call: BranchCall, path: Union[str, Path],
                             idle_seconds: float = 60.0, on_release: Optional[Callable[[List[int]], None]] = None
                             ) -> "SequenceTrackers":
        """From the ``siamtrt_model.json`` written beside the tracker model (see repository.write_repository)."""
        info = ModelDir.from_metadata(path, meta["template_meta"], meta["search_meta"])
        inputs = {b: meta["io"][b]["inputs"] for b in ("template", "search")}
        return cls(info, CallableBackend(call, inputs, meta["search_meta"]), idle_seconds, on_release)

    def __len__(self) -> int:
        return len(self._trackers)

    def _lock_for(self, corrid: int) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(corrid, threading.Lock())

    def expire_idle(self, now: Optional[float] = None) -> List[int]:
        """Drop the sequences not seen for ``idle_seconds`` (abandoned by their clients); returns their ids.

        Runs on every request, so an abandoned sequence is released by the next request of any stream.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            old = [c for c, t in self._seen.items() if now - t > self.idle_seconds]
            for c in old:
                self._trackers.pop(c, None)
                self._seen.pop(c, None)
                self._locks.pop(c, None)
            self.released_idle += len(old)
        if old and self.on_release is not None:
            self.on_release(old)
        return old

    def handle(self, corrid: int, start: bool, end: bool, frame: np.ndarray,
               init_box: Optional[np.ndarray] = None) -> Tuple[np.ndarray, float]:
        """One request of sequence ``corrid``: START initialises on ``frame`` with ``init_box`` and returns that box
        with score 1 (runtime/track.py's convention); other requests track ``frame``. END drops the sequence after
        answering.

        Raises:
            InputError: START without a box, or a frame for a sequence that was never started.
        """
        now = time.monotonic()
        self.expire_idle(now)
        with self._lock_for(corrid):
            try:
                if start:
                    if init_box is None:
                        raise InputError(f"sequence {corrid}: the START request carries no init_box",
                                         fix="send the first frame with init_box = x, y, w, h and sequence_start")
                    tracker = Tracker(self.backend, self.info)
                    box = np.asarray(init_box, np.float64).reshape(4)
                    tracker.init(frame, box)
                    with self._lock:
                        self._trackers[corrid] = tracker
                    out = (box, 1.0)  # frame 0: the given box, score 1 (as runtime/track.py writes it)
                else:
                    tracker = self._trackers.get(corrid)
                    if tracker is None:
                        raise InputError(f"sequence {corrid} was not started (or was idle longer than "
                                         f"{self.idle_seconds:g} s and released)",
                                         fix="send the first frame with sequence_start=True and init_box")
                    res = tracker.track(frame)
                    out = (res.bbox, res.score)
                with self._lock:
                    self._seen[corrid] = now
            finally:
                if end:
                    with self._lock:
                        self._trackers.pop(corrid, None)
                        self._seen.pop(corrid, None)
                        self._locks.pop(corrid, None)
        return out


__all__ = ["BranchCall", "CallableBackend", "RELEASE_LOG", "SequenceTrackers"]
