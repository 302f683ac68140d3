"""Evaluation goes run → files → analysis (style rule 14, pytracking's layout).

Tracking results are written to ``<root>/<model>/<backend>-<precision>[_<run:03d>]/<seq>.txt`` (one ``x,y,w,h`` box
per frame, frame 0 = the initial box) with ``<seq>_time.txt`` beside it (seconds per frame: frame 0 is ``init``,
the others ``track``; frame decoding excluded) and ``run.json`` describing the run. Existing complete results are
skipped, and scores are always recomputed from the files, so backends and precisions compare without re-running.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union
from typing import Sequence as Sequence_

import numpy as np

from ..errors import InputError
from ..outputs import atomic_file, check_writable
from . import metrics
from ..runtime.sequences import Sequence

RUN_INFO = "run.json"
_SAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def safe_name(name: str) -> str:
    """A file-system-safe version of a model / sequence name."""
    return _SAFE.sub("_", str(name)).strip("_") or "unnamed"


def run_name(backend: str, precision: str, run: Optional[int] = None) -> str:
    """``<backend>-<precision>[_<run:03d>]``."""
    base = f"{safe_name(backend)}-{safe_name(precision)}"
    return base if run is None else f"{base}_{int(run):03d}"


def run_dir(root: Union[str, Path], model: str, backend: str, precision: str, run: Optional[int] = None) -> Path:
    """The folder holding one run's per-sequence result files."""
    return Path(root) / safe_name(model) / run_name(backend, precision, run)


def result_paths(rdir: Union[str, Path], seq_name: str) -> Tuple[Path, Path]:
    rdir = Path(rdir)
    return rdir / f"{safe_name(seq_name)}.txt", rdir / f"{safe_name(seq_name)}_time.txt"


def write_result(rdir: Union[str, Path], seq_name: str, boxes: np.ndarray, times: np.ndarray) -> Path:
    """Write one sequence's boxes and per-frame times, each atomically (a stopped run leaves whole files, never a
    truncated one); returns the box file."""
    bpath, tpath = result_paths(rdir, seq_name)
    bpath.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(bpath) as f:
        np.savetxt(f, np.asarray(boxes, np.float64).reshape(-1, 4), fmt="%.3f", delimiter=",")
    with atomic_file(tpath) as f:
        np.savetxt(f, np.asarray(times, np.float64).reshape(-1), fmt="%.8f")
    return bpath


def read_result(rdir: Union[str, Path], seq_name: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Boxes [N, 4] and times [N] (None when the time file is absent).

    Raises:
        InputError: the box file is missing or malformed.
    """
    bpath, tpath = result_paths(rdir, seq_name)
    if not bpath.is_file():
        raise InputError(f"no result for sequence '{seq_name}' in {Path(rdir)}", evidence=f"missing {bpath.name}",
                         fix="run the tracker first: siamtrt accuracy ... (results are cached)")
    try:
        boxes = np.loadtxt(bpath, delimiter=",", ndmin=2)
    except ValueError as e:
        raise InputError(f"{bpath} is not a list of x,y,w,h boxes", evidence=str(e)[:200],
                         fix="delete it and re-run (or pass --force)") from None
    times = np.loadtxt(tpath, ndmin=1) if tpath.is_file() else None
    return boxes, times


def is_complete(rdir: Union[str, Path], seq: Sequence) -> bool:
    """True when a result file exists with exactly one box per frame of ``seq``."""
    bpath, tpath = result_paths(rdir, seq.name)
    if not (bpath.is_file() and tpath.is_file()):
        return False
    try:
        return len(np.loadtxt(bpath, delimiter=",", ndmin=2)) == len(seq)
    except ValueError:
        return False


def sequence_key(seq: Sequence) -> str:
    """What identifies a sequence's result beyond its name: frame count and a digest of its ground truth (another
    sequence of the same name and length has other boxes)."""
    import hashlib

    gt = np.ascontiguousarray(np.round(np.asarray(seq.gt, np.float64), 3))
    return f"{len(seq)}:{hashlib.sha256(gt.tobytes()).hexdigest()[:16]}"


def result_key(fingerprint: Optional[str], seq: Sequence) -> Dict[str, Any]:
    """The record kept in run.json beside each sequence's result: a result is reused only when it matches."""
    return {"model": fingerprint, "data": sequence_key(seq)}


def weights_label(meta: Dict[str, Any]) -> str:
    """"checkpoint", or "stand-in (<random kind>)" for seeded random weights: every figure row carries it."""
    from ..metadata import weights_kind

    kind = weights_kind(meta)
    return "checkpoint" if kind == "checkpoint" else f"stand-in ({kind})"


