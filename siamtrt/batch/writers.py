"""One result file per video: CSV through the runtime's :class:`~siamtrt.runtime.boxes.BoxWriter`, Parquet (Ray's
extra format) through a writer with the same interface, and one reader for both.

Both formats hold the columns of the runtime's CSV (``frame,target,x,y,w,h,score``, frame and target 0-based; frame
0 is the init box with score 1, as runtime/track.py writes it) at full float precision, and both are written as
``NAME.part`` while the video is tracked and renamed to ``NAME`` when it is complete, so a final file is always whole.
Lock files (a video's ``NAME.lock``, the run's ``track-many.lock``) are ``flock``ed by who writes (:func:`hold_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator, Optional, Tuple, Union

import numpy as np

from ..outputs import part_path
from ..runtime.boxes import CSV_HEADER, BoxWriter, read_results as read_box_results, read_scores
from .errors import BatchError

RESULT_FORMATS = ("csv", "parquet")
PathLike = Union[str, Path]


class ParquetBoxWriter:
    """:class:`~siamtrt.runtime.boxes.BoxWriter`'s interface for Parquet: ``write(frame, boxes, scores)``,
    ``commit()`` (rename ``NAME.part`` → ``NAME``), ``close()`` (keep ``NAME.part``), ``where``, ``frames``.

    Rows are buffered and written as one row group every ``flush_every`` frames (Parquet's footer is written on
    close, so an interrupted ``.part`` file is not readable; the CSV format is the one that keeps rows so far).

    Args:
        path (str | Path): final file.
        flush_every (int): frames per row group. Defaults to 50.
    """

    def __init__(self, path: PathLike, flush_every: int = 50):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.part = part_path(self.path)
        self.flush_every = flush_every
        self.frames = 0
        self.committed = False
        self._pa = pa
        self._schema = pa.schema([(c, pa.int64()) for c in CSV_HEADER[:2]]
                                 + [(c, pa.float64()) for c in CSV_HEADER[2:]])
        self._rows = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pq = pq.ParquetWriter(str(self.part), self._schema)

    @property
    def where(self) -> str:
        return str(self.path if self.committed else self.part)

    def write(self, frame: int, boxes: np.ndarray, scores: np.ndarray) -> None:
        """Append one frame's boxes (N, 4) and scores (N,)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        self._rows += [(int(frame), t, *map(float, b), float(s)) for t, (b, s) in enumerate(zip(boxes, scores))]
        self.frames += 1
        if self.frames % self.flush_every == 0:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            cols = list(zip(*self._rows))
            self._pq.write_table(self._pa.table({c: list(v) for c, v in zip(CSV_HEADER, cols)}, schema=self._schema))
            self._rows = []

    def commit(self) -> Path:
        """Write the last rows, close and rename into place; returns the final path."""
        self._flush()
        self.close()
        os.replace(self.part, self.path)
        self.committed = True
        return self.path

    def close(self) -> Optional[Path]:
        """Close without committing; returns ``NAME.part`` (None once committed)."""
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        return None if self.committed else self.part


def result_path(out_dir: PathLike, name: str, fmt: str) -> Path:
    """``OUT/<name>.<fmt>``: where a video's results go."""
    return Path(out_dir) / f"{name}.{fmt}"


def lock_path(final: PathLike) -> Path:
    """``OUT/<name>.<fmt>.lock``: flock'ed by the worker tracking the video (JSON: its pid, host, start time)."""
    final = Path(final)
    return final.with_name(final.name + ".lock")


def partial_paths(out_dir: PathLike, name: str, fmt: str) -> Tuple[Path, Path]:
    """A video's ``NAME.<fmt>.part`` (rows so far) and ``.lock`` (who is on it) in ``out_dir``."""
    final = result_path(out_dir, name, fmt)
    return part_path(final), lock_path(final)


def lock_file(path: Path) -> Optional[IO[str]]:
    """``path`` opened (created when missing) and exclusively ``flock``ed, or None while another process holds it.

    The OS releases the lock when its process ends however it ends (even SIGKILL), so a lock found free is stale,
    whatever pid its file names (that process may be alive, or the pid reused). A holder removes the file when done;
    a file removed between our open and our lock is opened again.

    Raises:
        BatchError: the file system has no locks (ENOLCK / ENOSYS); a file this call created is removed.
    """
    while True:
        existed = path.exists()
        f = open(path, "a+")
        try:
            if not _flock(f, fcntl.LOCK_EX, path):
                return None
        except BatchError:
            if not existed:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == os.fstat(f.fileno()).st_ino:
                return f
        f.close()


