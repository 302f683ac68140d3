"""Frames per second and per-stage latency of the tracker loop, per backend/precision, against the PyTorch reference.

With no arguments: exports the default model (seeded random weights, once, into ./models), tracks
../shared/data/bag.avi with the embedded default backend (--backend auto: TensorRT with engines and a GPU, else
OpenVINO where installed, else ONNX Runtime; 60 frames) and with the PyTorch reference (10 frames; the speed ratio
divides median frame times), prints the table with each variant's search GMAC/s as a share of its engine's
matrix throughput here, and writes fps.json + fps.png into results/fps/<date-time>/.

  python benchmarks/fps.py
  python benchmarks/fps.py --model models/mine models/mine-int8 --backend all     # every backend x precision
  python benchmarks/fps.py --model models/mine --backend onnxruntime openvino --targets 4 \\
      --json fps.json --plot fps.png
"""

from __future__ import annotations

import argparse
import sys


from siamtrt.benchmarks.variants import add_variant_arguments  # torch-free
from siamtrt.cli.common import add_verbose, int_at_least, positive_int


def _box(text: str):
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h numbers, got {text!r}") from None
    if len(vals) != 4:
        raise argparse.ArgumentTypeError(f"expected 4 numbers x,y,w,h, got {len(vals)}")
    return vals


def _frames(text: str):
    if text == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of frames or 'all', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (or 'all'), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    run = add_variant_arguments(p, default_backend="auto")
    run.add_argument("--mode", nargs="+", metavar="MODE",
                     help="time tracking modes side by side instead (short | longterm | distractor | "
                          "longterm+distractor; short is always included as the ratio's base): per-mode frame time "
                          "and ratio to short, long-term local and global frames apart. Uses the first --model")
    run.add_argument("--schedule", choices=("interleaved", "sequential"), default="interleaved",
                     help="interleaved (default): the backend x precision variants alternate frame by frame, so "
                          "drifting load hits them alike (the torch reference runs alone first); sequential: one "
                          "variant after the other, as each runs in a deployment")
    run.add_argument("--interleave", action="store_true", help=argparse.SUPPRESS)  # the default now; kept working
    run.add_argument("--precision-hint", choices=("f32", "bf16", "auto"),
                     help="OpenVINO's float-layer precision (default: its own, auto = bf16 only where a passing "
                          "bf16 fidelity record exists (siamtrt quantize --check-bf16), else f32); a "
                          "bf16 variant is labelled [bf16]")
    run.add_argument("--no-probe", action="store_true",
                     help="skip the engines' matrix-throughput probe (no 'of peak' column)")
    data = p.add_argument_group("input")
    data.add_argument("--video", help="video file or image folder to track (default: ../shared/data/bag.avi)")
    data.add_argument("--bbox", type=_box, default=None, metavar="X,Y,W,H",
                      help="first target on frame 0 (default: 316,140,112,115, the bag.avi box)")
    data.add_argument("--targets", type=positive_int, default=1, help="number of targets tracked together (default: 1)")
    data.add_argument("--frames", type=_frames, default=None, metavar="N|all",
                      help="timed frames after warm-up (default: 60; 'all' = the whole video)")
    data.add_argument("--reference-frames", type=_frames, default=None, metavar="N|all",
                      help="timed frames of the torch reference, the first of the same frames (default: 10; "
                           "'all' = as many as --frames); the ratio divides median frame times")
    data.add_argument("--warmup", type=int_at_least(0), default=None, help="tracked but untimed frames (default: 3)")
    data.add_argument("--template-reps", type=positive_int, default=None,
                      help="re-inits timed for the template stage (5)")
    out = p.add_argument_group("output")
    out.add_argument("--json", help="write the full report (all percentiles, machine info) to this JSON file "
                                    "(default: <results>/<date-time>/fps.json)")
    out.add_argument("--plot",
                     help="write a per-stage latency bar chart (PNG) (default: <results>/<date-time>/fps.png)")
    out.add_argument("--results", default="results/fps",
                     help="folder for the default JSON and PNG, one <date-time> subfolder per run "
                          "(default: results/fps)")
    out.add_argument("--no-save", action="store_true", help="write no JSON/PNG unless --json/--plot ask for them")
    out.add_argument("--quiet", action="store_true", help="no progress bars")
    add_verbose(p)
    return p


