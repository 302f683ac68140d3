"""Writing results so that nothing is lost and nothing half-written passes for complete.

Every command that writes goes through these helpers:

* :func:`check_writable` — check every output of a run before touching any (a bad ``--save-video`` must not cost
  the user an existing ``--out`` file);
* :func:`atomic_file` — write a file under a temporary name in the same folder and rename it into place only when
  complete (``os.replace`` is atomic on one filesystem); on failure or interruption the target is untouched;
* :func:`staged_dir` — the same for a whole output directory (an export, a derived model directory, engines);
* :func:`check_replaceable` — refuse, before any work, an output folder that is not new, empty, or what siamtrt
  wrote there (a sequence, an OpenCV export, a Triton repository, a model directory): no job deletes a user's files;
* :class:`PartFile` — a text file whose rows reach the disk as they are produced: written as ``NAME.part`` (flushed
  after every row) and renamed to ``NAME`` by :meth:`PartFile.commit`, so an interrupted run leaves its rows so far
  in a file whose name says it is partial. A row that fails to reach the disk (disk full) is cut back off, so a
  ``.part`` file holds whole rows only; the failure is an :class:`~siamtrt.errors.OutputError`
  (:func:`output_error`).

And the interruption contract of the commands: :func:`signals_as_interrupt` turns SIGTERM (and SIGHUP) into the
same ``KeyboardInterrupt`` that SIGINT raises, so ``finally`` blocks run and the command can say what it kept;
:func:`exit_code_for_interrupt` gives 130 (SIGINT) or 143 (SIGTERM). Within :func:`deferred_interrupt` such a
signal waits until the block ends (a frame's row and its video frame, or the renames that complete a run, happen
together or not at all); :func:`reinstate_interrupt_signals` takes the signals back from a library that installed
its own handlers (Ray's driver aborts on SIGTERM).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Callable, Iterator, Optional, Sequence, Tuple, Type, Union

from .errors import InputError, OutputError, SiamtrtError, folder_listing

PART_SUFFIX = ".part"
PathLike = Union[str, Path]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default_mode(path: Union[str, Path]) -> None:
    """Give a mkstemp file the permissions ``open()`` would have (mkstemp makes it 0600)."""
    os.chmod(path, 0o666 & ~_umask())


#: the signal that raised the last KeyboardInterrupt inside :func:`signals_as_interrupt` (SIGINT by default)
_LAST_SIGNAL = {"signum": int(signal.SIGINT)}
#: :func:`deferred_interrupt`'s nesting depth, the signal that arrived meanwhile, and the handler in force
_DEFERRED = {"depth": 0, "pending": None, "handler": None}
_INTERRUPT_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))

#: what to do about an OSError while writing, by errno
_WRITE_FIXES = {getattr(errno, name): fix for name, fix in (
    ("ENOSPC", "free disk space, or write to a folder on another disk"),
    ("EDQUOT", "free space within your disk quota, or write to another folder"),
    ("ENOENT", "the folder was removed while the job wrote into it: write to a folder that stays"),
    ("EFBIG", "the file size limit is reached (ulimit -f): raise it, or write to a file system that allows more"),
    ("ENAMETOOLONG", "use a shorter file name"),
    ("EROFS", "write to a folder on a writable file system"),
    ("EACCES", "write to a folder you may write to")) if hasattr(errno, name)}


def output_error(path: PathLike, err: OSError, kept: str = "") -> OutputError:
    """The :class:`OutputError` for an OSError while writing ``path``: what failed, the OS's words, the fix by
    errno, and (``kept``) where the results so far are."""
    what = f"cannot write {path}: {err.strerror or err}" + (f"; {kept}" if kept else "")
    return OutputError(what, evidence=f"[Errno {err.errno}] {err.filename or path}",
                       fix=_WRITE_FIXES.get(err.errno, "write to another path"))


def part_path(path: PathLike) -> Path:
    """``boxes.txt`` → ``boxes.txt.part``: where rows go until the run completes."""
    p = Path(path)
    return p.with_name(p.name + PART_SUFFIX)


def check_writable(paths: Sequence[Optional[PathLike]], *, what: Sequence[str] = (), overwrite: bool = True,
                   dirs: Sequence[Optional[PathLike]] = (), inputs: Sequence[Optional[PathLike]] = (),
                   partials: Sequence[Tuple[PathLike, str]] = (),
                   input_dirs: Sequence[Optional[PathLike]] = ()) -> None:
    """Refuse, before anything is written, outputs that cannot be written.

    Args:
        paths: output files (None entries are skipped; "-" means stdout and is skipped).
        what: option names for the messages, parallel to ``paths`` (e.g. "--out"). Defaults to "output".
        overwrite (bool): an existing file may be replaced (atomically, once the new content is complete).
            Defaults to True.
        dirs: output directories (must not be existing non-directories, the current folder or one above it; their
            parent must be creatable).
        inputs: the files the job reads (None entries skipped): no output may be one of them (``--out v.avi
            --video v.avi`` replaced the video with a box file).
        partials: (path, what) of the files outputs are streamed into until they complete (``NAME.part``): checked
            like outputs (``--out a.part.mp4 --save-video a.mp4`` named one file twice), and refused when one exists
            (an interrupted run's frames, or a file of the user's, would be overwritten).
        input_dirs: folders the job reads (a sequence folder, an image-folder video, a model directory; None
            entries skipped): no output file or directory may lie in one (``--plot bag/img/00000001.jpg``
            replaced a frame).

    Raises:
        InputError: a path is a directory, named twice, one of ``inputs`` or inside one of ``input_dirs``, its parent
            is a file or does not accept new files (checked by creating one: as root ``os.access`` says yes to
            ``/proc``), an existing file is write-protected (no write bit: refused as ``rm`` asks, even for root),
            or (``overwrite=False``) exists.
    """
    in_dirs = [Path(d) for d in input_dirs if d is not None]
    names = list(what) + ["output"] * (len(paths) - len(what)) + [w for _, w in partials]
    paths = list(paths) + [p for p, _ in partials]
    seen: dict = {}  # resolved path → the option that named it first
    for path, name in zip(paths, names):
        if path is None or str(path) == "-":
            continue
        p = Path(path)
        try:
            if p.resolve() in seen:
                raise InputError(f"{seen[p.resolve()]} and {name} are the same file {p}",
                                 fix="give them different names")
            seen[p.resolve()] = name
            if p.is_dir():
                raise InputError(f"{name} {p} is a directory", fix=f"give {name} a file path, e.g. {p / 'out.txt'}")
            for i in inputs:
                if isinstance(i, (str, os.PathLike)) and p.is_file() and Path(i).is_file() and os.path.samefile(p, i):
                    raise InputError(f"{name} {p} is the input {i}: writing it would replace what the job reads",
                                     fix=f"give {name} another file name")
            _refuse_inside(p, name, in_dirs)
            if p.exists() and not overwrite:
                raise InputError(f"{name} {p} exists", fix="choose a new path or pass --force")
            _refuse_write_protected(p, name)
            _check_parent(p, name)
        except OSError as e:  # a name too long, a path through /proc: the OS refuses it before any work
            raise InputError(f"cannot write {name} {p}: {e.strerror or e}", evidence=f"[Errno {e.errno}]",
                             fix=_WRITE_FIXES.get(e.errno, f"choose another {name}")) from None
    for path, name in partials:
        _refuse_leftover(Path(path), name)
    for d in dirs:
        if d is None:
            continue
        p = Path(d)
        try:
            if p.exists() and not p.is_dir():
                raise InputError(f"{p} exists and is not a directory", fix="choose another output directory")
            _refuse_working_folder(p)
            _refuse_inside(p, "output directory", in_dirs)
            _check_parent(p, "output directory")
        except OSError as e:
            raise InputError(f"cannot write the output directory {p}: {e.strerror or e}",
                             evidence=f"[Errno {e.errno}]", fix=_WRITE_FIXES.get(e.errno, "choose another one")
                             ) from None


def check_replaceable(out: PathLike, *, overwrite: bool, flag: Optional[str], recognise: Callable[[Path], bool],
                      what: str, kind: str, layout: str, strays: Callable[[Path], Sequence[str]] = lambda p: (),
                      error: Type[SiamtrtError] = InputError) -> Path:
    """Refuse, before any work, an output folder a job may not replace: it replaces (once the new one is complete)
    only what it wrote there, never a user's files (``--force`` / ``--overwrite`` wiped them).

    Args:
        out (str | Path): the folder. overwrite (bool): ``flag`` was given. flag (str): its name; None for a job
            that replaces its own folder without one.
        recognise (Callable): whether a non-empty folder holds what the job wrote and nothing it may not drop.
        what, kind, layout (str): for the messages: the option naming the folder ("--out"), what the job writes
            ("OpenCV export"), what such a folder holds. strays (Callable): the names in an unrecognised folder
            besides what the job wrote there (none if it wrote nothing there). error (type): what to raise.

    Raises:
        InputError (or ``error``): ``out`` cannot be written (:func:`check_writable`), or is non-empty and
            ``overwrite`` is False, or non-empty and not recognised.
    """
    out = Path(out)
    check_writable([], dirs=[out])
    if not (out.is_dir() and any(out.iterdir())):
        return out
    listing = folder_listing(out, limit=8)
    if not overwrite:
        raise error(f"{what} {out} exists and is not empty", evidence=listing,
                    fix=f"choose a new {what}, or pass {flag} to replace the {kind} siamtrt wrote there")
    if recognise(out):
        return out
    others = sorted(strays(out))
    if others:
        more = f" ... and {len(others) - 8} more" if len(others) > 8 else ""
        raise error(f"{what} {out} holds other files besides the {kind} siamtrt wrote: {flag} would delete them",
                    evidence=f"not written by siamtrt: {others[:8]}{more}",
                    fix=f"move these files out of it, or choose a new or empty {what}")
    raise error(f"{what} {out} holds other files and no {kind} siamtrt wrote"
                + (f": {flag} replaces nothing else" if flag else ""),
                evidence=f"{listing} ({layout})", fix=f"choose a new or empty {what}, or move these files out of it")


def refuse_binary(out: PathLike, name: str = "--out") -> None:
    """An existing box file output (``--out``) is replaced only when it is text (a box file, a note): a video, a model
    or any other binary file named by mistake is kept (``siamtrt track`` and ``siamtrt client`` alike)."""
    out = Path(out)
    try:
        with open(out, "rb") as f:
            head = f.read(4096)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return
    except OSError as e:
        raise InputError(f"{name} {out} cannot be read to check what it holds: {e.strerror}",
                         fix=f"choose another {name}") from None
    if b"\0" in head:
        raise InputError(f"{name} {out} exists and is not a box file: a box file would replace it",
                         evidence=f"{out.stat().st_size} bytes of binary data (a NUL byte in its first "
                                  f"{len(head)} bytes)",
                         fix=f"choose another {name} (e.g. boxes.txt), or delete the file first if it is not needed")


def _refuse_leftover(path: Path, what: str) -> None:
    """A partial file already there holds an earlier run's frames (or is a file of the user's): never overwrite it."""
    if path.exists():
        st = path.stat()
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime))
        raise InputError(f"{what} {path} exists: the frames an interrupted run kept (or a file of yours); this run "
                         "would overwrite it", evidence=f"{st.st_size} bytes, modified {when}",
                         fix=f"keep it: rename or move it; discard it: delete it (rm {path!s}); then run again")


def _refuse_working_folder(p: Path) -> None:
    """An output folder is built under a temporary name beside it and renamed into place: that cannot be done to the
    folder the command runs in, or to one above it (``--out .`` failed with an OSError after the work)."""
    cwd, r = Path.cwd().resolve(), p.resolve()
    if r == cwd or r in cwd.parents:
        where = "the current folder" if r == cwd else f"a folder above the current folder {cwd}"
        raise InputError(f"output directory {p} is {where}",
                         evidence="an output folder is written under a temporary name beside it and renamed into "
                                  "place as a whole, which cannot be done to the folder the command runs in",
                         fix=f"name a new folder inside it, e.g. {Path(p) / 'out'}, or run from another folder")


def _refuse_inside(p: Path, name: str, input_dirs: Sequence[Path]) -> None:
    """An output in a folder the job reads would change what it reads (or replace one of its files)."""
    r = p.resolve()
    for d in input_dirs:
        rd = d.resolve()
        if r == rd or rd in r.parents:
            raise InputError(f"{name} {p} lies in {d}, which the job reads",
                             evidence=f"{d} is an input folder (a sequence, image frames or a model directory): "
                                      "writing there could replace or add to what is read",
                             fix=f"write {name} outside {d}")


def _refuse_write_protected(p: Path, name: str) -> None:
    """An existing file with no write bit is kept, as ``rm`` asks before removing one: root may replace it, but
    the mode says the owner wants it kept (a read-only data file was replaced through ``--json``)."""
    if p.is_file() and not p.stat().st_mode & 0o222:
        raise InputError(f"{name} {p} is write-protected", evidence=f"mode {p.stat().st_mode & 0o777:o}",
                         fix=f"choose another {name}, or make it writable (chmod u+w) if it may be replaced")


def _check_parent(p: Path, name: str) -> None:
    parent = p.parent if str(p.parent) else Path(".")
    probe = parent
    while not probe.exists():  # the nearest existing ancestor decides whether the folders can be made
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"cannot write {name} {p}: {probe} is a file, not a folder", fix=f"choose another {name}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {name} {p}: no write permission in {probe}", fix=f"choose another {name}")
    if not probe.stat().st_mode & 0o222:  # r-x for all (as ../shared): kept even from root, as a write-protected file
        raise InputError(f"cannot write {name} {p}: {probe} does not accept new files (no write bit)",
                         evidence=f"{probe} mode {probe.stat().st_mode & 0o777:o}",
                         fix=f"choose another {name}, in a folder you may write")
    # os.access says yes to root everywhere (/proc, a read-only mount): a file made and removed at once says truly
    try:
        fd, tmp = tempfile.mkstemp(prefix=".siamtrt-probe-", suffix=".tmp", dir=str(probe))
    except OSError as e:
        raise InputError(f"cannot write {name} {p}: {probe} does not accept new files ({e.strerror or e})",
                         evidence=f"[Errno {e.errno}] creating a file in {probe}",
                         fix=f"choose another {name}, in a folder of a writable file system") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


@contextlib.contextmanager
def atomic_file(path: PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it to ``path`` when the block completes.

    On an exception (KeyboardInterrupt included) the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    _default_mode(tmp)
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_path(path: PathLike) -> "contextlib.AbstractContextManager[Path]":
    """Like :func:`atomic_file` for writers that take a path (``np.savez``, ``onnx.save``, ``cv2``): yields a
    temporary path with the same suffix beside ``path``, renamed into place when the block completes."""
    return _atomic_path(Path(path))


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp" + path.suffix, dir=str(path.parent))
    os.close(fd)
    _default_mode(tmp)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if not tmp_path.is_file():
            raise FileNotFoundError(f"the writer did not create {tmp_path}")
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def staged_dir(out: PathLike, *, overwrite: bool = False, keep_existing: bool = False) -> Iterator[Path]:
    """Build an output directory under a temporary name beside ``out``; put it in place when the block completes.

    Args:
        out (str | Path): the directory the caller promises.
        overwrite (bool): replace an existing non-empty ``out`` (only once the new one is complete). Defaults to False.
        keep_existing (bool): start from a copy of the existing ``out`` (to add files such as engines to a model
            directory without a moment where it is incomplete). Defaults to False.

    Raises:
        InputError: ``out`` exists, is not empty, and neither ``overwrite`` nor ``keep_existing`` is set; ``out`` is
            the current folder or one above it.
    """
    out = Path(out)
    existing = out.is_dir() and any(out.iterdir())
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a directory", fix="choose another output directory")
    _refuse_working_folder(out)
    if existing and not (overwrite or keep_existing):
        raise InputError(f"output directory {out} exists and is not empty",
                         evidence=f"holds {sorted(p.name for p in out.iterdir())[:8]}",
                         fix="choose a new output directory or pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=str(out.parent)))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700
    try:
        if keep_existing and existing:
            shutil.copytree(out, tmp, dirs_exist_ok=True)
        yield tmp
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=str(out.parent)))
            os.rmdir(old)
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class PartFile:
    """A text output whose lines reach the disk as they are written, complete only once committed.

    Lines go to ``NAME.part`` and are flushed after every :meth:`write`; :meth:`commit` renames it to ``NAME``
    (replacing an older ``NAME`` only then). :meth:`close` without commit leaves ``NAME.part`` with everything
    written so far. ``path="-"`` writes to stdout (flushed per line, nothing to rename).
    """

    def __init__(self, path: PathLike):
        self.stdout = str(path) == "-"
        self.path = None if self.stdout else Path(path)
        self.part = None if self.stdout else part_path(path)
        self.lines = 0
        self.committed = False
        self._whole = 0  # bytes of whole rows on disk: a failed write is cut back to this
        if self.stdout:
            import sys

            self._f = sys.stdout
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._f = open(self.part, "wb", buffering=0)
            except OSError as e:
                raise output_error(self.part, e) from None

    def write(self, text: str) -> None:
        """Write ``text`` (one or more whole lines) straight to the OS.

        Raises:
            OutputError: the OS refused it (disk full, folder removed); the file is cut back to its whole rows.
        """
        if self.stdout:
            self._f.write(text)
            self._f.flush()
        else:
            data = text.encode()
            rest = memoryview(data)
            try:
                while rest:
                    rest = rest[self._f.write(rest):]
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._f.fileno(), self._whole)
                raise output_error(self.part, e, kept=f"{self.lines} whole lines kept in it") from None
            self._whole += len(data)
        self.lines += text.count("\n")

    def commit(self) -> Optional[Path]:
        """Close and rename ``NAME.part`` → ``NAME``; returns the final path (None for stdout).

        Raises:
            OutputError: the file could not be completed (its folder removed, disk full at the sync).
        """
        if self.stdout:
            self.committed = True
            return None
        try:
            if not self._f.closed:
                os.fsync(self._f.fileno())
                self._f.close()
            os.replace(self.part, self.path)
        except OSError as e:
            raise output_error(self.path, e, kept=f"{self.lines} lines written to {self.part}") from None
        self.committed = True
        return self.path

    def close(self) -> Optional[Path]:
        """Close without committing; returns where the rows so far are (``NAME.part``), None for stdout."""
        if self.stdout:
            return None
        if not self._f.closed:
            with contextlib.suppress(OSError):
                self._f.close()
        return None if self.committed else self.part

    @property
    def where(self) -> str:
        """Where the rows are now, for messages ("stdout", ``NAME`` or ``NAME.part``)."""
        if self.stdout:
            return "stdout"
        return str(self.path if self.committed else self.part)


# ------------------------------------------------------------------------------------------------ interruption
@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise ``KeyboardInterrupt`` like SIGINT does (main thread only).

    ``finally`` blocks and context managers then run on every way a user stops a command; the signal that stopped
    it is kept for :func:`exit_code_for_interrupt`.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _LAST_SIGNAL["signum"] = int(signal.SIGINT)

    def handler(signum, frame):
        _LAST_SIGNAL["signum"] = int(signum)
        if _DEFERRED["depth"]:
            _DEFERRED["pending"] = int(signum)
            return
        raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in _INTERRUPT_SIGNALS}
    outer, _DEFERRED["handler"] = _DEFERRED["handler"], handler
    try:
        yield
    finally:
        _DEFERRED["handler"] = outer
        for s, h in old.items():
            signal.signal(s, h)


def reinstate_interrupt_signals() -> None:
    """Within :func:`signals_as_interrupt`, install its handler again: a library may have replaced it at the OS
    level (``ray.init`` makes SIGTERM abort the driver with exit 134 and a stack dump)."""
    handler = _DEFERRED["handler"]
    if handler is not None and threading.current_thread() is threading.main_thread():
        for s in _INTERRUPT_SIGNALS:
            signal.signal(s, handler)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Within :func:`signals_as_interrupt`, a stop signal arriving inside this block takes effect when it ends, so
    what the block writes is written whole (a frame's box row and video frame; the renames completing a run)."""
    _DEFERRED["depth"] += 1
    try:
        yield
    except BaseException:
        _DEFERRED["depth"] -= 1
        if not _DEFERRED["depth"]:
            _DEFERRED["pending"] = None  # the block failed: the caller handles that; the stop still ends the job
        raise
    _DEFERRED["depth"] -= 1
    if not _DEFERRED["depth"] and _DEFERRED["pending"] is not None:
        _DEFERRED["pending"] = None
        raise KeyboardInterrupt


def exit_code_for_interrupt() -> int:
    """128 + the signal that interrupted the last run (130 for SIGINT / Ctrl-C, 143 for SIGTERM)."""
    return 128 + _LAST_SIGNAL["signum"]


def interrupted_signal_name() -> str:
    return signal.Signals(_LAST_SIGNAL["signum"]).name


__all__ = ["PART_SUFFIX", "PartFile", "atomic_file", "atomic_path", "check_replaceable", "check_writable",
           "deferred_interrupt", "exit_code_for_interrupt", "interrupted_signal_name", "output_error", "part_path",
           "refuse_binary", "reinstate_interrupt_signals", "signals_as_interrupt", "staged_dir"]
