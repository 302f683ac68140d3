"""One progress line per long job: a tqdm bar on a terminal (where tqdm is installed), plain phase lines in a log.

tqdm redraws its line with carriage returns and cursor moves, which fill a log file (CI, ``nohup``, ``| tee``) with
escape codes. :func:`progress_bar` gives the bar when stderr is a terminal and otherwise a :class:`LogProgress` that
prints a plain line at the start, every ``log_every`` of the work and at the end (``"report: tracking FP32 (2/3):
98/196 frames"``). Both take the same calls (``update``, ``set_postfix``, ``set_description``, ``close``), so library
code writes one progress call whatever the output is.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, Optional, TextIO, TypeVar

T = TypeVar("T")


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class LogProgress:
    """Plain-line progress for non-terminal output (same calls as a tqdm bar).

    Args:
        total (int | None): units of work (None: unknown, e.g. a camera).
        desc (str): the job and phase, e.g. "track bag.avi".
        unit (str): what is counted. Defaults to "it".
        stream: where lines go. Defaults to sys.stderr.
        log_every (float): fraction of ``total`` between lines (unknown total: seconds between lines).
            Defaults to 0.25.
        initial (int): units already done (e.g. videos a resumed run skips). Defaults to 0.
    """

    def __init__(self, total: Optional[int] = None, desc: str = "", unit: str = "it", stream: Optional[TextIO] = None,
                 log_every: float = 0.25, initial: int = 0):
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.n = initial
        self.postfix = ""
        self._step = max(1, int(round((total or 0) * log_every))) if total else None
        self._every_s = 30.0
        self._next = self._step
        self._t0 = self._last = time.monotonic()
        self.closed = False
        self._line("started")

    def _line(self, what: str = "") -> None:
        count = f"{self.n}/{self.total}" if self.total else str(self.n)
        post = f" [{self.postfix}]" if self.postfix else ""
        unit = self.unit if self.n == 1 else self.unit + "s"
        print(f"{self.desc}: {count} {unit}{post}{' ' + what if what else ''}", file=self.stream, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if (self._next is not None and self.n >= self._next and self.n < (self.total or 0)) or \
                (self._next is None and now - self._last >= self._every_s):
            self._line()
            self._last = now
            if self._next is not None:
                self._next += self._step

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: Optional[str] = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            finished = self.total is None or self.n >= self.total
            self._line(f"{'done' if finished else 'stopped'} after {time.monotonic() - self._t0:.1f} s")

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NullProgress:
    """The progress object of a job run with progress off: every call does nothing."""

    n = 0

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def set_description(self, desc: Optional[str] = None, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "NullProgress":
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress_bar(total: Optional[int] = None, desc: str = "", unit: str = "it", enabled: bool = True,
                 stream: Optional[TextIO] = None, initial: int = 0, **tqdm_kwargs: Any):
    """A progress object for ``total`` units: tqdm on a terminal where installed, else :class:`LogProgress`.

    Args:
        total (int | None): units of work (None when unknown).
        desc (str): job and phase shown before the count.
        unit (str): what is counted. Defaults to "it".
        enabled (bool): False returns a :class:`NullProgress` (the same calls, no output). Defaults to True.
        stream: output stream. Defaults to sys.stderr.
        initial (int): units already done. Defaults to 0.
        **tqdm_kwargs: passed to tqdm on a terminal (e.g. ``leave=False``).
    """
    if not enabled:
        return NullProgress()
    stream = stream if stream is not None else sys.stderr
    if _is_tty(stream):
        try:
            from tqdm import tqdm
        except ImportError:  # a runtime-only install: tqdm only draws the bar, the plain lines say the same
            pass
        else:
            return tqdm(total=total, desc=desc, unit=unit, file=stream, initial=initial, **tqdm_kwargs)
    return LogProgress(total, desc, unit, stream, initial=initial)


def progress_iter(iterable: Iterable[T], total: Optional[int] = None, desc: str = "", unit: str = "it",
                  enabled: bool = True, **kwargs: Any) -> Iterator[T]:
    """``iterable``'s items, one progress step per item (the bar or lines of :func:`progress_bar`)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    bar = progress_bar(total, desc, unit, enabled, **kwargs)
    try:
        for item in iterable:
            yield item
            bar.update(1)
    finally:
        bar.close()


__all__ = ["LogProgress", "NullProgress", "progress_bar", "progress_iter"]