def lock_holder(path: Path) -> Optional[str]:
    """What the live holder of ``path``'s ``flock`` says of itself (:func:`lock_record`), or None when no process
    holds it or the file is gone. Creates nothing: a check that opened the file to lock it re-created, empty, a
    ``.lock`` its worker had just removed.

    Raises:
        BatchError: the file system has no locks (ENOLCK / ENOSYS).
    """
    try:
        f = open(path)
    except FileNotFoundError:
        return None
    with f:
        return None if _flock(f, fcntl.LOCK_SH, path) else lock_record(path)


def _flock(f: IO[str], op: int, path: Path) -> bool:
    """``flock(f, op)`` without waiting: True once taken (the caller closes ``f`` to release it), False while another
    process holds it; ``f`` is closed unless taken.

    Raises:
        BatchError: the file system has no locks (ENOLCK / ENOSYS).
    """
    try:
        fcntl.flock(f, op | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        f.close()
        return False
    except OSError as e:  # ENOLCK / ENOSYS: NFS without lockd, some FUSE and Lustre mounts
        f.close()
        raise BatchError(f"the file system of {path.parent} does not support file locks, which keep two runs "
                         "(or workers) from writing into one folder",
                         evidence=f"flock {path}: {type(e).__name__}: {e}",
                         fix="choose an --out on a local disk (or a mount with locks: NFSv4, Lustre with "
                             "-o flock) and copy the results afterwards") from None


def lock_record(path: Path) -> str:
    """What a lock file says of its holder (its JSON text), for messages."""
    try:
        return path.read_text().strip() or "(no details yet)"
    except OSError as e:
        return f"(unreadable: {e.strerror})"


@contextlib.contextmanager
def hold_lock(path: Path, busy: Callable[[str], Exception], **info) -> Iterator[str]:
    """Hold :func:`lock_file` on ``path`` for the block, the file saying who (JSON: pid, host, start time, ``info``);
    yields what it said before (a killed holder's record; "" when new). The file is removed at the end.

    Raises:
        ``busy(record)`` while another process holds it (``record``: its file's text); BatchError: no file locks.
    """
    f = lock_file(path)
    if f is None:
        raise busy(lock_record(path))
    try:
        f.seek(0)
        before = f.read().strip()
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), **info}))
        f.flush()
        yield before
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        f.close()


def open_result_writer(path: PathLike, fmt: str):
    """A writer for ``fmt`` ("csv": the runtime's BoxWriter, "parquet": :class:`ParquetBoxWriter`)."""
    return BoxWriter(path, "csv") if fmt == "csv" else ParquetBoxWriter(path)


@dataclass(frozen=True)
class VideoResults:
    """One result file read back: ``boxes`` (frames, N, 4) x, y, w, h and ``scores`` (frames, N)."""

    boxes: np.ndarray
    scores: np.ndarray


def read_results(path: PathLike) -> VideoResults:
    """A result file (CSV or Parquet, by suffix) back as arrays; frames or targets missing from it are NaN."""
    path = Path(path)
    if path.suffix != ".parquet":
        return VideoResults(read_box_results(path, "csv"), read_scores(path, "csv"))
    import pyarrow.parquet as pq

    t = pq.read_table(str(path))
    frame, target = (np.asarray(t.column(c).to_numpy(), np.int64) for c in CSV_HEADER[:2])
    values = np.stack([np.asarray(t.column(c).to_numpy(), np.float64) for c in CSV_HEADER[2:]], 1)
    n_frames = int(frame.max()) + 1 if len(frame) else 0
    n = int(target.max()) + 1 if len(target) else 0
    boxes, scores = np.full((n_frames, n, 4), np.nan), np.full((n_frames, n), np.nan)
    boxes[frame, target] = values[:, :4]
    scores[frame, target] = values[:, 4]
    return VideoResults(boxes, scores)


__all__ = ["ParquetBoxWriter", "RESULT_FORMATS", "VideoResults", "hold_lock", "lock_file", "lock_holder", "lock_path",
           "lock_record", "open_result_writer", "partial_paths", "read_results", "result_path"]
