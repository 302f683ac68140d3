"""Tracking many videos on Ray (optional extra: ``pip install -e ".[batch]"``).

One module per job: :mod:`~siamtrt.batch.jobs` (which videos, which init boxes), :mod:`~siamtrt.batch.writers`
(one result file per video: the runtime's CSV writer, Parquet), :mod:`~siamtrt.batch.video` (tracking one video,
its summary row), :mod:`~siamtrt.batch.summary` (the run's record, the model's identity, what a rerun reuses),
:mod:`~siamtrt.batch.scheduler` (Ray actors, replacing dead ones), :mod:`~siamtrt.batch.many` (:func:`track_many`,
the whole run), :mod:`~siamtrt.batch.bench` (throughput per worker count), :mod:`~siamtrt.batch.soak` (workers
killed during a run). The per-video work is the runtime's :class:`~siamtrt.runtime.Tracker`, unchanged; Ray only
schedules it. Nothing here is imported by the runtime, and nothing here imports serving or benchmarks.
"""

from .errors import BatchError
from .jobs import VideoJob, discover_jobs
from .many import check_run, track_many
from .summary import ManyReport
from .video import track_one
from .writers import VideoResults, read_results

__all__ = ["BatchError", "ManyReport", "VideoJob", "VideoResults", "check_run", "discover_jobs", "read_results",
           "track_many", "track_one"]