def _mode_ignored(args) -> list:
    """The options --mode does not use, as given (it times one model directory with one backend, one target)."""
    given = [("--plot", args.plot), ("--reference-frames", args.reference_frames), ("--precision", args.precision),
             ("--template-reps", args.template_reps), ("--precision-hint", args.precision_hint),
             ("--no-probe", args.no_probe), ("--no-save", args.no_save), ("--no-reference", args.no_reference),
             ("--targets", args.targets != 1), ("--results", args.results != "results/fps"),
             ("--schedule", args.schedule != "interleaved" or args.interleave),
             ("a second --model", len(args.model) > 1), ("a second --backend", len(args.backend) > 1)]
    return [name for name, value in given if value]


def _modes(args, kw) -> int:
    """--mode: per-mode frame time of one model directory (siamtrt.benchmarks.fps_modes)."""
    from siamtrt.benchmarks import fps, fps_modes
    from siamtrt.benchmarks.data import default_video
    from siamtrt.benchmarks.variants import ensure_exported
    from siamtrt.config import DEFAULT_CONFIG
    from siamtrt.errors import InputError, Interrupted, SiamtrtError
    from siamtrt.runtime.cpu import cpu_threads

    try:
        ignored = _mode_ignored(args)
        if ignored:
            raise InputError(f"--mode does not use {', '.join(ignored)}",
                             evidence="--mode times the tracking modes of the first --model with the first "
                                      "--backend, one target, and writes only --json",
                             fix=f"drop {', '.join(ignored)}, or run without --mode to compare backends/precisions")
        video = args.video or default_video()
        fps.check_outputs(args.json, None, None, video, args.checkpoint, args.model[:1])  # before the run
        threads = cpu_threads(args.threads)  # recorded as the number used, not "default"
        warmup = kw.get("warmup", fps.DEFAULT_WARMUP)
        frames = kw.get("frames", fps.DEFAULT_FRAMES)
        if frames is None:  # --frames all: every frame after the init and warm-up frames
            frames = max(1, fps.probe_video(video)[1] - 1 - warmup)
        model = args.model[0] if args.model else ensure_exported(args.config or DEFAULT_CONFIG, args.checkpoint,
                                                                 args.cache, progress=not args.quiet)
        rep = fps_modes.run_mode_fps(model, args.mode, video, kw.get("bbox", fps.DEFAULT_BOX), frames=frames,
                                     warmup=warmup, threads=threads, backend=args.backend[0],
                                     progress=not args.quiet)
    except Interrupted:
        raise  # the command's runner says what was kept and exits 130 / 143
    except SiamtrtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(fps_modes.mode_table(rep))
    if args.json:
        from siamtrt.benchmarks.results import dump_json

        dump_json(args.json, rep)
        print(f"json: {args.json}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import logging

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s")
    from siamtrt.errors import Interrupted, SiamtrtError
    from siamtrt.benchmarks import fps

    kw = {}
    if args.bbox is not None:
        kw["bbox"] = args.bbox
    if args.warmup is not None:
        kw["warmup"] = args.warmup
    if args.template_reps is not None:
        kw["template_reps"] = args.template_reps
    if args.frames is not None:
        kw["frames"] = None if args.frames == "all" else args.frames
    if args.mode:
        return _modes(args, kw)
    try:
        report = fps.run_fps(models=args.model, config=args.config, checkpoint=args.checkpoint,
                             backends=args.backend, precisions=args.precision, video=args.video,
                             targets=args.targets, threads=args.threads, reference=not args.no_reference,
                             schedule="interleaved" if args.interleave else args.schedule, json_out=args.json,
                             plot_out=args.plot, cache_root=args.cache, progress=not args.quiet,
                             reference_frames=None if args.reference_frames == "all" else
                             (args.reference_frames or fps.DEFAULT_REFERENCE_FRAMES),
                             results_dir=None if args.no_save else args.results, headroom=not args.no_probe,
                             backend_options={"precision": args.precision_hint}, **kw)
    except Interrupted:
        raise  # the command's runner says what was kept and exits 130 / 143
    except SiamtrtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0