def text_table(head: List[str], rows: List[List[str]]) -> List[str]:
    """Aligned text table lines: first column left-aligned, the others right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]

    def fmt(row: List[str]) -> str:
        return "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths)))

    return [fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]


def json_safe(obj: Any) -> Any:
    """Plain JSON types only: numpy scalars/arrays converted, NaN/inf → None (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def check_report_outputs(json_out: Optional[Union[str, Path]], plot_out: Optional[Union[str, Path]],
                         folder: Optional[Union[str, Path]] = None,
                         inputs: Sequence_[Optional[Union[str, Path]]] = (),
                         input_dirs: Sequence_[Optional[Union[str, Path]]] = ()) -> None:
    """Refuse, before a benchmark runs, a report it could not write at the end (a folder given as ``--json``, one file
    named by ``--json`` and ``--plot``, a path under a file, an output that is an input or lies in one of
    ``input_dirs`` (a sequence folder, an image-folder video, a model directory), a results ``folder`` that is a
    file, an existing file that is not a JSON (``--json``) or PNG (``--plot``)): its measurements were lost to a
    traceback after the whole run, or a file of the user's was replaced.

    Raises:
        InputError: an unwritable output.
    """
    # the results folder and a new folder in it: the runs are written inside it (an existing r-x folder took them)
    check_writable([json_out, plot_out], what=["--json", "--plot"],
                   dirs=[] if folder is None else [folder, Path(folder) / "run"], inputs=list(inputs),
                   input_dirs=list(input_dirs))
    kinds = ((json_out, "--json", "JSON", (b"{", b"[")), (plot_out, "--plot", "PNG", (b"\x89PNG",)))
    for path, name, kind, starts in kinds:
        if path is None or not Path(path).is_file():
            continue
        with open(path, "rb") as f:
            head = f.read(64).lstrip()
        if head and not head.startswith(starts):  # a report replaces a report, never a file of another kind
            raise InputError(f"{name} {path} exists and is not a {kind} file: the report would replace it",
                             evidence=f"it starts with {head[:16]!r}",
                             fix=f"choose another {name}, or delete the file first if it is not needed")


def dump_json(path: Union[str, Path], obj: Any) -> Path:
    """Write strict JSON (see :func:`json_safe`), creating the parent folder; atomically (a stopped run leaves the
    previous complete file, never half of one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_safe(obj), indent=1, allow_nan=False)
    with atomic_file(path) as f:
        f.write(text)
    return path


def new_run_folder(root: Union[str, Path]) -> Path:
    """A new ``<root>/<date-time>[_<n>]`` folder, made here: two runs finishing in the same second (parallel jobs)
    wrote into one folder, the second replacing the first's report."""
    stamp, n = time.strftime("%Y%m%d-%H%M%S"), 1
    while True:
        run = Path(root) / (stamp if n == 1 else f"{stamp}_{n}")
        try:
            run.mkdir(parents=True)
            return run
        except FileExistsError:
            n += 1


def write_run_info(rdir: Union[str, Path], info: Dict[str, Any]) -> None:
    dump_json(Path(rdir) / RUN_INFO, info)


def read_run_info(rdir: Union[str, Path]) -> Dict[str, Any]:
    """A run folder's ``run.json`` ({} when it has none).

    Raises:
        InputError: it is not a JSON object (edited or damaged: written atomically, a stopped run leaves none).
    """
    p = Path(rdir) / RUN_INFO
    if not p.is_file():
        return {}
    try:
        info = json.loads(p.read_text())
    except (ValueError, OSError) as e:
        info = e
    if not isinstance(info, dict):
        raise InputError(f"{p} is not a run record: a JSON object saying which model, backend and sequences the "
                         "run folder's results come from", evidence=str(info)[:200],
                         fix=f"move {Path(rdir)} away (its box files are kept) and run again: the run is then "
                             "tracked afresh")
    return info


def speed_fps(times: Optional[np.ndarray]) -> Optional[float]:
    """pysot's speed: frames / total tracker time (init + track calls, decode excluded)."""
    if times is None or len(times) == 0 or not np.all(np.isfinite(times)) or times.sum() <= 0:
        return None
    return float(len(times) / times.sum())


def analyse_run(rdir: Union[str, Path], sequences: List[Sequence]) -> Tuple[metrics.OPEScores, Optional[float]]:
    """Recompute OPE scores of one run from its files: (overall scores, fps over all frames)."""
    per_seq: Dict[str, metrics.OPEScores] = {}
    all_times = []
    for seq in sequences:
        boxes, times = read_result(rdir, seq.name)
        per_seq[seq.name] = metrics.evaluate_sequence(boxes, seq.gt)
        if times is not None:
            all_times.append(times)
    fps = speed_fps(np.concatenate(all_times)) if len(all_times) == len(sequences) else None
    return metrics.aggregate(per_seq), fps


def discover_runs(root: Union[str, Path], model: Optional[str] = None) -> List[Path]:
    """Run folders under ``root`` (optionally of one model): any folder holding a run.json."""
    base = Path(root) / safe_name(model) if model else Path(root)
    return sorted(p.parent for p in base.glob("**/" + RUN_INFO))


def report_footer(skipped, notes, json_path, plot_path) -> List[str]:
    """Closing lines shared by the fps and accuracy reports: skipped variants, notes, written files."""
    lines = [f"skipped {s['label']}: {s['reason']}" for s in skipped]
    lines += [f"note: {n}" for n in notes]
    if json_path:
        lines.append(f"JSON: {json_path}")
    if plot_path:
        lines.append(f"plot: {plot_path}")
    return lines
