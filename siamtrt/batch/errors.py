"""The error a many-video run raises before it starts (the SiamtrtError family: what, evidence, fix)."""

from __future__ import annotations

from ..errors import SiamtrtError


class BatchError(SiamtrtError):
    """A many-video run cannot start: no videos, bad options, Ray unavailable, or an output folder holding another
    model's results."""


__all__ = ["BatchError"]
