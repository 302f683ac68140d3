"""Track a video through a Triton server serving a siamtrt repository (the stateful tracker model).

    siamtrt serve --model-repository triton_repo &          # or any tritonserver on that repository
    siamtrt client --url 127.0.0.1:8001 --video ../shared/data/bag.avi --bbox 316,140,112,115 --out boxes.txt

One sequence per run: the first frame and the box start it, every later frame returns the box and score. Box files
as `siamtrt track` writes them (--format txt | csv | mot | json, default from the --out suffix; '-' = stdout), each
row on disk as soon as the server answers (OUT.part until the run completes).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .common import add_verbose, parse_args, positive_int, run_command, setup_logging

PROTOCOLS = ("grpc", "http")  # = siamtrt.serving.client.PROTOCOLS (imported lazily: tritonclient is optional)


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--url", required=True, help="server host:port (gRPC 8001 or HTTP 8000)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="grpc", help="default grpc")
    p.add_argument("--model", default="siamtrt_tracker", help="tracker model name (default siamtrt_tracker)")
    p.add_argument("--video", required=True, help="video file or image folder")
    p.add_argument("--bbox", required=True, metavar="x,y,w,h", help="the target in the first frame")
    p.add_argument("--max-frames", type=positive_int, help="stop after this many frames")
    p.add_argument("--out", help="box file ('-' = stdout)")
    p.add_argument("--format", choices=("txt", "csv", "mot", "json"),
                   help="box file format (default: from the --out suffix, else txt)")
    add_verbose(p)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(build_parser(), argv)
    setup_logging(args.verbose)
    return run_command(lambda: client(args), name="client")


def client(args: argparse.Namespace) -> int:
    from ..errors import Interrupted
    from ..outputs import check_writable, part_path, refuse_binary
    from ..runtime.boxes import BoxWriter, box_format_for
    from ..runtime.run import initial_boxes, parse_bbox
    from ..runtime.video import open_frames
    from ..serving.client import track_video
    from ..serving.repository import ServingError

    bbox = parse_bbox(args.bbox)
    fmt = box_format_for(args.out, args.format)
    check_writable([args.out], what=["--out"], inputs=[args.video],
                   partials=[(part_path(args.out), "--out's partial file")] if args.out not in (None, "-") else [])
    if args.out not in (None, "-"):
        refuse_binary(args.out)
    frames = open_frames(args.video, max_frames=args.max_frames)  # a bad video fails before any request
    try:
        bbox = initial_boxes(bbox, frames, show=False)[0]  # track's check, on the first frame, before START
    except BaseException:
        frames.close()
        raise
    state = {"writer": None, "done": 0}

    def on_frame(i, box, score):  # the file appears with the server's first answer, not before
        if args.out and state["writer"] is None:
            state["writer"] = BoxWriter(args.out, fmt)
        if state["writer"] is not None:
            state["writer"].write(i, box, score)
        state["done"] = i + 1

    def kept() -> str:
        writer = state["writer"]
        if writer is not None:
            writer.close()
        return f"after {state['done']} frames" + (f"; boxes so far in {writer.where}" if writer is not None else "")

    try:
        res = track_video(args.url, frames, bbox, args.protocol, args.model, on_frame=on_frame)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted {kept()}") from None
    except ServingError as e:  # the server went away mid-stream: say what was kept, as track does
        if not state["done"]:
            raise
        part = state["writer"] is not None and args.out != "-"
        raise type(e)(f"{e.what} {kept()}", e.evidence,
                      "the server answered frames, then stopped answering (stopped or restarted?): check it runs "
                      "(siamtrt serve's log) and --url"
                      + (f"; the rows so far stay in {part_path(args.out)}: move or delete it before running again"
                         if part else "")) from None
    except BaseException:
        if state["writer"] is not None:
            state["writer"].close()
        raise
    out = state["writer"].commit() if state["writer"] is not None else None
    stream = sys.stderr if args.out == "-" else sys.stdout
    print(summary(res), file=stream)
    if out is not None:
        print(f"boxes: {out}", file=stream)
    return 0


def summary(res) -> str:
    """The run's line: frames, time, rate and median latency of the tracked frames (frame 0 only starts the
    sequence: a 1-frame run tracks none)."""
    import numpy as np

    n = len(res.boxes)
    if not len(res.latencies):
        return f"Triton: {n} frame in {res.seconds:.2f} s (the first frame only starts the sequence: none tracked)"
    return (f"Triton: {n} frames in {res.seconds:.2f} s ({(n - 1) / max(res.seconds, 1e-9):.1f} frames/s, "
            f"median latency {np.median(res.latencies) * 1e3:.1f} ms)")
