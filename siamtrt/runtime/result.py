"""What the tracker hands out: the per-frame result and the events its observers receive.

``Tracker.track(frame)`` returns one :class:`TrackResult` whatever ``init`` was given. Observers registered with
``Tracker.add_observer(fn, branch)`` get a :class:`SearchEvent` per search batch (one per instance size per frame)
or a :class:`TemplateEvent` per template batch (``init`` / ``add`` / distractor templates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np

from ..config import MODES  # the modes a tracker runs in (see siamtrt.runtime.modes)
from ..errors import InputError


@dataclass(frozen=True, eq=False)
class TrackResult:
    """One frame's output for the N tracked targets (float64, 0-based x, y, w, h boxes).

    Attributes:
        boxes (np.ndarray): (N, 4) boxes, x = cx − w/2, y = cy − h/2.
        scores (np.ndarray): (N,) un-penalised foreground probability of the chosen anchor (distractor mode: of the
            re-ranked map the choice was made on).
        lost (np.ndarray): (N,) bool, long-term mode: the target is in the lost state after this frame (its next
            search uses the large instance size). Always False in short / distractor mode.
        instance_size (np.ndarray): (N,) int, the search size each target was searched at in this frame.
        distractors (np.ndarray): (N,) int, distractor mode: distractors found for each target in this frame (each
            adds its kernels to the target's decaying memory, unless they are not finite). Always 0 in short /
            long-term mode.
        mode (str): the tracker's mode when the frame was tracked.

    ``bbox`` / ``score`` are the unbatched fields of a one-target tracker; with N > 1 they raise InputError.
    """

    boxes: np.ndarray
    scores: np.ndarray
    lost: np.ndarray = None
    instance_size: np.ndarray = None
    distractors: np.ndarray = None
    mode: str = "short"

    def __post_init__(self):
        n = len(self.boxes)
        if self.lost is None:
            object.__setattr__(self, "lost", np.zeros(n, bool))
        if self.instance_size is None:
            object.__setattr__(self, "instance_size", np.zeros(n, np.int64))
        if self.distractors is None:
            object.__setattr__(self, "distractors", np.zeros(n, np.int64))

    @property
    def num_targets(self) -> int:
        return len(self.boxes)

    def _one(self, name: str) -> None:
        if len(self.boxes) != 1:
            raise InputError(f"TrackResult.{name} is defined for one target, this frame has {len(self.boxes)}",
                             fix="use result.boxes / result.scores (row i is target i)")

    @property
    def bbox(self) -> np.ndarray:
        """(4,) x, y, w, h of the only target (InputError with several targets)."""
        self._one("bbox")
        return self.boxes[0]

    @property
    def score(self) -> float:
        """Score of the only target (InputError with several targets)."""
        self._one("score")
        return float(self.scores[0])


@dataclass(frozen=True, eq=False)
class SearchEvent:
    """One batched search call, as the tracker made it (handed to search observers before post-processing).

    Attributes:
        instance_size (int): search side in crop pixels of this batch.
        indices (np.ndarray): (n,) indices of the targets in this batch (rows of the arrays below).
        crop (np.ndarray): [n,3,I,I] the search crops exactly as fed to the backend. A buffer the next search of this
            size on this thread reuses (one per thread, not per tracker): copy it to keep it.
        kernels (dict): {name: [n,…]} the template outputs fed with it (distractor mode: the re-weighted kernels).
        cls (np.ndarray), loc (np.ndarray): the raw outputs [n,2A,S,S], [n,4A,S,S] (may be backend buffers valid
            until the next search call: copy to keep).
        center (np.ndarray), size (np.ndarray): (n, 2) state the crop was cut around (before this frame's update).
        scale_z (np.ndarray): (n,) exemplar_size / s_z of this step.
    """

    instance_size: int
    indices: np.ndarray
    crop: np.ndarray
    kernels: Dict[str, np.ndarray]
    cls: np.ndarray
    loc: np.ndarray
    center: np.ndarray
    size: np.ndarray
    scale_z: np.ndarray


@dataclass(frozen=True, eq=False)
class TemplateEvent:
    """One batched template call: ``crop`` [n,3,E,E] as fed, ``kernels`` {name: [n,…]} returned.

    ``purpose`` is "init" (``init`` / ``add``) or "distractor" (distractor-mode templates); ``indices`` are the
    targets the crops belong to (for "init": the new targets' indices after the call).
    """

    purpose: str
    indices: np.ndarray
    crop: np.ndarray
    kernels: Dict[str, np.ndarray]
    center: np.ndarray
    size: np.ndarray
    side: np.ndarray = None


__all__ = ["MODES", "SearchEvent", "TemplateEvent", "TrackResult"]
