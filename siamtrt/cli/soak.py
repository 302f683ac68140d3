"""Memory and frame time over long runs (soak) — the runtime in every mode, the Triton tracker model with sequences
started, ended and abandoned, Ray with a worker killed twice. JSON + PNG into results/soak/<date-time>/.

  siamtrt soak --model DIR --mode all --frames 10000 --targets 1 4     # the runtime (= python benchmarks/soak.py)
  siamtrt soak --model DIR --parts triton --streams 8 --stream-frames 2000  # a real local tritonserver
  siamtrt soak --model DIR --parts ray --ray-videos 24 --kills 2            # a local Ray instance
  siamtrt soak --model DIR --parts runtime triton ray                       # all three

Goals (issue 20): runtime RSS growth after warm-up <= 20 MB, local frames p99 <= 3x median, global frames p99 <= 3x
their median; Triton server memory (PSS) flat, abandoned sequences released, streams isolated; Ray: nothing lost,
summary complete. Exit 1 when a goal is missed. Long-term modes need a model exported with --lost-instance-size 831.
Without --model: the alex matching-head stand-in with the long-term size (siamtrt modes --make-stand-in),
exported once into ./models (needs torch).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import Interrupted
from ..locations import MODELS_DIR, RESULTS_DIR
from ..modeldir import SEARCH_ONNX
from .common import EXIT_PARTIAL, add_verbose, int_at_least, positive_int, run_command, setup_logging

PARTS = ("runtime", "triton", "ray")
STANDIN_DIR = MODELS_DIR / "soak-alex-matching-lt831"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--model", type=Path, help=f"model directory (default: the alex stand-in in {STANDIN_DIR})")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=["runtime"], help="what to soak (default runtime)")
    p.add_argument("--video", help="video to loop (default: bag.avi in $SIAMTRT_DATA or ../shared/data)")
    p.add_argument("--bbox", help="first target's box in frame 0 (default: bag.avi's, 316,140,112,115)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "soak", help="results root (default results/soak)")
    rt = p.add_argument_group("runtime")
    rt.add_argument("--mode", nargs="+", default=["all"], help="tracking modes, or all (default all)")
    rt.add_argument("--frames", type=positive_int, default=10_000,
                    help="frames per mode and target count (default 10000)")
    rt.add_argument("--targets", type=int, nargs="+", default=[1, 4], help="target counts (default 1 4)")
    rt.add_argument("--warmup", type=int_at_least(0), help="warm-up frames (default max(50, frames/20))")
    rt.add_argument("--gap-every", type=int_at_least(0), default=500,
                    help="a grey gap every N frames (default 500; 0 = none)")
    rt.add_argument("--gap-len", type=positive_int, default=10, help="frames per gap (default 10)")
    rt.add_argument("--backend", default="auto", help="runtime backend (default auto: what siamtrt track runs)")
    rt.add_argument("--threads", type=positive_int, help="CPU threads of the backend (default: physical cores)")
    tr = p.add_argument_group("triton")
    tr.add_argument("--streams", type=positive_int, default=8, help="concurrent client streams (default 8)")
    tr.add_argument("--stream-frames", type=int_at_least(2), default=2000, help="frames per stream (default 2000)")
    tr.add_argument("--abandon", type=float, default=0.15, help="share of sequences abandoned (default 0.15)")
    tr.add_argument("--idle-seconds", type=float, default=5.0, help="sequence idle timeout (default 5)")
    ry = p.add_argument_group("ray")
    ry.add_argument("--ray-videos", type=positive_int, default=24, help="short videos (default 24)")
    ry.add_argument("--ray-video-frames", type=int_at_least(2), default=40, help="frames per short video (default 40)")
    ry.add_argument("--kills", type=int_at_least(0), default=2, help="times the worker is killed (default 2)")
    ry.add_argument("--num-cpus", type=positive_int, default=2, help="CPUs of the local Ray instance (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_verbose(p)
    return p.parse_args(argv)


def _model(a: argparse.Namespace, video: Path) -> Path:
    if a.model is not None:
        return a.model
    if not (STANDIN_DIR / SEARCH_ONNX).is_file():
        from siamtrt.benchmarks.modes import make_standin

        make_standin(STANDIN_DIR, video)
    return STANDIN_DIR


def _runtime(a, model, video, box, out: Path, save) -> dict:
    from siamtrt.benchmarks.soak import format_runtime_table, plot_runtime_soak, run_runtime_soak

    rep = run_runtime_soak(model, video, a.mode, a.targets, a.frames, a.warmup, box, a.gap_every, a.gap_len,
                           backend=a.backend, threads=a.threads, progress=not a.no_progress,
                           on_run=lambda r: save("runtime", r))
    print(format_runtime_table(rep))
    rep["png"] = str(plot_runtime_soak(rep, out / "runtime.png"))
    return rep


def _triton(a, model, video, box, out: Path) -> dict:
    from siamtrt.benchmarks.soak import load_frames, plot_memory_samples
    from siamtrt.serving.soak import format_triton_table, triton_soak

    frames = load_frames(video, 200)
    boxes = _gt_boxes(video, len(frames), box)
    rep = triton_soak(model, frames, boxes, a.streams, a.stream_frames, abandon=a.abandon,
                      idle_seconds=a.idle_seconds, progress=not a.no_progress, work_dir=out / "triton")
    print(format_triton_table(rep))
    s = rep["series"]
    rep["png"] = str(plot_memory_samples(
        s["x"], s["y0"], rep["warmup_frames"], out / "triton.png",
        f"Triton soak: server memory ({rep['arch']}, {rep['weights']}, {rep['streams']} streams, {rep['abandoned']} of "
        f"{rep['sequences']} sequences abandoned)", "frames done (all streams)", "PSS of the server's processes (MB)"))
    return rep


def _ray(a, model, video, box, out: Path) -> dict:
    from siamtrt.batch.soak import format_ray_table, make_short_videos, ray_soak
    from siamtrt.benchmarks.soak import load_frames

    frames = len(load_frames(video))
    videos = make_short_videos(video, out / "ray" / "videos", a.ray_videos, a.ray_video_frames,
                               boxes=_gt_boxes(video, frames, box))
    rep = ray_soak(model, videos, out / "ray" / "results", kills=a.kills, num_cpus=a.num_cpus,
                   progress=not a.no_progress)
    print(format_ray_table(rep))
    return rep


def _gt_boxes(video: Path, n, box):
    """Ground truth of the video's frame folder beside it (bag/ for bag.avi), of the video (a folder, or a file beside
    it), else ``box`` for every frame."""
    import numpy as np

    from siamtrt.runtime.boxes import read_box_file
    from siamtrt.runtime.sequences import find_gt

    video = Path(video)
    stem_folder = video.with_suffix("")
    gt = (find_gt(stem_folder) if stem_folder.is_dir() else None) or find_gt(video)
    return np.tile(np.asarray(box, np.float64), (n, 1)) if gt is None else read_box_file(gt)


def _check_inputs(a: argparse.Namespace, video: Path, box) -> None:
    """Every refusal the runtime part would make, before the stand-in is exported and before any folder is made:
    the results root, modes, target counts (and the boxes they place), warm-up and backend name."""
    from siamtrt.benchmarks.soak import load_frames, resolve_warmup, target_boxes
    from siamtrt.outputs import check_writable
    from siamtrt.runtime.backends import ALIASES, BACKENDS, backend_class
    from siamtrt.runtime.modes import parse_mode
    from siamtrt.runtime.tracker import check_boxes

    check_writable([], dirs=[a.out], what=["--out"])
    frame = load_frames(video, 2)[0]  # cheap checks before any export
    if "runtime" not in a.parts:
        return
    for m in a.mode:
        if m != "all":
            parse_mode(m)
    for n in a.targets:
        check_boxes(target_boxes(box, n, frame.shape), (frame.shape[1], frame.shape[0]))
    resolve_warmup(a.frames, a.warmup)
    if a.backend != "auto" and ALIASES.get(a.backend, a.backend) not in BACKENDS:
        backend_class(a.backend)  # raises: unknown name, with the valid ones


def _run(a: argparse.Namespace) -> int:
    from siamtrt.benchmarks.data import DEFAULT_BOX, default_video
    from siamtrt.benchmarks.soak import results_dir
    from siamtrt.runtime.run import parse_bbox

    video = Path(a.video) if a.video else default_video()
    box = parse_bbox(a.bbox) if a.bbox else DEFAULT_BOX
    _check_inputs(a, video, box)
    model = _model(a, video)
    out = results_dir(a.out)  # this run's own folder, removed below if nothing was measured
    try:
        return _soak(a, model, video, box, out)
    except KeyboardInterrupt:
        if (out / "soak.json").is_file():  # "no output was left half-written" did not say where the runs are
            raise Interrupted(f"stopped; {out / 'soak.json'} holds the runs finished before the stop (complete: "
                              "false marks a run cut short)") from None
        raise
    finally:
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # nothing was measured (refused or stopped before the first run): no empty run folder


def _soak(a: argparse.Namespace, model: Path, video: Path, box, out: Path) -> int:
    from siamtrt.benchmarks.results import dump_json
    from siamtrt.benchmarks.sysinfo import machine_info

    report = {"model": str(model), "video": str(video), "load_average_1min_start": os.getloadavg()[0],
              "machine": machine_info(), "parts": {}}

    def save(part: str, rep: dict) -> None:
        """soak.json rewritten (atomically) after every finished run: a stopped soak keeps what it measured."""
        report["parts"][part] = rep
        dump_json(out / "soak.json", report)

    for part in a.parts:
        if part == "runtime":  # saves after each of its runs too
            save(part, _runtime(a, model, video, box, out, save))
        else:
            save(part, {"triton": _triton, "ray": _ray}[part](a, model, video, box, out))
    report["load_average_1min_end"] = os.getloadavg()[0]
    dump_json(out / "soak.json", report)
    print(f"wrote {out / 'soak.json'}" + "".join(f", {r['png']}" for r in report["parts"].values() if "png" in r))
    return 0 if all(r["ok"] for r in report["parts"].values()) else EXIT_PARTIAL


def main(argv=None) -> int:
    a = parse_args(argv)
    setup_logging(a.verbose)
    return run_command(lambda: _run(a), name="soak")
