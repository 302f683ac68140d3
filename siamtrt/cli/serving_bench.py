"""Frames/s of 1, 4, 8 concurrent streams through a real Triton server vs in-process, side by side in one run.

Starts a local tritonserver (see siamtrt/serving/server.py for where it is found) on a repository written from the
model directory, tracks bag.avi as N identical streams, and reports both, the average search batch the dynamic
batcher formed, and how far the boxes are from the in-process runtime's.

  python benchmarks/serving.py                      # siamrpn_alex_dwxcorr, seeded random (stand-in) weights
  python benchmarks/serving.py --model models/mine --streams 1 4 8 --json serving.json --plot serving.png
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


from siamtrt.errors import SiamtrtError
from siamtrt.cli.common import add_verbose, positive_int


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--model", type=Path, help="model directory (default: siamrpn_alex_dwxcorr exported with seeded "
                                              "random weights into ./models, once)")
    p.add_argument("--video", help="video file or image folder (default: bag.avi in $SIAMTRT_DATA or ../shared/data)")
    p.add_argument("--bbox", help="x,y,w,h in frame 0 (default: the bag.avi box 316,140,112,115)")
    p.add_argument("--frames", type=positive_int, default=60, help="frames per stream (default 60)")
    p.add_argument("--streams", type=positive_int, nargs="+", default=[1, 4, 8], help="stream counts (default 1 4 8)")
    p.add_argument("--protocol", choices=["grpc", "http"], default="grpc", help="default grpc")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="ONNX Runtime threads per branch / in-process (default 1)")
    p.add_argument("--queue-delay-us", type=int, default=2000, help="batcher queue delay (default 2000)")
    p.add_argument("--json", default="serving.json", help="report file (default serving.json)")
    p.add_argument("--plot", default="serving.png", help="bar chart (default serving.png)")
    add_verbose(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        from siamtrt.benchmarks.data import DEFAULT_BOX, default_video
        from siamtrt.benchmarks.results import check_report_outputs, dump_json
        from siamtrt.benchmarks.variants import ensure_exported
        from siamtrt.runtime.run import parse_bbox
        from siamtrt.runtime.video import open_frames
        from siamtrt.serving.bench import format_table, plot_serving, run_serving_benchmark

        video = a.video or default_video()
        check_report_outputs(a.json, a.plot, inputs=[video])  # before the run, not after it
        frames = list(open_frames(video, max_frames=a.frames))  # cheap checks before export
        box = parse_bbox(a.bbox) if a.bbox else DEFAULT_BOX
        model = a.model or ensure_exported("siamrpn_alex_dwxcorr")
        report = run_serving_benchmark(model, frames, box, streams=a.streams, protocol=a.protocol,
                                       threads=a.threads, queue_delay_us=a.queue_delay_us)
    except SiamtrtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(report))
    print(f"wrote {dump_json(a.json, report)}, {plot_serving(report, a.plot)}")
    return 0
