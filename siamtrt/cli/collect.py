"""Collect INT8 calibration crops from real video, cut exactly as the tracker cuts them.

    python calibration/collect.py --model models/siamrpn_mobilev2_l234_dwxcorr \\
        --video ../shared/data/bag.avi --bbox 316,140,112,115 --out calib/mobilev2_bag.npz

Template crops (E x E) and search crops (S x S) come from the FP32 tracker's own trajectory (from --bbox), or from
per-frame boxes (--boxes gt.txt; an OTB folder's groundtruth_rect.txt is used when no box is given). Repeat --video
for several sources, with one --bbox or --boxes per --video, in the same order. Sampling is deterministic (evenly
spaced frames); --max-samples caps the search crops over all sources. Search crops are stored with the FP32 kernels
of their paired template, so the search branch is calibrated on realistic kernel inputs.
"""

import argparse

from .common import add_verbose, parse_args, positive_int, run_command, setup_logging


def build_parser(prog=None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--model", required=True, help="fp32 model directory (from export/to_onnx.py)")
    ap.add_argument("--video", required=True, action="append",
                    help="video file, image folder or OTB sequence folder; repeatable")
    ap.add_argument("--bbox", action="append", metavar="x,y,w,h",
                    help="initial box in frame 0 (the tracker's trajectory gives the crops); one per --video")
    ap.add_argument("--boxes", action="append", metavar="FILE",
                    help="per-frame boxes (x,y,w,h or 8-value polygons) instead of the trajectory; one per --video")
    ap.add_argument("--out", required=True, help="calibration file to write (.npz)")
    ap.add_argument("--max-samples", type=positive_int, default=256,
                    help="search crops over all sources (default 256)")
    ap.add_argument("--templates", type=positive_int, default=8,
                    help="template crops per source, frame 0 included (default 8)")
    ap.add_argument("--max-frames", type=positive_int, help="use at most this many frames of each source")
    ap.add_argument("--threads", type=positive_int, help="ONNX Runtime threads (default: physical cores)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_verbose(ap)
    return ap


def main(argv=None) -> int:
    args = parse_args(build_parser(), argv)
    setup_logging(args.verbose)
    return run_command(lambda: run(args), name="collect")


def run(args: argparse.Namespace) -> int:
    from siamtrt.calibration.collect import collect, sources_from_args

    sources = sources_from_args(args.video, args.bbox, args.boxes)
    summary = collect(args.model, sources, args.out, max_samples=args.max_samples,
                      templates_per_source=args.templates, max_frames=args.max_frames, threads=args.threads,
                      progress=not args.no_progress)
    print(summary)
    return 0
