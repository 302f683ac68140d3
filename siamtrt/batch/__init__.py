"""Tracking many videos on Ray (optional extra: ``pip install -e ".[batch]"``).

:func:`siamtrt.batch.many.track_many` tracks a set of videos with one tracker actor per core (per GPU when the
cluster has GPUs), streams each video's boxes to its own CSV / Parquet file, keeps a summary, and resumes a
half-finished run without redoing finished videos. The per-video work (:func:`track_one`) is the runtime's
:class:`~siamtrt.runtime.Tracker`, unchanged; Ray only schedules it. Nothing here is imported by the runtime.
"""

from .many import ManyReport, VideoJob, discover_jobs, read_results, track_many, track_one

__all__ = ["ManyReport", "VideoJob", "discover_jobs", "read_results", "track_many", "track_one"]
