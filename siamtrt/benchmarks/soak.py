"""Soak: does memory stay flat and frame time stay bounded over a long run?

The runtime soak tracks a long video (a real one played forwards and backwards, so the motion stays continuous,
with a flat grey gap every ``gap_every`` frames that makes long-term modes lose the target and search globally) in
every tracking mode, with one and with several targets, and records per frame the tracker's wall time, whether the
frame was a global (lost-size) search, and the process's resident memory (RSS).

Verdicts, per run (``SoakGoals``):

* RSS after warm-up is flat: the largest growth above the RSS at the end of warm-up is at most ``rss_growth_mb``
  (the least-squares slope, MB per 1000 frames, is reported beside it);
* local frames: p99 ≤ ``local_p99_ratio`` × their median;
* global frames (long-term modes, a frame where any target searched at the lost size): p99 ≤ ``global_p99_ratio`` ×
  their median (bounded).

A run without frames of one kind (short mode has no global frames; with 4 targets in long-term mode one of them is
usually lost) passes that kind's verdict; the table shows how many frames each verdict judged.

The Triton soak (:mod:`siamtrt.serving.soak`) watches the server's process tree through :func:`tree_pss_bytes`
(proportional set size: pages the processes share counted once) and the same :func:`rss_trend`. Linux only
(``/proc``).
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError
from ..locations import RESULTS_DIR
from ..figures import pyplot, save_png
from .data import DEFAULT_BOX
from ..progress import progress_bar

LOG = logging.getLogger(__name__)

PathLike = Union[str, Path]
MB = 1024.0 ** 2
#: extra targets of a several-target run, placed away from the first (x, y, w, h as fractions of the frame)
EXTRA_TARGETS = ((0.08, 0.10, 0.15, 0.20), (0.75, 0.70, 0.16, 0.19), (0.31, 0.64, 0.17, 0.25))
#: grey level of the gap frames (the target vanishes: long-term modes switch to the global search)
GAP_GREY = 90
#: most points per series kept in the JSON (the verdicts use every frame)
SERIES_POINTS = 2000


@dataclass(frozen=True)
class SoakGoals:
    """Pass/fail thresholds of a soak run (issue 20's goals by default)."""

    rss_growth_mb: float = 20.0
    local_p99_ratio: float = 3.0
    global_p99_ratio: float = 3.0


# ----------------------------------------------------------------------------------------------------- memory
def _page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: Optional[int] = None) -> int:
    """Resident memory of one process (this one by default), from ``/proc/<pid>/statm``.

    Raises:
        InputError: no ``/proc`` (not Linux) or no such process.
    """
    path = Path(f"/proc/{pid or os.getpid()}/statm")
    try:
        return int(path.read_text().split()[1]) * _page_size()
    except (OSError, IndexError, ValueError) as e:
        raise InputError(f"cannot read the resident memory of process {pid or os.getpid()}", evidence=str(e),
                         fix="the soak measures RSS through /proc (Linux)") from None


