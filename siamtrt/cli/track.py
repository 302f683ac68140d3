"""Track a target through a video with an exported model directory (numpy + OpenCV + one backend, no torch).

    siamtrt track --model models/siamrpn_alex_dwxcorr --video ../shared/data/bag.avi \\
        --bbox 316,140,112,115 --out boxes.txt --save-video out.mp4
    siamtrt track --model DIR --video 0 --show            # camera 0; draw the box on the first frame

Box files (--format, default from the --out suffix, else txt): txt = pysot/OTB x,y,w,h per line (several targets:
their groups follow each other); csv = header frame,target,x,y,w,h,score; mot = MOTChallenge rows; json. The first
frame holds the given box with score 1. --out - writes to stdout. Rows reach the disk as frames are tracked
(OUT.part until the run completes; an interrupted run says where its frames are and exits 130 / 143).
Repeat --bbox to track several targets in one batched inference per frame. --mode longterm searches the whole
frame (pysot's 831 search) while a target is lost; --mode distractor re-ranks proposals against the
similar-looking objects seen so far (docs/runtime.md "Tracking modes").
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ..runtime.backends import BACKENDS
from .common import add_verbose, parse_args, positive_int, run_command, setup_logging


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--model", required=True, help="exported model directory (template.onnx, search.onnx, ...)")
    ap.add_argument("--video", required=True, help="video file, image folder (OTB img/ layout ok) or camera index")
    ap.add_argument("--bbox", action="append", metavar="x,y,w,h",
                    help="initial box in the first frame, 0-based pixels; repeat for several targets (omitted with "
                         "--show: draw it on the first frame). A negative corner works: --bbox -20,-10,112,115")
    ap.add_argument("--out", help="write boxes here, one frame at a time ('-' = stdout)")
    ap.add_argument("--format", choices=("txt", "csv", "mot", "json"),
                    help="box file format (default: from the --out suffix, else txt)")
    ap.add_argument("--save-video", help="write a video with the boxes drawn (e.g. out.mp4)")
    ap.add_argument("--show", action="store_true", help="display the tracking (q or Esc stops)")
    ap.add_argument("--backend", default="auto",
                    help=" | ".join(("auto",) + tuple(BACKENDS)) + " (default auto: TensorRT with engines and a GPU, "
                         "else OpenVINO where installed, else ONNX Runtime)")
    ap.add_argument("--mode", help="short | longterm | distractor | longterm+distractor (default: the model's, "
                                   "short unless exported from a pysot _lt config; longterm needs an export with "
                                   "--lost-instance-size)")
    ap.add_argument("--threads", type=positive_int,
                    help="CPU threads (ONNX Runtime, OpenVINO; default: physical cores)")
    ap.add_argument("--providers", help="ONNX Runtime providers: auto | cpu | cuda | tensorrt (default auto)")
    ap.add_argument("--cuda-graph", action="store_true", help="TensorRT: replay the search step as a CUDA graph")
    ap.add_argument("--start-frame", type=int, default=0, metavar="N",
                    help="start at frame N (the box is given in it; default 0)")
    ap.add_argument("--max-frames", type=positive_int, help="stop after this many frames")
    ap.add_argument("--no-read-ahead", action="store_true",
                    help="decode each frame only when the previous one is tracked (default: the next frame is "
                         "decoded while the network runs)")
    ap.add_argument("--no-progress", action="store_true", help="no progress line")
    add_verbose(ap)
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(build_parser(), argv)
    setup_logging(args.verbose)
    return run_command(lambda: track(args), name="track")


def track(args: argparse.Namespace) -> int:
    from ..runtime.run import parse_bbox, track_video

    opts = {}
    if args.threads:
        opts["threads"] = args.threads
    if args.providers:
        opts["providers"] = args.providers
    if args.cuda_graph:
        opts["cuda_graph"] = True
    boxes = [parse_bbox(b) for b in args.bbox] if args.bbox else None
    run = track_video(args.model, args.video, None if boxes is None else boxes[0] if len(boxes) == 1 else boxes,
                      out=args.out, fmt=args.format, save_video=args.save_video, show=args.show,
                      backend=args.backend, max_frames=args.max_frames, start_frame=args.start_frame,
                      progress=not args.no_progress, mode=args.mode, read_ahead=not args.no_read_ahead,
                      keep_results=False, **opts)  # rows stream to --out: nothing kept per frame (live streams)
    # with --out - the boxes own stdout: the summary goes to stderr
    print(run.summary(), file=sys.stderr if args.out == "-" else sys.stdout)
    return 0
