"""Track a target through a video with an exported model directory (numpy + OpenCV + one backend, no torch).

    python runtime/track.py --model models/siamrpn_alex_dwxcorr --video ../shared/data/bag.avi \\
        --bbox 316,140,112,115 --out boxes.txt --save-video out.mp4

Writes one line per frame, x,y,w,h,score (frame 0 is the given box with score 1). Repeat --bbox to track several
targets in one batched inference per frame (each line then holds one x,y,w,h,score group per target).
--mode longterm searches the whole frame (pysot's 831 search) while a target is lost; --mode distractor re-ranks
proposals against the similar-looking objects seen so far (docs/runtime.md "Tracking modes").
"""

import argparse
import sys
from pathlib import Path


from siamtrt.errors import SiamtrtError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--model", required=True, help="exported model directory (template.onnx, search.onnx, ...)")
    ap.add_argument("--video", required=True, help="video file, image folder (OTB img/ layout ok) or camera index")
    ap.add_argument("--bbox", required=True, action="append", metavar="x,y,w,h",
                    help="initial box in frame 0, 0-based pixels; repeat for several targets")
    ap.add_argument("--out", help="write boxes here (one line per frame: x,y,w,h,score)")
    ap.add_argument("--save-video", help="write a video with the boxes drawn (e.g. out.mp4)")
    ap.add_argument("--show", action="store_true", help="display the tracking (q or Esc stops)")
    ap.add_argument("--backend", default="auto", help="auto | onnxruntime | tensorrt (default auto)")
    ap.add_argument("--mode", help="short | longterm | distractor | longterm+distractor (default: the model's, "
                                   "short unless exported from a pysot _lt config; longterm needs an export with "
                                   "--lost-instance-size)")
    ap.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: physical cores)")
    ap.add_argument("--providers", help="ONNX Runtime providers: auto | cpu | cuda | tensorrt (default auto)")
    ap.add_argument("--cuda-graph", action="store_true", help="TensorRT: replay the search step as a CUDA graph")
    ap.add_argument("--max-frames", type=int, help="stop after this many frames")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)

    from siamtrt.runtime.run import parse_bbox, track_video

    opts = {}
    if args.threads:
        opts["threads"] = args.threads
    if args.providers:
        opts["providers"] = args.providers
    if args.cuda_graph:
        opts["cuda_graph"] = True
    try:
        boxes = [parse_bbox(b) for b in args.bbox]
        weights = _weights(args.model)
        if weights[1]:
            print(weights[1], file=sys.stderr)  # once, before the progress bar
        run = track_video(args.model, args.video, boxes[0] if len(boxes) == 1 else boxes, out=args.out,
                          save_video=args.save_video, show=args.show, backend=args.backend,
                          max_frames=args.max_frames, progress=not args.no_progress, mode=args.mode, **opts)
    except SiamtrtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    head, _, rest = run.summary().partition("\n")
    print(f"{head} [weights: {weights[0]}{' — UNTRAINED' if weights[1] else ''}]\n{rest}")
    return 0


def _weights(model: str):
    """(weights line, untrained warning or "") from the model directory's search.onnx metadata."""
    from siamtrt.metadata import read_onnx_metadata, untrained_warning, weights_line

    path = Path(model) / "search.onnx"
    if not path.is_file():  # an engine-only directory: the runtime reports what is missing
        return "unknown", ""
    meta = read_onnx_metadata(path)
    return weights_line(meta), untrained_warning(meta)