def process_tree(pid: int) -> List[int]:
    """``pid`` and all its descendants (e.g. tritonserver and its Python-backend stub processes)."""
    children: Dict[int, List[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the process ended meanwhile
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    return tree


def pss_bytes(pid: int) -> int:
    """Proportional set size of one process (``/proc/<pid>/smaps_rollup``): its private pages plus its share of each
    page it maps with others, so the PSS of a process tree adds up to the memory the tree holds. The sum of RSS does
    not: tritonserver and each Python-backend stub map the same shared-memory tensor pools and libraries, and the
    pages one touches first count again in the other (in one Triton soak the RSS sum rose 51 MB, the PSS 12 MB).

    Raises:
        InputError: no ``smaps_rollup`` (not Linux, or a kernel before 4.14) or no such process.
    """
    path = Path(f"/proc/{pid}/smaps_rollup")
    try:
        line = next(x for x in path.read_text().splitlines() if x.startswith("Pss:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, IndexError, ValueError) as e:
        raise InputError(f"cannot read the proportional set size of process {pid}", evidence=f"{path}: {e!r}",
                         fix="the Triton soak measures memory through /proc/<pid>/smaps_rollup (Linux 4.14 or later)"
                         ) from None


def _tree_pss(pid: int) -> Dict[int, int]:
    """PSS in bytes of ``pid`` and each descendant, by pid (descendants that end meanwhile are left out; ``pid``
    itself must be readable — a kernel without ``smaps_rollup`` raises rather than reading as a flat zero)."""
    tree = process_tree(pid)
    out = {tree[0]: pss_bytes(tree[0])}
    for p in tree[1:]:
        try:
            out[p] = pss_bytes(p)
        except InputError:
            pass
    return out


def tree_pss_bytes(pid: int) -> int:
    """PSS of ``pid`` and its descendants together (see :func:`_tree_pss`)."""
    return sum(_tree_pss(pid).values())


def process_label(pid: int) -> str:
    """``<pid> <command>`` plus the model a Triton Python-backend stub serves (from its command line)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"{pid} (ended)"
    model = next((Path(a.decode(errors="replace")).parent.parent.name for a in args if a.endswith(b"/model.py")), "")
    return f"{pid} {comm}" + (f" ({model})" if model else "")


def tree_pss_by_process(pid: int) -> Dict[str, float]:
    """PSS in MB of ``pid`` and each descendant, by :func:`process_label`."""
    return {process_label(p): b / MB for p, b in _tree_pss(pid).items()}


def rss_trend(x: Sequence[float], rss: Sequence[float], warmup_x: float) -> Dict[str, Any]:
    """Flatness of a memory series (RSS of one process, PSS of a process tree) after warm-up.

    Args:
        x: where each sample was taken (frames done).
        rss: memory in bytes at each sample.
        warmup_x (float): samples with ``x < warmup_x`` are warm-up.

    Returns:
        dict: ``baseline_mb`` (RSS at the first sample after warm-up), ``max_growth_mb`` (largest RSS after warm-up
        minus the baseline), ``end_growth_mb`` (last minus baseline), ``slope_mb_per_1k`` (least-squares slope
        after warm-up, MB per 1000 x), ``samples`` (after warm-up), ``peak_mb``.
    """
    x = np.asarray(x, np.float64)
    r = np.asarray(rss, np.float64) / MB
    keep = x >= warmup_x
    if keep.sum() < 2:
        return {"baseline_mb": None, "max_growth_mb": None, "end_growth_mb": None, "slope_mb_per_1k": None,
                "samples": int(keep.sum()), "peak_mb": float(r.max()) if r.size else None}
    xs, rs = x[keep], r[keep]
    slope = float(np.polyfit(xs, rs, 1)[0] * 1000.0) if np.ptp(xs) > 0 else 0.0
    return {"baseline_mb": float(rs[0]), "max_growth_mb": float(rs.max() - rs[0]),
            "end_growth_mb": float(rs[-1] - rs[0]),
            "slope_mb_per_1k": slope, "samples": int(keep.sum()), "peak_mb": float(r.max())}


def time_stats(seconds: Sequence[float]) -> Dict[str, Any]:
    """n, p50 / p99 / max in ms and p99 / p50 of per-frame times (None fields for an empty sample)."""
    a = np.asarray(seconds, np.float64) * 1e3
    if a.size == 0:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None, "p99_over_p50": None}
    p50, p99 = np.percentile(a, [50, 99])
    return {"n": int(a.size), "p50_ms": float(p50), "p99_ms": float(p99), "max_ms": float(a.max()),
            "p99_over_p50": float(p99 / p50) if p50 > 0 else None}


def series(x: Sequence[float], *ys: Sequence[float], points: int = SERIES_POINTS) -> Dict[str, List[float]]:
    """``x`` and ``ys`` thinned to at most ``points`` samples (every k-th, values to 3 decimals), for JSON and plots."""
    x = np.asarray(x)
    step = max(1, int(np.ceil(len(x) / points)))
    out = {"x": x[::step].tolist()}
    for i, y in enumerate(ys):
        out[f"y{i}"] = np.round(np.asarray(y, np.float64)[::step], 3).tolist()
    return out


# ------------------------------------------------------------------------------------------------------ video
def load_frames(video: PathLike, max_frames: Optional[int] = None) -> List[np.ndarray]:
    """Decode a video (file or image folder) into memory (its memory is constant during the soak).

    Raises:
        InputError: it cannot be opened or has fewer than 2 frames.
    """
    from ..runtime.video import open_frames

    frames = list(open_frames(video, max_frames=max_frames))
    if len(frames) < 2:
        raise InputError(f"{video} has {len(frames)} frame(s); the soak loops over at least 2",
                         fix="pass --video with a longer video")
    return frames


def pingpong_index(k: int, n: int) -> int:
    """Frame ``k`` of an endless forwards-backwards loop over ``n`` frames (0 1 .. n-1 n-2 .. 1 0 1 ..)."""
    period = 2 * (n - 1)
    i = k % period
    return i if i < n else period - i


def soak_frames(frames: Sequence[np.ndarray], count: int, gap_every: int = 500, gap_len: int = 10,
                gap_first: int = 20) -> Iterator[Tuple[int, np.ndarray, bool]]:
    """(index, frame, is_gap) for ``count`` frames: ``frames`` played forwards and backwards, with ``gap_len`` flat
    grey frames at ``gap_first`` and every ``gap_every`` frames after it (0 = no gaps)."""
    grey = np.full_like(frames[0], GAP_GREY)
    for k in range(count):
        in_gap = gap_every > 0 and gap_len > 0 and k >= gap_first and (k - gap_first) % gap_every < gap_len
        yield k, (grey if in_gap else frames[pingpong_index(k, len(frames))]), in_gap


def resolve_warmup(frames: int, warmup: Optional[int] = None) -> int:
    """The warm-up frames (default max(50, frames/20)), which must leave frames to measure.

    Raises:
        InputError: a warm-up of 0 or one that leaves fewer than 2 frames.
    """
    warmup = max(50, frames // 20) if warmup is None else warmup
    if warmup < 1:  # the memory baseline is taken after the warm-up
        raise InputError(f"--warmup {warmup}: at least 1 warm-up frame is needed (memory growth is measured from "
                         "its end)", fix="pass --warmup 1 or more (default max(50, frames/20))")
    if warmup >= frames - 1:
        raise InputError(f"warm-up {warmup} must leave at least 2 frames to measure ({frames} frames)",
                         fix=f"pass --frames {warmup + 2} or more, or --warmup {max(1, frames - 2)} or less")
    return warmup


def target_boxes(first: Sequence[float], targets: int, frame_shape: Tuple[int, ...]) -> np.ndarray:
    """``targets`` init boxes: ``first``, then :data:`EXTRA_TARGETS` scaled to the frame."""
    if not 1 <= targets <= 1 + len(EXTRA_TARGETS):
        raise InputError(f"--targets {targets}: the soak places 1 to {1 + len(EXTRA_TARGETS)} targets",
                         fix=f"use --targets between 1 and {1 + len(EXTRA_TARGETS)}")
    h, w = frame_shape[:2]
    extra = [(fx * w, fy * h, fw * w, fh * h) for fx, fy, fw, fh in EXTRA_TARGETS]
    return np.asarray([tuple(first)] + extra[:targets - 1], np.float64)


# ---------------------------------------------------------------------------------------------- runtime soak
@dataclass
class SoakRun:
    """One soak run's per-frame record and verdicts."""

    mode: str
    targets: int
    frames: int
    warmup: int
    seconds: np.ndarray = field(repr=False, default=None)
    rss: np.ndarray = field(repr=False, default=None)
    is_global: np.ndarray = field(repr=False, default=None)
    lost_frames: int = 0
    wall_seconds: float = 0.0

    def summary(self, goals: SoakGoals) -> Dict[str, Any]:
        """Statistics and verdicts (the JSON row)."""
        idx = np.arange(self.frames)
        trend = rss_trend(idx, self.rss, self.warmup)
        after = idx >= self.warmup
        local = time_stats(self.seconds[after & ~self.is_global])
        glob = time_stats(self.seconds[after & self.is_global])
        verdict = {
            "rss": trend["max_growth_mb"] is not None and trend["max_growth_mb"] <= goals.rss_growth_mb,
            "local_time": local["n"] == 0 or (local["p99_over_p50"] or np.inf) <= goals.local_p99_ratio,
            "global_time": glob["n"] == 0 or (glob["p99_over_p50"] or np.inf) <= goals.global_p99_ratio,
        }
        return {"mode": self.mode, "targets": self.targets, "frames": self.frames, "warmup": self.warmup,
                "global_frames": int(self.is_global.sum()), "lost_frames": self.lost_frames,
                "wall_seconds": self.wall_seconds, "rss": trend, "local": local, "global": glob,
                "passed": verdict, "ok": all(verdict.values()),
                "series": series(idx, self.rss / MB, self.seconds * 1e3)}


def soak_run(tracker, frames: Sequence[np.ndarray], boxes: np.ndarray, count: int, warmup: int,
             gap_every: int = 500, gap_len: int = 10, progress: bool = True, desc: str = "soak",
             on_frame: Optional[Callable[[int, Any], None]] = None) -> SoakRun:
    """Track ``count`` frames with an initialised-here ``tracker``; time and RSS every frame.

    Args:
        tracker: a runtime Tracker (any mode); ``init`` is called on the first frame with ``boxes``.
        on_frame (callable): ``on_frame(index, result)`` after every tracked frame (tests inject a leak through
            it). Defaults to None.
    """
    seconds = np.zeros(count)
    rss = np.zeros(count)
    is_global = np.zeros(count, bool)
    lost = 0
    local_size = max(s for s in (tracker.info.instance_size, tracker.info.alt_instance_size) if s)
    stream = soak_frames(frames, count, gap_every, gap_len)
    bar = progress_bar(count, desc, "frame", progress, mininterval=2.0)
    t_start = time.perf_counter()
    try:
        for k, frame, _ in stream:
            t0 = time.perf_counter()
            if k == 0:
                tracker.init(frame, boxes if len(boxes) > 1 else boxes[0])
                res = None
            else:
                res = tracker.track(frame)
            seconds[k] = time.perf_counter() - t0
            rss[k] = rss_bytes()
            if res is not None:
                is_global[k] = bool(np.max(res.instance_size) > local_size)
                lost += int(np.any(res.lost))
            if on_frame is not None:
                on_frame(k, res)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return SoakRun(mode=tracker.mode.name, targets=len(boxes), frames=count, warmup=warmup, seconds=seconds, rss=rss,
                   is_global=is_global, lost_frames=lost, wall_seconds=time.perf_counter() - t_start)


def run_runtime_soak(model: PathLike, video: PathLike, modes: Sequence[str] = ("short",),
                     targets: Sequence[int] = (1,), frames: int = 10_000, warmup: Optional[int] = None,
                     box: Sequence[float] = DEFAULT_BOX, gap_every: int = 500, gap_len: int = 10,
                     backend: str = "auto", threads: Optional[int] = None, goals: SoakGoals = SoakGoals(),
                     progress: bool = True, on_frame: Optional[Callable[[int, Any], None]] = None,
                     max_video_frames: Optional[int] = 200,
                     on_run: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """The runtime soak: every (mode, target count) for ``frames`` frames, one fresh tracker each, one after the
    other in this process.

    Args:
        model (str | Path): model directory (long-term modes need an export with ``--lost-instance-size``).
        video (str | Path): the video to loop over (decoded into memory, at most ``max_video_frames`` frames).
        modes: tracking modes ("all" = every mode). targets: target counts (1 to 4).
        frames (int): frames per run. Defaults to 10,000.
        warmup (int): frames excluded from the verdicts. Defaults to max(50, frames // 20).
        box: the first target's init box. gap_every, gap_len: grey gaps (see :func:`soak_frames`).
        backend (str), threads (int): runtime backend and its threads. Defaults to "auto" (what ``siamtrt track``
            runs: OpenVINO where installed, else ONNX Runtime, on a CPU) and the physical cores.
        goals (SoakGoals): thresholds. on_frame: see :func:`soak_run`.
        on_run (callable): ``on_run(report)`` after every completed run with the report so far (``complete`` False
            until the last run), so a long soak that is stopped keeps the runs it finished. Defaults to None.

    Returns:
        dict: ``runs`` (one :meth:`SoakRun.summary` each), ``goals``, ``ok`` (every run passed), model, weights.

    Raises:
        SiamtrtError: bad model, mode, video or target count (checked before the first run).
    """
    from ..config import MODES
    from ..modeldir import ModelDir
    from ..runtime import Tracker
    from ..runtime.backends import accepted_options, choose_backend
    from ..runtime.modes import check_mode, parse_mode
    from .results import weights_label

    modes = list(MODES) if list(modes) == ["all"] else list(modes)
    info = ModelDir.open(model)
    for m in modes:
        check_mode(parse_mode(m), info)  # every refusal before the first long run
    clip = load_frames(video, max_video_frames)
    all_boxes = {n: target_boxes(box, n, clip[0].shape) for n in targets}
    warmup = resolve_warmup(frames, warmup)
    backend, why = choose_backend(backend, model)   # resolved once: every run and the report name the same backend
    LOG.info("soak: backend %s (%s)", backend, why)
    opts = accepted_options(backend, {"threads": threads})
    runs: List[Dict[str, Any]] = []
    report = {"kind": "runtime", "model": str(model), "arch": info.arch, "weights": weights_label(info.meta),
              "video": str(video), "video_frames_looped": len(clip), "frames": frames, "warmup": warmup,
              "gap_every": gap_every, "gap_len": gap_len, "backend": backend, "threads": opts.get("threads"),
              "goals": asdict(goals), "runs": runs, "runs_planned": len(targets) * len(modes), "ok": True,
              "complete": False}
    for n in targets:
        for m in modes:
            gc.collect()
            with Tracker.from_model_dir(model, backend=backend, mode=m, **opts) as tracker:
                run = soak_run(tracker, clip, all_boxes[n], frames, warmup, gap_every, gap_len, progress,
                               desc=f"soak {m}, {n} target{'s' if n > 1 else ''}", on_frame=on_frame)
            row = run.summary(goals)
            LOG.info("soak: %s, %d target(s): RSS growth %s MB (slope %s MB/1k frames), local p99/p50 %s, "
                     "global frames %d", m, n, _fmt(row["rss"]["max_growth_mb"], ".1f"),
                     _fmt(row["rss"]["slope_mb_per_1k"]), _fmt(row["local"]["p99_over_p50"]),
                     row["global_frames"])
            runs.append(row)
            report.update(ok=all(r["ok"] for r in runs), complete=len(runs) == report["runs_planned"])
            if on_run is not None:
                on_run(report)
    return report


def _fmt(v: Optional[float], spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def format_runtime_table(report: Dict[str, Any]) -> str:
    """The runtime soak as a text table (one row per mode and target count)."""
    g = report["goals"]
    head = (f"{'mode':<20} {'targets':>7} {'frames':>6} {'RSS growth MB':>13} {'slope MB/1k':>11} "
            f"{'local p50/p99 ms':>17} {'p99/p50':>7} {'global n':>8} {'global p50/p99 ms':>18} {'p99/p50':>7}  ok")
    lines = [f"Runtime soak: {report['arch']} ({report['weights']}), {report['frames']} frames per run (warm-up "
             f"{report['warmup']}), goals: RSS growth <= {g['rss_growth_mb']:g} MB, local p99 <= "
             f"{g['local_p99_ratio']:g}x p50, global p99 <= {g['global_p99_ratio']:g}x p50", head, "-" * len(head)]
    for r in report["runs"]:
        lo, gl = r["local"], r["global"]
        lines.append(f"{r['mode']:<20} {r['targets']:>7} {r['frames']:>6} {_fmt(r['rss']['max_growth_mb'], '.1f'):>13} "
                     f"{_fmt(r['rss']['slope_mb_per_1k']):>11} "
                     f"{_fmt(lo['p50_ms'], '.1f') + ' / ' + _fmt(lo['p99_ms'], '.1f'):>17} "
                     f"{_fmt(lo['p99_over_p50']):>7} {gl['n']:>8} "
                     f"{_fmt(gl['p50_ms'], '.1f') + ' / ' + _fmt(gl['p99_ms'], '.1f'):>18} "
                     f"{_fmt(gl['p99_over_p50']):>7}  "
                     f"{'yes' if r['ok'] else 'NO: ' + ', '.join(k for k, v in r['passed'].items() if not v)}")
    return "\n".join(lines)


def plot_runtime_soak(report: Dict[str, Any], out_png: PathLike) -> Path:
    """RSS (top) and per-frame time (bottom, log scale) over frames, one line per run."""
    plt = pyplot()

    fig, (ax_r, ax_t) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for r in report["runs"]:
        s = r["series"]
        label = f"{r['mode']}, {r['targets']} target{'s' if r['targets'] > 1 else ''}"
        ax_r.plot(s["x"], s["y0"], lw=1, label=label)
        ax_t.plot(s["x"], s["y1"], lw=0.6, alpha=0.8, label=label)
    ax_r.axvline(report["warmup"], color="grey", ls=":", lw=1)
    ax_t.axvline(report["warmup"], color="grey", ls=":", lw=1)
    ax_r.set_ylabel("RSS (MB)")
    ax_t.set_ylabel("frame time (ms)")
    ax_t.set_yscale("log")
    ax_t.set_xlabel("frame (dotted: end of warm-up)")
    ax_r.set_title(f"runtime soak: {report['arch']} ({report['weights']}), {report['backend']}", fontsize=9)
    ax_r.legend(fontsize=7, ncol=2)
    return save_png(fig, out_png)


def plot_memory_samples(x: Sequence[float], mb: Sequence[float], warmup_x: float, out_png: PathLike, title: str,
                        xlabel: str, ylabel: str) -> Path:
    """One memory series (e.g. the Triton server's PSS) over ``x``, warm-up marked."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(x, mb, lw=1)
    ax.axvline(warmup_x, color="grey", ls=":", lw=1)
    ax.set_xlabel(xlabel + " (dotted: end of warm-up)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return save_png(fig, out_png)


def results_dir(root: PathLike = RESULTS_DIR / "soak") -> Path:
    """``<root>/<date-time>/``, made now and this run's own: a soak started in the same second as another gets
    ``<date-time>-2`` (both wrote one soak.json, the later replacing the earlier's runs)."""
    stamp, n = time.strftime("%Y%m%d-%H%M%S"), 1
    Path(root).mkdir(parents=True, exist_ok=True)
    while True:
        out = Path(root) / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            out.mkdir()
            return out
        except FileExistsError:
            n += 1


__all__ = ["SoakGoals", "SoakRun", "format_runtime_table", "load_frames", "pingpong_index", "plot_memory_samples",
           "plot_runtime_soak", "resolve_warmup", "process_label", "process_tree", "pss_bytes", "results_dir",
           "rss_bytes", "rss_trend", "run_runtime_soak", "series", "soak_frames", "soak_run", "target_boxes",
           "time_stats", "tree_pss_by_process", "tree_pss_bytes"]
